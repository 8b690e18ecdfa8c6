//! Builds as the operator sees them: the state machine's executions (execution name = job id),
//! with the pipeline, stage and action of their input (docs/contracts.md), their instance and
//! their place in the flow.

use crate::error::CliError;
use aws_sdk_ec2::types::{Filter, InstanceLifecycleType};
use aws_sdk_sfn::types::ExecutionStatus as SdkStatus;
use ec2_build_aws::{StepFunctionsExecutions, EXECUTION_TAG, STACK_TAG};
use ec2_build_core::ports::StepFunctions;
use ec2_build_core::progress;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Executions looked through to find a pipeline's latest build.
const PIPELINE_SEARCH_DEPTH: i32 = 100;

/// One build: an execution and what its input says.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub job_id: String,
    pub execution_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    pub pipeline: String,
    pub stage: String,
    pub action: String,
    pub pipeline_execution_id: String,
    /// Seconds since the epoch.
    pub started_at: i64,
    pub stopped_at: Option<i64>,
    /// The execution's error (failed, aborted, timed out).
    pub error: Option<String>,
    #[serde(skip)]
    pub cause: Option<String>,
    #[serde(skip)]
    pub output: Option<String>,
}

/// A build instance, by the execution ARN it is tagged with.
#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: String,
    /// on-demand or spot.
    pub market: String,
    /// EC2's state name.
    pub state: String,
    pub execution_arn: Option<String>,
}

/// The executions of one state machine.
pub struct Builds {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
    /// The adapter the functions use, for history and StopExecution.
    pub port: StepFunctionsExecutions,
}

impl Builds {
    pub fn new(sdk: &aws_config::SdkConfig, state_machine_arn: &str) -> Self {
        Self {
            client: aws_sdk_sfn::Client::new(sdk),
            state_machine_arn: state_machine_arn.to_string(),
            port: StepFunctionsExecutions::from_sdk_config(sdk, state_machine_arn),
        }
    }

    /// ARNs of the executions, newest first: the running ones (every page), or the most recent
    /// `max` of any status.
    pub async fn list(&self, running: bool, max: i32) -> Result<Vec<String>, CliError> {
        let mut request = self
            .client
            .list_executions()
            .state_machine_arn(&self.state_machine_arn);
        request = if running {
            request.status_filter(SdkStatus::Running).max_results(1000)
        } else {
            request.max_results(max)
        };
        let mut pages = request.into_paginator().send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CliError::aws("ListExecutions", e))?;
            arns.extend(
                page.executions()
                    .iter()
                    .map(|e| e.execution_arn().to_string()),
            );
            if !running && arns.len() >= max as usize {
                break;
            }
        }
        Ok(arns)
    }

    /// DescribeExecution, read into a [`Build`].
    pub async fn describe(&self, arn: &str) -> Result<Build, CliError> {
        let out = match self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                return Err(CliError::BuildNotFound(arn.to_string()))
            }
            Err(e) => return Err(CliError::aws("DescribeExecution", e)),
        };
        let input: Value = out
            .input()
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
        Ok(Build {
            job_id: out.name().unwrap_or_default().to_string(),
            execution_arn: out.execution_arn().to_string(),
            status: out.status().as_str().to_string(),
            pipeline: text(&input["Pipeline"]["Name"]),
            stage: text(&input["Pipeline"]["Stage"]),
            action: text(&input["Pipeline"]["Action"]),
            pipeline_execution_id: text(&input["Pipeline"]["ExecutionId"]),
            started_at: out.start_date().secs(),
            stopped_at: out.stop_date().map(|d| d.secs()),
            error: out.error().map(str::to_string),
            cause: out.cause().map(str::to_string),
            output: out.output().map(str::to_string),
        })
    }

    /// The build a reference names: an execution ARN, a job id (the execution's name), or a
    /// pipeline name (its most recent build among the last executions).
    pub async fn resolve(&self, reference: &str) -> Result<Build, CliError> {
        if reference.starts_with("arn:") {
            return self.describe(reference).await;
        }
        let by_name = format!(
            "{}:{}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1),
            reference
        );
        match self.describe(&by_name).await {
            Err(CliError::BuildNotFound(_)) => {}
            found => return found,
        }
        for arn in self.list(false, PIPELINE_SEARCH_DEPTH).await? {
            let build = self.describe(&arn).await?;
            if build.pipeline == reference {
                return Ok(build);
            }
        }
        Err(CliError::BuildNotFound(reference.to_string()))
    }

    /// The stage a running build is in (acquire, agent, build, release) and its state's name.
    pub async fn current_stage(&self, arn: &str) -> Result<(String, String), CliError> {
        let state = self.port.current_state(arn).await?;
        let stage = state
            .as_deref()
            .and_then(progress::of_state)
            .map_or_else(|| "-".to_string(), |p| p.stage.to_string());
        Ok((stage, state.unwrap_or_else(|| "-".into())))
    }
}

/// The stack's instances in every state EC2 still reports, by their `ec2-build:stack` tag.
pub async fn stack_instances(
    ec2: &aws_sdk_ec2::Client,
    stack_name: &str,
) -> Result<Vec<Instance>, CliError> {
    let mut pages = ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{STACK_TAG}"))
                .values(stack_name)
                .build(),
        )
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| CliError::aws("DescribeInstances", e))?;
        for instance in page.reservations().iter().flat_map(|r| r.instances()) {
            let tags: BTreeMap<&str, &str> = instance
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?, t.value()?)))
                .collect();
            found.push(Instance {
                id: instance.instance_id().unwrap_or_default().to_string(),
                market: match instance.instance_lifecycle() {
                    Some(InstanceLifecycleType::Spot) => "spot",
                    _ => "on-demand",
                }
                .to_string(),
                state: instance
                    .state()
                    .and_then(|s| s.name())
                    .map_or("unknown", |n| n.as_str())
                    .to_string(),
                execution_arn: tags.get(EXECUTION_TAG).map(|v| v.to_string()),
            });
        }
    }
    Ok(found)
}
