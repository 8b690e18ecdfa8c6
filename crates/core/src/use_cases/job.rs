//! Handling one job: acknowledge it, start or continue its build, answer it. The poller and the
//! completion function run the same code, so it does not matter which of them receives a job.

use crate::input::ExecutionInput;
use crate::model::AckStatus;
use crate::model::{
    seconds_since, ContinuationToken, ExecutionDescription, ExecutionStatus, Job, JobOutcome,
    JobReport, ServiceError, SkipReason, SuccessReport,
};
use crate::ports::{CodePipeline, StepFunctions};
use crate::progress::{self, Stage};
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

/// What the worker knows of running builds when it answers their continuation jobs; it decides
/// how many Step Functions calls a re-check costs.
#[derive(Debug, Clone, Copy)]
pub enum RunningBuilds<'a> {
    /// Nothing: each build is described, and its current state read while it runs.
    Unknown,
    /// The RUNNING executions (ARN → start time), listed once for the sweep: a listed build is
    /// continued without DescribeExecution; any other is described.
    Listed(&'a HashMap<String, Option<u64>>),
    /// Not looked at: a build is continued as its token last saw it, without any call, except
    /// `ended`, which is described. A STARTED sweep leaves running builds to the scheduled
    /// sweep this way; the completion function describes only its own execution.
    NotChecked { ended: Option<&'a str> },
}

/// Handles jobs of our action type over a CodePipeline and a Step Functions port.
pub struct JobWorker<P, S> {
    pipeline: P,
    steps: S,
    settings: Settings,
}

impl<P: CodePipeline, S: StepFunctions> JobWorker<P, S> {
    pub fn new(pipeline: P, steps: S, settings: Settings) -> Self {
        Self {
            pipeline,
            steps,
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
                Some(token) => self.continue_build(token, running).await,
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
        ) {
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

    /// A continuation job: report the execution's state, with as few calls as `running` allows.
    async fn continue_build(&self, raw: &str, running: &RunningBuilds<'_>) -> JobReport {
        let token = ContinuationToken::parse(raw);
        let arn = token.execution_arn.as_str();
        tracing::Span::current().record("execution_arn", arn);
        if !arn.starts_with(&self.settings.execution_arn("")) {
            return JobReport::Fail(job_failure(
                format!(
                    "the continuation token {raw:?} is not an execution of {}",
                    self.settings.state_machine_arn
                ),
                None,
            ));
        }
        match running {
            RunningBuilds::NotChecked { ended } if *ended != Some(arn) => {
                return report::still_running(&token, None, &self.settings);
            }
            RunningBuilds::Listed(listed) => {
                if let Some(started_at) = listed.get(arn) {
                    let running_for = started_at.map(seconds_since);
                    let token = self.refresh_state(token).await;
                    return report::still_running(&token, running_for, &self.settings);
                }
            }
            _ => {}
        }
        match self.steps.describe_execution(arn).await {
            Ok(execution) if execution.status == ExecutionStatus::Running => {
                let token = self.refresh_state(token).await;
                report::still_running(&token, execution.started_seconds_ago(), &self.settings)
            }
            Ok(execution) => report::for_execution(&execution, &self.settings),
            Err(ServiceError::ExecutionNotFound(_)) => JobReport::Fail(job_failure(
                format!("the build execution {arn} does not exist any more"),
                Some(arn.to_string()),
            )),
            Err(e) => {
                warn!(error = %e, "DescribeExecution failed; continuing so the next job checks again");
                JobReport::Continue(SuccessReport {
                    summary: report::truncate_end(
                        &format!("Build status unknown for now ({e}); checking again"),
                        report::MAX_SUMMARY_LEN,
                    ),
                    external_execution_id: arn.to_string(),
                    percent_complete: None,
                    continuation_token: Some(token.to_string()),
                    output_variables: Default::default(),
                })
            }
        }
    }

    /// The token with the state the running execution is in now. Once the build has reached
    /// its long wait (the build stage, or release after it), the state changes only when the
    /// build ends, which the completion function reports: the history is not read again.
    async fn refresh_state(&self, token: ContinuationToken) -> ContinuationToken {
        let reached_wait = token
            .last_state
            .as_deref()
            .and_then(progress::of_state)
            .is_some_and(|p| matches!(p.stage, Stage::Build | Stage::Release));
        if reached_wait {
            return token;
        }
        match self.steps.current_state(&token.execution_arn).await {
            Ok(Some(state)) => ContinuationToken::new(token.execution_arn, Some(&state)),
            Ok(None) => token,
            Err(e) => {
                warn!(error = %e, "could not read the execution history");
                token
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

/// Step Functions execution names: 1–80 characters, no blanks or special characters.
fn is_execution_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
