//! The schedule: task `i` runs at every multiple of the interval (Unix
//! time), and each run is executed by whichever replica locks it first and
//! then claims it in the task's run ledger.
//!
//! The per-run lock alone is not enough: it lives for a TTL, and once it has
//! expired and been swept, a replica that was paused (SIGSTOP, a stalled VM,
//! a long GC) just before locking the run would lock it afresh and execute
//! it a second time. So a replica executes run R only after it has moved the
//! task's ledger (a Lease `celers-beat-runs.<task>` whose annotation
//! [`LAST_CLAIMED`] records the last run claimed) from a run before R to R:
//! only forward, and under a `resourceVersion` precondition, so that of two
//! replicas racing for R exactly one wins and a late one finds R (or a later
//! run) already claimed. The ledger is never swept: it records a number, not
//! a holding, so no time bound applies to it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

use celers_beat::heartbeat::BeatHeartbeat;
use celers_core_03::lock::DistributedLockBackend;
use celers_kube_lease_scheduler::runs::EXECUTED;
use tokio::sync::watch;

/// Pause before retrying runs whose lock request failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Fault injection for the paused-replica check: set to N, the replica
/// stops itself (SIGSTOP) just before its Nth round of lock requests and
/// goes on when it gets SIGCONT, as a replica paused at the worst moment.
pub const STOP_BEFORE_LOCK_ENV: &str = "SCHEDULER_TEST_STOP_BEFORE_LOCK";

/// The message logged just before such a stop.
pub const STOPPING: &str = "stopping before locking the run (test fault)";

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
    /// The tasks' run ledgers.
    pub ledger: RunLedger,
}

/// Annotation of a task's ledger Lease: the last run claimed, a Unix time.
pub const LAST_CLAIMED: &str = "celers-beat.example/last-claimed-run";

/// The tasks' run ledgers: one Lease per task, named
/// `celers-beat-runs.<task>`, holding the last run claimed.
#[derive(Clone)]
pub struct RunLedger {
    leases: Api<Lease>,
}

/// What [`RunLedger::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This replica moved the ledger to the run: execute it.
    Won,
    /// The ledger was already at this run or a later one.
    AlreadyClaimed(u64),
    /// Lost several races in a row without seeing the run claimed: retry.
    Contended,
}

impl RunLedger {
    /// The ledgers in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            leases: Api::namespaced(client, namespace),
        }
    }

    /// Moves `task`'s ledger forward to `run`, unless it is there already.
    pub async fn claim(&self, task: &str, run: u64) -> Result<Claim, kube::Error> {
        let name = ledger_name(task);
        // A few rounds: each lost race means the ledger moved, usually past
        // `run`, which ends the loop.
        for _ in 0..5 {
            let mut current = match self.leases.get_opt(&name).await? {
                Some(lease) => lease,
                None => {
                    let lease = ledger_lease(&name, run);
                    match self.leases.create(&PostParams::default(), &lease).await {
                        Ok(_) => return Ok(Claim::Won),
                        Err(kube::Error::Api(status)) if status.code == 409 => continue,
                        Err(error) => return Err(error),
                    }
                }
            };
            let annotations = current.metadata.annotations.get_or_insert_default();
            let last = annotations
                .get(LAST_CLAIMED)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if last >= run {
                return Ok(Claim::AlreadyClaimed(last));
            }
            annotations.insert(LAST_CLAIMED.to_owned(), run.to_string());
            // The resourceVersion read makes the update conditional: 409 if
            // the ledger changed since.
            match self
                .leases
                .replace(&name, &PostParams::default(), &current)
                .await
            {
                Ok(_) => return Ok(Claim::Won),
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(Claim::Contended)
    }
}

/// The name of `task`'s ledger Lease.
pub fn ledger_name(task: &str) -> String {
    format!("celers-beat-runs.{task}")
}

fn ledger_lease(name: &str, run: u64) -> Lease {
    let mut lease = Lease::default();
    lease.metadata.name = Some(name.to_owned());
    lease.metadata.annotations = Some([(LAST_CLAIMED.to_owned(), run.to_string())].into());
    lease
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
        stop_if_asked(&self.owner, run);
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
                    .await
                    .map_err(|error| error.to_string());
                // Locked: claim it in the ledger before executing it.
                let outcome = match outcome {
                    Ok(true) => match self.ledger.claim(task, run).await {
                        Ok(Claim::Won) => Ok(true),
                        Ok(Claim::AlreadyClaimed(last)) => {
                            tracing::info!(task = %task, run, last_claimed = last, owner = %self.owner,
                                "run already claimed in the ledger; not executing it");
                            Ok(false)
                        }
                        Ok(Claim::Contended) => Err("the ledger kept changing".to_owned()),
                        Err(error) => Err(format!("ledger: {error}")),
                    },
                    other => other,
                };
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

/// Stops this process if [`STOP_BEFORE_LOCK_ENV`] asks for it at this round.
fn stop_if_asked(owner: &str, run: u64) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ROUNDS: AtomicU64 = AtomicU64::new(0);
    let Some(at) = std::env::var(STOP_BEFORE_LOCK_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if ROUNDS.fetch_add(1, Ordering::Relaxed) + 1 != at {
        return;
    }
    tracing::warn!(owner = %owner, run, "{STOPPING}");
    // `kill` returns once the signal is sent; this thread (and the whole
    // process) stops at once and goes on here after SIGCONT.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &std::process::id().to_string()])
        .status();
    tracing::warn!(owner = %owner, run, ?stopped, "resumed");
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
