//! The sweep: poll for jobs and handle each, as far as the trigger asks and time allows.

use super::deadline::{Deadline, DEADLINE_RESERVE};
use super::job::{JobWorker, RunningBuilds, JOB_TIME_RESERVE};
use crate::model::{
    seconds_since, ContinuationToken, HeldJob, Job, JobOutcome, ServiceError, SweepScope,
};
use crate::ports::{CodePipeline, HeldJobs, StepFunctions};
use futures::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn};

/// Beyond [`JOB_TIME_RESERVE`], what answering a held job may need: a third call stalled to the
/// SDK's operation timeout (describe, answer, forget).
const HELD_ANSWER_STALL: Duration = Duration::from_secs(12);

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

/// Polls for jobs of our action type and hands each to the [`JobWorker`]; the scheduled sweep
/// also answers the held jobs that are due.
pub struct Sweep<P, S, H> {
    worker: JobWorker<P, S, H>,
}

impl<P: CodePipeline, S: StepFunctions, H: HeldJobs> Sweep<P, S, H> {
    pub fn new(worker: JobWorker<P, S, H>) -> Self {
        Self { worker }
    }

    pub fn worker(&self) -> &JobWorker<P, S, H> {
        &self.worker
    }

    /// Polls batch after batch while batches come back full (at most `poll_max_rounds`); every
    /// polled job is handled, and a continuation job of a running build is held, which takes it
    /// out of the queue. The scheduled sweep ([`SweepScope::AllJobs`]) first lists the RUNNING
    /// executions, and after its polls answers the held jobs that are due
    /// ([`Self::answer_due_held_jobs`]) with the time left, then polls once more for the
    /// continuation jobs its progress answers queued. Polling stops early:
    /// - after a batch holding a continuation job of a build it already handled (one it could
    ///   not hold and answered instead), so a build is not re-checked in a loop;
    /// - for [`SweepScope::NewJobs`], after a batch without a new job once it has found one;
    /// - before a batch it might not finish in `time_left` (see [`Deadline`]), and before any
    ///   batch when less than its jobs may need is left ([`JobWorker::batch_time`]): a polled job
    ///   is always handled.
    pub async fn run(
        &self,
        scope: SweepScope,
        time_left: Duration,
    ) -> Result<SweepSummary, SweepError> {
        let mut deadline = Deadline::new(time_left);
        let mut summary = SweepSummary::default();
        // The scheduled sweep lists the running executions once, so a held job costs no Step
        // Functions call per build (ListExecutions pages hold 1,000).
        let listed = match scope {
            SweepScope::AllJobs => self.list_running().await,
            SweepScope::NewJobs => None,
        };
        self.poll_batches(scope, listed.as_ref(), &mut deadline, &mut summary)
            .await?;
        if let Some(listed) = &listed {
            let answered = self.answer_due_held_jobs(listed, &deadline).await;
            let continued = answered
                .iter()
                .any(|o| matches!(o, JobOutcome::Continued { .. }));
            summary.outcomes.extend(answered);
            if continued {
                self.poll_batches(scope, Some(listed), &mut deadline, &mut summary)
                    .await?;
            }
        }
        Ok(summary)
    }

    /// The poll loop of [`Self::run`]; an error only when the sweep's very first poll failed.
    async fn poll_batches(
        &self,
        scope: SweepScope,
        listed: Option<&HashMap<String, Option<u64>>>,
        deadline: &mut Deadline,
        summary: &mut SweepSummary,
    ) -> Result<(), SweepError> {
        let settings = self.worker.settings();
        let first_poll = summary.polls == 0;
        let mut rounds = 0;
        let mut seen_builds = HashSet::new();
        let mut found_new_job = false;
        while rounds < settings.poll_max_rounds {
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
                Err(e) if first_poll && rounds == 0 => return Err(SweepError::Poll(e)),
                Err(e) => {
                    warn!(error = %e, "PollForJobs failed after the first batch; the next sweep continues");
                    break;
                }
            };
            rounds += 1;
            summary.polls += 1;
            let full = jobs.len() as u32 >= settings.poll_batch_size;
            let batch = BatchKinds::of(&jobs, &mut seen_builds);
            let running = match (scope, listed) {
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
            let done_with_new_jobs =
                scope == SweepScope::NewJobs && !batch.new_jobs && found_new_job;
            found_new_job |= batch.new_jobs;
            if !full || batch.repeated_build || done_with_new_jobs {
                break;
            }
        }
        Ok(())
    }

    /// Answers the held jobs that are due: every one whose build is not in `listed` (it ended,
    /// and its completion event may be lost; described first, so a build started after the
    /// listing gets progress, an ended one its final result), and every one held for
    /// `held_job_refresh` or longer (fresh progress). Takes no more once the time left is what
    /// an answer may need (three calls stalled to the SDK's operation timeout) plus the
    /// reserve; the rest wait for the next sweep, still held.
    async fn answer_due_held_jobs(
        &self,
        listed: &HashMap<String, Option<u64>>,
        deadline: &Deadline,
    ) -> Vec<JobOutcome> {
        let held = match self.worker.held_jobs().all_held().await {
            Ok(held) => held,
            Err(e) => {
                warn!(error = %e, "held jobs cannot be listed; the next sweep answers them");
                return Vec::new();
            }
        };
        let refresh = self.worker.settings().held_job_refresh.as_secs();
        let due: Vec<HeldJob> = held
            .into_iter()
            .filter(|h| {
                !listed.contains_key(&h.execution_arn)
                    || seconds_since(h.held_at_ms / 1000) >= refresh
            })
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        info!(due = due.len(), "answering held jobs");
        let reserve = JOB_TIME_RESERVE + DEADLINE_RESERVE + HELD_ANSWER_STALL;
        stream::iter(due)
            .map(|held| async move {
                if deadline.remaining() < reserve {
                    return None;
                }
                let listed_start = listed.get(&held.execution_arn).copied();
                Some(self.worker.answer_held(&held, listed_start).await)
            })
            .buffer_unordered(self.worker.settings().job_concurrency)
            .filter_map(|outcome| async move { outcome })
            .collect()
            .await
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
