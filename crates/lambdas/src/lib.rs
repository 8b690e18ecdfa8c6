//! The Lambda functions of ec2-build. Each handler is a plain async function over a use case
//! of the core, so tests call it with fakes and `LambdaEvent::new(payload, Context::default())`;
//! the binaries in `src/bin/` only wire tracing, settings and SDK clients.
//!
//! Errors returned to the Lambda runtime carry fixed `errorType` names, one per variant of
//! [`FunctionError`]:
//!
//! | errorType | meaning | retried by Lambda (async invoke) |
//! |---|---|---|
//! | `InvalidEvent` | the payload is not an event this function handles | yes, harmlessly; fix the rule |
//! | `PollFailed` | PollForJobs failed, no job was taken | yes, and the next sweep catches up |
//! | `DescribeFailed` | the finished execution could not be read; its instances were still released | yes |
//! | `ReleaseFailed` | instances of a failed, timed-out or aborted execution could not be terminated | yes |
//! | `InventoryFailed` | the keeper could not list the stack's instances or running executions; it decided nothing | no (scheduled); the next run tries again |

pub mod completion;
pub mod keeper;
pub mod metrics;
pub mod poller;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use ec2_build_core::{
    CompletionError, EventError, JobOutcome, KeeperError, ServiceError, SweepError,
};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An error returned to the Lambda runtime; [`FunctionError::error_type`] is its fixed name.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0}")]
    InvalidEvent(String),
    #[error(transparent)]
    PollFailed(SweepError),
    #[error("the finished execution cannot be read: {0}")]
    DescribeFailed(ServiceError),
    #[error("instances of the execution could not be terminated: {0}")]
    ReleaseFailed(ServiceError),
    #[error(transparent)]
    InventoryFailed(KeeperError),
}

impl FunctionError {
    /// The `errorType` the runtime reports (the table above).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::InvalidEvent(_) => "InvalidEvent",
            Self::PollFailed(_) => "PollFailed",
            Self::DescribeFailed(_) => "DescribeFailed",
            Self::ReleaseFailed(_) => "ReleaseFailed",
            Self::InventoryFailed(_) => "InventoryFailed",
        }
    }
}

impl From<EventError> for FunctionError {
    fn from(e: EventError) -> Self {
        Self::InvalidEvent(e.to_string())
    }
}

impl From<SweepError> for FunctionError {
    fn from(e: SweepError) -> Self {
        Self::PollFailed(e)
    }
}

impl From<CompletionError> for FunctionError {
    fn from(e: CompletionError) -> Self {
        match e {
            CompletionError::Describe(e) => Self::DescribeFailed(e),
            CompletionError::Release(e) => Self::ReleaseFailed(e),
        }
    }
}

impl From<KeeperError> for FunctionError {
    fn from(e: KeeperError) -> Self {
        Self::InventoryFailed(e)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// The jobs an invocation handled, counted by outcome (part of both functions' responses).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub started: usize,
    pub continued: usize,
    pub held: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub unanswered: usize,
}

impl JobCounts {
    pub fn of(outcomes: &[JobOutcome]) -> Self {
        let mut counts = Self::default();
        for outcome in outcomes {
            let count = match outcome {
                JobOutcome::Started { .. } => &mut counts.started,
                JobOutcome::Continued { .. } => &mut counts.continued,
                JobOutcome::Held { .. } => &mut counts.held,
                JobOutcome::Succeeded { .. } => &mut counts.succeeded,
                JobOutcome::Failed { .. } => &mut counts.failed,
                JobOutcome::Skipped { .. } => &mut counts.skipped,
                JobOutcome::Unanswered { .. } => &mut counts.unanswered,
            };
            *count += 1;
        }
        counts
    }
}

/// Parses the EventBridge envelope; a payload that is not one is an `InvalidEvent`.
pub(crate) fn parse_envelope(payload: Value) -> Result<EventBridgeEvent<Value>, FunctionError> {
    serde_json::from_value::<EventBridgeEvent<Value>>(payload).map_err(|e| {
        FunctionError::InvalidEvent(format!(
            "the payload is not an EventBridge event ({e}); this function is meant to be the target of the stack's EventBridge rules"
        ))
    })
}

/// Time until the invocation's deadline (milliseconds since the epoch, from the Runtime API).
pub(crate) fn time_left(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
