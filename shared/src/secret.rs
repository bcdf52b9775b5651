//! [`Secret`]: the one type that holds unseal shares, tokens, secret IDs and passwords.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A value that must never reach a log, an error or a panic.
///
/// `Debug` and `Display` print `[redacted]`; there is no `Serialize`, so a secret can only
/// leave through [`Secret::expose`], at the one call site that sends it. The inner buffer
/// is wiped on drop. Cloning copies the secret (one more wipe on drop, nothing else).
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value read from SSM, a Vault response or a test.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The clear value. Every call site is a place where a secret leaves: keep them few.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_nested_debug_redact() {
        let secret = Secret::new("canary-token-91b2");
        #[derive(Debug)]
        #[allow(dead_code)] // only read through Debug
        struct Holder {
            token: Secret,
        }
        let holder = Holder {
            token: secret.clone(),
        };
        for text in [
            format!("{secret:?}"),
            secret.to_string(),
            format!("{holder:?}"),
        ] {
            assert!(!text.contains("canary"), "secret leaked: {text}");
            assert!(text.contains("[redacted]"), "no redaction marker: {text}");
        }
        assert_eq!(secret.expose(), "canary-token-91b2");
    }

    #[test]
    fn deserialises_from_a_plain_string() {
        let secret: Secret = serde_json::from_str("\"s.abc\"").expect("a JSON string");
        assert_eq!(secret.expose(), "s.abc");
    }
}
