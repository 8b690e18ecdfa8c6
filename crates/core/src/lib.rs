//! Domain of ec2-build, the CodePipeline "EC2 Build" custom action.
//!
//! This crate knows CodePipeline jobs, the action configuration ([`BuildSpec`]), the Step Functions
//! execution that runs a build, and the decisions between them: what to do with a new job, with a
//! continuation job, and with a finished execution. It talks to AWS only through the small port
//! traits in [`ports`]; adapters over the SDK live in `ec2-build-aws`.
//!
//! Imports run one way (`tests/module_layers.rs` checks it): [`model`] ← [`ports`], [`settings`]
//! ← [`spec`], [`progress`], [`timeline`] ← [`input`], [`report`], [`events`] ← [`use_cases`] ← `testing`.

pub mod model;

pub mod ports;
pub mod settings;

pub mod events;
pub mod input;
pub mod progress;
pub mod report;
pub mod spec;
pub mod timeline;

pub mod use_cases;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use input::ExecutionInput;
pub use model::{
    CompletionTrigger, ConfigError, EventError, ExecutionEnded, ExecutionStatus, Job, JobOutcome,
    PollerTrigger, ServiceError, SettingsError, SweepScope,
};
pub use settings::{ActionType, KeeperSettings, Settings};
pub use spec::{BuildKind, BuildSpec, Capacity};
pub use use_cases::completion::{Completion, CompletionError, CompletionSummary, Reported};
pub use use_cases::job::JobWorker;
pub use use_cases::keeper::{Keeper, KeeperError, KeeperReport};
pub use use_cases::pools::{PoolKeeper, PoolReport};
pub use use_cases::sweep::{Sweep, SweepError, SweepSummary};
