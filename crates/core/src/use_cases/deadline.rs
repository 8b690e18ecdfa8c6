//! The time budget of one invocation: a loop asks before each round whether it still fits.

use std::time::Duration;
use tokio::time::Instant;

/// Time kept in hand before the deadline, beyond twice the slowest round so far: enough for the
/// calls that follow the loop (an answer, a release).
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(5);

/// Tracks the rounds of a loop against the time the caller has left (the Lambda deadline).
#[derive(Debug, Clone)]
pub struct Deadline {
    started: Instant,
    time_left: Duration,
    slowest_round: Duration,
}

impl Deadline {
    /// Starts the clock with `time_left` until the caller's deadline.
    pub fn new(time_left: Duration) -> Self {
        Self {
            started: Instant::now(),
            time_left,
            slowest_round: Duration::ZERO,
        }
    }

    /// Time until the deadline.
    pub fn remaining(&self) -> Duration {
        self.time_left.saturating_sub(self.started.elapsed())
    }

    /// Records how long a round took; the slowest one predicts the next.
    pub fn record_round(&mut self, took: Duration) {
        self.slowest_round = self.slowest_round.max(took);
    }

    /// Whether a round that first waits `wait` is likely to end in time: the elapsed time, the
    /// wait, twice the slowest round so far and [`DEADLINE_RESERVE`] must fit.
    pub fn allows_round_after(&self, wait: Duration) -> bool {
        self.started.elapsed() + wait + 2 * self.slowest_round + DEADLINE_RESERVE <= self.time_left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_round_is_allowed_only_while_it_fits_before_the_deadline() {
        let mut deadline = Deadline::new(Duration::from_secs(20));
        assert!(deadline.allows_round_after(Duration::ZERO));
        deadline.record_round(Duration::from_secs(4));
        tokio::time::advance(Duration::from_secs(4)).await;
        // 4 elapsed + 8 (twice the slowest) + 5 reserve = 17 <= 20.
        assert!(deadline.allows_round_after(Duration::from_secs(3)));
        assert!(!deadline.allows_round_after(Duration::from_secs(4)));
    }
}
