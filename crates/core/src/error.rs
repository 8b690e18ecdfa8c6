//! The crate's error type.

use std::fmt;

/// Everything that can go wrong in the domain or behind a port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The action configuration is invalid; the job is failed with this message.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The job data CodePipeline sent is missing something the build needs.
    #[error("job data is invalid: {0}")]
    JobData(String),
    /// A Lambda setting (environment variable) is missing or malformed.
    #[error("setting {name} is invalid: {problem}")]
    Setting { name: &'static str, problem: String },
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
    /// The Lambda received an event it cannot handle.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// Any other failure of an AWS call.
    #[error("{service} {operation} failed: {message}")]
    Service {
        service: &'static str,
        operation: &'static str,
        message: String,
    },
}

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
