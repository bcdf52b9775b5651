use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;

use crate::{
    cluster::{
        lifecycle_actions::{ActionError, ActionOutcome, LifecycleActions, Verdict},
        locks::{Claim, LockError, Locks, Released},
    },
    events::LifecycleAction,
    ids::InstanceId,
    lifecycle::records::{
        action_key, launch_key_prefix, ActionRecord, InitRecord, InitWrite, RecordError,
        StateRecords,
    },
};

/// Locks held in a map: name to (owner, expiry). Its clock is tokio's, so a lock lapses
/// in a test on the paused clock as time is advanced.
pub struct FakeLocks {
    /// The locks held.
    pub held: Mutex<BTreeMap<String, (String, SystemTime)>>,
    started: (SystemTime, tokio::time::Instant),
}

impl Default for FakeLocks {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
            started: (SystemTime::now(), tokio::time::Instant::now()),
        }
    }
}

impl FakeLocks {
    /// Now, on tokio's clock.
    pub fn now(&self) -> SystemTime {
        self.started.0 + self.started.1.elapsed()
    }
}

#[async_trait]
impl Locks for FakeLocks {
    async fn claim(&self, name: &str, owner: &str, ttl: Duration) -> Result<Claim, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.now();
        if let Some((holder, until)) = held.get(name) {
            if holder != owner && *until > now {
                return Ok(Claim::HeldBy {
                    owner: holder.clone(),
                    expires_at: *until,
                });
            }
        }
        held.insert(name.to_owned(), (owner.to_owned(), now + ttl));
        Ok(Claim::Acquired {
            expires_at: now + ttl,
        })
    }

    async fn release(&self, name: &str, owner: &str) -> Result<Released, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(name).is_some_and(|(holder, _)| holder == owner) {
            held.remove(name);
            return Ok(Released::Released);
        }
        Ok(Released::NotOwner)
    }
}

/// Lifecycle actions: what was completed and how many heartbeats were sent.
#[derive(Default)]
pub struct FakeActions {
    /// Completions, by token.
    pub completed: Mutex<BTreeMap<String, Verdict>>,
    /// Heartbeats sent.
    pub heartbeats: Mutex<u32>,
}

#[async_trait]
impl LifecycleActions for FakeActions {
    async fn complete(
        &self,
        action: &LifecycleAction,
        verdict: Verdict,
    ) -> Result<ActionOutcome, ActionError> {
        let mut completed = self.completed.lock().unwrap_or_else(|p| p.into_inner());
        if completed.contains_key(&action.token) {
            return Ok(ActionOutcome::AlreadyDone);
        }
        completed.insert(action.token.clone(), verdict);
        Ok(ActionOutcome::Done)
    }

    async fn heartbeat(&self, _action: &LifecycleAction) -> Result<ActionOutcome, ActionError> {
        *self.heartbeats.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Ok(ActionOutcome::Done)
    }
}

/// node-lifecycle's records held in memory.
#[derive(Default)]
pub struct FakeRecords {
    /// Lifecycle action records, by [`action_key`].
    pub actions: Mutex<BTreeMap<String, ActionRecord>>,
    /// The initialisation record.
    pub init: Mutex<Option<InitRecord>>,
}

#[async_trait]
impl StateRecords for FakeRecords {
    async fn action(&self, action: &LifecycleAction) -> Result<Option<ActionRecord>, RecordError> {
        Ok(self
            .actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&action_key(action))
            .cloned())
    }

    async fn put_action(
        &self,
        action: &LifecycleAction,
        record: &ActionRecord,
    ) -> Result<(), RecordError> {
        self.actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(action_key(action), record.clone());
        Ok(())
    }

    async fn unfinished_launch(
        &self,
        group: &str,
        instance: &InstanceId,
    ) -> Result<bool, RecordError> {
        let prefix = launch_key_prefix(group, instance);
        Ok(self
            .actions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(key, record)| key.starts_with(&prefix) && record.stage.in_progress()))
    }

    async fn init(&self) -> Result<Option<InitRecord>, RecordError> {
        Ok(self.init.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    async fn put_init(&self, record: &InitRecord) -> Result<InitWrite, RecordError> {
        let mut stored = self.init.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = stored.as_ref().filter(|c| c.stage > record.stage) {
            return Ok(InitWrite::Behind {
                stored: current.stage,
            });
        }
        *stored = Some(record.clone());
        Ok(InitWrite::Written)
    }
}

// Shared fakes: a test keeps one handle to read back and gives the function another.

#[async_trait]
impl<T: Locks> Locks for std::sync::Arc<T> {
    async fn claim(&self, name: &str, owner: &str, ttl: Duration) -> Result<Claim, LockError> {
        self.as_ref().claim(name, owner, ttl).await
    }
    async fn release(&self, name: &str, owner: &str) -> Result<Released, LockError> {
        self.as_ref().release(name, owner).await
    }
}

#[async_trait]
impl<T: LifecycleActions> LifecycleActions for std::sync::Arc<T> {
    async fn complete(
        &self,
        action: &LifecycleAction,
        verdict: Verdict,
    ) -> Result<ActionOutcome, ActionError> {
        self.as_ref().complete(action, verdict).await
    }
    async fn heartbeat(&self, action: &LifecycleAction) -> Result<ActionOutcome, ActionError> {
        self.as_ref().heartbeat(action).await
    }
}

#[async_trait]
impl<T: StateRecords> StateRecords for std::sync::Arc<T> {
    async fn action(&self, action: &LifecycleAction) -> Result<Option<ActionRecord>, RecordError> {
        self.as_ref().action(action).await
    }
    async fn put_action(
        &self,
        action: &LifecycleAction,
        record: &ActionRecord,
    ) -> Result<(), RecordError> {
        self.as_ref().put_action(action, record).await
    }
    async fn unfinished_launch(
        &self,
        group: &str,
        instance: &InstanceId,
    ) -> Result<bool, RecordError> {
        self.as_ref().unfinished_launch(group, instance).await
    }
    async fn init(&self) -> Result<Option<InitRecord>, RecordError> {
        self.as_ref().init().await
    }
    async fn put_init(&self, record: &InitRecord) -> Result<InitWrite, RecordError> {
        self.as_ref().put_init(record).await
    }
}

/// The initialisation record's contract, run over [`FakeRecords`] by a unit test and
/// over the DynamoDB adapter against a real table: a stage may be written again, a later
/// one over an earlier one, never an earlier one over a later one; a refused write
/// names the stage stored and leaves the record as it was. Starts with no record.
pub async fn init_record_contract(records: &dyn StateRecords) -> Result<(), String> {
    use crate::lifecycle::records::{InitStage, InitWrite};
    let at = |stage| InitRecord {
        stage,
        node: "i-0contract".into(),
        cluster_id: (stage == InitStage::Bootstrapped).then(|| "c-contract".to_owned()),
        recovery: false,
    };
    let stored = || async { records.init().await.map_err(|e| e.to_string()) };
    if let Some(found) = stored().await? {
        return Err(format!(
            "the contract starts with no record, found {found:?}"
        ));
    }
    let forward = [
        InitStage::Started,
        InitStage::Started,
        InitStage::SharesStored,
        InitStage::Bootstrapped,
        InitStage::Bootstrapped,
    ];
    for stage in forward {
        match records.put_init(&at(stage)).await {
            Ok(InitWrite::Written) => {}
            other => return Err(format!("writing {stage:?} forward answered {other:?}")),
        }
    }
    for stage in [InitStage::Started, InitStage::SharesStored] {
        match records.put_init(&at(stage)).await {
            Ok(InitWrite::Behind {
                stored: InitStage::Bootstrapped,
            }) => {}
            other => return Err(format!("writing {stage:?} back answered {other:?}")),
        }
    }
    match stored().await? {
        Some(found) if found == at(InitStage::Bootstrapped) => Ok(()),
        other => Err(format!("the refused writes changed the record: {other:?}")),
    }
}
