//! Scheduled and direct requests: health-probe, snapshot-backup, snapshot-restore,
//! credential-rotation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{describe, direct, eventbridge, is_schedule, EventError};

/// health-probe: a schedule tick or a direct `{}`; nothing to choose.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRequest;

impl ProbeRequest {
    /// Accepts a scheduled event (rule or Scheduler), `{}` or `null`.
    pub fn parse(value: &Value) -> Result<Self, EventError> {
        let empty = value.is_null() || value.as_object().is_some_and(|m| m.is_empty());
        if empty || eventbridge(value).is_some_and(|e| is_schedule(&e)) {
            return Ok(Self);
        }
        Err(EventError::Unrecognised {
            function: "health-probe",
            expected: "a scheduled event or {}",
            got: describe(value),
        })
    }
}

/// snapshot-backup: take one snapshot now.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Why, recorded in the catalog (`scheduled` for a schedule tick).
    #[serde(default)]
    pub reason: Option<String>,
    /// A schedule fired it (not a person).
    #[serde(skip)]
    pub scheduled: bool,
    /// The EventBridge event's id: a redelivery of the same event has the same one.
    #[serde(skip)]
    pub event_id: Option<String>,
}

impl BackupRequest {
    /// Accepts a scheduled event, `{}` or `{"reason": "..."}`.
    pub fn parse(value: &Value) -> Result<Self, EventError> {
        if let Some(event) = eventbridge(value) {
            if is_schedule(&event) {
                return Ok(Self {
                    reason: Some("scheduled".into()),
                    scheduled: true,
                    event_id: event.id.clone().filter(|id| !id.is_empty()),
                });
            }
            return Err(EventError::Unrecognised {
                function: "snapshot-backup",
                expected: "a scheduled event or {\"reason\": \"...\"}",
                got: describe(value),
            });
        }
        direct("snapshot-backup", value)
    }
}

/// Which snapshot to restore.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SnapshotSelector {
    /// The newest good snapshot: `"latest"`.
    Latest(Latest),
    /// The newest good snapshot taken at or before a time: `{"as_of": "2026-11-20T03:00:00Z"}`.
    AsOf {
        /// The time, RFC 3339.
        as_of: DateTime<Utc>,
    },
    /// One exact object version: `{"key": "...", "version_id": "..."}`.
    Exact {
        /// The S3 key.
        key: String,
        /// The S3 version id.
        version_id: String,
    },
}

/// The word `latest`, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Latest {
    /// `"latest"`.
    Latest,
}

/// snapshot-restore: which snapshot, and how carefully.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The snapshot.
    pub snapshot: SnapshotSelector,
    /// Say what would be restored, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Allow a snapshot taken from another cluster.
    #[serde(default)]
    pub force: bool,
    /// Why, recorded with the restore.
    #[serde(default)]
    pub reason: Option<String>,
    /// Let `latest` and `as_of` choose a safety snapshot (taken before an earlier
    /// restore) too. Without it they choose only backups, so "latest" never means "the
    /// state just before the restore you are undoing".
    #[serde(default)]
    pub include_pre_restore: bool,
}

/// The fields a restore request may have.
const RESTORE_FIELDS: [&str; 5] = [
    "snapshot",
    "dry_run",
    "force",
    "reason",
    "include_pre_restore",
];

const RESTORE_FORMS: &str = "{\"snapshot\": \"latest\"}, {\"snapshot\": {\"as_of\": \"<RFC 3339 time>\"}} or {\"snapshot\": {\"key\": \"...\", \"version_id\": \"...\"}}, with optional dry_run, force, reason and include_pre_restore";

impl RestoreRequest {
    /// Accepts only a direct request: a restore never runs from a schedule or an alarm.
    pub fn parse(value: &Value) -> Result<Self, EventError> {
        let function = "snapshot-restore";
        if eventbridge(value).is_some() || value.get("snapshot").is_none() {
            return Err(EventError::Unrecognised {
                function,
                expected: RESTORE_FORMS,
                got: describe(value),
            });
        }
        check_restore_fields(value)?;
        let request: Self = direct(function, value).map_err(|_| EventError::Invalid {
            function,
            field: "snapshot".into(),
            reason: format!("is not one of {RESTORE_FORMS}"),
        })?;
        if let SnapshotSelector::Exact { key, version_id } = &request.snapshot {
            if key.trim().is_empty() || version_id.trim().is_empty() {
                return Err(EventError::Invalid {
                    function,
                    field: "snapshot".into(),
                    reason: "needs a non-empty key and version_id".into(),
                });
            }
        }
        Ok(request)
    }
}

/// Refuses what serde would read wrongly or name vaguely: a field the request does not
/// have, a selector with fields of two forms (an untagged selector would silently be
/// read as one of them), an `as_of` that is not a time, or one in the future (there is
/// no snapshot from the future: "latest" is said so).
fn check_restore_fields(value: &Value) -> Result<(), EventError> {
    let invalid = |field: String, reason: String| EventError::Invalid {
        function: "snapshot-restore",
        field,
        reason,
    };
    if let Some(extra) = value
        .as_object()
        .and_then(|m| m.keys().find(|k| !RESTORE_FIELDS.contains(&k.as_str())))
    {
        return Err(invalid(
            extra.clone(),
            format!(
                "is not a field of a restore request ({})",
                RESTORE_FIELDS.join(", ")
            ),
        ));
    }
    let Some(selector) = value.get("snapshot").and_then(Value::as_object) else {
        return Ok(());
    };
    let (form, allowed): (&str, &[&str]) = if selector.contains_key("as_of") {
        ("an as_of", &["as_of"])
    } else {
        ("an exact", &["key", "version_id"])
    };
    if let Some(extra) = selector.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            format!("snapshot.{extra}"),
            format!(
                "is not a field of {form} selector (its fields: {})",
                allowed.join(", ")
            ),
        ));
    }
    if let Some(as_of) = selector.get("as_of") {
        let time = as_of
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .ok_or_else(|| {
                invalid(
                    "snapshot.as_of".into(),
                    format!("{as_of} is not an RFC 3339 time such as 2026-11-20T03:00:00Z"),
                )
            })?;
        if time > Utc::now() {
            return Err(invalid(
                "snapshot.as_of".into(),
                format!(
                    "{as_of} is in the future; ask for \"latest\" to restore the newest snapshot"
                ),
            ));
        }
    }
    Ok(())
}

/// What credential-rotation can rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotationTarget {
    /// Vault's barrier keyring (`sys/rotate`).
    Keyring,
    /// The functions' own AppRole secret IDs.
    ApproleSecretIds,
    /// Database secrets engines' root credentials.
    DatabaseRoot,
    /// The unseal shares of a Shamir-sealed cluster (a new generation, verified).
    UnsealShares,
    /// The recovery shares of an auto-unsealed cluster (a new generation, verified).
    RecoveryShares,
    /// The root key, shares unchanged (`sys/rotate/root`, OpenBao).
    RootKey,
}

impl RotationTarget {
    /// The target as requests and locks name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyring => "keyring",
            Self::ApproleSecretIds => "approle-secret-ids",
            Self::DatabaseRoot => "database-root",
            Self::UnsealShares => "unseal-shares",
            Self::RecoveryShares => "recovery-shares",
            Self::RootKey => "root-key",
        }
    }
}

/// credential-rotation: what to rotate now.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRequest {
    /// The targets; `None` (a schedule tick) means the configured set.
    #[serde(default)]
    pub rotate: Option<Vec<RotationTarget>>,
    /// Rotate even what is younger than its maximum age (after a suspected leak).
    #[serde(default)]
    pub force: bool,
}

impl RotationRequest {
    /// Accepts a scheduled event or `{"rotate": [...]}`.
    pub fn parse(value: &Value) -> Result<Self, EventError> {
        let function = "credential-rotation";
        if let Some(event) = eventbridge(value) {
            if is_schedule(&event) {
                return Ok(Self {
                    rotate: None,
                    force: false,
                });
            }
            return Err(EventError::Unrecognised {
                function,
                expected: "a scheduled event or {\"rotate\": [...]}",
                got: describe(value),
            });
        }
        let request: Self = direct(function, value)?;
        if request.rotate.as_ref().is_some_and(Vec::is_empty) {
            return Err(EventError::Invalid {
                function,
                field: "rotate".into(),
                reason: "is empty; name at least one of keyring, unseal-shares, recovery-shares, root-key, approle-secret-ids, database-root"
                    .into(),
            });
        }
        Ok(request)
    }
}
