//! The data shared by the whole crate. Nothing here imports anything outside `model`, so every
//! other module can depend on it without cycles.

pub mod error;
pub mod execution;
pub mod fleet;
pub mod job;
pub mod outcome;
pub mod pool;
pub mod report;
pub mod shape;
pub mod token;
pub mod trigger;

pub use error::{ConfigError, EventError, JobDataError, ServiceError, SettingsError};
pub use execution::{
    epoch_now, epoch_now_ms, seconds_since, ExecutionDescription, ExecutionEnded, ExecutionStatus,
    HistoryEvent,
};
pub use fleet::{ActionExecution, ActionStatus, BuildInstance, BuildTags, InstanceState};
pub use job::{AckStatus, Artifact, ArtifactLocation, Job, JobData, PipelineContext};
pub use outcome::{JobOutcome, SkipReason, SweepScope};
pub use report::{FailureKind, FailureReport, JobReport, SuccessReport};
pub use token::{ContinuationToken, HeldJob, RunningExecution};
pub use trigger::{CompletionTrigger, PollerTrigger};
