//! Fake pool registry, with the conditional writes of the real one.

use super::fakes::shared_handle;
use crate::model::pool::{MemberState, PoolMember};
use crate::model::ServiceError;
use crate::ports::PoolRegistry;
use async_trait::async_trait;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// Fake registry: members by pool and instance id.
#[derive(Clone, Default)]
pub struct FakePoolRegistry(Arc<PoolRegistryFake>);
shared_handle!(FakePoolRegistry, PoolRegistryFake);

/// The state behind a [`FakePoolRegistry`].
#[derive(Default)]
pub struct PoolRegistryFake {
    pub members: Mutex<Vec<PoolMember>>,
    /// Reading the registry fails with a service error.
    pub failing_reads: Mutex<bool>,
    /// Applied to the members once, right after the next read: a build's write racing the keeper.
    pub after_read: Mutex<Option<ChangeAfterRead>>,
}

/// A change of the registry between the keeper's read and its write.
pub type ChangeAfterRead = Box<dyn FnOnce(&mut Vec<PoolMember>) + Send>;

impl PoolRegistryFake {
    /// Adds a member of `pool` in `state`, created at `created_at`.
    pub fn add(&self, pool: &str, instance_id: &str, state: MemberState, created_at: u64) {
        self.members.lock().unwrap().push(PoolMember {
            pool: pool.into(),
            instance_id: instance_id.into(),
            state,
            builds: 0,
            created_at,
            claimed_by: None,
            prepared_by: None,
        });
    }

    /// Changes a member in place.
    pub fn update(&self, instance_id: &str, change: impl FnOnce(&mut PoolMember)) {
        if let Some(m) = self
            .members
            .lock()
            .unwrap()
            .iter_mut()
            .find(|m| m.instance_id == instance_id)
        {
            change(m);
        }
    }

    /// The member's state, or `None` once it is forgotten.
    pub fn state_of(&self, instance_id: &str) -> Option<MemberState> {
        self.members
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.instance_id == instance_id)
            .map(|m| m.state)
    }
}

#[async_trait]
impl PoolRegistry for FakePoolRegistry {
    async fn members(&self, pool: &str) -> Result<Vec<PoolMember>, ServiceError> {
        if *self.failing_reads.lock().unwrap() {
            return Err(ServiceError::Call {
                service: "dynamodb",
                operation: "Query",
                message: "AccessDenied".into(),
            });
        }
        let mut members = self.members.lock().unwrap();
        let read = members.iter().filter(|m| m.pool == pool).cloned().collect();
        if let Some(change) = self.after_read.lock().unwrap().take() {
            change(&mut members);
        }
        Ok(read)
    }

    async fn take_for_recycling(&self, member: &PoolMember) -> Result<bool, ServiceError> {
        let mut members = self.members.lock().unwrap();
        let Some(current) = members
            .iter_mut()
            .find(|m| m.pool == member.pool && m.instance_id == member.instance_id)
        else {
            return Ok(false);
        };
        if current.state != member.state
            || current.claimed_by != member.claimed_by
            || current.prepared_by != member.prepared_by
        {
            return Ok(false);
        }
        current.state = MemberState::Recycling;
        Ok(true)
    }

    async fn forget(&self, pool: &str, instance_id: &str) -> Result<(), ServiceError> {
        self.members.lock().unwrap().retain(|m| {
            !(m.pool == pool && m.instance_id == instance_id && m.state == MemberState::Recycling)
        });
        Ok(())
    }
}
