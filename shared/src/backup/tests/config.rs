//! snapshot-backup's settings, as read from the environment.

use chrono::{TimeZone, Utc};

use super::*;
use crate::{config::AuthSettings, restore::RestoreConfig, snapshots::take::snapshot_key};

#[test]
fn defaults_fit_a_standard_cluster() {
    let config = BackupConfig::from(&env(&[]), "snapshot-backup").expect("minimal config");
    assert_eq!(config.backup.prefix, "vault-lifecycle");
    assert_eq!(config.backup.part_size, 8 << 20);
    assert_eq!(config.backup.retention, RetentionPolicy::default());
    assert_eq!(config.backup.lock_ttl, Duration::from_secs(900));
    assert_eq!(config.dr, None);
    assert_eq!(config.kms_key, None);
    assert!(
        matches!(&config.auth, AuthSettings::AppRole { role_id_parameter, .. }
        if role_id_parameter == "/vault-lifecycle/prod/approle/snapshot-backup/role-id")
    );
    let restore = RestoreConfig::from(&env(&[])).expect("minimal config");
    assert_eq!(restore.restore.ssm_prefix, "/vault-lifecycle");
    assert!(
        matches!(&restore.backup.auth, AuthSettings::AppRole { role_id_parameter, .. }
        if role_id_parameter == "/vault-lifecycle/prod/approle/snapshot-restore/role-id")
    );
    let taken = Utc
        .with_ymd_and_hms(2026, 11, 20, 3, 0, 0)
        .single()
        .expect("time");
    assert_eq!(
        snapshot_key(
            &config.backup.prefix,
            &config.backup.cluster,
            &taken,
            0x0a1b2c3d,
            184467
        ),
        "vault-lifecycle/prod/20261120T030000Z-0a1b2c3d-184467.snap"
    );
}

#[test]
fn every_error_names_its_variable() {
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("RETAIN_LAST", "0")], "RETAIN_LAST"),
        (&[("RETAIN_DAILY", "-1")], "RETAIN_DAILY"),
        (&[("SNAPSHOT_PART_SIZE_MIB", "4")], "SNAPSHOT_PART_SIZE_MIB"),
        (&[("DR_REGION", "us-west-2")], "DR_BUCKET"),
        (&[("DR_BUCKET", "dr")], "DR_REGION"),
        (
            &[("SNAPSHOT_TIMEOUT_SECS", "soon")],
            "SNAPSHOT_TIMEOUT_SECS",
        ),
        (&[("BACKUP_LOCK_TTL_SECS", "1.5")], "BACKUP_LOCK_TTL_SECS"),
    ];
    for (extra, name) in cases {
        let e = BackupConfig::from(&env(extra), "snapshot-backup").expect_err(name);
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    for name in ["STATE_TABLE", "SNAPSHOT_BUCKET"] {
        let pairs: Vec<_> = MINIMAL
            .iter()
            .filter(|(k, _)| *k != name)
            .copied()
            .collect();
        let e = BackupConfig::from(&Env::from_pairs(pairs), "snapshot-backup").expect_err(name);
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
    let e = RestoreConfig::from(&env(&[("RESTORE_HEALTHY_TIMEOUT_SECS", "x")]))
        .expect_err("bad timeout");
    assert!(
        e.to_string().contains("RESTORE_HEALTHY_TIMEOUT_SECS"),
        "{e}"
    );
}

#[test]
fn a_dr_bucket_needs_its_region_and_takes_its_key() {
    let config = BackupConfig::from(
        &env(&[
            ("DR_REGION", "us-west-2"),
            ("DR_BUCKET", "dr"),
            ("DR_KMS_KEY_ID", "k"),
            ("DR_STATE_TABLE", "dr-state"),
        ]),
        "snapshot-backup",
    )
    .expect("dr config");
    assert_eq!(
        config.dr,
        Some(DrSettings {
            region: "us-west-2".into(),
            bucket: "dr".into(),
            kms_key: Some("k".into()),
            table: Some("dr-state".into()),
        })
    );
}
