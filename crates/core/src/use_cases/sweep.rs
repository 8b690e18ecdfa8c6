//! The sweep: poll for jobs and handle each, as far as the trigger asks and time allows.

use super::deadline::Deadline;
use super::job::{JobWorker, RunningBuilds};
use crate::model::{ContinuationToken, Job, JobOutcome, ServiceError, SweepScope};
use crate::ports::{CodePipeline, StepFunctions};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// How many batches of continuation jobs a STARTED sweep looks through for a new job. Every
/// check of a running build queues its next continuation job, so with more running builds than
/// this many batches hold, a new job may wait for the scheduled sweep (at most a minute); a
/// higher number would make every STARTED event of a burst re-check more running builds.
pub const NEW_JOB_SEARCH_BATCHES: u32 = 3;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// PollForJobs calls that returned.
    pub polls: u32,
    pub outcomes: Vec<JobOutcome>,
}

/// Why a sweep did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SweepError {
    /// The first PollForJobs failed: no job was taken, the next sweep catches up.
    #[error("no job was taken: {0}")]
    Poll(ServiceError),
}

/// Polls for jobs of our action type and hands each to the [`JobWorker`].
pub struct Sweep<P, S> {
    worker: JobWorker<P, S>,
}

impl<P: CodePipeline, S: StepFunctions> Sweep<P, S> {
    pub fn new(worker: JobWorker<P, S>) -> Self {
        Self { worker }
    }

    pub fn worker(&self) -> &JobWorker<P, S> {
        &self.worker
    }

    /// Polls batch after batch while batches come back full (at most `poll_max_rounds`); every
    /// polled job is handled. The sweep stops early:
    /// - after a batch holding a continuation job of a build it already checked, so a running
    ///   build is checked at most twice a sweep;
    /// - for [`SweepScope::NewJobs`], after a batch without a new job once it has found one, or
    ///   after [`NEW_JOB_SEARCH_BATCHES`] batches without finding any;
    /// - before a batch it might not finish in `time_left` (see [`Deadline`]), and before any
    ///   batch when less than its jobs may need is left ([`JobWorker::batch_time`]): a polled job
    ///   is always handled.
    pub async fn run(
        &self,
        scope: SweepScope,
        time_left: Duration,
    ) -> Result<SweepSummary, SweepError> {
        let settings = self.worker.settings();
        let mut deadline = Deadline::new(time_left);
        let mut summary = SweepSummary::default();
        let mut seen_builds = HashSet::new();
        let mut found_new_job = false;
        // The scheduled sweep lists the running executions once, so a re-check costs no Step
        // Functions call per build (ListExecutions pages hold 1,000).
        // It lists them before its first poll, so no polled job waits for the listing.
        let listed = match scope {
            SweepScope::AllJobs => self.list_running().await,
            SweepScope::NewJobs => None,
        };
        while summary.polls < settings.poll_max_rounds {
            // A polled job must be acknowledged in time to be started and answered: poll only
            // with that time left, and after a first batch only if another one fits as well.
            let fits = deadline.remaining() >= self.worker.batch_time()
                && (summary.polls == 0 || deadline.allows_round_after(Duration::ZERO));
            if !fits {
                warn!(
                    polls = summary.polls,
                    "stopping before the deadline; the next sweep takes the remaining jobs"
                );
                break;
            }
            let batch_started = Instant::now();
            let jobs = match self.worker.poll().await {
                Ok(jobs) => jobs,
                Err(e) if summary.polls == 0 => return Err(SweepError::Poll(e)),
                Err(e) => {
                    warn!(error = %e, "PollForJobs failed after the first batch; the next sweep continues");
                    break;
                }
            };
            summary.polls += 1;
            let full = jobs.len() as u32 >= settings.poll_batch_size;
            let batch = BatchKinds::of(&jobs, &mut seen_builds);
            let running = match (scope, &listed) {
                (SweepScope::NewJobs, _) => RunningBuilds::NotChecked { ended: None },
                (SweepScope::AllJobs, Some(map)) => RunningBuilds::Listed(map),
                (SweepScope::AllJobs, None) => RunningBuilds::Unknown,
            };
            // Every polled job is handled: a polled job that is not acknowledged is not offered
            // again soon (or at all, in some emulators), so skipping one could strand a build.
            summary
                .outcomes
                .extend(self.worker.handle_all(jobs, &running).await);
            deadline.record_round(batch_started.elapsed());
            // Continuation jobs of running builds may be queued ahead of the new job (each check
            // queues the next one), so a STARTED sweep looks a few batches deep before giving up.
            let done_with_new_jobs = scope == SweepScope::NewJobs
                && !batch.new_jobs
                && (found_new_job || summary.polls >= NEW_JOB_SEARCH_BATCHES);
            found_new_job |= batch.new_jobs;
            // A build seen twice means the batch holds continuations of builds this sweep
            // already checked: stop, so running builds are not re-checked in a loop.
            if !full || batch.repeated_build || done_with_new_jobs {
                break;
            }
        }
        Ok(summary)
    }

    /// The running executions by ARN with their start times; `None` when they cannot be
    /// listed, and each build is then described on its own.
    async fn list_running(&self) -> Option<HashMap<String, Option<u64>>> {
        match self.worker.steps().running_executions().await {
            Ok(list) => Some(list.into_iter().map(|e| (e.arn, e.started_at)).collect()),
            Err(e) => {
                warn!(error = %e, "ListExecutions failed; describing each running build instead");
                None
            }
        }
    }
}

/// What kinds of job a batch holds.
struct BatchKinds {
    new_jobs: bool,
    continuations: bool,
    repeated_build: bool,
}

impl BatchKinds {
    fn of(jobs: &[Job], seen_builds: &mut HashSet<String>) -> Self {
        let mut kinds = Self {
            new_jobs: false,
            continuations: false,
            repeated_build: false,
        };
        for job in jobs {
            match &job.data.continuation_token {
                Some(token) => {
                    kinds.continuations = true;
                    let arn = ContinuationToken::parse(token).execution_arn;
                    kinds.repeated_build |= !seen_builds.insert(arn);
                }
                None => kinds.new_jobs = true,
            }
        }
        kinds
    }
}
