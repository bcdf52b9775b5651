//! The generation of the database engines' root credentials: 1 is what the operator
//! configured; each connection whose root credentials `database-root` rotated adds one.
//! A snapshot records the generation it was taken under: restoring one from an older
//! generation brings back a root password the database no longer accepts.
//!
//! One parameter, `<root>/database-root/generation`, holds the number (a SecureString
//! like every other parameter here; its value is not secret). It is written after the
//! rotation, under the rotation lock: a run cut off between the two rotates again on its
//! next run and writes then, so a snapshot taken in between is at worst reported as
//! stale when it is not, never the other way round.

use tracing::warn;

use super::{Generation, KeyLayout};
use crate::{
    cluster::ports::{ParameterError, ParameterStore},
    secret::Secret,
};

/// The generation of the database root credentials now (1 when none was ever rotated).
/// A value that is not a number is refused: writing over it would lose the count.
pub async fn database_generation(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
) -> Result<Generation, ParameterError> {
    let name = keys.database_generation();
    match parameters.secret(&name).await {
        Ok(value) => value
            .expose()
            .trim()
            .parse()
            .map_err(|_| ParameterError::Unavailable {
                reason: "its value is not a generation number; set it to the number of root rotations made so far plus one, or delete it to start again at 1 (snapshots taken before are then reported as current)".into(),
                name,
            }),
        Err(ParameterError::Missing { .. }) => Ok(1),
        Err(e) => Err(e),
    }
}

/// Records one more rotation of a connection's root credentials; returns the new
/// generation.
pub async fn record_database_rotation(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
    kms_key: &str,
) -> Result<Generation, ParameterError> {
    let next = database_generation(parameters, keys).await? + 1;
    parameters
        .replace_secret(
            &keys.database_generation(),
            &Secret::new(next.to_string()),
            kms_key,
        )
        .await?;
    Ok(next)
}

/// The generation a snapshot taken now is recorded with; `None`, with a warning, when
/// SSM cannot say (the snapshot is worth more than its label).
pub async fn database_generation_for_catalog(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
) -> Option<Generation> {
    match database_generation(parameters, keys).await {
        Ok(generation) => Some(generation),
        Err(e) => {
            warn!(error = %crate::error_chain(&e), "the database credential generation could not be read from SSM; the snapshot is recorded without it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeParameters;

    #[tokio::test]
    async fn each_recorded_rotation_adds_one_and_a_bad_value_is_refused_unchanged() {
        let keys = KeyLayout::new("/p", "prod");
        let stored = FakeParameters::with(&[]);
        assert_eq!(database_generation(&stored, &keys).await.expect("read"), 1);
        assert_eq!(
            record_database_rotation(&stored, &keys, "key")
                .await
                .expect("write"),
            2
        );
        assert_eq!(
            record_database_rotation(&stored, &keys, "key")
                .await
                .expect("write"),
            3
        );
        assert_eq!(
            database_generation_for_catalog(&stored, &keys).await,
            Some(3)
        );
        let tampered = FakeParameters::with(&[("/p/prod/database-root/generation", "three")]);
        let err = record_database_rotation(&tampered, &keys, "key")
            .await
            .expect_err("a value that is not a number");
        assert!(err.to_string().contains("not a generation number"), "{err}");
        assert_eq!(
            tampered
                .secret("/p/prod/database-root/generation")
                .await
                .expect("kept")
                .expose(),
            "three"
        );
        assert_eq!(
            database_generation_for_catalog(&tampered, &keys).await,
            None
        );
    }
}
