//! Cron triggers, fired by the leading orchestrator.
//!
//! The last fire of each schedule is kept in the `muster_triggers` bucket, so a new leader (or
//! the same one after a restart) knows what it missed. A fire starts its run with the
//! idempotency key `cron/<protocol>/<n>/<fire time>` and only then records itself, so a crash
//! between the two starts nothing twice. Fires missed while no orchestrator led follow the
//! schedule's `missed` policy: `run_once` starts one run for all of them (the latest), `skip`
//! drops every fire older than [`LATE_GRACE`]. A schedule seen for the first time starts from
//! now: it does not catch up on fires from before it existed.

use super::Orchestrator;
use bytes::Bytes;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use muster_bus::{Bucket, Bus};
use muster_schemas::message::TriggerReply;
use muster_schemas::protocol::Protocol;
use muster_schemas::protocol::model::{CronTrigger, MissedFires, Trigger};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// A fire this late is still on time (a busy or briefly paused orchestrator), not missed.
pub const LATE_GRACE: Duration = Duration::from_secs(60);

/// What to do at a given moment for one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing until then.
    Wait(Timestamp),
    /// Start a run for this fire.
    Fire {
        /// The scheduled time of the fire (part of its idempotency key).
        fire: Timestamp,
        /// Earlier fires folded into it (`run_once`).
        missed: u32,
    },
    /// Record this fire as done without running (policy `skip`).
    Skip {
        /// The latest missed fire.
        fire: Timestamp,
        /// Fires dropped, this one included.
        missed: u32,
    },
}

/// Decides what a schedule owes at `now`, given its last recorded fire.
pub fn due(schedule: &croner::Cron, policy: MissedFires, last: Timestamp, now: Timestamp) -> Result<Due, String> {
    let next = |after: Timestamp| -> Result<Timestamp, String> {
        schedule
            .find_next_occurrence(&after.to_zoned(TimeZone::UTC), false)
            .map(|z| z.timestamp())
            .map_err(|e| format!("no next fire after {after}: {e}"))
    };
    let first = next(last)?;
    if first > now {
        return Ok(Due::Wait(first));
    }
    // Walk to the latest fire at or before now, counting the ones passed over (bounded, so an
    // every-second schedule down for a year cannot spin for long).
    let (mut latest, mut passed) = (first, 0u32);
    while passed < 100_000 {
        let following = next(latest)?;
        if following > now {
            break;
        }
        latest = following;
        passed += 1;
    }
    let late = Duration::try_from(now.duration_since(latest)).unwrap_or_default();
    Ok(match policy {
        MissedFires::RunOnce => Due::Fire { fire: latest, missed: passed },
        MissedFires::Skip if late <= LATE_GRACE => Due::Fire { fire: latest, missed: 0 },
        MissedFires::Skip => Due::Skip { fire: latest, missed: passed + 1 },
    })
}

impl<B: Bus> Orchestrator<B> {
    /// Runs every cron trigger of the loaded protocols until cancelled.
    pub(super) async fn run_schedules(&self, cancel: &CancellationToken) {
        let mut schedules = Vec::new();
        for protocol in self.inner.options.protocols.values() {
            for (index, trigger) in protocol.triggers.iter().enumerate() {
                if let Trigger::Cron(cron) = trigger {
                    schedules.push(self.run_schedule(protocol, index, cron, cancel));
                }
            }
        }
        futures::future::join_all(schedules).await;
    }

    async fn run_schedule(&self, protocol: &Protocol, index: usize, cron: &CronTrigger, cancel: &CancellationToken) {
        let schedule: croner::Cron = match cron.schedule.parse() {
            Ok(schedule) => schedule,
            Err(err) => {
                warn!(protocol = %protocol.id, schedule = %cron.schedule, error = %err, "cron schedule not served");
                return;
            }
        };
        let key = format!("cron.{}.{index}", protocol.id);
        let inputs: BTreeMap<String, String> = cron.inputs.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        info!(protocol = %protocol.id, schedule = %cron.schedule, missed = ?cron.missed, "serving a cron trigger");
        while !cancel.is_cancelled() {
            let step = self.cron_step(protocol, index, &key, &schedule, cron.missed, &inputs, cancel).await;
            let wait = match step {
                Ok(Some(at)) => crate::clock::until(at),
                Ok(None) => Duration::ZERO,
                Err(err) => {
                    warn!(protocol = %protocol.id, schedule = %cron.schedule, error = %err, "cron trigger failed; retrying in 5s");
                    Duration::from_secs(5)
                }
            };
            // Re-check at least every minute so a clock step is noticed.
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait.min(Duration::from_secs(60))) => {}
            }
        }
    }

    /// One look at a schedule: fires or skips what is due and records it. `Some(t)`: sleep
    /// until `t`; `None`: look again at once.
    #[allow(clippy::too_many_arguments)]
    async fn cron_step(
        &self,
        protocol: &Protocol,
        index: usize,
        key: &str,
        schedule: &croner::Cron,
        policy: MissedFires,
        inputs: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Option<Timestamp>, String> {
        let now = crate::clock::now();
        let entry = self.inner.bus.kv_get(Bucket::Triggers, key).await.map_err(|e| e.to_string())?;
        let Some(entry) = entry else {
            let value = Bytes::from(now.to_string());
            return match self.inner.bus.kv_create(Bucket::Triggers, key, value).await {
                Ok(_) | Err(muster_bus::Error::AlreadyExists) => Ok(None),
                Err(err) => Err(err.to_string()),
            };
        };
        let last: Timestamp = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| format!("the last fire recorded under {key} is unreadable"))?;
        let (fire, missed, run) = match due(schedule, policy, last, now)? {
            Due::Wait(at) => return Ok(Some(at)),
            Due::Fire { fire, missed } => (fire, missed, true),
            Due::Skip { fire, missed } => (fire, missed, false),
        };
        if run {
            let idempotency = format!("cron/{}/{index}/{fire}", protocol.id);
            let cause = match missed {
                0 => format!("cron `{}` fire at {fire}", schedule.pattern),
                n => {
                    format!("cron `{}` fire at {fire} (catching up on {n} missed fire(s): run_once)", schedule.pattern)
                }
            };
            match self
                .start_run(protocol.clone(), inputs, Some(&idempotency), Some("cron".to_owned()), &cause, cancel)
                .await
            {
                TriggerReply::Accepted { run_id, existing } => {
                    info!(protocol = %protocol.id, run_id = %run_id, fire = %fire, missed, existing, "cron fired")
                }
                TriggerReply::Refused { reason, .. } => {
                    warn!(protocol = %protocol.id, fire = %fire, reason = %reason, "cron fire refused; not retried")
                }
            }
        } else {
            warn!(protocol = %protocol.id, fire = %fire, missed, "cron fires missed while down were skipped (missed: skip)");
        }
        let value = Bytes::from(fire.to_string());
        match self.inner.bus.kv_update(Bucket::Triggers, key, value, entry.revision).await {
            Ok(_) | Err(muster_bus::Error::RevisionMismatch) => Ok(None),
            Err(err) => Err(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_schedule_waits_fires_and_folds_missed_fires_by_policy() {
        let daily: croner::Cron = "0 6 * * *".parse().unwrap();
        let last = at("2026-01-01T06:00:00Z");
        assert_eq!(
            due(&daily, MissedFires::RunOnce, last, at("2026-01-01T12:00:00Z")).unwrap(),
            Due::Wait(at("2026-01-02T06:00:00Z"))
        );
        assert_eq!(
            due(&daily, MissedFires::RunOnce, last, at("2026-01-02T06:00:30Z")).unwrap(),
            Due::Fire { fire: at("2026-01-02T06:00:00Z"), missed: 0 }
        );
        // Down for three days: one run for the latest fire, two folded into it.
        assert_eq!(
            due(&daily, MissedFires::RunOnce, last, at("2026-01-04T09:00:00Z")).unwrap(),
            Due::Fire { fire: at("2026-01-04T06:00:00Z"), missed: 2 }
        );
        assert_eq!(
            due(&daily, MissedFires::Skip, last, at("2026-01-04T09:00:00Z")).unwrap(),
            Due::Skip { fire: at("2026-01-04T06:00:00Z"), missed: 3 }
        );
        assert_eq!(
            due(&daily, MissedFires::Skip, last, at("2026-01-02T06:00:59Z")).unwrap(),
            Due::Fire { fire: at("2026-01-02T06:00:00Z"), missed: 0 },
            "a fire within the grace is on time, not missed"
        );
    }
}
