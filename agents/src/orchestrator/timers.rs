//! Durable timers, held in memory. The deadline itself is in the run snapshot (a step's
//! `retry_at`); this set only says when to look at the run again, and it is rebuilt from the
//! snapshots when the orchestrator starts, so a deadline that passed while it was down fires at
//! once.

use jiff::Timestamp;
use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Runs to re-evaluate, by time.
#[derive(Debug, Default)]
pub struct Timers {
    due: Mutex<BTreeSet<(Timestamp, Uuid)>>,
    changed: Notify,
}

/// Longest sleep between checks, so a clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

impl Timers {
    /// Asks for `run` to be re-evaluated at `at`.
    pub fn arm(&self, at: Timestamp, run: Uuid) {
        self.due.lock().unwrap_or_else(PoisonError::into_inner).insert((at, run));
        self.changed.notify_one();
    }

    /// Waits until at least one timer is due and returns the runs due now (each once), or
    /// `None` when cancelled.
    pub async fn next_due(&self, cancel: &CancellationToken) -> Option<Vec<Uuid>> {
        loop {
            let now = crate::clock::now();
            let (ready, wait) = {
                let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
                let mut ready = Vec::new();
                while let Some(&(at, run)) = due.first() {
                    if at > now {
                        break;
                    }
                    due.pop_first();
                    if !ready.contains(&run) {
                        ready.push(run);
                    }
                }
                let wait = due.first().map_or(MAX_SLEEP, |(at, _)| crate::clock::until(*at).min(MAX_SLEEP));
                (ready, wait)
            };
            if !ready.is_empty() {
                return Some(ready);
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = self.changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn due_timers_come_back_once_and_in_order() {
        let timers = Timers::default();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let past = Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(5)).unwrap_or(Timestamp::UNIX_EPOCH);
        timers.arm(past, a);
        timers.arm(past, a);
        timers.arm(Timestamp::now().checked_add(jiff::SignedDuration::from_millis(200)).unwrap_or(past), b);
        let cancel = CancellationToken::new();
        assert_eq!(timers.next_due(&cancel).await, Some(vec![a]));
        assert_eq!(timers.next_due(&cancel).await, Some(vec![b]));
        cancel.cancel();
        assert_eq!(timers.next_due(&cancel).await, None);
    }
}
