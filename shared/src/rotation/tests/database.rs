//! `database-root` on the fake cluster: each connection rotated and proven by a dynamic
//! credential (its lease revoked); a connection whose admin is a static role's user, or
//! that does not exist, refused before any connection is rotated.

use super::*;
use crate::testing::FakeDatabase;

fn connection(mount: &str, name: &str, role: &str) -> DatabaseConnection {
    DatabaseConnection {
        mount: mount.into(),
        connection: name.into(),
        role: role.into(),
    }
}

/// Two connections on the `database` mount, each with a dynamic role.
fn with_databases() -> CredentialRotation<FakeFleet, FakeCluster, FakeParameters> {
    let cluster = FakeCluster::healthy(&NODES);
    {
        let mut s = cluster.state();
        for (name, admin) in [("orders", "vault-orders"), ("billing", "vault-billing")] {
            s.databases.insert(
                format!("database/{name}"),
                FakeDatabase {
                    admin: admin.into(),
                    ..FakeDatabase::default()
                },
            );
            s.database_roles
                .insert(format!("database/{name}-app"), format!("database/{name}"));
        }
        s.static_roles
            .insert("database/reporting".into(), "reporter".into());
    }
    let mut rotation = rotation(cluster, FakeLocks::default());
    rotation.databases = vec![
        connection("database", "orders", "orders-app"),
        connection("database", "billing", "billing-app"),
    ];
    rotation
}

fn rotations(rotation: &CredentialRotation<FakeFleet, FakeCluster, FakeParameters>) -> Vec<u64> {
    rotation
        .vault
        .state()
        .databases
        .values()
        .map(|d| d.root_rotations)
        .collect()
}

#[tokio::test]
async fn each_connection_is_rotated_and_proven_by_a_dynamic_credential() {
    let rotation = with_databases();
    let report = rotation
        .handle(&json!({"rotate": ["database-root"]}), "req-1", deadline())
        .await
        .expect("rotated");
    let reports = report.database_root.expect("the action ran");
    assert_eq!(
        reports
            .iter()
            .map(|r| (r.connection.as_str(), r.admin.as_str()))
            .collect::<Vec<_>>(),
        [
            ("database/orders", "vault-orders"),
            ("database/billing", "vault-billing")
        ]
    );
    assert!(reports.iter().all(|r| r.proven_with.starts_with("v-")));
    assert_eq!(rotations(&rotation), [1, 1]);
    assert_eq!(
        reports.iter().map(|r| r.generation).collect::<Vec<_>>(),
        [2, 3],
        "each rotated connection adds a generation of database root credentials"
    );
    assert_eq!(
        crate::keys::database_generation(&rotation.parameters, &rotation.shares.layout)
            .await
            .expect("read"),
        3
    );
    assert!(
        rotation.vault.state().leases.is_empty(),
        "the proving credentials' leases are revoked"
    );
}

#[tokio::test]
async fn an_admin_that_is_a_static_roles_user_or_a_missing_connection_is_refused_and_nothing_rotated(
) {
    let rotation = with_databases();
    rotation
        .vault
        .state()
        .static_roles
        .insert("database/billing-owner".into(), "vault-billing".into());
    let error = rotation
        .handle(&json!({"rotate": ["database-root"]}), "req-1", deadline())
        .await
        .expect_err("a static role's user");
    assert_eq!(error.error_type, "Permanent.DatabaseAdminIsStaticRole");
    assert!(
        error.message.contains("database/billing") && error.message.contains("billing-owner"),
        "{}",
        error.message
    );
    assert_eq!(
        rotations(&rotation),
        [0, 0],
        "not even the first connection"
    );

    let mut rotation = with_databases();
    rotation
        .databases
        .push(connection("database", "gone", "gone-app"));
    let error = rotation
        .rotate(&[RotationTarget::DatabaseRoot], "req-2", deadline())
        .await
        .expect_err("no such connection");
    assert_eq!(error.name(), "NoSuchDatabaseConnection");
    assert_eq!(rotations(&rotation), [0, 0]);

    let rotation = with_databases();
    let count = rotation.shares.layout.database_generation();
    rotation
        .parameters
        .values
        .lock()
        .expect("unpoisoned")
        .insert(count.clone(), "two".into());
    let error = rotation
        .rotate(&[RotationTarget::DatabaseRoot], "req-4", deadline())
        .await
        .expect_err("a generation count that is not a number");
    assert!(
        crate::error_chain(&error).contains(&count),
        "{}",
        crate::error_chain(&error)
    );
    assert_eq!(rotations(&rotation), [0, 0], "nothing rotated");

    let mut rotation = with_databases();
    rotation.databases.clear();
    let error = rotation
        .rotate(
            &[RotationTarget::Keyring, RotationTarget::DatabaseRoot],
            "req-3",
            deadline(),
        )
        .await
        .expect_err("nothing configured");
    assert_eq!(error.name(), "NoDatabaseConnections");
    assert_eq!(
        rotation.vault.state().keyring_term,
        0,
        "the keyring untouched"
    );
}

#[tokio::test]
async fn a_database_that_stops_answering_after_the_rotation_is_named() {
    let rotation = with_databases();
    // The database answers the rotation, then not the proving credential.
    rotation
        .vault
        .state()
        .database_roles
        .insert("database/orders-app".into(), "database/elsewhere".into());
    let error = rotation
        .rotate(&[RotationTarget::DatabaseRoot], "req-1", deadline())
        .await
        .expect_err("the proof fails");
    assert_eq!(error.name(), "DatabaseProofFailed");
    assert!(
        crate::error_chain(&error).contains("database/orders"),
        "{}",
        crate::error_chain(&error)
    );
}
