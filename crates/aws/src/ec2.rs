//! Build instances, found by the execution tag.

use crate::error::service_error;
use crate::EXECUTION_TAG;
use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;
use ec2_build_core::ports::Instances;
use ec2_build_core::Error;

const SERVICE: &str = "ec2";

/// [`Instances`] over the SDK client.
#[derive(Clone)]
pub struct Ec2Instances {
    client: Client,
}

impl Ec2Instances {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Instances for Ec2Instances {
    async fn release_for_execution(&self, execution_arn: &str) -> Result<Vec<String>, Error> {
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(
                Filter::builder()
                    .name(format!("tag:{EXECUTION_TAG}"))
                    .values(execution_arn)
                    .build(),
            )
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "DescribeInstances", e))?;
            ids.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter_map(|i| i.instance_id().map(str::to_string)),
            );
        }
        if !ids.is_empty() {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(ids.clone()))
                .send()
                .await
                .map_err(|e| service_error(SERVICE, "TerminateInstances", e))?;
        }
        Ok(ids)
    }
}
