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
    lifecycle::records::{action_key, ActionRecord, InitRecord, RecordError, StateRecords},
};

/// Locks held in a map: name to (owner, expiry).
#[derive(Default)]
pub struct FakeLocks {
    /// The locks held.
    pub held: Mutex<BTreeMap<String, (String, SystemTime)>>,
}

#[async_trait]
impl Locks for FakeLocks {
    async fn claim(&self, name: &str, owner: &str, ttl: Duration) -> Result<Claim, LockError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = SystemTime::now();
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

    async fn init(&self) -> Result<Option<InitRecord>, RecordError> {
        Ok(self.init.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    async fn put_init(&self, record: &InitRecord) -> Result<(), RecordError> {
        *self.init.lock().unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
        Ok(())
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
    async fn init(&self) -> Result<Option<InitRecord>, RecordError> {
        self.as_ref().init().await
    }
    async fn put_init(&self, record: &InitRecord) -> Result<(), RecordError> {
        self.as_ref().put_init(record).await
    }
}
