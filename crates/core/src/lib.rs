//! Domain of ec2-build, the CodePipeline "EC2 Build" custom action.
//!
//! This crate knows CodePipeline jobs, the action configuration ([`BuildSpec`]), the Step Functions
//! execution that runs a build, and the decisions between them: what to do with a new job, with a
//! continuation job, and with a finished execution. It talks to AWS only through the small port
//! traits in [`ports`]; adapters over the SDK live in `ec2-build-aws`.

pub mod error;
pub mod events;
pub mod handler;
pub mod input;
pub mod job;
pub mod ports;
pub mod report;
pub mod settings;
pub mod spec;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{ConfigError, Error};
pub use events::{CompletionTrigger, PollerTrigger};
pub use handler::{BatchSummary, JobHandler, JobOutcome, SweepScope};
pub use input::ExecutionInput;
pub use job::{ArtifactLocation, Job, JobData};
pub use report::{FailureReport, JobReport, SuccessReport};
pub use settings::{ActionType, Settings};
pub use spec::{BuildKind, BuildSpec, Capacity};
