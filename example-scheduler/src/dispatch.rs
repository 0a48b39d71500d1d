//! The tick loop: a stock celers-beat `BeatScheduler` with interval and
//! crontab entries, ticked by `KubeBeat` (or, for comparison, by
//! celers-beat's own `tick_with_locks`), each fire "dispatched" as a log
//! line that the `celers-beat-runs` checker reads.

use std::sync::Arc;
use std::time::Duration;

use celers_beat::heartbeat::{BeatHeartbeat, HeartbeatConfig};
use celers_beat::{BeatScheduler, Schedule, ScheduledTask};
use celers_core_03::lock::DistributedLockBackend;
use celers_kube_lease::{KubeBeat, KubeLeaseLockBackend};
use celers_kube_lease_scheduler::runs::{EXECUTED, ROLE_CHANGED};
use chrono::Utc;
use tokio::sync::watch;

use crate::args::{Mode, Settings};

/// Fault injection for the paused-replica check: set to N, the replica
/// stops itself (SIGSTOP) just before its Nth tick as the leader and goes on
/// when it gets SIGCONT, as a leader paused (GC, a stalled VM) while it
/// holds the lead.
pub const STOP_BEFORE_LOCK_ENV: &str = "SCHEDULER_TEST_STOP_BEFORE_LOCK";

/// The message logged just before such a stop.
pub const STOPPING: &str = "stopping before locking the run (test fault)";

/// The TTL of stock celers-beat's per-fire locks.
const STOCK_LOCK_TTL_SECS: u64 = celers_beat::DEFAULT_DISPATCH_LOCK_TTL_SECS;

/// The entries of the example: task-i every (i + 1) × the interval, and an
/// optional crontab entry `cron`.
pub fn scheduler(settings: &Settings) -> Result<BeatScheduler, String> {
    let mut scheduler = BeatScheduler::new();
    for i in 0..u64::from(settings.tasks) {
        let every = settings.interval_secs.saturating_mul(i + 1);
        let task = ScheduledTask::new(format!("task-{i}"), Schedule::interval(every));
        scheduler.add_task(task).map_err(|e| e.to_string())?;
    }
    if let Some(crontab) = &settings.crontab {
        let fields: Vec<&str> = crontab.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(format!("--crontab {crontab:?} must have five fields"));
        };
        let schedule = Schedule::crontab(minute, hour, day_of_week, day_of_month, month);
        // Checked now: an invalid expression fails at start, not every tick.
        schedule
            .next_run(Some(chrono::DateTime::UNIX_EPOCH))
            .map_err(|error| format!("--crontab {crontab:?}: {error}"))?;
        let task = ScheduledTask::new("cron".to_owned(), schedule);
        scheduler.add_task(task).map_err(|e| e.to_string())?;
    }
    Ok(scheduler)
}

/// Seconds between two instants of `entry`, for the checker (a crontab
/// entry's minute granularity counts as 60).
fn every_secs(scheduler: &BeatScheduler, entry: &str) -> u64 {
    match scheduler.get_task(entry).map(|task| &task.schedule) {
        Some(Schedule::Interval { every }) => *every,
        _ => 60,
    }
}

/// How one replica ticks.
pub enum Ticker {
    Kube(Arc<KubeBeat>),
    Stock,
}

impl Ticker {
    /// Sets `scheduler` up for `mode`.
    pub fn new(
        mode: Mode,
        beat: Arc<KubeBeat>,
        backend: &KubeLeaseLockBackend,
        scheduler: &mut BeatScheduler,
        owner: &str,
        leader_ttl: Duration,
    ) -> Result<Self, String> {
        if mode == Mode::KubeBeat {
            return Ok(Self::Kube(beat));
        }
        let locks: Arc<dyn DistributedLockBackend> = Arc::new(backend.clone());
        scheduler.with_lock_backend(Arc::clone(&locks));
        if matches!(mode, Mode::StockIds | Mode::StockHeartbeat) {
            scheduler.set_instance_id(owner.to_owned());
        }
        if mode == Mode::StockHeartbeat {
            let config = HeartbeatConfig::new()
                .with_leader_lease_ttl(leader_ttl)
                .with_leader_renewal_interval(leader_ttl / 3)
                .with_failover_timeout(leader_ttl * 2);
            config
                .validate()
                .map_err(|error| format!("heartbeat settings: {error}"))?;
            scheduler.with_heartbeat(BeatHeartbeat::new(owner.to_owned(), locks, config));
        }
        Ok(Self::Stock)
    }
}

/// Ticks every `period` until `stop` changes, logging each fire.
pub async fn run(
    mut scheduler: BeatScheduler,
    ticker: Ticker,
    owner: String,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) -> BeatScheduler {
    let mut leading = None;
    let mut leader_ticks = 0_u64;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return scheduler,
        }
        if leading == Some(true) {
            leader_ticks += 1;
            stop_if_asked(&owner, leader_ticks);
        }
        let fires = match &ticker {
            Ticker::Kube(beat) => {
                let fires = beat.tick(&mut scheduler).await;
                let now_leading = beat.is_leader();
                if leading != Some(now_leading) {
                    let role = if now_leading { "leader" } else { "standby" };
                    tracing::info!(role, owner = %owner, "{ROLE_CHANGED}");
                    leading = Some(now_leading);
                }
                fires
                    .map(|fires| {
                        fires
                            .into_iter()
                            .map(|fire| (fire.entry, fire.instant, Some(fire.token.get())))
                            .collect::<Vec<_>>()
                    })
                    .map_err(|error| error.to_string())
            }
            Ticker::Stock => stock_tick(&mut scheduler).await,
        };
        match fires {
            Ok(fires) => {
                for (entry, instant, token) in fires {
                    // The task itself: this example only logs.
                    let lag_ms = (Utc::now() - instant).num_milliseconds();
                    tracing::info!(
                        task = %entry,
                        run = instant.timestamp(),
                        run_ms = instant.timestamp_millis(),
                        every_secs = every_secs(&scheduler, &entry),
                        token,
                        owner = %owner,
                        lag_ms,
                        "{EXECUTED}"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, owner = %owner, "tick failed; retrying next tick"),
        }
    }
}

/// celers-beat's own `tick_with_locks`. Each fire's instant is taken as
/// the moment it fired: the instant in its dispatch key is the task's cached
/// next run, which `tick_with_locks` never refreshes, so it names no slot.
async fn stock_tick(
    scheduler: &mut BeatScheduler,
) -> Result<Vec<(String, chrono::DateTime<Utc>, Option<u64>)>, String> {
    let fired = scheduler
        .tick_with_locks(STOCK_LOCK_TTL_SECS)
        .await
        .map_err(|error| error.to_string())?;
    let now = Utc::now();
    Ok(fired.into_iter().map(|entry| (entry, now, None)).collect())
}

/// Stops this process if [`STOP_BEFORE_LOCK_ENV`] asks for it at this tick.
fn stop_if_asked(owner: &str, leader_tick: u64) {
    let Some(at) = std::env::var(STOP_BEFORE_LOCK_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if leader_tick != at {
        return;
    }
    tracing::warn!(owner = %owner, leader_tick, "{STOPPING}");
    // `kill` returns once the signal is sent; this thread (and the whole
    // process) stops at once and goes on here after SIGCONT.
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &std::process::id().to_string()])
        .status();
    tracing::warn!(owner = %owner, leader_tick, ?stopped, "resumed");
}
