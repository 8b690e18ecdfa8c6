//! The pool registry in DynamoDB: one item per pool instance (docs/contracts.md, "Pool
//! registry"). The build and preparation workflows write it through Step Functions' DynamoDB
//! integration; the keeper reads it and recycles members here, every change conditional.

use crate::dynamodb::{conditional_write, string, SERVICE};
use crate::error::service_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ec2_build_core::model::pool::{MemberState, PoolMember};
use ec2_build_core::model::ServiceError;
use ec2_build_core::ports::PoolRegistry;
use std::collections::HashMap;

/// [`PoolRegistry`] over the DynamoDB table.
#[derive(Clone)]
pub struct DynamoDbPoolRegistry {
    client: Client,
    table: String,
}

impl DynamoDbPoolRegistry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// A member read back; `None` for an item that lacks a key or has an unknown state.
fn member(item: &HashMap<String, AttributeValue>) -> Option<PoolMember> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(PoolMember {
        pool: text("Pool")?,
        instance_id: text("InstanceId")?,
        state: MemberState::parse(&text("State")?)?,
        builds: number("Builds").unwrap_or(0) as u32,
        created_at: number("CreatedAt").unwrap_or(0),
        claimed_by: text("ClaimedBy"),
        prepared_by: text("PreparedBy"),
    })
}

#[async_trait]
impl PoolRegistry for DynamoDbPoolRegistry {
    async fn members(&self, pool: &str) -> Result<Vec<PoolMember>, ServiceError> {
        let mut members = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("Pool = :pool")
            .expression_attribute_values(":pool", string(pool))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "Query", e))?;
            members.extend(page.items().iter().filter_map(member));
        }
        Ok(members)
    }

    async fn take_for_recycling(&self, member: &PoolMember) -> Result<bool, ServiceError> {
        // Still as read: the same state and the same holder (absent when there was none).
        let mut condition = vec!["#state = :was".to_string()];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("Pool", string(&member.pool))
            .key("InstanceId", string(&member.instance_id))
            .update_expression("SET #state = :recycling REMOVE ReadyPool")
            .expression_attribute_names("#state", "State")
            .expression_attribute_values(":recycling", string(MemberState::Recycling.as_str()))
            .expression_attribute_values(":was", string(member.state.as_str()));
        for (attribute, value) in [
            ("ClaimedBy", &member.claimed_by),
            ("PreparedBy", &member.prepared_by),
        ] {
            match value {
                Some(arn) => {
                    let placeholder = format!(":{}", attribute.to_lowercase());
                    condition.push(format!("{attribute} = {placeholder}"));
                    request = request.expression_attribute_values(placeholder, string(arn));
                }
                None => condition.push(format!("attribute_not_exists({attribute})")),
            }
        }
        let result = request
            .condition_expression(condition.join(" AND "))
            .send()
            .await;
        conditional_write("UpdateItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
    }

    async fn forget(&self, pool: &str, instance_id: &str) -> Result<(), ServiceError> {
        // A failed condition: gone already (a second keeper run forgot it first).
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("Pool", string(pool))
            .key("InstanceId", string(instance_id))
            .condition_expression("#state = :recycling")
            .expression_attribute_names("#state", "State")
            .expression_attribute_values(":recycling", string(MemberState::Recycling.as_str()))
            .send()
            .await;
        conditional_write("DeleteItem", result, |e| {
            e.is_conditional_check_failed_exception()
        })
        .map(|_| ())
    }
}
