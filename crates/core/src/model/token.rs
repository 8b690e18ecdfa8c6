//! The continuation token the job handler gives CodePipeline, and gets back on the next job.

use std::fmt;

/// The execution running the build, and the state it was last seen in. Carrying the state in
/// the token lets the next check show progress, and skip the history lookup once the build has
/// reached its long wait, without the handler keeping anything itself. CodePipeline allows
/// 2,048 characters; an execution ARN is at most 256 and a state name 80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuationToken {
    pub execution_arn: String,
    pub last_state: Option<String>,
}

/// Between the ARN and the state; no ARN contains it.
const SEPARATOR: char = '|';

impl ContinuationToken {
    /// A token for `execution_arn` last seen in `last_state`.
    pub fn new(execution_arn: impl Into<String>, last_state: Option<&str>) -> Self {
        Self {
            execution_arn: execution_arn.into(),
            last_state: last_state.map(str::to_string),
        }
    }

    /// Reads a token as CodePipeline returns it. A bare execution ARN (the first token of a
    /// build) has no state.
    pub fn parse(token: &str) -> Self {
        match token.split_once(SEPARATOR) {
            Some((arn, state)) => Self::new(arn, Some(state).filter(|s| !s.is_empty())),
            None => Self::new(token, None),
        }
    }
}

impl fmt::Display for ContinuationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.last_state {
            Some(state) => write!(f, "{}{SEPARATOR}{state}", self.execution_arn),
            None => f.write_str(&self.execution_arn),
        }
    }
}

/// A RUNNING execution as ListExecutions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningExecution {
    pub arn: String,
    /// Start time, seconds since the epoch.
    pub started_at: Option<u64>,
}

/// A continuation job acknowledged and left unanswered while its build runs, so it is out of
/// CodePipeline's queue (see [`crate::ports::HeldJobs`]). An execution has at most one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldJob {
    pub execution_arn: String,
    pub job_id: String,
    /// The job's continuation token, as CodePipeline gave it.
    pub token: String,
    /// When it was held, milliseconds since the epoch: a hold replaces only an older one.
    pub held_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_bare_arn_has_no_state() {
        let arn = "arn:aws:states:us-east-1:1:execution:sm:job-1";
        let token = ContinuationToken::new(arn, Some("AgentOnline?"));
        assert_eq!(ContinuationToken::parse(&token.to_string()), token);
        assert_eq!(
            ContinuationToken::parse(arn),
            ContinuationToken::new(arn, None)
        );
        assert_eq!(ContinuationToken::new(arn, None).to_string(), arn);
    }
}
