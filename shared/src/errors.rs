//! How every error says what a retry can do. Each error type of the crate implements
//! [`Classify`] once, beside its definition: a leaf error (a port's, Vault's, an event's)
//! from what went wrong, an operation's error by its own variants or by the leaf it wraps.
//! [`crate::lambda::FunctionError`] turns any of them into the invocation's
//! `Transient.<Name>` or `Permanent.<Name>` error type, in one place.

/// Whether a retry can help, and the name an operator looks up (`docs/errors.md`).
pub trait Classify: std::error::Error {
    /// True when the same request may succeed later unchanged (a service or node did not
    /// answer); false when something must be fixed first (bad input, configuration,
    /// permissions, a refusal that protects the cluster).
    fn retry_helps(&self) -> bool;
    /// The error's name, without the `Transient.`/`Permanent.` prefix.
    fn name(&self) -> &'static str;
}

/// An HTTP status that means "you are not allowed": permanent everywhere, whatever the
/// operation, because retrying with the same credentials cannot help.
pub const DENIED: u16 = 403;

/// The name `VaultError` gives a 403, kept by every operation error that wraps one.
pub const POLICY_DENIED: &str = "PolicyDenied";

/// What kind of failure an outside service (an AWS API) answered, as far as a retry is
/// concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The caller's identity may not do this (IAM, a KMS key policy, a bucket policy):
    /// permanent until the permissions are fixed.
    Denied,
    /// The resource named does not exist (a table, a bucket, a key): permanent until the
    /// configuration is fixed.
    NotFound,
    /// The service failed or did not answer, after the SDK's own retries: a retry may
    /// succeed.
    Unavailable,
}

/// A port's failure: its kind and the service's own error, with its whole context
/// (service code, message, request id). It never holds a secret: the SDK does not echo
/// parameter values or request bodies in its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFailure {
    /// Whether a retry can help.
    pub kind: FailureKind,
    /// The service's error.
    pub detail: String,
}

impl ServiceFailure {
    /// A failure a retry may cure.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Unavailable,
            detail: detail.into(),
        }
    }

    /// True unless the service denied the call or does not know the resource.
    pub fn retry_helps(&self) -> bool {
        self.kind == FailureKind::Unavailable
    }

    /// `AccessDenied`, `ResourceNotFound`, or `unavailable` (the port's own name).
    pub fn name(&self, unavailable: &'static str) -> &'static str {
        match self.kind {
            FailureKind::Denied => "AccessDenied",
            FailureKind::NotFound => "ResourceNotFound",
            FailureKind::Unavailable => unavailable,
        }
    }
}

impl std::fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FailureKind::Denied => write!(f, "access denied: {}", self.detail),
            FailureKind::NotFound => write!(f, "not found: {}", self.detail),
            FailureKind::Unavailable => f.write_str(&self.detail),
        }
    }
}

impl std::error::Error for ServiceFailure {}

impl From<String> for ServiceFailure {
    fn from(detail: String) -> Self {
        Self::unavailable(detail)
    }
}

impl From<&str> for ServiceFailure {
    fn from(detail: &str) -> Self {
        Self::unavailable(detail)
    }
}

#[cfg(test)]
mod tests {
    /// Every name an error can give is in the operators' table, and the table lists no
    /// name the code cannot give.
    #[test]
    fn the_docs_table_lists_every_error_name() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut in_code = std::collections::BTreeSet::new();
        let mut stack = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("source dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                // Names are the string literals inside `fn name` and `.name("...")`.
                for (i, _) in text.match_indices("fn name(") {
                    let body = &text[i..];
                    let end = body.find("\n    }\n").unwrap_or(body.len());
                    collect(&body[..end], &mut in_code);
                }
                for (i, _) in text.match_indices(".name(\"") {
                    collect(&text[i..i + 60.min(text.len() - i)], &mut in_code);
                }
            }
        }
        let docs =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md"))
                .expect("docs/errors.md");
        let in_docs: std::collections::BTreeSet<String> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_owned)
            .collect();
        assert!(in_code.len() > 40, "names found in the code: {in_code:?}");
        assert_eq!(in_code, in_docs, "docs/errors.md and the code disagree");
    }

    fn collect(text: &str, names: &mut std::collections::BTreeSet<String>) {
        for piece in text.split('"').skip(1).step_by(2) {
            if piece.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && piece.chars().all(|c| c.is_ascii_alphanumeric())
            {
                names.insert(piece.to_owned());
            }
        }
    }
}
