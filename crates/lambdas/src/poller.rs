//! The poller: on our action's STARTED events and on the schedule, polls for jobs and handles
//! them.

use crate::{invalid_event, parse_envelope, FunctionError};
use ec2_build_core::ports::{CodePipeline, StepFunctions};
use ec2_build_core::{JobHandler, JobOutcome, PollerTrigger};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// What the invocation did, counted by outcome (also the function's response).
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// `sweep` or `ignored`.
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub polls: u32,
    pub started: usize,
    pub continued: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub unanswered: usize,
}

impl SweepReport {
    pub(crate) fn count(&mut self, outcomes: &[JobOutcome]) {
        for outcome in outcomes {
            match outcome {
                JobOutcome::Started { .. } => self.started += 1,
                JobOutcome::Continued { .. } => self.continued += 1,
                JobOutcome::Succeeded { .. } => self.succeeded += 1,
                JobOutcome::Failed { .. } => self.failed += 1,
                JobOutcome::Skipped { .. } => self.skipped += 1,
                JobOutcome::Unanswered { .. } => self.unanswered += 1,
            }
        }
    }
}

/// Time until the invocation's deadline (milliseconds since the epoch, from the Runtime API).
fn time_left(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Handles one EventBridge event.
pub async fn handle<P: CodePipeline, S: StepFunctions>(
    event: LambdaEvent<Value>,
    handler: &JobHandler<P, S>,
) -> Result<SweepReport, FunctionError> {
    let time_left = time_left(event.context.deadline);
    let envelope = parse_envelope(event.payload)?;
    match PollerTrigger::classify(&envelope.detail_type, &envelope.detail, handler.settings())
        .map_err(invalid_event)?
    {
        PollerTrigger::Ignore(reason) => {
            info!(%reason, "event ignored");
            Ok(SweepReport {
                action: "ignored",
                reason: Some(reason),
                ..Default::default()
            })
        }
        PollerTrigger::Sweep(scope) => {
            let summary = handler
                .sweep(scope, time_left)
                .await
                .map_err(|e| FunctionError::new("PollFailed", e))?;
            let mut report = SweepReport {
                action: "sweep",
                polls: summary.polls,
                ..Default::default()
            };
            report.count(&summary.outcomes);
            if report.unanswered > 0 {
                warn!(
                    unanswered = report.unanswered,
                    "some jobs could not be answered"
                );
            }
            info!(?report, "sweep done");
            Ok(report)
        }
    }
}
