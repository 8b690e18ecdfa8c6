//! Step Functions executions of the build state machine.

use crate::error::service_error;
use async_trait::async_trait;
use aws_sdk_sfn::types::{ExecutionStatus as SdkExecutionStatus, HistoryEventType};
use aws_sdk_sfn::Client;
use ec2_build_core::model::{
    ExecutionDescription, ExecutionStatus, HistoryEvent, RunningExecution, ServiceError,
};
use ec2_build_core::ports::StepFunctions;

const SERVICE: &str = "states";

/// [`StepFunctions`] over the SDK client, for one state machine.
#[derive(Clone)]
pub struct StepFunctionsExecutions {
    client: Client,
    state_machine_arn: String,
}

impl StepFunctionsExecutions {
    pub fn new(client: Client, state_machine_arn: impl Into<String>) -> Self {
        Self {
            client,
            state_machine_arn: state_machine_arn.into(),
        }
    }
}

#[async_trait]
impl StepFunctions for StepFunctionsExecutions {
    async fn start_execution(&self, name: &str, input: &str) -> Result<String, ServiceError> {
        match self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
        {
            Ok(out) => Ok(out.execution_arn().to_string()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_already_exists()) =>
            {
                Err(ServiceError::ExecutionAlreadyExists(name.to_string()))
            }
            Err(e) => Err(service_error(SERVICE, "StartExecution", e)),
        }
    }

    async fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription, ServiceError> {
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
                return Err(ServiceError::ExecutionNotFound(arn.to_string()))
            }
            Err(e) => return Err(service_error(SERVICE, "DescribeExecution", e)),
        };
        let duration_seconds = out
            .stop_date()
            .map(|stop| (stop.secs() - out.start_date().secs()).max(0) as u64);
        Ok(ExecutionDescription {
            arn: out.execution_arn().to_string(),
            status: ExecutionStatus::parse(out.status().as_str()),
            output: out.output().map(str::to_string),
            error: out.error().map(str::to_string),
            cause: out.cause().map(str::to_string),
            duration_seconds,
            started_at: Some(out.start_date().secs().max(0) as u64),
        })
    }

    async fn current_state(&self, arn: &str) -> Result<Option<String>, ServiceError> {
        let out = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .reverse_order(true)
            .max_results(25)
            .include_execution_data(false)
            .send()
            .await
            .map_err(|e| service_error(SERVICE, "GetExecutionHistory", e))?;
        Ok(out
            .events()
            .iter()
            .filter(|event| {
                !matches!(event.r#type(), HistoryEventType::ExecutionStarted)
                    && event.state_entered_event_details().is_some()
            })
            .find_map(|event| {
                event
                    .state_entered_event_details()
                    .map(|d| d.name().to_string())
            }))
    }

    async fn states_entered(&self, arn: &str) -> Result<Vec<String>, ServiceError> {
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .include_execution_data(false)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut states = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "GetExecutionHistory", e))?;
            states.extend(
                page.events()
                    .iter()
                    .filter_map(|event| event.state_entered_event_details())
                    .map(|d| d.name().to_string()),
            );
        }
        Ok(states)
    }

    async fn execution_history(&self, arn: &str) -> Result<Vec<HistoryEvent>, ServiceError> {
        let mut pages = self
            .client
            .get_execution_history()
            .execution_arn(arn)
            .include_execution_data(true)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut events = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_execution_does_not_exist()) =>
                {
                    return Err(ServiceError::ExecutionNotFound(arn.to_string()))
                }
                Err(e) => return Err(service_error(SERVICE, "GetExecutionHistory", e)),
            };
            events.extend(page.events().iter().map(history_event));
        }
        Ok(events)
    }

    async fn running_executions(&self) -> Result<Vec<RunningExecution>, ServiceError> {
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(&self.state_machine_arn)
            .status_filter(SdkExecutionStatus::Running)
            .max_results(1000)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error(SERVICE, "ListExecutions", e))?;
            arns.extend(page.executions().iter().map(|e| RunningExecution {
                arn: e.execution_arn().to_string(),
                started_at: Some(e.start_date().secs().max(0) as u64),
            }));
        }
        Ok(arns)
    }

    async fn stop_execution(
        &self,
        arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), ServiceError> {
        match self
            .client
            .stop_execution()
            .execution_arn(arn)
            .error(error)
            .cause(cause)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_execution_does_not_exist()) =>
            {
                Err(ServiceError::ExecutionNotFound(arn.to_string()))
            }
            Err(e) => Err(service_error(SERVICE, "StopExecution", e)),
        }
    }
}

/// The parts of an SDK history event the build timeline reads.
fn history_event(event: &aws_sdk_sfn::types::HistoryEvent) -> HistoryEvent {
    let entered = event.state_entered_event_details();
    let exited = event.state_exited_event_details();
    let data = entered
        .and_then(|d| d.input())
        .or_else(|| exited.and_then(|d| d.output()))
        .or_else(|| {
            event
                .execution_started_event_details()
                .and_then(|d| d.input())
        })
        .or_else(|| {
            event
                .execution_succeeded_event_details()
                .and_then(|d| d.output())
        });
    let error = event
        .execution_failed_event_details()
        .and_then(|d| d.error())
        .or_else(|| {
            event
                .execution_aborted_event_details()
                .and_then(|d| d.error())
        })
        .or_else(|| {
            event
                .execution_timed_out_event_details()
                .and_then(|d| d.error())
        })
        .or_else(|| event.task_failed_event_details().and_then(|d| d.error()));
    HistoryEvent {
        at_ms: event.timestamp().to_millis().unwrap_or_default().max(0) as u64,
        kind: event.r#type().as_str().to_string(),
        state: entered
            .map(|d| d.name())
            .or_else(|| exited.map(|d| d.name()))
            .map(str::to_string),
        data: data.map(str::to_string),
        error: error.map(str::to_string),
    }
}
