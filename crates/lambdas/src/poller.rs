//! The poller: on our action's STARTED events and on the schedule, polls for jobs and handles
//! them.

use crate::{parse_envelope, time_left, FunctionError, JobCounts};
use ec2_build_core::ports::{CodePipeline, HeldJobs, StepFunctions};
use ec2_build_core::{PollerTrigger, Sweep};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// What the invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PollerAction {
    Sweep,
    Ignored,
}

/// The function's response.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct SweepResponse {
    pub action: PollerAction,
    /// Why the event was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// PollForJobs calls that returned.
    pub polls: u32,
    #[serde(flatten)]
    pub jobs: JobCounts,
}

/// Handles one EventBridge event.
pub async fn handle<P: CodePipeline, S: StepFunctions, H: HeldJobs>(
    event: LambdaEvent<Value>,
    sweep: &Sweep<P, S, H>,
) -> Result<SweepResponse, FunctionError> {
    let time_left = time_left(event.context.deadline);
    let envelope = parse_envelope(event.payload)?;
    let settings = sweep.worker().settings();
    match PollerTrigger::classify(&envelope.detail_type, &envelope.detail, settings)? {
        PollerTrigger::Ignore(reason) => {
            info!(%reason, "event ignored");
            Ok(SweepResponse {
                action: PollerAction::Ignored,
                reason: Some(reason),
                polls: 0,
                jobs: JobCounts::default(),
            })
        }
        PollerTrigger::Sweep(scope) => {
            let summary = sweep.run(scope, time_left).await?;
            let response = SweepResponse {
                action: PollerAction::Sweep,
                reason: None,
                polls: summary.polls,
                jobs: JobCounts::of(&summary.outcomes),
            };
            if response.jobs.unanswered > 0 {
                warn!(
                    unanswered = response.jobs.unanswered,
                    "some jobs could not be answered"
                );
            }
            info!(?response, "sweep done");
            Ok(response)
        }
    }
}
