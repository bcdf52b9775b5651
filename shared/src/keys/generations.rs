//! Which generation of shares is in force, and whether a rotation left a newer one
//! waiting. Generation 1 is the set init stored; generation `g` is in force once its
//! `in-force` parameter exists (written after the server verified it). A generation
//! above the one in force whose first share is stored is pending: a rotation stored it
//! and has not (yet) seen it verified.

use tracing::warn;

use super::{Generation, KeyLayout, SealKind, ShareKind};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{ParameterError, ParameterStore},
    },
    ids::NodeAddr,
    secret::Secret,
};

/// The generations of one kind of share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generations {
    /// The generation whose shares open the seal now.
    pub in_force: Generation,
    /// A newer generation stored by a rotation and not marked in force.
    pub pending: Option<Generation>,
    /// When the generation in force was verified (`None` for generation 1, made at
    /// init, or a mark that is not a time).
    pub in_force_since: Option<chrono::DateTime<chrono::Utc>>,
}

impl Generations {
    /// The order an unseal tries them in: the generation in force, a pending one, then
    /// the older ones, newest first.
    pub fn unseal_order(&self) -> Vec<Generation> {
        let mut order = vec![self.in_force];
        order.extend(self.pending);
        order.extend((1..self.in_force).rev());
        order
    }
}

/// Reads the generations of `kind` from SSM: one call per generation in force after the
/// first, and one for the pending one.
pub async fn generations(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
    kind: ShareKind,
) -> Result<Generations, ParameterError> {
    let mut in_force: Generation = 1;
    let mut in_force_since = None;
    while let Some(mark) = value(parameters, &keys.generation_in_force(kind, in_force + 1)).await? {
        in_force += 1;
        in_force_since = chrono::DateTime::parse_from_rfc3339(mark.expose())
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc));
    }
    let next = in_force + 1;
    let pending = parameters
        .exists(&keys.generation_share(kind, next, 1))
        .await?
        .then_some(next);
    Ok(Generations {
        in_force,
        pending,
        in_force_since,
    })
}

/// The newest generation marked in force, reading only whether the marks exist (no
/// share, no decryption): what a snapshot's catalog entry records.
pub async fn newest_in_force(
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
    kind: ShareKind,
) -> Result<Generation, ParameterError> {
    let mut in_force: Generation = 1;
    while parameters
        .exists(&keys.generation_in_force(kind, in_force + 1))
        .await?
    {
        in_force += 1;
    }
    Ok(in_force)
}

/// The generation a snapshot taken now is recorded with: the newest marked in force, of
/// the kind of share the node's seal has. `None`, with a warning, when the seal status or
/// SSM cannot say: the snapshot is worth more than its label.
pub async fn generation_for_catalog(
    vault: &(impl NodeApi + ?Sized),
    node: &NodeAddr,
    parameters: &(impl ParameterStore + ?Sized),
    keys: &KeyLayout,
) -> Option<Generation> {
    let kind = match vault.seal_status(node).await {
        Ok(status) => SealKind::of(&status).shares(),
        Err(e) => {
            warn!(node = %node, error = %crate::error_chain(&e), "the seal status could not be read; the snapshot is recorded without its share generation");
            return None;
        }
    };
    match newest_in_force(parameters, keys, kind).await {
        Ok(generation) => Some(generation),
        Err(e) => {
            warn!(error = %crate::error_chain(&e), "the share generation in force could not be read from SSM; the snapshot is recorded without it");
            None
        }
    }
}

async fn value(
    parameters: &(impl ParameterStore + ?Sized),
    name: &str,
) -> Result<Option<Secret>, ParameterError> {
    match parameters.secret(name).await {
        Ok(value) => Ok(Some(value)),
        Err(ParameterError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeParameters;

    #[tokio::test]
    async fn the_newest_generation_marked_in_force_is_in_force_and_the_next_one_pending() {
        let keys = KeyLayout::new("/p", "prod");
        let kind = ShareKind::Unseal;
        let stored = FakeParameters::with(&[("/p/prod/unseal/share-1", "a")]);
        assert_eq!(
            generations(&stored, &keys, kind).await.expect("read"),
            Generations {
                in_force: 1,
                pending: None,
                in_force_since: None,
            }
        );
        let stored = FakeParameters::with(&[
            ("/p/prod/unseal/share-1", "a"),
            ("/p/prod/unseal/gen-2/share-1", "b"),
            ("/p/prod/unseal/gen-2/in-force", "2026-12-01T00:00:00Z"),
            ("/p/prod/unseal/gen-3/share-1", "c"),
        ]);
        assert_eq!(
            generations(&stored, &keys, kind).await.expect("read"),
            Generations {
                in_force: 2,
                pending: Some(3),
                in_force_since: "2026-12-01T00:00:00Z".parse().ok(),
            }
        );
        assert_eq!(
            generations(&stored, &keys, kind)
                .await
                .expect("read")
                .unseal_order(),
            [2, 3, 1]
        );
        assert_eq!(
            newest_in_force(&stored, &keys, kind).await.expect("read"),
            2
        );
        assert_eq!(
            generations(&stored, &keys, ShareKind::Recovery)
                .await
                .expect("read")
                .in_force,
            1,
            "each kind has its own generations"
        );
    }
}
