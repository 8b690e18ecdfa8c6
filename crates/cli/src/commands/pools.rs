//! `ec2-build pools`: each warm pool's instances by state, from the stack's pool registry
//! (output `PoolRegistryTableName`; item schema in docs/contracts.md, "Pool registry").

use crate::error::CliError;
use crate::output::{ago, table};
use crate::Context;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One instance of a pool as the registry holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    #[serde(skip)]
    pub pool: String,
    pub instance_id: String,
    pub state: String,
    pub instance_type: Option<String>,
    pub builds: u64,
    /// When the keeper asked for it, seconds since the epoch.
    pub created_at: Option<i64>,
    /// The build execution holding a claimed instance.
    pub claimed_by: Option<String>,
}

#[derive(Debug, Serialize)]
struct Pool {
    name: String,
    /// Instances by state.
    states: BTreeMap<String, usize>,
    instances: Vec<Member>,
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

/// Every member of the stack's pool registry (DynamoDB Scan, every page).
pub async fn registry(ctx: &Context) -> Result<Vec<Member>, CliError> {
    let table_name = ctx.deployment.output("PoolRegistryTableName")?;
    let client = aws_sdk_dynamodb::Client::new(&ctx.sdk);
    let mut pages = client.scan().table_name(table_name).into_paginator().send();
    let mut members = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CliError::aws("DynamoDB Scan", e))?;
        for item in page.items() {
            let (Some(pool), Some(instance_id)) = (text(item, "Pool"), text(item, "InstanceId"))
            else {
                continue;
            };
            members.push(Member {
                pool,
                instance_id,
                state: text(item, "State").unwrap_or_else(|| "?".into()),
                instance_type: text(item, "InstanceType"),
                builds: number(item, "Builds").unwrap_or(0).max(0) as u64,
                created_at: number(item, "CreatedAt"),
                claimed_by: text(item, "ClaimedBy"),
            });
        }
    }
    Ok(members)
}

pub async fn run(ctx: &Context) -> Result<i32, CliError> {
    let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
    for member in registry(ctx).await? {
        let pool = pools.entry(member.pool.clone()).or_insert_with(|| Pool {
            name: member.pool.clone(),
            states: BTreeMap::new(),
            instances: Vec::new(),
        });
        *pool.states.entry(member.state.clone()).or_default() += 1;
        pool.instances.push(member);
    }
    let pools: Vec<Pool> = pools.into_values().collect();
    if ctx.style.json {
        ctx.style
            .print_json(&serde_json::json!({ "pools": pools }))?;
        return Ok(0);
    }
    if pools.is_empty() {
        println!(
            "No pool instances in the registry: no pool is declared (the stack's Pools \
             parameter), or the keeper has not prepared any yet."
        );
        return Ok(0);
    }
    for pool in &pools {
        let counts: Vec<String> = pool
            .states
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        println!("Pool {}: {}", pool.name, counts.join(", "));
        let rows: Vec<Vec<String>> = pool
            .instances
            .iter()
            .map(|m| {
                vec![
                    m.instance_id.clone(),
                    m.state.clone(),
                    m.instance_type.clone().unwrap_or_else(|| "-".into()),
                    m.builds.to_string(),
                    m.created_at.map(ago).unwrap_or_else(|| "-".into()),
                    m.claimed_by
                        .as_deref()
                        .map(|arn| arn.rsplit(':').next().unwrap_or(arn).to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "INSTANCE",
                    "STATE",
                    "TYPE",
                    "BUILDS",
                    "CREATED",
                    "CLAIMED BY (JOB)"
                ],
                &rows
            )
        );
        println!();
    }
    Ok(0)
}
