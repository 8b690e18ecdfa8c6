//! What the functions do with the events they receive (classified in `crate::events`).

use super::execution::ExecutionEnded;
use super::outcome::SweepScope;

/// The poller's reaction to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollerTrigger {
    /// Poll for jobs and handle them, this far.
    Sweep(SweepScope),
    /// Not for us; no AWS call is made.
    Ignore(String),
}

/// The completion function's reaction to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionTrigger {
    /// One of our executions reached a final status.
    Finished(ExecutionEnded),
    /// Not for us, or not final; no AWS call is made.
    Ignore(String),
}
