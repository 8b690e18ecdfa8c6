//! What a job is answered with. The reports are built in `crate::report`; the adapters send them.

use std::collections::BTreeMap;

/// PutJobSuccessResult's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessReport {
    pub summary: String,
    /// The execution ARN: the console's link to the execution uses it.
    pub external_execution_id: String,
    pub percent_complete: Option<i32>,
    /// Set while the build runs: CodePipeline comes back with a continuation job.
    pub continuation_token: Option<String>,
    /// Only on the final result.
    pub output_variables: BTreeMap<String, String>,
}

/// CodePipeline's failure types that this action uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    ConfigurationError,
    JobFailed,
}

/// PutJobFailureResult's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    pub kind: FailureKind,
    pub message: String,
    pub external_execution_id: Option<String>,
}

/// The answer to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobReport {
    /// A new job's execution was started: success with a continuation token.
    Start(SuccessReport),
    /// The build still runs: success with a continuation token.
    Continue(SuccessReport),
    /// Final success.
    Succeed(SuccessReport),
    /// Final failure.
    Fail(FailureReport),
}
