//! In-memory fakes of the ports. They behave
//! like the services on the points the handler relies on: PollForJobs hands out queued jobs once,
//! AcknowledgeJob checks the nonce, a success with a continuation token queues a continuation job,
//! a second answer is refused, and StartExecution is idempotent for the same name and input.
//!
//! Each fake is a cheap handle on shared state (`Clone`), so a test keeps one handle to inspect
//! and gives another to the use case, which owns its ports.

use crate::model::{AckStatus, HistoryEvent, RunningExecution};
use crate::model::{
    ActionExecution, ExecutionDescription, ExecutionStatus, FailureReport, HeldJob, Job, JobData,
    ServiceError, SuccessReport,
};
use crate::ports::{CodePipeline, HeldJobs, StepFunctions};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Derefs a fake handle to its shared state.
macro_rules! shared_handle_impl {
    ($handle:ident, $state:ident) => {
        impl Deref for $handle {
            type Target = $state;
            fn deref(&self) -> &$state {
                &self.0
            }
        }
    };
}
pub(crate) use shared_handle_impl as shared_handle;

/// A job's answer as the fake CodePipeline recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Success(SuccessReport),
    Failure(FailureReport),
}

#[derive(Default)]
struct PipelineState {
    queued: Vec<Job>,
    in_progress: HashSet<String>,
    answers: Vec<(String, Answer)>,
    calls: Vec<&'static str>,
    next_job: u32,
}

/// Fake CodePipeline job API.
#[derive(Clone, Default)]
pub struct FakePipeline(Arc<PipelineFake>);
shared_handle!(FakePipeline, PipelineFake);

/// The state behind a [`FakePipeline`].
#[derive(Default)]
pub struct PipelineFake {
    state: Mutex<PipelineState>,
    /// Jobs whose AcknowledgeJob fails with an invalid nonce.
    pub foreign_jobs: Mutex<HashSet<String>>,
    /// What ListActionExecutions returns, by pipeline.
    pub action_executions: Mutex<HashMap<String, Vec<ActionExecution>>>,
    /// ListActionExecutions fails with a service error.
    pub failing_action_lookups: Mutex<bool>,
    /// Jobs whose answer fails with a service error.
    pub unanswerable_jobs: Mutex<HashSet<String>>,
    /// How many of the next PollForJobs calls fail.
    pub failing_polls: Mutex<u32>,
    /// How long each PollForJobs call takes (tests run with tokio's paused clock).
    pub poll_delay: Mutex<Duration>,
}

impl FakePipeline {
    pub fn with_jobs(jobs: Vec<Job>) -> Self {
        let fake = Self::default();
        fake.state.lock().unwrap().queued = jobs;
        fake
    }
}

impl PipelineFake {
    pub fn queue(&self, job: Job) {
        self.state.lock().unwrap().queued.push(job);
    }

    /// Marks a job as acknowledged by someone else earlier, so it can be answered without a poll.
    pub fn mark_in_progress(&self, job_id: &str) {
        self.state
            .lock()
            .unwrap()
            .in_progress
            .insert(job_id.to_string());
    }

    pub fn answers(&self) -> Vec<(String, Answer)> {
        self.state.lock().unwrap().answers.clone()
    }

    pub fn answer_for(&self, job_id: &str) -> Option<Answer> {
        self.answers()
            .into_iter()
            .find(|(id, _)| id == job_id)
            .map(|(_, a)| a)
    }

    /// Names of the operations called, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn queued(&self) -> Vec<Job> {
        self.state.lock().unwrap().queued.clone()
    }

    fn answer(&self, job_id: &str, answer: Answer, op: &'static str) -> Result<(), ServiceError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push(op);
        if self.unanswerable_jobs.lock().unwrap().contains(job_id) {
            return Err(ServiceError::Call {
                service: "codepipeline",
                operation: op,
                message: "internal error".into(),
            });
        }
        if !state.in_progress.remove(job_id) {
            return Err(ServiceError::InvalidJobState(job_id.to_string()));
        }
        if let Answer::Success(SuccessReport {
            continuation_token: Some(token),
            ..
        }) = &answer
        {
            let original = state.answers.len();
            state.next_job += 1;
            let id = format!("continuation-{}-{original}", state.next_job);
            let data = JobData {
                continuation_token: Some(token.clone()),
                ..Default::default()
            };
            state.queued.push(Job {
                id,
                nonce: "n".into(),
                data,
            });
        }
        state.answers.push((job_id.to_string(), answer));
        Ok(())
    }
}

#[async_trait]
impl CodePipeline for FakePipeline {
    async fn poll_for_jobs(&self, max_batch_size: u32) -> Result<Vec<Job>, ServiceError> {
        let delay = *self.poll_delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        {
            let mut failing = self.failing_polls.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                self.state.lock().unwrap().calls.push("PollForJobs");
                return Err(ServiceError::Call {
                    service: "codepipeline",
                    operation: "PollForJobs",
                    message: "throttled".into(),
                });
            }
        }
        let mut state = self.state.lock().unwrap();
        state.calls.push("PollForJobs");
        let n = (max_batch_size as usize).min(state.queued.len());
        Ok(state.queued.drain(..n).collect())
    }

    async fn acknowledge_job(&self, job_id: &str, _nonce: &str) -> Result<AckStatus, ServiceError> {
        let mut state = self.state.lock().unwrap();
        state.calls.push("AcknowledgeJob");
        if self.foreign_jobs.lock().unwrap().contains(job_id) {
            return Err(ServiceError::InvalidNonce(job_id.to_string()));
        }
        state.in_progress.insert(job_id.to_string());
        Ok(AckStatus::InProgress)
    }

    async fn put_job_success(
        &self,
        job_id: &str,
        report: &SuccessReport,
    ) -> Result<(), ServiceError> {
        self.answer(
            job_id,
            Answer::Success(report.clone()),
            "PutJobSuccessResult",
        )
    }

    async fn put_job_failure(
        &self,
        job_id: &str,
        report: &FailureReport,
    ) -> Result<(), ServiceError> {
        self.answer(
            job_id,
            Answer::Failure(report.clone()),
            "PutJobFailureResult",
        )
    }

    async fn action_executions(
        &self,
        pipeline: &str,
        pipeline_execution_id: Option<&str>,
    ) -> Result<Vec<ActionExecution>, ServiceError> {
        self.state
            .lock()
            .unwrap()
            .calls
            .push("ListActionExecutions");
        if *self.failing_action_lookups.lock().unwrap() {
            return Err(ServiceError::Call {
                service: "codepipeline",
                operation: "ListActionExecutions",
                message: "throttled".into(),
            });
        }
        Ok(self
            .action_executions
            .lock()
            .unwrap()
            .get(pipeline)
            .into_iter()
            .flatten()
            .filter(|a| pipeline_execution_id.is_none_or(|id| a.pipeline_execution_id == id))
            .cloned()
            .collect())
    }
}

struct FakeExecution {
    input: String,
    description: ExecutionDescription,
}

/// Fake Step Functions: executions by name, StartExecution idempotent for the same input while
/// running, `ExecutionAlreadyExists` otherwise.
#[derive(Clone)]
pub struct FakeSteps(Arc<StepsFake>);
shared_handle!(FakeSteps, StepsFake);

/// The state behind a [`FakeSteps`].
pub struct StepsFake {
    prefix: String,
    executions: Mutex<BTreeMap<String, FakeExecution>>,
    /// Every StartExecution call, (name, input).
    pub starts: Mutex<Vec<(String, String)>>,
    pub current_state: Mutex<Option<String>>,
    /// Restarts after spot interruptions `states_entered` shows before the current state.
    pub restarts: Mutex<usize>,
    /// How many of the next DescribeExecution calls fail with a service error.
    pub failing_describes: Mutex<u32>,
    /// Every StopExecution call, (ARN, error, cause).
    pub stops: Mutex<Vec<(String, String, String)>>,
    /// Names of the operations called, in order.
    pub calls: Mutex<Vec<&'static str>>,
    /// How many of the next ListExecutions calls fail with a service error.
    pub failing_listings: Mutex<u32>,
    /// What GetExecutionHistory returns, by execution ARN (none: not found).
    pub histories: Mutex<BTreeMap<String, Vec<HistoryEvent>>>,
}

impl FakeSteps {
    /// `state_machine_arn` decides the execution ARNs, as in AWS.
    pub fn new(state_machine_arn: &str) -> Self {
        Self(Arc::new(StepsFake {
            prefix: state_machine_arn.replacen(":stateMachine:", ":execution:", 1),
            executions: Mutex::default(),
            starts: Mutex::default(),
            current_state: Mutex::new(Some("RunBuild".into())),
            restarts: Mutex::default(),
            failing_describes: Mutex::default(),
            stops: Mutex::default(),
            calls: Mutex::default(),
            failing_listings: Mutex::default(),
            histories: Mutex::default(),
        }))
    }
}

impl StepsFake {
    /// Records a call of `operation`; fails it while `failing` counts down.
    fn record_call(
        &self,
        operation: &'static str,
        failing: &Mutex<u32>,
    ) -> Result<(), ServiceError> {
        self.calls.lock().unwrap().push(operation);
        let mut failing = failing.lock().unwrap();
        if *failing > 0 {
            *failing -= 1;
            return Err(ServiceError::Call {
                service: "states",
                operation,
                message: "throttled".into(),
            });
        }
        Ok(())
    }

    pub fn arn(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Puts an execution in a final or running state.
    pub fn set(
        &self,
        name: &str,
        status: ExecutionStatus,
        output: Option<&str>,
        error: Option<&str>,
        cause: Option<&str>,
    ) {
        let arn = self.arn(name);
        let mut executions = self.executions.lock().unwrap();
        let input = executions
            .get(name)
            .map(|e| e.input.clone())
            .unwrap_or_default();
        executions.insert(
            name.to_string(),
            FakeExecution {
                input,
                description: ExecutionDescription {
                    arn,
                    status,
                    output: output.map(Into::into),
                    error: error.map(Into::into),
                    cause: cause.map(Into::into),
                    duration_seconds: Some(60),
                    started_at: Some(0),
                },
            },
        );
    }

    pub fn input_of(&self, name: &str) -> Option<String> {
        self.executions
            .lock()
            .unwrap()
            .get(name)
            .map(|e| e.input.clone())
    }

    pub fn count(&self) -> usize {
        self.executions.lock().unwrap().len()
    }
}

#[async_trait]
impl StepFunctions for FakeSteps {
    async fn start_execution(&self, name: &str, input: &str) -> Result<String, ServiceError> {
        self.starts
            .lock()
            .unwrap()
            .push((name.to_string(), input.to_string()));
        let arn = self.arn(name);
        let mut executions = self.executions.lock().unwrap();
        match executions.get(name) {
            Some(e) if e.input == input && e.description.status == ExecutionStatus::Running => {
                Ok(arn)
            }
            Some(_) => Err(ServiceError::ExecutionAlreadyExists(arn)),
            None => {
                executions.insert(
                    name.to_string(),
                    FakeExecution {
                        input: input.to_string(),
                        description: ExecutionDescription {
                            arn: arn.clone(),
                            status: ExecutionStatus::Running,
                            output: None,
                            error: None,
                            cause: None,
                            duration_seconds: None,
                            started_at: Some(0),
                        },
                    },
                );
                Ok(arn)
            }
        }
    }

    async fn describe_execution(&self, arn: &str) -> Result<ExecutionDescription, ServiceError> {
        self.record_call("DescribeExecution", &self.failing_describes)?;
        let executions = self.executions.lock().unwrap();
        executions
            .values()
            .find(|e| e.description.arn == arn)
            .map(|e| e.description.clone())
            .ok_or_else(|| ServiceError::ExecutionNotFound(arn.to_string()))
    }

    async fn states_entered(&self, _arn: &str) -> Result<Vec<String>, ServiceError> {
        self.calls.lock().unwrap().push("GetExecutionHistory");
        let restarts = *self.restarts.lock().unwrap();
        let mut states = vec![crate::progress::RESTART_STATE.to_string(); restarts];
        states.extend(self.current_state.lock().unwrap().clone());
        Ok(states)
    }

    async fn current_state(&self, _arn: &str) -> Result<Option<String>, ServiceError> {
        self.calls.lock().unwrap().push("GetExecutionHistory");
        Ok(self.current_state.lock().unwrap().clone())
    }

    async fn execution_history(&self, arn: &str) -> Result<Vec<HistoryEvent>, ServiceError> {
        self.calls.lock().unwrap().push("GetExecutionHistory");
        self.histories
            .lock()
            .unwrap()
            .get(arn)
            .cloned()
            .ok_or_else(|| ServiceError::ExecutionNotFound(arn.to_string()))
    }

    async fn running_executions(&self) -> Result<Vec<RunningExecution>, ServiceError> {
        self.record_call("ListExecutions", &self.failing_listings)?;
        Ok(self
            .executions
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.description.status == ExecutionStatus::Running)
            .map(|e| RunningExecution {
                arn: e.description.arn.clone(),
                started_at: Some(0),
            })
            .collect())
    }

    async fn stop_execution(
        &self,
        arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), ServiceError> {
        self.stops
            .lock()
            .unwrap()
            .push((arn.to_string(), error.to_string(), cause.to_string()));
        let mut executions = self.executions.lock().unwrap();
        let execution = executions
            .values_mut()
            .find(|e| e.description.arn == arn)
            .ok_or_else(|| ServiceError::ExecutionNotFound(arn.to_string()))?;
        if execution.description.status == ExecutionStatus::Running {
            execution.description.status = ExecutionStatus::Aborted;
            execution.description.error = Some(error.to_string());
            execution.description.cause = Some(cause.to_string());
        }
        Ok(())
    }
}

/// Fake held-jobs table: one record per execution, as the DynamoDB adapter keeps them.
#[derive(Clone, Default)]
pub struct FakeHeldJobs(Arc<HeldJobsFake>);
shared_handle!(FakeHeldJobs, HeldJobsFake);

/// The state behind a [`FakeHeldJobs`].
#[derive(Default)]
pub struct HeldJobsFake {
    records: Mutex<BTreeMap<String, HeldJob>>,
    /// Every call fails with a service error while this is set.
    pub failing: Mutex<bool>,
    /// Names of the operations called, in order.
    pub calls: Mutex<Vec<&'static str>>,
}

impl HeldJobsFake {
    /// The records, by execution ARN.
    pub fn records(&self) -> BTreeMap<String, HeldJob> {
        self.records.lock().unwrap().clone()
    }

    /// Records `job` as if a worker had held it.
    pub fn insert(&self, job: HeldJob) {
        self.records
            .lock()
            .unwrap()
            .insert(job.execution_arn.clone(), job);
    }

    fn record_call(&self, operation: &'static str) -> Result<(), ServiceError> {
        self.calls.lock().unwrap().push(operation);
        if *self.failing.lock().unwrap() {
            return Err(ServiceError::Call {
                service: "dynamodb",
                operation,
                message: "unavailable".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl HeldJobs for FakeHeldJobs {
    async fn hold(&self, job: &HeldJob) -> Result<(), ServiceError> {
        self.record_call("PutItem")?;
        self.insert(job.clone());
        Ok(())
    }

    async fn held_for(&self, execution_arn: &str) -> Result<Option<HeldJob>, ServiceError> {
        self.record_call("GetItem")?;
        Ok(self.records.lock().unwrap().get(execution_arn).cloned())
    }

    async fn all_held(&self) -> Result<Vec<HeldJob>, ServiceError> {
        self.record_call("Scan")?;
        Ok(self.records.lock().unwrap().values().cloned().collect())
    }

    async fn forget(&self, execution_arn: &str, job_id: &str) -> Result<(), ServiceError> {
        self.record_call("DeleteItem")?;
        let mut records = self.records.lock().unwrap();
        if records
            .get(execution_arn)
            .is_some_and(|r| r.job_id == job_id)
        {
            records.remove(execution_arn);
        }
        Ok(())
    }
}
