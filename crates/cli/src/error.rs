//! The CLI's one error type. Every message names what was looked for and how to fix it.

use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// What can stop a command before it has an answer.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The stack was not found and no outputs were given instead.
    #[error(
        "stack {stack} not found ({detail}). Fix: pass --stack NAME of the deployed ec2-build \
         stack, or give its outputs with --output NAME=VALUE (at least StateMachineArn)"
    )]
    StackNotFound { stack: String, detail: String },
    /// The stack lacks an output this command needs.
    #[error(
        "stack {stack} has no output {name}. Fix: update the stack to this version's template, \
         or pass --output {name}=VALUE"
    )]
    MissingOutput { stack: String, name: String },
    /// An `--output` value is not NAME=VALUE, or an output has the wrong shape.
    #[error("{0}")]
    BadInput(String),
    /// No build matches the reference.
    #[error(
        "no build found for {0:?}. Fix: give a job id, an execution ARN of the stack's state \
         machine, or a pipeline name (ec2-build status lists recent builds)"
    )]
    BuildNotFound(String),
    /// An AWS call failed.
    #[error("{operation} failed: {detail}")]
    Aws { operation: String, detail: String },
    /// Writing the output failed.
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// The process exit code of this error (README, "Operating it").
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::BuildNotFound(_) => 3,
            Self::StackNotFound { .. } | Self::MissingOutput { .. } | Self::BadInput(_) => 4,
            Self::Aws { .. } | Self::Output(_) => 5,
        }
    }

    /// An SDK error of `operation`.
    pub fn aws<E, R>(operation: &str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        Self::Aws {
            operation: operation.to_string(),
            detail: sdk_detail(&error),
        }
    }
}

/// An SDK error's text: the service's code and message when it sent one. (`SdkError` is the same
/// type in every SDK crate; the Step Functions crate's re-export is used for all.)
pub fn sdk_detail<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(error).to_string(),
    }
}

impl From<ec2_build_core::model::ServiceError> for CliError {
    fn from(error: ec2_build_core::model::ServiceError) -> Self {
        Self::Aws {
            operation: "Step Functions".into(),
            detail: error.to_string(),
        }
    }
}
