//! All build instances of one stack, found by the stack tag, for the keeper.

use crate::ec2::{terminate_instances, SERVICE};
use crate::error::service_error;
use crate::{EXECUTION_TAG, STACK_TAG};
use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Instance};
use aws_sdk_ec2::Client;
use ec2_build_core::model::{BuildInstance, BuildTags, InstanceState};
use ec2_build_core::ports::Fleet;
use ec2_build_core::ServiceError;

/// [`Fleet`] over the SDK client, for the instances tagged `ec2-build:stack` = the stack name.
#[derive(Clone)]
pub struct Ec2Fleet {
    client: Client,
    stack_name: String,
}

impl Ec2Fleet {
    pub fn new(client: Client, stack_name: impl Into<String>) -> Self {
        Self {
            client,
            stack_name: stack_name.into(),
        }
    }
}

#[async_trait]
impl Fleet for Ec2Fleet {
    async fn build_instances(&self) -> Result<Vec<BuildInstance>, ServiceError> {
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{STACK_TAG}"))
                    .values(&self.stack_name)
                    .build(),
            )
            .max_results(1000)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "DescribeInstances", e))?;
            for reservation in page.reservations() {
                found.extend(reservation.instances().iter().map(build_instance));
            }
        }
        Ok(found)
    }

    async fn terminate(&self, ids: &[String]) -> Result<Vec<String>, ServiceError> {
        terminate_instances(&self.client, ids.to_vec()).await
    }
}

fn build_instance(instance: &Instance) -> BuildInstance {
    let tag = |key: &str| {
        instance
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    BuildInstance {
        id: instance.instance_id().unwrap_or_default().to_string(),
        state: InstanceState::parse(
            instance
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str())
                .unwrap_or_default(),
        ),
        state_reason: instance
            .state_reason()
            .and_then(|r| r.message())
            .or(instance.state_transition_reason())
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        launched_at: instance.launch_time().map(|t| t.secs().max(0) as u64),
        tags: BuildTags {
            execution_arn: tag(EXECUTION_TAG),
            pipeline: tag("ec2-build:pipeline"),
            pipeline_execution_id: tag("ec2-build:pipeline-execution-id"),
            stage: tag("ec2-build:stage"),
            action: tag("ec2-build:action"),
            build_seconds: tag("ec2-build:build-seconds").and_then(|v| v.parse().ok()),
        },
    }
}
