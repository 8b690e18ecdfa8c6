//! Fake EC2: the stack's instances, for the completion's release and the keeper.

use super::fakes::shared_handle;
use crate::model::{BuildInstance, BuildTags, InstanceState, ServiceError};
use crate::ports::{Fleet, Instances};
use async_trait::async_trait;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// Fake EC2: the stack's instances, each tagged with the execution that launched it.
#[derive(Clone, Default)]
pub struct FakeInstances(Arc<InstancesFake>);
shared_handle!(FakeInstances, InstancesFake);

/// The state behind a [`FakeInstances`].
#[derive(Default)]
pub struct InstancesFake {
    pub fleet: Mutex<Vec<BuildInstance>>,
    /// Ids of the instances terminated, in order.
    pub terminated: Mutex<Vec<String>>,
    /// Every execution a release was asked for.
    pub release_calls: Mutex<Vec<String>>,
    /// TerminateInstances fails with a service error.
    pub failing: Mutex<bool>,
    /// DescribeInstances fails with a service error.
    pub failing_listing: Mutex<bool>,
}

/// Tags of an instance launched by execution `execution_arn` for the fixtures' pipeline action
/// (`app`, execution `pe-1`, stage `Build`, action `Compile`) with a one-hour build timeout.
pub fn build_tags(execution_arn: &str) -> BuildTags {
    BuildTags {
        execution_arn: Some(execution_arn.to_string()),
        pipeline: Some("app".into()),
        pipeline_execution_id: Some("pe-1".into()),
        stage: Some("Build".into()),
        action: Some("Compile".into()),
        build_seconds: Some(3600),
    }
}

impl InstancesFake {
    /// Running instances the execution launched at time 0, tagged with [`build_tags`].
    pub fn launch(&self, execution_arn: &str, ids: &[&str]) {
        let mut fleet = self.fleet.lock().unwrap();
        for id in ids {
            fleet.push(BuildInstance {
                id: id.to_string(),
                state: InstanceState::Running,
                state_reason: None,
                launched_at: Some(0),
                tags: build_tags(execution_arn),
            });
        }
    }

    /// Changes an instance's state as something outside the flow would.
    pub fn set_state(&self, id: &str, state: InstanceState, reason: &str) {
        for instance in self.fleet.lock().unwrap().iter_mut().filter(|i| i.id == id) {
            instance.state = state.clone();
            instance.state_reason = Some(reason.to_string());
        }
    }

    /// The state of an instance, if the fake knows it.
    pub fn state_of(&self, id: &str) -> Option<InstanceState> {
        self.fleet
            .lock()
            .unwrap()
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.state.clone())
    }

    fn fail_if_asked(
        &self,
        flag: &Mutex<bool>,
        operation: &'static str,
    ) -> Result<(), ServiceError> {
        if *flag.lock().unwrap() {
            return Err(ServiceError::Call {
                service: "ec2",
                operation,
                message: "UnauthorizedOperation".into(),
            });
        }
        Ok(())
    }

    fn terminate_where(&self, matches: impl Fn(&BuildInstance) -> bool) -> Vec<String> {
        let mut stopped = Vec::new();
        for instance in self.fleet.lock().unwrap().iter_mut() {
            if matches(instance) && instance.state.is_live() {
                instance.state = InstanceState::ShuttingDown;
                stopped.push(instance.id.clone());
            }
        }
        self.terminated.lock().unwrap().extend(stopped.clone());
        stopped
    }
}

#[async_trait]
impl Instances for FakeInstances {
    async fn release_for_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<String>, ServiceError> {
        self.release_calls
            .lock()
            .unwrap()
            .push(execution_arn.to_string());
        self.fail_if_asked(&self.failing, "TerminateInstances")?;
        Ok(self.terminate_where(|i| i.tags.execution_arn.as_deref() == Some(execution_arn)))
    }
}

#[async_trait]
impl Fleet for FakeInstances {
    async fn build_instances(&self) -> Result<Vec<BuildInstance>, ServiceError> {
        self.fail_if_asked(&self.failing_listing, "DescribeInstances")?;
        Ok(self.fleet.lock().unwrap().clone())
    }

    async fn terminate(&self, ids: &[String]) -> Result<Vec<String>, ServiceError> {
        self.fail_if_asked(&self.failing, "TerminateInstances")?;
        Ok(self.terminate_where(|i| ids.contains(&i.id)))
    }
}
