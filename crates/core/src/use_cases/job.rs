//! Handling one job: acknowledge it, start or continue its build, answer it. The poller and the
//! completion function run the same code, so it does not matter which of them receives a job.

use crate::input::ExecutionInput;
use crate::model::AckStatus;
use crate::model::{
    epoch_now_ms, seconds_since, ContinuationToken, ExecutionDescription, ExecutionStatus, HeldJob,
    Job, JobOutcome, JobReport, ServiceError, SkipReason,
};
use crate::ports::{CodePipeline, HeldJobs, StepFunctions};
use crate::progress;
use crate::report::{self, configuration_failure, job_failure};
use crate::settings::Settings;
use crate::spec::BuildSpec;
use futures::stream::{self, StreamExt};
use std::collections::HashMap;
use std::time::Duration;
use tracing::{field, info, warn, Instrument};

/// Time one job may need once polled: AcknowledgeJob, StartExecution or DescribeExecution, the
/// answer: two of them stalled to the SDK's operation timeout (12 s, ec2-build-aws), the others
/// quick. A batch is polled only with the time its jobs need left (see [`JobWorker::batch_time`]):
/// a polled job is always handled, since CodePipeline does not document offering it again.
pub const JOB_TIME_RESERVE: Duration = Duration::from_secs(25);

/// What the worker knows of running builds when it meets their continuation jobs; it decides
/// how many Step Functions calls a continuation job costs. A build found running has its
/// continuation job held (see [`HeldJobs`]), not answered.
#[derive(Debug, Clone, Copy)]
pub enum RunningBuilds<'a> {
    /// Nothing: each build is described.
    Unknown,
    /// The RUNNING executions (ARN → start time), listed once for the sweep: a listed build is
    /// held without DescribeExecution; any other is described.
    Listed(&'a HashMap<String, Option<u64>>),
    /// Not looked at: a build is held without any Step Functions call, except `ended`, which is
    /// described. A STARTED sweep leaves running builds to the scheduled sweep this way; the
    /// completion function describes only its own execution.
    NotChecked { ended: Option<&'a str> },
}

/// What to do with a continuation job once acknowledged.
enum ContinuationDecision {
    /// Answer it now (the build ended, or the job cannot be followed).
    Answer(JobReport),
    /// The build runs: hold the job until there is something to report.
    Hold(ContinuationToken),
}

/// Handles jobs of our action type over the CodePipeline, Step Functions and held-jobs ports.
pub struct JobWorker<P, S, H> {
    pipeline: P,
    steps: S,
    held: H,
    settings: Settings,
}

impl<P: CodePipeline, S: StepFunctions, H: HeldJobs> JobWorker<P, S, H> {
    pub fn new(pipeline: P, steps: S, held: H, settings: Settings) -> Self {
        Self {
            pipeline,
            steps,
            held,
            settings,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The Step Functions port.
    pub fn steps(&self) -> &S {
        &self.steps
    }

    /// The held-jobs port.
    pub fn held_jobs(&self) -> &H {
        &self.held
    }

    /// The CodePipeline port (the completion function's build metrics read the action's start).
    pub fn pipeline(&self) -> &P {
        &self.pipeline
    }

    /// One PollForJobs call for a batch of our jobs.
    pub async fn poll(&self) -> Result<Vec<Job>, ServiceError> {
        self.pipeline
            .poll_for_jobs(self.settings.poll_batch_size)
            .await
    }

    /// Time a batch of `poll_batch_size` jobs may need, handled `job_concurrency` at a time.
    pub fn batch_time(&self) -> Duration {
        let rounds = self
            .settings
            .poll_batch_size
            .div_ceil(self.settings.job_concurrency.max(1) as u32);
        JOB_TIME_RESERVE * rounds
    }

    /// Handles jobs concurrently; one job's failure never stops the others.
    pub async fn handle_all(&self, jobs: Vec<Job>, running: &RunningBuilds<'_>) -> Vec<JobOutcome> {
        stream::iter(jobs)
            .map(|job| self.handle(job, running))
            .buffer_unordered(self.settings.job_concurrency)
            .collect()
            .await
    }

    /// Acknowledges the job, decides what to answer and answers it.
    pub async fn handle(&self, job: Job, running: &RunningBuilds<'_>) -> JobOutcome {
        let span = tracing::info_span!("job", job_id = %job.id, execution_arn = field::Empty);
        async {
            if let Err(reason) = self.acknowledge(&job).await {
                return JobOutcome::Skipped {
                    job_id: job.id,
                    reason,
                };
            }
            let report = match &job.data.continuation_token {
                Some(token) => match self.continue_build(token, running).await {
                    ContinuationDecision::Answer(report) => report,
                    ContinuationDecision::Hold(token) => return self.hold(&job.id, token).await,
                },
                None => self.start_build(&job).await,
            };
            self.answer(&job.id, report).await
        }
        .instrument(span)
        .await
    }

    /// Answers a job that was acknowledged before (by whoever polled it) with the final result
    /// of its finished execution.
    pub async fn answer_final(&self, job_id: &str, execution: &ExecutionDescription) -> JobOutcome {
        let report = report::for_execution(execution, &self.settings);
        self.answer(job_id, report).await
    }

    /// AcknowledgeJob must answer `InProgress` before any work starts.
    async fn acknowledge(&self, job: &Job) -> Result<(), SkipReason> {
        match self.pipeline.acknowledge_job(&job.id, &job.nonce).await {
            Ok(AckStatus::InProgress) => Ok(()),
            Ok(AckStatus::Other(status)) => {
                info!(%status, "job not acknowledged as InProgress; leaving it");
                Err(SkipReason::NotInProgress(status))
            }
            Err(ServiceError::InvalidNonce(_)) => {
                info!("another worker owns the job");
                Err(SkipReason::OwnedByAnotherWorker)
            }
            Err(e) => {
                warn!(error = %e, "AcknowledgeJob failed; the job stays queued for the next sweep");
                Err(SkipReason::AcknowledgeFailed(e))
            }
        }
    }

    /// A new job: validate, start the execution named after the job, continue with its ARN.
    async fn start_build(&self, job: &Job) -> JobReport {
        let spec = match BuildSpec::from_configuration(
            &job.data.configuration,
            job.data.output_artifacts.len(),
        )
        .and_then(|spec| spec.check_pool(&self.settings.pools).map(|()| spec))
        {
            Ok(spec) => spec,
            Err(e) => {
                info!(property = e.property, "invalid action configuration");
                return JobReport::Fail(configuration_failure(&e));
            }
        };
        if !is_execution_name(&job.id) {
            return JobReport::Fail(job_failure(
                format!("job id {:?} cannot name an execution", job.id),
                None,
            ));
        }
        let input = match ExecutionInput::new(job, &spec, self.settings.heartbeat_seconds) {
            Ok(input) => input,
            Err(e) => return JobReport::Fail(job_failure(e.to_string(), None)),
        };
        let arn = match self.steps.start_execution(&job.id, &input.to_json()).await {
            Ok(arn) => arn,
            Err(ServiceError::ExecutionAlreadyExists(_)) => {
                let arn = self.settings.execution_arn(&job.id);
                if let Err(e) = self.steps.describe_execution(&arn).await {
                    return JobReport::Fail(job_failure(
                        format!("an execution named {} exists but cannot be read: {e}", job.id),
                        None,
                    ));
                }
                info!(execution_arn = %arn, "execution was started before for this job; continuing with it");
                arn
            }
            Err(e) => {
                return JobReport::Fail(job_failure(
                    format!("could not start the build execution: {e}. Retry the stage once the cause is fixed"),
                    None,
                ))
            }
        };
        tracing::Span::current().record("execution_arn", arn.as_str());
        info!("build execution started");
        report::started(&arn, &self.settings)
    }

    /// A continuation job: hold it while the build runs, answer it once the build ended, with as
    /// few calls as `running` allows.
    async fn continue_build(&self, raw: &str, running: &RunningBuilds<'_>) -> ContinuationDecision {
        let token = ContinuationToken::parse(raw);
        let arn = token.execution_arn.as_str();
        tracing::Span::current().record("execution_arn", arn);
        if !arn.starts_with(&self.settings.execution_arn("")) {
            return ContinuationDecision::Answer(JobReport::Fail(job_failure(
                format!(
                    "the continuation token {raw:?} is not an execution of {}",
                    self.settings.state_machine_arn
                ),
                None,
            )));
        }
        let known_running = match running {
            RunningBuilds::NotChecked { ended } => *ended != Some(arn),
            RunningBuilds::Listed(listed) => listed.contains_key(arn),
            RunningBuilds::Unknown => false,
        };
        if known_running {
            return ContinuationDecision::Hold(token);
        }
        match self.steps.describe_execution(arn).await {
            Ok(execution) if execution.status == ExecutionStatus::Running => {
                ContinuationDecision::Hold(token)
            }
            Ok(execution) => {
                ContinuationDecision::Answer(report::for_execution(&execution, &self.settings))
            }
            Err(ServiceError::ExecutionNotFound(_)) => {
                ContinuationDecision::Answer(execution_gone(arn))
            }
            Err(e) => {
                // Held, the scheduled sweep looks at the build again within a minute.
                warn!(error = %e, "DescribeExecution failed; holding the job for the next check");
                ContinuationDecision::Hold(token)
            }
        }
    }

    /// Holds an acknowledged continuation job: recorded, not answered. When it cannot be
    /// recorded it is answered as still running instead, so it is never left without a record
    /// or an answer.
    async fn hold(&self, job_id: &str, token: ContinuationToken) -> JobOutcome {
        let held = HeldJob {
            execution_arn: token.execution_arn.clone(),
            job_id: job_id.to_string(),
            token: token.to_string(),
            held_at_ms: epoch_now_ms(),
        };
        match self.held.hold(&held).await {
            Ok(()) => {
                info!("continuation job held while the build runs");
                JobOutcome::Held {
                    job_id: held.job_id,
                    execution_arn: held.execution_arn,
                }
            }
            Err(e) => {
                warn!(error = %e, "could not record the held job; answering it instead");
                let report = report::still_running(&token, None, 0, &self.settings);
                self.answer(job_id, report).await
            }
        }
    }

    /// Answers a held job: with the final result when its execution ended, else with fresh
    /// progress (queueing the next continuation job). `listed_start` is the execution's start
    /// time when a listing of RUNNING executions just showed it; otherwise it is described. The
    /// record is forgotten once the job has its final answer (from this worker or another); a
    /// job whose build cannot be read stays held for the next check.
    pub async fn answer_held(
        &self,
        held: &HeldJob,
        listed_start: Option<Option<u64>>,
    ) -> JobOutcome {
        let span =
            tracing::info_span!("job", job_id = %held.job_id, execution_arn = %held.execution_arn);
        async {
            let token = ContinuationToken::parse(&held.token);
            let report = match listed_start {
                Some(started_at) => self.progress(token, started_at.map(seconds_since)).await,
                None => match self.steps.describe_execution(&held.execution_arn).await {
                    Ok(execution) if execution.status == ExecutionStatus::Running => {
                        self.progress(token, execution.started_seconds_ago()).await
                    }
                    Ok(execution) => report::for_execution(&execution, &self.settings),
                    Err(ServiceError::ExecutionNotFound(_)) => execution_gone(&held.execution_arn),
                    Err(e) => {
                        warn!(error = %e, "DescribeExecution failed; the job stays held");
                        return JobOutcome::Held {
                            job_id: held.job_id.clone(),
                            execution_arn: held.execution_arn.clone(),
                        };
                    }
                },
            };
            let outcome = self.answer(&held.job_id, report).await;
            // A job continued with progress keeps its record until its successor's hold
            // replaces it (one write instead of two); a record that names an answered job is
            // harmless: whoever reads it is told the job was answered, and forgets it.
            let settled = outcome.is_final_answer()
                || matches!(
                    outcome,
                    JobOutcome::Skipped {
                        reason: SkipReason::AlreadyAnswered,
                        ..
                    }
                );
            if settled {
                if let Err(e) = self.held.forget(&held.execution_arn, &held.job_id).await {
                    warn!(error = %e, "could not forget the answered held job; the next check skips it");
                }
            }
            outcome
        }
        .instrument(span)
        .await
    }

    /// The still-running report, with the state and the restarts read afresh from the history
    /// (one GetExecutionHistory per refresh of a held job); without them when it cannot be read.
    async fn progress(&self, token: ContinuationToken, running_for: Option<u64>) -> JobReport {
        match self.steps.states_entered(&token.execution_arn).await {
            Ok(states) => {
                let (state, restarts) = progress::of_states_entered(&states);
                let token = match state {
                    Some(state) => ContinuationToken::new(token.execution_arn, Some(state)),
                    None => token,
                };
                report::still_running(&token, running_for, restarts, &self.settings)
            }
            Err(e) => {
                warn!(error = %e, "could not read the execution history");
                report::still_running(&token, running_for, 0, &self.settings)
            }
        }
    }

    /// Sends the report; the report's variant decides the outcome.
    async fn answer(&self, job_id: &str, report: JobReport) -> JobOutcome {
        let job_id = job_id.to_string();
        let (result, outcome) = match report {
            JobReport::Start(r) => (
                self.pipeline.put_job_success(&job_id, &r).await,
                JobOutcome::Started {
                    job_id: job_id.clone(),
                    execution_arn: r.external_execution_id,
                },
            ),
            JobReport::Continue(r) => (
                self.pipeline.put_job_success(&job_id, &r).await,
                JobOutcome::Continued {
                    job_id: job_id.clone(),
                    execution_arn: r.external_execution_id,
                },
            ),
            JobReport::Succeed(r) => (
                self.pipeline.put_job_success(&job_id, &r).await,
                JobOutcome::Succeeded {
                    job_id: job_id.clone(),
                    execution_arn: r.external_execution_id,
                },
            ),
            JobReport::Fail(r) => (
                self.pipeline.put_job_failure(&job_id, &r).await,
                JobOutcome::Failed {
                    job_id: job_id.clone(),
                    execution_arn: r.external_execution_id,
                    message: r.message,
                },
            ),
        };
        match result {
            Ok(()) => {
                info!(outcome = outcome.name(), "job answered");
                outcome
            }
            Err(ServiceError::InvalidJobState(_)) => {
                info!("job was already answered by another worker");
                JobOutcome::Skipped {
                    job_id,
                    reason: SkipReason::AlreadyAnswered,
                }
            }
            Err(error) => {
                warn!(%error, "could not answer the job");
                JobOutcome::Unanswered { job_id, error }
            }
        }
    }
}

/// The failure for a continuation job whose execution Step Functions no longer knows.
fn execution_gone(arn: &str) -> JobReport {
    JobReport::Fail(job_failure(
        format!("the build execution {arn} does not exist any more"),
        Some(arn.to_string()),
    ))
}

/// Step Functions execution names: 1–80 characters, no blanks or special characters.
fn is_execution_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
