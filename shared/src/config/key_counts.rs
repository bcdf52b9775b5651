//! The share count and threshold a cluster is initialised with, read by node-lifecycle
//! and by dr-failover (a standby rebuilt with the primary's counts).

use super::{invalid, ConfigError, Env};

/// `KEY_SHARES` (default 5) and `KEY_THRESHOLD` (default 3), each from 1 to 10: the
/// share count and threshold a cluster is initialised with (a standby's are its
/// primary's). The threshold is at most the count, and at least 2 when the count is.
pub fn key_counts(env: &Env) -> Result<(u8, u8), ConfigError> {
    let count = |name: &'static str, default: u8| -> Result<u8, ConfigError> {
        match env.parsed_or(name, default, "a whole number from 1 to 10")? {
            n @ 1..=10 => Ok(n),
            n => Err(invalid(name, &n.to_string(), "a whole number from 1 to 10")),
        }
    };
    let key_shares = count("KEY_SHARES", 5)?;
    let key_threshold = count("KEY_THRESHOLD", 3)?;
    if key_threshold > key_shares {
        return Err(invalid(
            "KEY_THRESHOLD",
            &key_threshold.to_string(),
            format!("at most KEY_SHARES ({key_shares})"),
        ));
    }
    if key_shares > 1 && key_threshold < 2 {
        // Vault refuses it: one share would unseal what several people hold.
        return Err(invalid(
            "KEY_THRESHOLD",
            "1",
            "at least 2 when KEY_SHARES is more than 1",
        ));
    }
    Ok((key_shares, key_threshold))
}
