//! The services the domain talks to, as small traits, and nothing else. Adapters over the AWS SDK
//! implement them in `ec2-build-aws`; tests implement them with fakes (`crate::testing`).

use crate::model::pool::PoolMember;
use crate::model::{
    AckStatus, ActionExecution, BuildInstance, ExecutionDescription, FailureReport, HeldJob,
    HistoryEvent, Job, RunningExecution, ServiceError, SuccessReport,
};
use async_trait::async_trait;

/// The CodePipeline job worker API.
#[async_trait]
pub trait CodePipeline: Send + Sync {
    /// PollForJobs for our action type.
    async fn poll_for_jobs(&self, max_batch_size: u32) -> Result<Vec<Job>, ServiceError>;
    /// AcknowledgeJob; [`ServiceError::InvalidNonce`] when another worker owns the job.
    async fn acknowledge_job(&self, job_id: &str, nonce: &str) -> Result<AckStatus, ServiceError>;
    /// PutJobSuccessResult (with a continuation token when the report carries one);
    /// [`ServiceError::InvalidJobState`] when the job was answered before.
    async fn put_job_success(
        &self,
        job_id: &str,
        report: &SuccessReport,
    ) -> Result<(), ServiceError>;
    /// PutJobFailureResult; [`ServiceError::InvalidJobState`] when the job was answered before.
    async fn put_job_failure(
        &self,
        job_id: &str,
        report: &FailureReport,
    ) -> Result<(), ServiceError>;
    /// ListActionExecutions of a pipeline: its most recent action executions (one page), or with
    /// `pipeline_execution_id` every action execution of that pipeline execution.
    async fn action_executions(
        &self,
        pipeline: &str,
        pipeline_execution_id: Option<&str>,
    ) -> Result<Vec<ActionExecution>, ServiceError>;
}

/// The Step Functions API for build executions of one state machine.
#[async_trait]
pub trait StepFunctions: Send + Sync {
    /// StartExecution of our state machine; returns the execution ARN.
    /// [`ServiceError::ExecutionAlreadyExists`] when the name is taken with another input or by a
    /// closed execution.
    async fn start_execution(&self, name: &str, input: &str) -> Result<String, ServiceError>;
    /// DescribeExecution; [`ServiceError::ExecutionNotFound`] when there is none.
    async fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription, ServiceError>;
    /// Name of the state the execution entered last, for progress summaries.
    async fn current_state(&self, arn: &str) -> Result<Option<String>, ServiceError>;
    /// Names of every state the execution entered, oldest first (GetExecutionHistory without
    /// the data, every page), for progress summaries that count restarts.
    async fn states_entered(&self, arn: &str) -> Result<Vec<String>, ServiceError>;
    /// The execution's whole history with its data, oldest first (GetExecutionHistory, every
    /// page), for the build timeline; [`ServiceError::ExecutionNotFound`] when there is none.
    async fn execution_history(&self, arn: &str) -> Result<Vec<HistoryEvent>, ServiceError>;
    /// The state machine's RUNNING executions (ListExecutions, every page).
    async fn running_executions(&self) -> Result<Vec<RunningExecution>, ServiceError>;
    /// StopExecution with an error name and a cause; stopping an execution that already ended
    /// succeeds and changes nothing.
    async fn stop_execution(&self, arn: &str, error: &str, cause: &str)
        -> Result<(), ServiceError>;
}

/// Continuation jobs held while their builds run: acknowledged, left unanswered, and recorded
/// here (one record per execution) so the completion function or the scheduled sweep can answer
/// them. A held job is out of CodePipeline's queue until it is answered, so running builds'
/// continuation jobs do not queue ahead of new jobs (README, "How a job is handled").
#[async_trait]
pub trait HeldJobs: Send + Sync {
    /// Records a held job, replacing any earlier record of its execution.
    async fn hold(&self, job: &HeldJob) -> Result<(), ServiceError>;
    /// The held job recorded for an execution, if any.
    async fn held_for(&self, execution_arn: &str) -> Result<Option<HeldJob>, ServiceError>;
    /// Every recorded held job.
    async fn all_held(&self) -> Result<Vec<HeldJob>, ServiceError>;
    /// Removes the execution's record if it still names `job_id` (a newer record stays).
    async fn forget(&self, execution_arn: &str, job_id: &str) -> Result<(), ServiceError>;
}

/// Build instances.
#[async_trait]
pub trait Instances: Send + Sync {
    /// Terminates every instance that carries the execution's tag; returns the ids of those it
    /// stopped (not those already shutting down or terminated).
    async fn release_for_execution(&self, execution_arn: &str)
        -> Result<Vec<String>, ServiceError>;
}

/// All build instances of one stack, for the keeper.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Every instance carrying this stack's tag, in any state EC2 still reports.
    async fn build_instances(&self) -> Result<Vec<BuildInstance>, ServiceError>;
    /// Terminates these instances; returns the ids of those it stopped. Ids EC2 no longer knows
    /// are skipped.
    async fn terminate(&self, ids: &[String]) -> Result<Vec<String>, ServiceError>;
}

/// The pool registry (docs/contracts.md, "Pool registry"): one item per pool instance. Every
/// change is a conditional write.
#[async_trait]
pub trait PoolRegistry: Send + Sync {
    /// Every member of `pool` (a strongly consistent read of its items).
    async fn members(&self, pool: &str) -> Result<Vec<PoolMember>, ServiceError>;
    /// Moves a member to `recycling`, on the condition that it is still as read (same state,
    /// same `ClaimedBy`/`PreparedBy`); `false` when it changed meanwhile (say, a build claimed it).
    async fn take_for_recycling(&self, member: &PoolMember) -> Result<bool, ServiceError>;
    /// Deletes a member in state `recycling`.
    async fn forget(&self, pool: &str, instance_id: &str) -> Result<(), ServiceError>;
}
