//! Turning SDK errors into domain errors.

use aws_smithy_types::error::display::DisplayErrorContext;
use ec2_build_core::ServiceError;

/// Errors of the adapters themselves (building requests the SDK refuses).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("cannot build the {operation} request: {message}")]
    Request {
        operation: &'static str,
        message: String,
    },
}

impl From<AdapterError> for ServiceError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Request { operation, message } => ServiceError::Call {
                service: "sdk",
                operation,
                message,
            },
        }
    }
}

/// A service error as text with its full context (code, message, request id).
pub(crate) fn service_error(
    service: &'static str,
    operation: &'static str,
    err: impl std::error::Error,
) -> ServiceError {
    ServiceError::Call {
        service,
        operation,
        message: DisplayErrorContext(&err).to_string(),
    }
}
