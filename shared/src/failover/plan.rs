//! Before anything changes: whether the primary answers, which snapshot a failover would
//! restore (the newest DR copy of the primary's that has not failed a drill, from the DR
//! region's catalog), what it needs, and what would block it. The `plan` request returns
//! this and changes nothing; a failover builds its first record from the same choice.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::info;

use super::{
    ports::ProbeFailure,
    record::{FailoverRecord, Phase, PhaseDone},
    DrFailover, FailoverError,
};
use crate::{
    cluster::{node::NodeApi, ports::ParameterStore},
    keys::{Generation, SealKind, ShareKind},
    snapshots::{catalog::CatalogEntry, store::Location},
};

/// What the DR region sees of the primary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PrimaryView {
    /// Where it was probed (`PRIMARY_API_ADDR`).
    pub addr: String,
    /// What each probe found, in order.
    pub probes: Vec<String>,
    /// Whether a probe found an active or standby node answering.
    pub healthy: bool,
    /// Whether a probe met a certificate the CA bundle does not trust: the primary's
    /// state cannot be told (`VAULT_CACERT_PEM` must hold the primary's CA too).
    pub untrusted: bool,
}

/// The snapshot a failover would restore.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChosenSnapshot {
    /// The DR copy.
    pub object: Location,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Its age now, in seconds: the data a failover now would lose at most (the RPO).
    pub age_seconds: i64,
    /// The share generation it needs.
    pub share_generation: Generation,
    /// Its Raft index.
    pub index: u64,
    /// Whether a restore drill proved it.
    pub proven: bool,
    /// The canary it carries, which a restore of it must bring back (`None`: taken
    /// without one, checked by cluster id and Raft index alone).
    pub canary: Option<String>,
}

/// What a failover would do now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailoverPlan {
    /// The primary, probed now.
    pub primary: PrimaryView,
    /// The snapshot it would restore (`None`: none usable).
    pub snapshot: Option<ChosenSnapshot>,
    /// What stops a failover now; empty when it would go ahead.
    pub blocking: Vec<String>,
    /// The phases it would run, in order (after those a recorded failover completed).
    pub phases: Vec<Phase>,
    /// The failover recorded so far, if any.
    pub record: Option<FailoverRecord>,
}

/// The most shares of one generation looked for.
const MOST_SHARES: usize = 10;

impl<N: NodeApi, P: ParameterStore> DrFailover<N, P> {
    /// What a failover would do; changes nothing.
    pub(super) async fn plan(&self) -> Result<FailoverPlan, FailoverError> {
        let primary = self.probe_primary().await;
        let record = self.records.current().await?;
        let mut blocking = Vec::new();
        if primary.healthy {
            blocking.push(format!(
                "the primary answers healthy at {}: only a forced failover would go ahead",
                primary.addr
            ));
        }
        if primary.untrusted {
            blocking.push(format!(
                "the primary at {} answers with a certificate VAULT_CACERT_PEM does not trust: add its CA; only a forced failover would go ahead",
                primary.addr
            ));
        }
        let snapshot = match self.choose_snapshot().await {
            Ok(entry) => {
                if let Err(e) = self.check_shares(&entry).await {
                    blocking.push(e.to_string());
                }
                Some(chosen(&entry))
            }
            Err(e) => {
                blocking.push(e.to_string());
                None
            }
        };
        if record.as_ref().is_some_and(FailoverRecord::is_done) {
            blocking.push("a failover already ran to its end (see record)".into());
        }
        let last = record.as_ref().and_then(FailoverRecord::last_phase);
        info!(blocking = blocking.len(), "plan: nothing was changed");
        Ok(FailoverPlan {
            primary,
            snapshot,
            blocking,
            phases: Phase::ALL.into_iter().filter(|p| Some(*p) > last).collect(),
            record,
        })
    }

    /// Probes the primary `PRIMARY_PROBES` times, `PRIMARY_PROBE_INTERVAL_SECS` apart,
    /// stopping at the first healthy answer.
    async fn probe_primary(&self) -> PrimaryView {
        let mut view = PrimaryView {
            addr: self.settings.primary_api.to_string(),
            probes: Vec::new(),
            healthy: false,
            untrusted: false,
        };
        for n in 0..self.settings.probes {
            if n > 0 {
                tokio::time::sleep(self.settings.probe_interval).await;
            }
            match self.primary.health().await {
                Ok(h) if h.is_serving() => {
                    view.probes.push(format!("healthy ({})", h.code));
                    view.healthy = true;
                    break;
                }
                Ok(h) => view.probes.push(format!(
                    "answered {} (initialised {}, sealed {})",
                    h.code, h.initialized, h.sealed
                )),
                Err(ProbeFailure::NoAnswer(e)) => view.probes.push(format!("no answer: {e}")),
                Err(ProbeFailure::Untrusted(e)) => {
                    view.probes.push(format!("untrusted answer: {e}"));
                    view.untrusted = true;
                    break;
                }
            }
        }
        view
    }

    /// The alarm's word is not enough: the primary must fail every probe from here.
    pub(super) async fn confirm_primary_down(&self) -> Result<String, FailoverError> {
        let view = self.probe_primary().await;
        if view.healthy {
            return Err(FailoverError::PrimaryHealthy {
                addr: view.addr,
                answer: view.probes.join("; "),
            });
        }
        if view.untrusted {
            return Err(FailoverError::PrimaryUnverifiable {
                addr: view.addr,
                answer: view.probes.join("; "),
            });
        }
        Ok(format!(
            "the primary at {} failed {} of {} probes: {}",
            view.addr,
            view.probes.len(),
            self.settings.probes,
            view.probes.last().cloned().unwrap_or_default()
        ))
    }

    /// The newest DR copy of the primary's snapshots that no drill failed (a failover
    /// wants the least data loss; the copy's whole object is checked against its catalog
    /// entry before anything is sent); with `FAILOVER_REQUIRE_PROVEN`, the newest a drill
    /// proved.
    pub(super) async fn choose_snapshot(&self) -> Result<CatalogEntry, FailoverError> {
        let entries = self.catalog.entries(&self.settings.primary).await?;
        let catalogued = entries.len();
        let usable: Vec<&CatalogEntry> = entries
            .iter()
            .filter(|e| !e.drill_failed())
            .filter(|e| !self.settings.require_proven || e.drill_proven())
            .collect();
        let failed = catalogued - usable.len();
        usable
            .into_iter()
            .max_by_key(|e| e.taken_at)
            .cloned()
            .ok_or_else(|| FailoverError::NoSnapshot {
                primary: self.settings.primary.to_string(),
                catalogued,
                failed,
            })
    }

    /// The DR region must hold the primary's shares of the snapshot's generation.
    pub(super) async fn check_shares(&self, entry: &CatalogEntry) -> Result<(), FailoverError> {
        let generation = entry.share_generation.unwrap_or(1);
        let keys = &self.settings.primary_keys;
        let mut found = 0;
        for n in 1..=MOST_SHARES {
            if !self
                .parameters
                .exists(&keys.generation_share(ShareKind::Unseal, generation, n))
                .await?
            {
                break;
            }
            found = n;
        }
        if found == 0 {
            // Recovery shares instead: the primary unseals by itself (auto-unseal), and
            // its standby would need the same seal, not shares.
            if self
                .parameters
                .exists(&keys.generation_share(ShareKind::Recovery, generation, 1))
                .await?
            {
                // Recovery shares instead: the primary unseals by itself (auto-unseal).
                // Its snapshot unseals only in a standby whose own seal opens the
                // primary's root key (in AWS: the primary's KMS key's replica in this
                // region). A Shamir standby cannot: refused, nothing changed. A standby
                // with no node yet (a pilot light) is asked by the restore, which
                // refuses a Shamir one before sending (it has no unseal shares to use).
                return match self.standby_seal().await {
                    Some(SealKind::Shamir) => Err(FailoverError::AutoUnsealPrimary {
                        folder: keys.generation(ShareKind::Recovery, generation),
                    }),
                    _ => Ok(()),
                };
            }
            return Err(FailoverError::SharesMissing {
                generation,
                folder: keys.generation(ShareKind::Unseal, generation),
                found,
                needed: 1,
            });
        }
        Ok(())
    }

    /// The seal of the first standby node that answers (`None`: none does).
    async fn standby_seal(&self) -> Option<SealKind> {
        let members = self.standby_fleet.members().await.ok()?;
        for member in members {
            if let Ok(status) = self.vault.seal_status(&member.addr).await {
                return Some(SealKind::of(&status));
            }
        }
        None
    }

    /// The first record: the snapshot chosen and checked, the confirmation as its first
    /// phase. Nothing is written when the choice or the check fails.
    pub(super) async fn new_record(
        &self,
        trigger: &str,
        confirmation: String,
        request_id: &str,
    ) -> Result<FailoverRecord, FailoverError> {
        let started_at = Utc::now();
        let entry = self.choose_snapshot().await?;
        self.check_shares(&entry).await?;
        let mut record = FailoverRecord::new(request_id, trigger, &entry);
        record.started_at = started_at;
        record.phases.push(PhaseDone {
            phase: Phase::Confirmed,
            at: Utc::now(),
            took_ms: (Utc::now() - started_at).num_milliseconds().max(0) as u64,
            detail: confirmation,
        });
        info!(snapshot = %record.snapshot, taken_at = %record.snapshot_taken_at, generation = record.share_generation, "failover started: snapshot chosen");
        self.records.put(&record).await?;
        Ok(record)
    }
}

fn chosen(entry: &CatalogEntry) -> ChosenSnapshot {
    ChosenSnapshot {
        object: entry.object.clone(),
        taken_at: entry.taken_at,
        age_seconds: (Utc::now() - entry.taken_at).num_seconds(),
        share_generation: entry.share_generation.unwrap_or(1),
        index: entry.index,
        proven: entry.drill_proven(),
        canary: entry.canary.clone(),
    }
}
