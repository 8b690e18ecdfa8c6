//! Build instances and pipeline action executions as the keeper sees them.

/// An EC2 instance's lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    /// A state this version does not know.
    Other(String),
}

impl InstanceState {
    /// Maps EC2's state name.
    pub fn parse(name: &str) -> Self {
        match name {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            other => Self::Other(other.to_string()),
        }
    }

    /// Still bills or may bill again: everything but shutting down and terminated.
    pub fn is_live(&self) -> bool {
        !matches!(self, Self::ShuttingDown | Self::Terminated)
    }

    /// Cannot run a build any more (terminated, or stopped or stopping outside the flow).
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            Self::Stopping | Self::Stopped | Self::ShuttingDown | Self::Terminated
        )
    }
}

/// What the state machine tags a build instance with at launch (docs/contracts.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildTags {
    /// `ec2-build:execution-arn`.
    pub execution_arn: Option<String>,
    /// `ec2-build:pipeline`.
    pub pipeline: Option<String>,
    /// `ec2-build:pipeline-execution-id`.
    pub pipeline_execution_id: Option<String>,
    /// `ec2-build:stage`.
    pub stage: Option<String>,
    /// `ec2-build:action`.
    pub action: Option<String>,
    /// `ec2-build:build-seconds`: the build task's timeout.
    pub build_seconds: Option<u64>,
}

/// An instance carrying this stack's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInstance {
    pub id: String,
    pub state: InstanceState,
    /// EC2's `StateReason.Message` (why it stopped or terminated), when there is one.
    pub state_reason: Option<String>,
    /// Launch time, seconds since the epoch (unknown: never counted as overdue).
    pub launched_at: Option<u64>,
    pub tags: BuildTags,
}

/// Status of a CodePipeline action execution (ListActionExecutions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionStatus {
    InProgress,
    Abandoned,
    Succeeded,
    Failed,
    Other(String),
}

impl ActionStatus {
    /// Maps CodePipeline's status text.
    pub fn parse(status: &str) -> Self {
        match status {
            "InProgress" => Self::InProgress,
            "Abandoned" => Self::Abandoned,
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            other => Self::Other(other.to_string()),
        }
    }

    /// CodePipeline is done with the action: no one waits for a build of it any more.
    pub fn is_over(&self) -> bool {
        matches!(self, Self::Abandoned | Self::Succeeded | Self::Failed)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::InProgress => "InProgress",
            Self::Abandoned => "Abandoned",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Other(s) => s,
        }
    }
}

/// One action execution of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionExecution {
    pub pipeline_execution_id: String,
    pub stage: String,
    pub action: String,
    pub status: ActionStatus,
    /// `output.executionResult.externalExecutionId`: for our action, the execution ARN the job
    /// handler reported. A retried stage keeps the pipeline execution id, so this is what tells
    /// the attempts apart.
    pub external_execution_id: Option<String>,
    /// When CodePipeline started the action (and queued its job), milliseconds since the epoch.
    pub started_at_ms: Option<u64>,
}
