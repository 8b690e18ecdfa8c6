//! The completion function: when a build execution ends, reports its result to CodePipeline at
//! once and releases instances the flow could not release.

use crate::poller::SweepReport;
use crate::{invalid_event, parse_envelope, FunctionError};
use ec2_build_core::events::CompletionTrigger;
use ec2_build_core::handler::Reported;
use ec2_build_core::ports::{CodePipeline, Instances, StepFunctions};
use ec2_build_core::{Error, JobHandler};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use tracing::info;

/// The function's response.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompletionReport {
    /// `reported-continuation`, `reported-original`, `left-to-sweep` or `ignored`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every job handled while looking for the continuation job.
    pub jobs: SweepReport,
    pub released: Vec<String>,
}

/// Handles one "Step Functions Execution Status Change" event.
pub async fn handle<P: CodePipeline, S: StepFunctions>(
    event: LambdaEvent<Value>,
    handler: &JobHandler<P, S>,
    instances: &dyn Instances,
) -> Result<CompletionReport, FunctionError> {
    let envelope = parse_envelope(event.payload)?;
    let ended = match CompletionTrigger::classify(
        &envelope.detail_type,
        &envelope.detail,
        handler.settings(),
    )
    .map_err(invalid_event)?
    {
        CompletionTrigger::Ignore(reason) => {
            info!(%reason, "event ignored");
            return Ok(CompletionReport {
                action: "ignored",
                reason: Some(reason),
                ..Default::default()
            });
        }
        CompletionTrigger::Finished(ended) => ended,
    };
    let summary = handler
        .finish_execution(&ended, instances)
        .await
        .map_err(|e| match e {
            Error::Service {
                operation: "DescribeTags" | "TerminateInstances",
                ..
            } => FunctionError::new("ReleaseFailed", e),
            other => FunctionError::new("DescribeFailed", other),
        })?;
    let mut jobs = SweepReport {
        action: "sweep",
        ..Default::default()
    };
    jobs.count(&summary.outcomes);
    let action = match summary.reported {
        Reported::ContinuationJob => "reported-continuation",
        Reported::OriginalJob => "reported-original",
        Reported::LeftToSweep => "left-to-sweep",
    };
    info!(action, released = ?summary.released, "execution finished");
    Ok(CompletionReport {
        action,
        reason: None,
        jobs,
        released: summary.released,
    })
}
