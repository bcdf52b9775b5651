//! What `sys/init` hands back, kept: every share, then the root token, each written to SSM
//! and retried for as long as the invocation lasts, because this run's memory holds the
//! only copy. And the check a later run makes before it trusts that they were kept.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{error, info, warn};

use super::{LifecycleError, NodeLifecycle};
use crate::{
    cluster::{
        node::NodeApi,
        policies::FUNCTIONS,
        ports::{ParameterError, ParameterStore, Stored},
    },
    error_chain,
    ids::InstanceId,
    secret::Secret,
    vault::InitOutput,
};

/// The first pause between two attempts at one write; it doubles up to [`RETRY_CAP`].
const RETRY_BASE: Duration = Duration::from_millis(200);
/// The longest pause between two attempts.
const RETRY_CAP: Duration = Duration::from_secs(10);
/// Kept free before the deadline to report the failure once writes stop.
const REPORT_MARGIN: Duration = Duration::from_secs(2);

impl<N: NodeApi, P: ParameterStore> NodeLifecycle<N, P> {
    /// Stores every share, then the root token, in that order. A failed write is retried
    /// with backoff until the invocation's deadline; if SSM still refuses then, the values
    /// not yet written are lost, and the error says which (the init record still says
    /// `started`, so no later run takes the keys for stored).
    pub(super) async fn store_init_output(
        &self,
        node: &InstanceId,
        out: &InitOutput,
        recovery: bool,
        deadline: Instant,
    ) -> Result<(), LifecycleError> {
        let s = &self.settings;
        let names = (1..=out.shares.len())
            .map(|n| s.share_parameter(recovery, n))
            .chain([s.root_token_parameter()]);
        let values = out.shares.iter().chain([&out.root_token]);
        let total = out.shares.len() + 1;
        for (stored, (name, value)) in names.zip(values).enumerate() {
            match self.store_new_until(&name, value, deadline).await {
                Ok(()) => {}
                Err(StoreFailure::Stale(e)) => return Err(e),
                Err(StoreFailure::Refused { attempts, source }) => {
                    error!(node = %node, parameter = %name, stored, total, attempts, error = %error_chain(&source), "SSM refused a share or the root token until the invocation's deadline; the values not stored are lost");
                    return Err(LifecycleError::SharesNotStored {
                        node: node.clone(),
                        parameter: name,
                        stored,
                        total,
                        attempts,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Writes a secret that must not exist yet, retrying any failure with backoff until
    /// `deadline`. An existing parameter is ours when it holds this very value (an earlier
    /// attempt was written and its answer lost); any other value is an earlier cluster's
    /// and is never replaced.
    async fn store_new_until(
        &self,
        name: &str,
        value: &Secret,
        deadline: Instant,
    ) -> Result<(), StoreFailure> {
        let stop = deadline.checked_sub(REPORT_MARGIN).unwrap_or(deadline);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self
                .parameters
                .put_new_secret(name, value, &self.settings.kms_key)
                .await
            {
                Ok(Stored::Written) => return Ok(()),
                Ok(Stored::AlreadyExists) => match self.parameters.secret(name).await {
                    Ok(existing) if existing.expose() == value.expose() => return Ok(()),
                    Ok(_) => {
                        return Err(StoreFailure::Stale(LifecycleError::StaleShares {
                            parameter: name.to_owned(),
                        }))
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            let pause = retry_pause(attempts);
            if Instant::now() + pause > stop {
                return Err(StoreFailure::Refused {
                    attempts,
                    source: failure,
                });
            }
            warn!(parameter = %name, attempts, retry_in_ms = pause.as_millis() as u64, error = %error_chain(&failure), "SSM write failed; retrying while the invocation lasts");
            tokio::time::sleep(pause).await;
        }
    }

    /// The parameters `sys/init`'s answer should have filled and that are missing: every
    /// share 1..KEY_SHARES of the record's kind, and the root token.
    pub(super) async fn missing_init_values(
        &self,
        recovery: bool,
    ) -> Result<Vec<String>, LifecycleError> {
        let s = &self.settings;
        let names = (1..=usize::from(s.key_shares))
            .map(|n| s.share_parameter(recovery, n))
            .chain([s.root_token_parameter()]);
        let mut missing = Vec::new();
        for name in names {
            if self.missing(&name).await? {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            info!(
                shares = s.key_shares,
                "every share and the root token are stored"
            );
        }
        Ok(missing)
    }

    pub(super) async fn missing(&self, name: &str) -> Result<bool, LifecycleError> {
        match self.parameters.secret(name).await {
            Ok(_) => Ok(false),
            Err(ParameterError::Missing { .. }) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Before `sys/init`: the first parameter this function would write that exists
    /// already (a share, the root token, an AppRole credential), which can only be an
    /// earlier cluster's. Checked all at once; it runs once in a cluster's life.
    pub(super) async fn earlier_clusters_parameter(
        &self,
    ) -> Result<Option<String>, LifecycleError> {
        let s = &self.settings;
        let mut names: Vec<String> = (1..=10)
            .flat_map(|n| [s.share_parameter(false, n), s.share_parameter(true, n)])
            .collect();
        names.push(s.root_token_parameter());
        for (function, _) in FUNCTIONS {
            names.push(s.approle_parameter(function, "role-id"));
            names.push(s.approle_parameter(function, "secret-id"));
        }
        let missing = futures::future::join_all(names.iter().map(|name| self.missing(name))).await;
        for (name, missing) in names.into_iter().zip(missing) {
            if !missing? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}

enum StoreFailure {
    /// Another value is in the way: never retried, never replaced.
    Stale(LifecycleError),
    /// SSM refused until the deadline.
    Refused {
        attempts: u32,
        source: ParameterError,
    },
}

/// Exponential backoff with full jitter in its upper half: between half and all of
/// min(cap, base × 2^(attempt-1)).
fn retry_pause(attempt: u32) -> Duration {
    let ceiling = RETRY_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_CAP);
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}
