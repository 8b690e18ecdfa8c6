//! The completion function: when a build execution ends, reports its result to CodePipeline at
//! once and releases instances the flow could not release.

use crate::{parse_envelope, time_left, FunctionError, JobCounts};
use ec2_build_core::ports::{CodePipeline, HeldJobs, Instances, StepFunctions};
use ec2_build_core::{Completion, CompletionTrigger, Reported};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

/// Time the build metrics' two lookups may take (both stalled to the SDK's 12 s operation
/// timeout) plus a margin.
const METRICS_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// How the invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CompletionAction {
    /// The result went to CodePipeline through the continuation job held for the execution.
    ReportedHeld,
    /// The result went to CodePipeline through the continuation job, found by polling.
    ReportedContinuation,
    /// The result went to CodePipeline on the job that started the execution.
    ReportedOriginal,
    /// The continuation job did not show up in time; the scheduled sweep reports it.
    LeftToSweep,
    /// Not an event of ours, or not a final status.
    Ignored,
}

/// The function's response.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct CompletionResponse {
    pub action: CompletionAction,
    /// Why the event was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every job handled while looking for the continuation job.
    pub jobs: JobCounts,
    /// Instances this invocation terminated.
    pub released: Vec<String>,
}

/// Handles one "Step Functions Execution Status Change" event.
pub async fn handle<P: CodePipeline, S: StepFunctions, H: HeldJobs, I: Instances>(
    event: LambdaEvent<Value>,
    completion: &Completion<P, S, H, I>,
) -> Result<CompletionResponse, FunctionError> {
    let event_deadline = event.context.deadline;
    let time_left = time_left(event_deadline);
    let envelope = parse_envelope(event.payload)?;
    let settings = completion.worker().settings();
    let ended =
        match CompletionTrigger::classify(&envelope.detail_type, &envelope.detail, settings)? {
            CompletionTrigger::Ignore(reason) => {
                info!(%reason, "event ignored");
                return Ok(CompletionResponse {
                    action: CompletionAction::Ignored,
                    reason: Some(reason),
                    jobs: JobCounts::default(),
                    released: Vec::new(),
                });
            }
            CompletionTrigger::Finished(ended) => ended,
        };
    let summary = completion.finish(&ended, time_left).await?;
    // The build's metrics (crate::metrics), after its result and its release, and only with the
    // time their two calls may take left: a timeout here would make Lambda retry the event.
    if crate::time_left(event_deadline) >= METRICS_TIME {
        crate::metrics::record_finished_build(completion.worker(), &ended).await;
    } else {
        tracing::warn!("no build metrics: too little time left in the invocation");
    }
    let action = match summary.reported {
        Reported::HeldJob => CompletionAction::ReportedHeld,
        Reported::ContinuationJob => CompletionAction::ReportedContinuation,
        Reported::OriginalJob => CompletionAction::ReportedOriginal,
        Reported::LeftToSweep => CompletionAction::LeftToSweep,
    };
    info!(?action, released = ?summary.released, "execution finished");
    Ok(CompletionResponse {
        action,
        reason: None,
        jobs: JobCounts::of(&summary.outcomes),
        released: summary.released,
    })
}
