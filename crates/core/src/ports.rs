//! The services the domain talks to, as small traits. Adapters over the AWS SDK implement them in
//! `ec2-build-aws`; tests implement them with fakes.

use crate::job::Job;
use crate::report::{FailureReport, SuccessReport};
use crate::Error;
use async_trait::async_trait;

/// What AcknowledgeJob answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckStatus {
    /// The job is ours to work on.
    InProgress,
    /// Any other status (for example `Succeeded` when another worker already finished it).
    Other(String),
}

/// The CodePipeline job worker API.
#[async_trait]
pub trait CodePipeline: Send + Sync {
    /// PollForJobs for our action type.
    async fn poll_for_jobs(&self, max_batch_size: u32) -> Result<Vec<Job>, Error>;
    /// AcknowledgeJob; `Error::InvalidNonce` when another worker owns the job.
    async fn acknowledge_job(&self, job_id: &str, nonce: &str) -> Result<AckStatus, Error>;
    /// PutJobSuccessResult (with a continuation token when the report carries one).
    async fn put_job_success(&self, job_id: &str, report: &SuccessReport) -> Result<(), Error>;
    /// PutJobFailureResult.
    async fn put_job_failure(&self, job_id: &str, report: &FailureReport) -> Result<(), Error>;
}

/// State of an execution, as DescribeExecution reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    /// PENDING_REDRIVE or a status this version does not know.
    Other(String),
}

impl ExecutionStatus {
    /// Maps Step Functions' status text.
    pub fn parse(status: &str) -> Self {
        match status {
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "TIMED_OUT" => Self::TimedOut,
            "ABORTED" => Self::Aborted,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Aborted
        )
    }
}

/// What DescribeExecution tells about a build execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionDescription {
    pub arn: String,
    pub status: ExecutionStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Seconds from start to stop, when stopped.
    pub duration_seconds: Option<u64>,
}

/// The Step Functions API for build executions.
#[async_trait]
pub trait StepFunctions: Send + Sync {
    /// StartExecution of our state machine; returns the execution ARN.
    /// `Error::ExecutionAlreadyExists` when the name is taken with another input or by a closed
    /// execution.
    async fn start_execution(&self, name: &str, input: &str) -> Result<String, Error>;
    /// DescribeExecution; `Error::ExecutionNotFound` when there is none.
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription, Error>;
    /// Name of the state the execution entered last, for progress summaries.
    async fn current_state(&self, arn: &str) -> Result<Option<String>, Error>;
}

/// Build instances.
#[async_trait]
pub trait Instances: Send + Sync {
    /// Terminates every instance that carries the execution's tag; returns the ids of those it
    /// stopped (not those already shutting down or terminated).
    async fn release_for_execution(&self, execution_arn: &str) -> Result<Vec<String>, Error>;
}
