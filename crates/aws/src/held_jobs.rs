//! The held-jobs table in DynamoDB: one item per build execution.
//!
//! Item: `execution_arn` (S, partition key), `job_id` (S), `token` (S), `held_at_ms` (N,
//! milliseconds since the epoch) and `expires_at` (N, seconds since the epoch: the table's TTL
//! attribute, so a record nobody forgot, of an execution long gone, disappears by itself).
//! docs/contracts.md describes it.

use crate::dynamodb::{conditional_write, string, SERVICE};
use crate::error::service_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ec2_build_core::model::{HeldJob, ServiceError};
use ec2_build_core::ports::HeldJobs;
use std::collections::HashMap;

/// How long a record outlives its hold before DynamoDB's TTL may delete it: longer than the 24
/// hours a custom action may run, so TTL never removes the record of a running build.
pub const RECORD_LIFETIME_SECONDS: u64 = 2 * 24 * 3600;

/// [`HeldJobs`] over a DynamoDB table.
#[derive(Clone)]
pub struct DynamoDbHeldJobs {
    client: Client,
    table: String,
}

impl DynamoDbHeldJobs {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn number(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A record read back; `None` for an item that lacks a field (never written by this adapter).
fn held_job(item: &HashMap<String, AttributeValue>) -> Option<HeldJob> {
    let text = |name: &str| item.get(name)?.as_s().ok().cloned();
    Some(HeldJob {
        execution_arn: text("execution_arn")?,
        job_id: text("job_id")?,
        token: text("token")?,
        held_at_ms: item.get("held_at_ms")?.as_n().ok()?.parse().ok()?,
    })
}

#[async_trait]
impl HeldJobs for DynamoDbHeldJobs {
    async fn hold(&self, job: &HeldJob) -> Result<(), ServiceError> {
        // Only over an older hold: a write delayed past its client's timeout (whose job was then
        // answered instead, queueing a successor) must not replace the successor's record. A
        // retry of the same write has the same time and goes through.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("execution_arn", string(&job.execution_arn))
            .item("job_id", string(&job.job_id))
            .item("token", string(&job.token))
            .item("held_at_ms", number(job.held_at_ms))
            .item(
                "expires_at",
                number(job.held_at_ms / 1000 + RECORD_LIFETIME_SECONDS),
            )
            .condition_expression(
                "attribute_not_exists(execution_arn) OR held_at_ms <= :held_at_ms",
            )
            .expression_attribute_values(":held_at_ms", number(job.held_at_ms))
            .send()
            .await
            .map_err(|e| service_error(SERVICE, "PutItem", e))?;
        Ok(())
    }

    async fn held_for(&self, execution_arn: &str) -> Result<Option<HeldJob>, ServiceError> {
        // Strongly consistent: the completion function must see a hold written just before.
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("execution_arn", string(execution_arn))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| service_error(SERVICE, "GetItem", e))?;
        Ok(out.item().and_then(held_job))
    }

    async fn all_held(&self) -> Result<Vec<HeldJob>, ServiceError> {
        let mut held = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "Scan", e))?;
            held.extend(page.items().iter().filter_map(held_job));
        }
        Ok(held)
    }

    async fn forget(&self, execution_arn: &str, job_id: &str) -> Result<(), ServiceError> {
        // A failed condition: a newer hold replaced the record, which stays.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("execution_arn", string(execution_arn))
            .condition_expression("job_id = :job")
            .expression_attribute_values(":job", string(job_id))
            .send()
            .await;
        conditional_write("DeleteItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
        .map(|_| ())
    }
}
