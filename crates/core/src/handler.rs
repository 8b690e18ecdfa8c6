//! Job handling: the same code serves the poller and the completion Lambda, so it does not
//! matter which of them receives a job.

use crate::events::ExecutionEnded;
use crate::job::Job;
use crate::ports::{AckStatus, CodePipeline, ExecutionStatus, Instances, StepFunctions};
use crate::report::{self, FailureReport, JobReport};
use crate::{BuildSpec, Error, ExecutionInput, Settings};
use futures::stream::{self, StreamExt};
use std::collections::HashSet;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{field, info, warn, Instrument};

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// A new job: its execution runs, CodePipeline will come back with a continuation job.
    Started {
        job_id: String,
        execution_arn: String,
    },
    /// The execution still runs: continued again.
    Continued {
        job_id: String,
        execution_arn: String,
    },
    /// Final success reported.
    Succeeded {
        job_id: String,
        execution_arn: String,
    },
    /// Final failure reported.
    Failed {
        job_id: String,
        execution_arn: Option<String>,
        message: String,
    },
    /// Not ours to work on (acknowledged by another worker), or answered by another worker.
    Skipped { job_id: String, reason: String },
    /// We could not answer; the error says why.
    Unanswered { job_id: String, error: String },
}

impl JobOutcome {
    pub fn job_id(&self) -> &str {
        match self {
            Self::Started { job_id, .. }
            | Self::Continued { job_id, .. }
            | Self::Succeeded { job_id, .. }
            | Self::Failed { job_id, .. }
            | Self::Skipped { job_id, .. }
            | Self::Unanswered { job_id, .. } => job_id,
        }
    }
}

/// How far a sweep goes once new jobs run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepScope {
    /// An action of ours started: poll while batches bring new jobs. Continuation jobs polled on
    /// the way are handled, but a burst of N events does not re-check every running build N
    /// times.
    NewJobs,
    /// The scheduled sweep: poll while batches come back full, re-checking running builds and
    /// finalising those whose completion event was lost.
    AllJobs,
}

/// How many batches of continuation jobs a STARTED sweep looks through for a new job. Every
/// check of a running build queues its next continuation job, so with more running builds than
/// this many batches hold, a new job may wait for the scheduled sweep (at most a minute); a
/// higher number would make every STARTED event of a burst re-check more running builds.
pub const NEW_JOB_SEARCH_BATCHES: u32 = 3;

/// Time a sweep keeps in hand before its deadline, beyond twice its slowest batch.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(5);

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    pub polls: u32,
    pub outcomes: Vec<JobOutcome>,
}

/// What the completion path did for one finished execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletionSummary {
    /// How the final result reached CodePipeline.
    pub reported: Reported,
    /// Every job handled on the way, the continuation job among them.
    pub outcomes: Vec<JobOutcome>,
    /// Instances terminated because the flow's own release did not run.
    pub released: Vec<String>,
}

/// How the completion path reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reported {
    /// Through the continuation job carrying the execution ARN.
    ContinuationJob,
    /// On the job that started the execution, which was never continued.
    OriginalJob,
    /// Not yet: the continuation job did not show up in time; the scheduled sweep reports it.
    #[default]
    LeftToSweep,
}

/// Handles CodePipeline jobs of our action type.
pub struct JobHandler<P, S> {
    pipeline: P,
    steps: S,
    settings: Settings,
}

impl<P: CodePipeline, S: StepFunctions> JobHandler<P, S> {
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

    /// The CodePipeline port (tests inspect their fakes through it).
    pub fn pipeline_port(&self) -> &P {
        &self.pipeline
    }

    /// The Step Functions port.
    pub fn steps_port(&self) -> &S {
        &self.steps
    }

    /// Polls for jobs and handles them, batch after batch while batches come back full (at most
    /// `poll_max_rounds`). Every polled job is handled. The sweep stops early:
    /// - after a batch holding a continuation job of a build it already checked, so a running
    ///   build is checked at most twice a sweep;
    /// - for [`SweepScope::NewJobs`], after a batch without a new job once it has found one, or
    ///   after [`NEW_JOB_SEARCH_BATCHES`] batches without finding any;
    /// - before a batch it might not finish in `time_left` (the caller's deadline, such as the
    ///   Lambda timeout): it needs twice its slowest batch so far plus [`DEADLINE_RESERVE`].
    pub async fn sweep(
        &self,
        scope: SweepScope,
        time_left: Duration,
    ) -> Result<BatchSummary, Error> {
        let started = Instant::now();
        let mut slowest_batch = Duration::ZERO;
        let mut summary = BatchSummary::default();
        let mut seen_tokens = HashSet::new();
        let mut found_new_job = false;
        while summary.polls < self.settings.poll_max_rounds {
            if summary.polls > 0
                && started.elapsed() + 2 * slowest_batch + DEADLINE_RESERVE > time_left
            {
                warn!(
                    polls = summary.polls,
                    "stopping before the deadline; the next sweep takes the remaining jobs"
                );
                break;
            }
            let batch_started = Instant::now();
            let jobs = match self
                .pipeline
                .poll_for_jobs(self.settings.poll_batch_size)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) if summary.polls == 0 => return Err(e),
                Err(e) => {
                    warn!(error = %e, "PollForJobs failed after the first batch; the next sweep continues");
                    break;
                }
            };
            summary.polls += 1;
            let full = jobs.len() as u32 >= self.settings.poll_batch_size;
            // Every polled job is handled: a polled job that is not acknowledged is not offered
            // again soon (or at all, in some emulators), so skipping one could strand a build.
            // A token seen twice means the batch holds continuations of builds this sweep already
            // checked: handle it and stop, so running builds are not re-checked in a loop.
            let mut repeated = false;
            let mut new_jobs = false;
            for job in &jobs {
                match &job.data.continuation_token {
                    Some(token) => repeated |= !seen_tokens.insert(token.clone()),
                    None => new_jobs = true,
                }
            }
            summary.outcomes.extend(self.handle_jobs(jobs).await);
            slowest_batch = slowest_batch.max(batch_started.elapsed());
            // Continuation jobs of running builds may be queued ahead of the new job (each check
            // queues the next one), so a STARTED sweep looks a few batches deep before giving up.
            let done_with_new_jobs = scope == SweepScope::NewJobs
                && !new_jobs
                && (found_new_job || summary.polls >= NEW_JOB_SEARCH_BATCHES);
            found_new_job |= new_jobs;
            if !full || repeated || done_with_new_jobs {
                break;
            }
        }
        Ok(summary)
    }

    /// Handles jobs concurrently; one job's failure never stops the others.
    pub async fn handle_jobs(&self, jobs: Vec<Job>) -> Vec<JobOutcome> {
        stream::iter(jobs)
            .map(|job| self.handle_job(job))
            .buffer_unordered(self.settings.job_concurrency)
            .collect()
            .await
    }

    /// Acknowledges the job, decides and answers it.
    pub async fn handle_job(&self, job: Job) -> JobOutcome {
        let span = tracing::info_span!("job", job_id = %job.id, execution_arn = field::Empty);
        self.handle_job_inner(job).instrument(span).await
    }

    async fn handle_job_inner(&self, job: Job) -> JobOutcome {
        let job_id = job.id.clone();
        match self.pipeline.acknowledge_job(&job.id, &job.nonce).await {
            Ok(AckStatus::InProgress) => {}
            Ok(AckStatus::Other(status)) => {
                info!(%status, "job not acknowledged as InProgress; leaving it");
                return JobOutcome::Skipped {
                    job_id,
                    reason: format!("AcknowledgeJob returned {status}"),
                };
            }
            Err(Error::InvalidNonce(_)) => {
                info!("another worker owns the job");
                return JobOutcome::Skipped {
                    job_id,
                    reason: "invalid nonce: another worker owns the job".into(),
                };
            }
            Err(e) => {
                warn!(error = %e, "AcknowledgeJob failed; the job stays queued for the next sweep");
                return JobOutcome::Skipped {
                    job_id,
                    reason: format!("AcknowledgeJob failed: {e}"),
                };
            }
        }
        let (report, new_job) = match &job.data.continuation_token {
            Some(token) => (self.continue_build(token).await, false),
            None => (self.start_build(&job).await, true),
        };
        self.answer(&job_id, report, new_job).await
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
                return JobReport::Fail(FailureReport::configuration(&e));
            }
        };
        if !is_execution_name(&job.id) {
            return JobReport::Fail(FailureReport::job(
                format!("job id {:?} cannot name an execution", job.id),
                None,
            ));
        }
        let input = match ExecutionInput::new(job, &spec, self.settings.heartbeat_seconds) {
            Ok(input) => input,
            Err(e) => return JobReport::Fail(FailureReport::job(e.to_string(), None)),
        };
        let arn = match self.steps.start_execution(&job.id, &input.to_json()).await {
            Ok(arn) => arn,
            Err(Error::ExecutionAlreadyExists(_)) => {
                let arn = self.settings.execution_arn(&job.id);
                match self.steps.describe_execution(&arn).await {
                    Ok(_) => {
                        info!(execution_arn = %arn, "execution was started before for this job; continuing with it");
                        arn
                    }
                    Err(e) => {
                        return JobReport::Fail(FailureReport::job(
                            format!("an execution named {} exists but cannot be read: {e}", job.id),
                            None,
                        ))
                    }
                }
            }
            Err(e) => {
                return JobReport::Fail(FailureReport::job(
                    format!("could not start the build execution: {e}. Retry the stage once the cause is fixed"),
                    None,
                ))
            }
        };
        tracing::Span::current().record("execution_arn", arn.as_str());
        info!("build execution started");
        JobReport::Continue(report::started(&arn, &self.settings))
    }

    /// A continuation job: report the execution's state.
    async fn continue_build(&self, token: &str) -> JobReport {
        tracing::Span::current().record("execution_arn", token);
        if !token.starts_with(&self.settings.execution_arn("")) {
            return JobReport::Fail(FailureReport::job(
                format!(
                    "the continuation token {token:?} is not an execution of {}",
                    self.settings.state_machine_arn
                ),
                None,
            ));
        }
        match self.steps.describe_execution(token).await {
            Ok(execution) => {
                let state = if execution.status == ExecutionStatus::Running {
                    self.steps.current_state(token).await.unwrap_or_else(|e| {
                        warn!(error = %e, "could not read the execution history");
                        None
                    })
                } else {
                    None
                };
                report::for_execution(&execution, state.as_deref(), &self.settings)
            }
            Err(Error::ExecutionNotFound(_)) => JobReport::Fail(FailureReport::job(
                format!("the build execution {token} does not exist any more"),
                Some(token.to_string()),
            )),
            Err(e) => {
                warn!(error = %e, "DescribeExecution failed; continuing so the next job checks again");
                JobReport::Continue(crate::SuccessReport {
                    summary: report::truncate_end(
                        &format!("Build status unknown for now ({e}); checking again"),
                        report::MAX_SUMMARY_LEN,
                    ),
                    external_execution_id: token.to_string(),
                    percent_complete: None,
                    continuation_token: Some(token.to_string()),
                    output_variables: Default::default(),
                })
            }
        }
    }

    /// Sends the report; `new_job` tells a started build from a continued one.
    async fn answer(&self, job_id: &str, report: JobReport, new_job: bool) -> JobOutcome {
        let job_id = job_id.to_string();
        let (result, outcome) = match report {
            JobReport::Continue(r) => {
                let arn = r.external_execution_id.clone();
                let result = self.pipeline.put_job_success(&job_id, &r).await;
                let outcome = if new_job {
                    JobOutcome::Started {
                        job_id: job_id.clone(),
                        execution_arn: arn,
                    }
                } else {
                    JobOutcome::Continued {
                        job_id: job_id.clone(),
                        execution_arn: arn,
                    }
                };
                (result, outcome)
            }
            JobReport::Succeed(r) => {
                let result = self.pipeline.put_job_success(&job_id, &r).await;
                (
                    result,
                    JobOutcome::Succeeded {
                        job_id: job_id.clone(),
                        execution_arn: r.external_execution_id,
                    },
                )
            }
            JobReport::Fail(r) => {
                let result = self.pipeline.put_job_failure(&job_id, &r).await;
                (
                    result,
                    JobOutcome::Failed {
                        job_id: job_id.clone(),
                        execution_arn: r.external_execution_id,
                        message: r.message,
                    },
                )
            }
        };
        match result {
            Ok(()) => {
                info!(outcome = outcome_name(&outcome), "job answered");
                outcome
            }
            Err(Error::InvalidJobState(_)) => {
                info!("job was already answered by another worker");
                JobOutcome::Skipped {
                    job_id,
                    reason: "already answered".into(),
                }
            }
            Err(e) => {
                warn!(error = %e, "could not answer the job");
                JobOutcome::Unanswered {
                    job_id,
                    error: e.to_string(),
                }
            }
        }
    }

    /// Reports the result of a finished execution at once and releases its instance when the
    /// flow could not. Polls a bounded number of times for the continuation job carrying the
    /// execution ARN, handling every job it receives on the way; when none appears, reports on
    /// the job that started the execution, in case that job was never continued.
    pub async fn finish_execution(
        &self,
        ended: &ExecutionEnded,
        instances: &dyn Instances,
    ) -> Result<CompletionSummary, Error> {
        let span = tracing::info_span!("execution", execution_arn = %ended.execution_arn, job_id = %ended.job_id);
        self.finish_execution_inner(ended, instances)
            .instrument(span)
            .await
    }

    async fn finish_execution_inner(
        &self,
        ended: &ExecutionEnded,
        instances: &dyn Instances,
    ) -> Result<CompletionSummary, Error> {
        let mut summary = CompletionSummary::default();
        let mut delay = self.settings.completion_poll_delay;
        for attempt in 0..self.settings.completion_poll_attempts {
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            let jobs = match self
                .pipeline
                .poll_for_jobs(self.settings.poll_batch_size)
                .await
            {
                Ok(jobs) => jobs,
                Err(e) => {
                    warn!(error = %e, attempt, "PollForJobs failed");
                    continue;
                }
            };
            let ours = jobs.iter().any(|j| {
                j.data.continuation_token.as_deref() == Some(ended.execution_arn.as_str())
            });
            summary.outcomes.extend(self.handle_jobs(jobs).await);
            if ours {
                summary.reported = Reported::ContinuationJob;
                break;
            }
        }
        if summary.reported == Reported::LeftToSweep {
            let execution = self.steps.describe_execution(&ended.execution_arn).await?;
            if execution.status.is_terminal() {
                let report = report::for_execution(&execution, None, &self.settings);
                match self.answer(&ended.job_id, report, false).await {
                    outcome @ (JobOutcome::Succeeded { .. } | JobOutcome::Failed { .. }) => {
                        summary.reported = Reported::OriginalJob;
                        summary.outcomes.push(outcome);
                    }
                    other => {
                        info!(
                            ?other,
                            "continuation job not seen in time; the scheduled sweep will report it"
                        );
                    }
                }
            }
        }
        if matches!(
            ended.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
        ) {
            summary.released = instances
                .release_for_execution(&ended.execution_arn)
                .await?;
            if !summary.released.is_empty() {
                info!(instances = ?summary.released, "terminated instances left by the execution");
            }
        }
        Ok(summary)
    }
}

fn outcome_name(outcome: &JobOutcome) -> &'static str {
    match outcome {
        JobOutcome::Started { .. } => "started",
        JobOutcome::Continued { .. } => "continued",
        JobOutcome::Succeeded { .. } => "succeeded",
        JobOutcome::Failed { .. } => "failed",
        JobOutcome::Skipped { .. } => "skipped",
        JobOutcome::Unanswered { .. } => "unanswered",
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
