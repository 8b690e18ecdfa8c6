//! Errors of the domain: what a service call, a setting, an event, the job data or the action
//! configuration got wrong. The use cases wrap [`ServiceError`] in their own error types, whose
//! variants say which step failed.

use std::fmt;

/// A failed call through a port. Adapters turn SDK errors into these; the variants the use cases
/// decide on are named, the rest is [`ServiceError::Call`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// AcknowledgeJob was refused: another worker owns the job.
    #[error("job {0} is owned by another worker (invalid nonce)")]
    InvalidNonce(String),
    /// The job was already answered or is no longer in progress.
    #[error("job {0} is not in a state that accepts a result")]
    InvalidJobState(String),
    /// CodePipeline does not know the job.
    #[error("job {0} was not found")]
    JobNotFound(String),
    /// An execution with this name exists already (started earlier for the same job).
    #[error("execution {0} already exists")]
    ExecutionAlreadyExists(String),
    /// Step Functions does not know the execution.
    #[error("execution {0} does not exist")]
    ExecutionNotFound(String),
    /// Any other failure of an AWS call: the service, the operation and what it answered.
    #[error("{service} {operation} failed: {message}")]
    Call {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
}

/// A Lambda setting (environment variable) that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {name} is invalid: {problem}")]
pub struct SettingsError {
    /// The environment variable.
    pub name: &'static str,
    pub problem: String,
}

/// An event a function cannot handle; the text says what is wrong and where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid event: {0}")]
pub struct EventError(pub String);

/// The job data CodePipeline sent lacks something the build needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job data is invalid: {0}")]
pub struct JobDataError(pub String);

/// An invalid action configuration property: which one, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration property, as named in the action type.
    pub property: &'static str,
    /// What is wrong with the value.
    pub problem: String,
    /// What the user should do.
    pub fix: String,
}

impl ConfigError {
    pub(crate) fn new(
        property: &'static str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            property,
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Configuration property {} {}. Fix: {}",
            self.property, self.problem, self.fix
        )
    }
}

impl std::error::Error for ConfigError {}
