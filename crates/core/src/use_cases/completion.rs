//! Completion: a build execution ended. Report its result to CodePipeline at once, and release
//! the instances of an execution that ended without its own release.

use super::deadline::Deadline;
use super::job::{JobWorker, RunningBuilds};
use crate::model::{ContinuationToken, ExecutionEnded, JobOutcome, ServiceError, SkipReason};
use crate::ports::{CodePipeline, HeldJobs, Instances, StepFunctions};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

/// What the completion did for one finished execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletionSummary {
    /// How the final result reached CodePipeline.
    pub reported: Reported,
    /// Every job handled on the way, the continuation job among them.
    pub outcomes: Vec<JobOutcome>,
    /// Instances terminated because the flow's own release did not run.
    pub released: Vec<String>,
}

/// How the completion reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reported {
    /// Through the continuation job held for the execution (no poll needed).
    HeldJob,
    /// Through the continuation job carrying the execution ARN, found by polling.
    ContinuationJob,
    /// On the job that started the execution, which was never continued.
    OriginalJob,
    /// Not yet: the continuation job did not show up in time; the scheduled sweep reports it.
    #[default]
    LeftToSweep,
}

/// What went wrong. The release is attempted in every case; when it fails, that is the error
/// returned, since an instance left running costs more than a report left to the sweep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// The finished execution could not be read, so its result was left to the scheduled sweep.
    #[error("the finished execution cannot be read: {0}")]
    Describe(ServiceError),
    /// Instances of an execution that ended without its release could not be terminated.
    #[error("the execution's instances could not be terminated: {0}")]
    Release(ServiceError),
}

/// Finishes build executions over the job worker's ports and the instances port.
pub struct Completion<P, S, H, I> {
    worker: JobWorker<P, S, H>,
    instances: I,
}

impl<P: CodePipeline, S: StepFunctions, H: HeldJobs, I: Instances> Completion<P, S, H, I> {
    pub fn new(worker: JobWorker<P, S, H>, instances: I) -> Self {
        Self { worker, instances }
    }

    pub fn worker(&self) -> &JobWorker<P, S, H> {
        &self.worker
    }

    /// Reports the result and releases. Answers the continuation job held for the execution
    /// when there is one; otherwise polls for the continuation job carrying the execution ARN
    /// (looking for a held one again before each poll, since another worker may hold it
    /// meanwhile), with growing delays, at most `completion_poll_attempts` times and never past
    /// `time_left` (the invocation's deadline), handling every job it receives on the way. When
    /// the continuation job does not appear, reports on the job that started the execution, in
    /// case that job was never continued. Then, whatever reporting did, terminates the
    /// execution's instances if it ended without its own release.
    pub async fn finish(
        &self,
        ended: &ExecutionEnded,
        time_left: Duration,
    ) -> Result<CompletionSummary, CompletionError> {
        let span = tracing::info_span!("execution", execution_arn = %ended.execution_arn, job_id = %ended.job_id);
        async {
            let mut summary = CompletionSummary::default();
            let reported = self.report(ended, time_left, &mut summary).await;
            let released = self.release(ended).await;
            match (reported, released) {
                (Ok(()), Ok(ids)) => {
                    summary.released = ids;
                    Ok(summary)
                }
                (Err(report_error), Ok(_)) => Err(report_error),
                (reported, Err(release_error)) => {
                    if let Err(report_error) = reported {
                        warn!(error = %report_error, "reporting failed as well");
                    }
                    Err(release_error)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn report(
        &self,
        ended: &ExecutionEnded,
        time_left: Duration,
        summary: &mut CompletionSummary,
    ) -> Result<(), CompletionError> {
        let settings = self.worker.settings();
        let mut deadline = Deadline::new(time_left);
        let mut delay = settings.completion_poll_delay;
        // Only this execution has ended for sure; other builds polled on the way are continued
        // as their tokens last saw them, and checked by the scheduled sweep.
        let running = RunningBuilds::NotChecked {
            ended: Some(&ended.execution_arn),
        };
        let mut attempts = settings.completion_poll_attempts;
        let mut attempt = 0;
        while attempt < attempts {
            let wait = if attempt == 0 { Duration::ZERO } else { delay };
            if !deadline.allows_round_after(wait)
                || deadline.remaining() < wait + self.worker.batch_time()
            {
                info!(attempt, "no time for another poll before the deadline");
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            attempt += 1;
            // The round, and its time, start with the held record: its calls count against
            // the time the poll after it needs.
            let round_started = Instant::now();
            match self.answer_held(ended, summary).await {
                HeldAnswer::Settled => {
                    summary.reported = Reported::HeldJob;
                    return Ok(());
                }
                // The recorded job was answered before: by a progress refresh (its successor
                // is queued, this round's poll finds it) or with the result (a repeated event).
                // Either way this round's poll is the last.
                HeldAnswer::AnsweredBefore => attempts = attempts.min(attempt),
                HeldAnswer::NotHeld => {}
            }
            if deadline.remaining() < self.worker.batch_time() {
                info!(attempt, "no time left to poll after reading the held job");
                deadline.record_round(round_started.elapsed());
                break;
            }
            let jobs = match self.worker.poll().await {
                Ok(jobs) => jobs,
                Err(e) => {
                    warn!(error = %e, attempt, "PollForJobs failed");
                    deadline.record_round(round_started.elapsed());
                    continue;
                }
            };
            let ours: Vec<String> = jobs
                .iter()
                .filter(|j| {
                    j.data.continuation_token.as_deref().is_some_and(|t| {
                        ContinuationToken::parse(t).execution_arn == ended.execution_arn
                    })
                })
                .map(|j| j.id.clone())
                .collect();
            let outcomes = self.worker.handle_all(jobs, &running).await;
            deadline.record_round(round_started.elapsed());
            // Reported only if the continuation job got its final answer (here or by another
            // worker); one left unanswered keeps the search, and then the fallback, going.
            let reported = outcomes
                .iter()
                .any(|o| ours.iter().any(|id| id == o.job_id()) && settles_the_job(o));
            summary.outcomes.extend(outcomes);
            if reported {
                summary.reported = Reported::ContinuationJob;
                return Ok(());
            }
        }
        let execution = self
            .worker
            .steps()
            .describe_execution(&ended.execution_arn)
            .await
            .map_err(CompletionError::Describe)?;
        if execution.status.is_terminal() {
            let outcome = self.worker.answer_final(&ended.job_id, &execution).await;
            if outcome.is_final_answer() {
                summary.reported = Reported::OriginalJob;
                summary.outcomes.push(outcome);
            } else {
                info!(
                    ?outcome,
                    "continuation job not seen in time; the scheduled sweep will report it"
                );
            }
        }
        Ok(())
    }

    /// Answers the execution's held job, if one is recorded. A record that is out of date (its
    /// job answered before) is forgotten, and the search goes on.
    async fn answer_held(
        &self,
        ended: &ExecutionEnded,
        summary: &mut CompletionSummary,
    ) -> HeldAnswer {
        let held = match self.worker.held_jobs().held_for(&ended.execution_arn).await {
            Ok(Some(held)) => held,
            Ok(None) => return HeldAnswer::NotHeld,
            Err(e) => {
                warn!(error = %e, "the held job cannot be read; polling instead");
                return HeldAnswer::NotHeld;
            }
        };
        let outcome = self.worker.answer_held(&held, None).await;
        let answer = match &outcome {
            o if o.is_final_answer() => HeldAnswer::Settled,
            JobOutcome::Skipped {
                reason: SkipReason::AlreadyAnswered,
                ..
            } => HeldAnswer::AnsweredBefore,
            _ => HeldAnswer::NotHeld,
        };
        summary.outcomes.push(outcome);
        answer
    }

    async fn release(&self, ended: &ExecutionEnded) -> Result<Vec<String>, CompletionError> {
        if !ended.status.may_leave_instances() {
            return Ok(Vec::new());
        }
        let released = self
            .instances
            .release_for_execution(&ended.execution_arn)
            .await
            .map_err(CompletionError::Release)?;
        if !released.is_empty() {
            info!(instances = ?released, "terminated instances left by the execution");
        }
        Ok(released)
    }
}

/// What became of the execution's held job.
enum HeldAnswer {
    /// Answered with the result here.
    Settled,
    /// The recorded job had been answered before.
    AnsweredBefore,
    /// None recorded, or it could not be read or answered now.
    NotHeld,
}

/// The job has its final answer, from this worker or another one.
fn settles_the_job(outcome: &JobOutcome) -> bool {
    matches!(
        outcome,
        JobOutcome::Succeeded { .. }
            | JobOutcome::Failed { .. }
            | JobOutcome::Skipped {
                reason: SkipReason::AlreadyAnswered | SkipReason::OwnedByAnotherWorker,
                ..
            }
    )
}
