//! Build instances, found by the execution tag.

use crate::error::service_error;
use crate::EXECUTION_TAG;
use async_trait::async_trait;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use aws_sdk_ec2::Client;
use ec2_build_core::ports::Instances;
use ec2_build_core::ServiceError;

pub(crate) const SERVICE: &str = "ec2";

type TerminateError = aws_sdk_ec2::error::SdkError<
    aws_sdk_ec2::operation::terminate_instances::TerminateInstancesError,
    aws_sdk_ec2::config::http::HttpResponse,
>;

/// [`Instances`] over the SDK client.
#[derive(Clone)]
pub struct Ec2Instances {
    client: Client,
}

impl Ec2Instances {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Ids of the instances carrying the execution's tag, terminated ones included.
    ///
    /// DescribeTags, not DescribeInstances: only the ids are needed, and DescribeInstances'
    /// response model (every field of an instance) is the largest code in the completion binary,
    /// which is loaded on every cold start whether an instance is released or not.
    async fn tagged_instances(&self, execution_arn: &str) -> Result<Vec<String>, ServiceError> {
        let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .describe_tags()
            .filters(filter("resource-type", "instance"))
            .filters(filter("key", EXECUTION_TAG))
            .filters(filter("value", execution_arn))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "DescribeTags", e))?;
            ids.extend(
                page.tags()
                    .iter()
                    .filter(|tag| tag.value() == Some(execution_arn))
                    .filter_map(|tag| tag.resource_id().map(str::to_string)),
            );
        }
        Ok(ids)
    }
}

#[async_trait]
impl Instances for Ec2Instances {
    async fn release_for_execution(
        &self,
        execution_arn: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let ids = self.tagged_instances(execution_arn).await?;
        terminate_instances(&self.client, ids).await
    }
}

/// Terminates the instances; returns those this call stopped. Terminating an instance that is
/// already shutting down or terminated succeeds and changes nothing, so those are left out; an
/// id EC2 no longer knows fails the whole call, so then the others are terminated one by one.
pub(crate) async fn terminate_instances(
    client: &Client,
    ids: Vec<String>,
) -> Result<Vec<String>, ServiceError> {
    if ids.is_empty() {
        return Ok(ids);
    }
    match terminate_once(client, ids.clone()).await {
        Err(e) if is_not_found(&e) => {
            let mut released = Vec::new();
            for id in ids {
                match terminate_once(client, vec![id]).await {
                    Ok(stopped) => released.extend(stopped),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(service_error(SERVICE, "TerminateInstances", e)),
                }
            }
            Ok(released)
        }
        other => other.map_err(|e| service_error(SERVICE, "TerminateInstances", e)),
    }
}

async fn terminate_once(client: &Client, ids: Vec<String>) -> Result<Vec<String>, TerminateError> {
    let out = client
        .terminate_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await?;
    Ok(out
        .terminating_instances()
        .iter()
        .filter(|change| {
            !matches!(
                change.previous_state().and_then(|s| s.name()),
                Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
            )
        })
        .filter_map(|change| change.instance_id().map(str::to_string))
        .collect())
}

/// EC2's error code for an instance id it does not know. EC2 models no exception types, so the
/// SDK offers no typed variant to match: the documented code is the only way to tell.
const INSTANCE_NOT_FOUND: &str = "InvalidInstanceID.NotFound";

fn is_not_found(e: &TerminateError) -> bool {
    e.code() == Some(INSTANCE_NOT_FOUND)
}
