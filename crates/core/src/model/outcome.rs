//! What the use cases did with the jobs they saw, and how far a sweep goes.

use super::error::ServiceError;
use std::fmt;

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
    /// The execution still runs: the continuation job is acknowledged and held, unanswered, until
    /// the build ends or its progress is refreshed (see `ports::HeldJobs`).
    Held {
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
    /// Not ours to answer now; the reason says why.
    Skipped { job_id: String, reason: SkipReason },
    /// Acknowledged and decided, but the answer could not be sent.
    Unanswered { job_id: String, error: ServiceError },
}

impl JobOutcome {
    pub fn job_id(&self) -> &str {
        match self {
            Self::Started { job_id, .. }
            | Self::Continued { job_id, .. }
            | Self::Held { job_id, .. }
            | Self::Succeeded { job_id, .. }
            | Self::Failed { job_id, .. }
            | Self::Skipped { job_id, .. }
            | Self::Unanswered { job_id, .. } => job_id,
        }
    }

    /// A short name for logs and counts.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "started",
            Self::Continued { .. } => "continued",
            Self::Held { .. } => "held",
            Self::Succeeded { .. } => "succeeded",
            Self::Failed { .. } => "failed",
            Self::Skipped { .. } => "skipped",
            Self::Unanswered { .. } => "unanswered",
        }
    }

    /// A final result (success or failure) reached CodePipeline.
    pub fn is_final_answer(&self) -> bool {
        matches!(self, Self::Succeeded { .. } | Self::Failed { .. })
    }
}

/// Why a job was left without an answer from us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// AcknowledgeJob refused the nonce: another worker owns the job.
    OwnedByAnotherWorker,
    /// AcknowledgeJob answered a status other than `InProgress`.
    NotInProgress(String),
    /// AcknowledgeJob failed; the job stays queued for the next sweep.
    AcknowledgeFailed(ServiceError),
    /// The answer was refused because the job was already answered (by another worker).
    AlreadyAnswered,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnedByAnotherWorker => f.write_str("invalid nonce: another worker owns the job"),
            Self::NotInProgress(status) => write!(f, "AcknowledgeJob returned {status}"),
            Self::AcknowledgeFailed(e) => write!(f, "AcknowledgeJob failed: {e}"),
            Self::AlreadyAnswered => f.write_str("already answered"),
        }
    }
}

/// How far a sweep goes once new jobs run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepScope {
    /// An action of ours started: poll while batches bring new jobs. Continuation jobs polled on
    /// the way are held without any Step Functions call, so a burst of N events costs no
    /// re-checks of running builds.
    NewJobs,
    /// The scheduled sweep: refresh held jobs that are due and finalise those whose build ended
    /// without its completion event, then poll while batches come back full.
    AllJobs,
}
