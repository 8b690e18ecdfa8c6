//! The two Lambda functions of ec2-build. Each handler is a plain async function over the core's
//! ports, so tests call it with fakes and `LambdaEvent::new(payload, Context::default())`; the
//! binaries in `src/bin/` only wire tracing, settings and SDK clients.
//!
//! Errors returned to the Lambda runtime carry fixed `errorType` names:
//!
//! | errorType | meaning | retried by Lambda (async invoke) |
//! |---|---|---|
//! | `InvalidEvent` | the payload is not an event this function handles | yes, harmlessly; fix the rule |
//! | `PollFailed` | PollForJobs failed, no job was taken | yes, and the next sweep catches up |
//! | `DescribeFailed` | the finished execution could not be read | yes |
//! | `ReleaseFailed` | instances of an aborted or timed-out execution could not be terminated | yes |

pub mod completion;
pub mod poller;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use ec2_build_core::Error;
use lambda_runtime::Diagnostic;
use serde_json::Value;

/// An error returned to the Lambda runtime, with one of the documented `errorType` names.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct FunctionError {
    /// One of the names in the table above.
    pub error_type: &'static str,
    pub message: String,
}

impl FunctionError {
    pub fn new(error_type: &'static str, error: impl std::fmt::Display) -> Self {
        Self {
            error_type,
            message: error.to_string(),
        }
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        Diagnostic {
            error_type: e.error_type.to_string(),
            error_message: e.message,
        }
    }
}

/// Parses the EventBridge envelope; a payload that is not one is an `InvalidEvent`.
pub(crate) fn parse_envelope(payload: Value) -> Result<EventBridgeEvent<Value>, FunctionError> {
    serde_json::from_value::<EventBridgeEvent<Value>>(payload).map_err(|e| {
        FunctionError::new(
            "InvalidEvent",
            format!("the payload is not an EventBridge event ({e}); this function is meant to be the target of the stack's EventBridge rules"),
        )
    })
}

pub(crate) fn invalid_event(e: Error) -> FunctionError {
    FunctionError::new("InvalidEvent", e)
}
