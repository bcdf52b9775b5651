//! The `database-root` action: for each configured database connection, a new password
//! for the user the engine connects as (`rotate-root`), then a dynamic credential issued
//! and revoked to prove the engine still reaches the database with it.
//!
//! Every connection is checked before any is rotated: a connection that does not exist,
//! or whose admin user is also a static role's user (the role's rotation and the root
//! rotation would take the password from each other), is refused with nothing changed.
//! After `rotate-root` only the engine knows the password; a run cut off after it
//! rotates again next time, which changes nothing for the applications (their
//! credentials are the engine's dynamic ones).

use serde::Serialize;
use tracing::{info, warn};

use super::{config::DatabaseConnection, CredentialRotation, RotationError};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{Fleet, ParameterStore},
    },
    error_chain,
    ids::NodeAddr,
    keys::{database_generation, record_database_rotation, Generation},
    secret::Secret,
};

/// One connection after a `database-root` action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseRootReport {
    /// `<mount>/<connection>`.
    pub connection: String,
    /// The user whose password was rotated.
    pub admin: String,
    /// The dynamic credential's user that proved the engine works (its lease revoked).
    pub proven_with: String,
    /// The generation of database root credentials this rotation made: snapshots taken
    /// before it record an older one, and their restore names the connections' root
    /// passwords as stale.
    pub generation: Generation,
}

impl<F: Fleet, N: NodeApi, P: ParameterStore> CredentialRotation<F, N, P> {
    pub(super) async fn database_root_on(
        &self,
        node: &NodeAddr,
        token: &Secret,
    ) -> Result<Vec<DatabaseRootReport>, RotationError> {
        if self.databases.is_empty() {
            return Err(RotationError::NoDatabaseConnections);
        }
        let failed = |step: &'static str| move |source| RotationError::Vault { step, source };
        // Every connection checked first: a refusal changes nothing.
        let mut admins = Vec::with_capacity(self.databases.len());
        for db in &self.databases {
            let admin = self
                .vault
                .database_admin(node, token, &db.mount, &db.connection)
                .await
                .map_err(failed("cannot read a database connection"))?
                .ok_or_else(|| RotationError::NoSuchDatabaseConnection {
                    connection: db.to_string(),
                })?;
            let statics = self
                .vault
                .static_role_users(node, token, &db.mount)
                .await
                .map_err(failed("cannot read the database mount's static roles"))?;
            if let Some((role, _)) = statics.iter().find(|(_, user)| *user == admin) {
                return Err(RotationError::DatabaseAdminIsStaticRole {
                    connection: db.to_string(),
                    admin,
                    role: role.clone(),
                });
            }
            admins.push(admin);
        }
        // A count that cannot be read would be lost by the first write: refused first.
        database_generation(&self.parameters, &self.shares.layout).await?;
        let mut reports = Vec::with_capacity(self.databases.len());
        for (db, admin) in self.databases.iter().zip(admins) {
            self.vault
                .rotate_database_root(node, token, &db.mount, &db.connection)
                .await
                .map_err(failed(
                    "cannot rotate a database connection's root credentials",
                ))?;
            let generation = record_database_rotation(
                &self.parameters,
                &self.shares.layout,
                &self.shares.kms_key,
            )
            .await?;
            info!(connection = %db, admin = %admin, generation, "database root credentials rotated; proving the engine still works");
            let issued = self
                .vault
                .database_credential(node, token, &db.mount, &db.role)
                .await
                .map_err(|source| RotationError::DatabaseProofFailed {
                    connection: db.to_string(),
                    role: db.role.clone(),
                    source,
                })?;
            if let Err(e) = self.vault.revoke_lease(node, token, &issued.lease_id).await {
                warn!(connection = %db, error = %error_chain(&e), "the proving credential's lease was not revoked; it expires with its TTL");
            }
            reports.push(DatabaseRootReport {
                connection: db.to_string(),
                admin,
                proven_with: issued.username,
                generation,
            });
        }
        Ok(reports)
    }
}

impl std::fmt::Display for DatabaseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.mount, self.connection)
    }
}
