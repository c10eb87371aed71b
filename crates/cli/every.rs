//! A periodic task's clock: ticks at a fixed interval until cancelled.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Ticks every `period` until `cancel` fires. A tick missed while the task
/// was busy is delayed, not bunched.
pub struct Every {
    tick: Interval,
    cancel: CancellationToken,
}

impl Every {
    /// The first tick comes at once when `now` is true, else a period
    /// from now.
    pub fn new(period: Duration, now: bool, cancel: CancellationToken) -> Self {
        let start = tokio::time::Instant::now() + if now { Duration::ZERO } else { period };
        let mut tick = tokio::time::interval_at(start, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { tick, cancel }
    }

    /// Waits for the next tick; false once cancelled.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            _ = self.cancel.cancelled() => false,
        }
    }
}
