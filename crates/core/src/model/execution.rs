//! Build executions as Step Functions reports them.

/// State of an execution, as DescribeExecution and the status-change event report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    /// PENDING_REDRIVE or a status this version does not know.
    Other(String),
}

impl ExecutionStatus {
    /// Maps Step Functions' status text.
    pub fn parse(status: &str) -> Self {
        match status {
            "RUNNING" => Self::Running,
            "SUCCEEDED" => Self::Succeeded,
            "FAILED" => Self::Failed,
            "TIMED_OUT" => Self::TimedOut,
            "ABORTED" => Self::Aborted,
            other => Self::Other(other.to_string()),
        }
    }

    /// The execution has ended and will not change again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::TimedOut | Self::Aborted
        )
    }

    /// The execution ended without reaching its own release (failed as a whole, timed out or
    /// stopped), so instances it launched may still run.
    pub fn may_leave_instances(&self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut | Self::Aborted)
    }
}

/// What DescribeExecution tells about a build execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionDescription {
    pub arn: String,
    pub status: ExecutionStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Seconds from start to stop, when stopped.
    pub duration_seconds: Option<u64>,
    /// Start time, seconds since the epoch.
    pub started_at: Option<u64>,
}

impl ExecutionDescription {
    /// Seconds since the execution started, by this machine's clock.
    pub fn started_seconds_ago(&self) -> Option<u64> {
        self.started_at.map(seconds_since)
    }
}

/// Seconds from `epoch_seconds` to now, by this machine's clock (0 for a time in the future).
pub fn seconds_since(epoch_seconds: u64) -> u64 {
    epoch_now().saturating_sub(epoch_seconds)
}

/// Now, in seconds since the epoch, by this machine's clock.
pub fn epoch_now() -> u64 {
    epoch_now_ms() / 1000
}

/// Now, in milliseconds since the epoch, by this machine's clock.
pub fn epoch_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One event of an execution's history (GetExecutionHistory), as far as the build timeline reads
/// it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryEvent {
    /// When it happened, milliseconds since the epoch.
    pub at_ms: u64,
    /// Step Functions' event type: `ExecutionStarted`, `TaskStateEntered`, `TaskSubmitted`,
    /// `ExecutionFailed`, ...
    pub kind: String,
    /// The state entered or exited, for state events.
    pub state: Option<String>,
    /// The execution's input (`ExecutionStarted`), a state's input (entered), a state's output
    /// (exited) or the execution's output (`ExecutionSucceeded`).
    pub data: Option<String>,
    /// The error name of a failed, aborted or timed-out execution or task.
    pub error: Option<String>,
}

/// A build execution that reached a final status (from its status-change event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionEnded {
    pub execution_arn: String,
    pub status: ExecutionStatus,
    /// The job that started the execution (the input's `JobId`, else the execution name).
    pub job_id: String,
}
