//! The orchestrator's notion of "now": wall time read once, then advanced by tokio's clock.
//!
//! Deadlines in run snapshots are timestamps, but the waiting is done by tokio. Deriving "now"
//! from tokio's clock keeps the two consistent, and it lets tests pause tokio's clock
//! (`#[tokio::test(start_paused = true)]`) so that hours of retries, timeouts and schedules take
//! milliseconds while the code under test is the code that runs in production.

use jiff::{SignedDuration, Timestamp};
use std::sync::OnceLock;
use tokio::time::Instant;

/// Wall time and tokio instant taken together the first time the clock is read.
static ORIGIN: OnceLock<(Timestamp, Instant)> = OnceLock::new();

/// The current time: the wall time at the first call plus what tokio's clock has advanced
/// since. Monotonic, so a deadline never fires early after a wall-clock step backwards.
pub fn now() -> Timestamp {
    let (wall, instant) = *ORIGIN.get_or_init(|| (Timestamp::now(), Instant::now()));
    let elapsed = SignedDuration::try_from(instant.elapsed()).unwrap_or(SignedDuration::MAX);
    wall.checked_add(elapsed).unwrap_or(Timestamp::MAX)
}

/// How long from now until `at` (zero when it has passed), for tokio sleeps.
pub fn until(at: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(at.duration_since(now())).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn advances_with_tokios_clock() {
        let before = now();
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        let advanced = now().duration_since(before);
        assert!(advanced >= SignedDuration::from_hours(3), "{advanced:?}");
        assert!(advanced < SignedDuration::from_hours(3) + SignedDuration::from_secs(1), "{advanced:?}");
        assert_eq!(until(before), Duration::ZERO);
    }
}
