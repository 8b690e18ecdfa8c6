//! CodePipeline jobs as the domain sees them.

use std::collections::BTreeMap;

/// A job handed out by PollForJobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    /// Proof of ownership for AcknowledgeJob.
    pub nonce: String,
    pub data: JobData,
}

/// The parts of CodePipeline's job data the action uses. The job's `artifactCredentials` are
/// deliberately not kept: the build instance uses its own role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobData {
    /// `actionConfiguration.configuration`.
    pub configuration: BTreeMap<String, String>,
    pub input_artifacts: Vec<Artifact>,
    pub output_artifacts: Vec<Artifact>,
    pub pipeline: PipelineContext,
    /// KMS key of the artifact store, if any.
    pub encryption_key_id: Option<String>,
    /// Set on continuation jobs: the ARN of the execution running the build.
    pub continuation_token: Option<String>,
}

/// An input or output artifact of the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    /// Missing when CodePipeline sent no S3 location.
    pub location: Option<ArtifactLocation>,
}

/// Where an artifact lives in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactLocation {
    pub bucket: String,
    pub key: String,
}

/// Which pipeline, stage and action the job belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineContext {
    pub pipeline_name: String,
    pub stage_name: String,
    pub action_name: String,
    pub pipeline_execution_id: String,
}

/// What AcknowledgeJob answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckStatus {
    /// The job is ours to work on.
    InProgress,
    /// Any other status (for example `Succeeded` when another worker already finished it).
    Other(String),
}
