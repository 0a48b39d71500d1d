//! The schedule: task `i` runs at every multiple of the interval (Unix
//! time), and each run is executed by whichever replica locks it first.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use celers_beat::heartbeat::BeatHeartbeat;
use celers_core_03::lock::DistributedLockBackend;
use celers_kube_lease_scheduler::runs::EXECUTED;
use tokio::sync::watch;

/// Pause before retrying runs whose lock request failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Dispatches the runs of one replica.
pub struct Dispatcher {
    pub backend: Arc<dyn DistributedLockBackend>,
    pub heartbeat: Arc<BeatHeartbeat>,
    /// The replica, as logged.
    pub owner: String,
    /// Holder of the per-run locks.
    pub run_owner: String,
    pub tasks: Vec<String>,
    pub interval_secs: u64,
    pub ttl_secs: u64,
}

impl Dispatcher {
    /// Dispatches runs until `stop` changes.
    ///
    /// Only the latest due run of each task is ever attempted, so runs missed
    /// while no replica was up are skipped, not caught up. The leader attempts
    /// a run when it is due; standbys half an interval later, so the leader
    /// normally executes every run and a standby only steps in when the
    /// leader is gone. Per-run locks are never released: until they expire
    /// they keep any replica that attempts the run later from executing it.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        // Per task, the last run that was decided (executed here or elsewhere).
        let mut decided = vec![0_u64; self.tasks.len()];
        let mut retry_at = UNIX_EPOCH;
        loop {
            let leader = self.heartbeat.is_leader().await;
            let now = SystemTime::now();
            let latest = latest_run(now, self.interval_secs);
            let wake = if decided.iter().any(|&run| run < latest) {
                attempt_time(latest, self.interval_secs, leader).max(retry_at)
            } else {
                attempt_time(latest + self.interval_secs, self.interval_secs, leader)
            };
            if let Ok(pause) = wake.duration_since(now) {
                if !pause.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        _ = stop.changed() => return,
                    }
                }
            }
            if self.dispatch(latest, &mut decided).await {
                retry_at = UNIX_EPOCH;
            } else {
                retry_at = SystemTime::now() + RETRY_AFTER;
            }
        }
    }

    /// Attempts run `run` of every task not yet decided for it; false if a
    /// lock request failed.
    async fn dispatch(&self, run: u64, decided: &mut [u64]) -> bool {
        let pending: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| decided.get(i).is_some_and(|&d| d < run))
            .collect();
        let attempts = pending.iter().map(|&i| {
            let task = self.tasks.get(i).map_or("", String::as_str);
            let key = run_key(task, run);
            async move {
                let outcome = self
                    .backend
                    .try_acquire(&key, &self.run_owner, self.ttl_secs)
                    .await;
                (i, task, outcome)
            }
        });
        let mut all_decided = true;
        for (i, task, outcome) in futures::future::join_all(attempts).await {
            match outcome {
                Ok(executed) => {
                    if let Some(slot) = decided.get_mut(i) {
                        *slot = run;
                    }
                    if executed {
                        // The task itself: this example only logs.
                        let lag_ms = SystemTime::now()
                            .duration_since(UNIX_EPOCH + Duration::from_secs(run))
                            .map_or(0, |lag| lag.as_millis());
                        tracing::info!(task = %task, run, owner = %self.owner, lag_ms, "{EXECUTED}");
                    } else {
                        tracing::debug!(task = %task, run, "run locked by another replica");
                    }
                }
                Err(error) => {
                    all_decided = false;
                    tracing::warn!(task = %task, run, %error, "could not lock the run; retrying");
                }
            }
        }
        all_decided
    }
}

/// The lock key of run `run` (its scheduled Unix time) of `task`.
fn run_key(task: &str, run: u64) -> String {
    format!("celers-beat:dispatch:{task}@{run}")
}

/// The latest run due at `now`: runs are at multiples of the interval.
fn latest_run(now: SystemTime, interval_secs: u64) -> u64 {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    secs / interval_secs * interval_secs
}

/// When a replica attempts run `run`: the leader at once, a standby half an
/// interval later.
fn attempt_time(run: u64, interval_secs: u64, leader: bool) -> SystemTime {
    let delay = if leader {
        Duration::ZERO
    } else {
        Duration::from_millis(interval_secs * 500)
    };
    UNIX_EPOCH + Duration::from_secs(run) + delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_multiples_of_the_interval() {
        let at = |secs: u64, millis: u64| UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis);
        assert_eq!(latest_run(at(1_000, 0), 5), 1_000);
        assert_eq!(latest_run(at(1_004, 999), 5), 1_000);
        assert_eq!(latest_run(at(1_005, 0), 5), 1_005);
        assert_eq!(attempt_time(1_000, 5, true), at(1_000, 0));
        assert_eq!(attempt_time(1_000, 5, false), at(1_002, 500));
        assert_eq!(run_key("task-1", 1_000), "celers-beat:dispatch:task-1@1000");
    }
}
