//! The celers-beat scenario: replicas of the example scheduler (a stock
//! celers-beat `BeatScheduler`) for a while, through a leader SIGKILL, a
//! leader SIGSTOP longer than the leader TTL, and a rolling restart, either
//! driven by `KubeBeat` or by celers-beat's own `tick_with_locks` (the
//! baseline); then per entry the instants fired, fired twice, and skipped
//! beyond the failover bound, as the `celers-beat-runs` checker counts them.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use celers_kube_lease_scheduler::replicas::{roles, Replicas};
use celers_kube_lease_scheduler::runs::Summary;

use crate::cluster::{self, Connect};
use crate::Result;

/// What to run.
#[derive(Clone, Debug)]
pub struct BeatPlan {
    /// The scheduler's `--mode`: `kube-beat`, `stock`, `stock-ids`,
    /// `stock-heartbeat`.
    pub mode: String,
    pub replicas: usize,
    pub duration: Duration,
    /// Leader TTL (and for the stock modes the heartbeat's lease TTL).
    pub ttl_secs: u64,
    /// Task i runs every (i + 1) × this.
    pub interval_secs: u64,
    pub tasks: u32,
    /// A crontab entry, if any.
    pub crontab: Option<String>,
    /// The kill, the pause and the rolling restart.
    pub faults: bool,
}

impl BeatPlan {
    /// The longest gap between two instants that is not a skip: the
    /// interval plus the leader TTL, a retry period (a third of the TTL),
    /// and 2 s for the clock's uncertainty and the tick.
    pub fn failover_bound(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
            + Duration::from_secs(self.ttl_secs) / 3
            + Duration::from_secs(2)
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--mode".to_owned(),
            self.mode.clone(),
            "--interval-secs".to_owned(),
            self.interval_secs.to_string(),
            "--ttl-secs".to_owned(),
            self.ttl_secs.to_string(),
            "--tasks".to_owned(),
            self.tasks.to_string(),
            "--crontab".to_owned(),
            self.crontab.clone().unwrap_or_else(|| "none".to_owned()),
        ];
        args.shrink_to_fit();
        args
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct BeatReport {
    pub plan: BeatPlan,
    pub summary: Summary,
    /// What was done when, seconds from the start.
    pub timeline: Vec<(f64, String)>,
    /// From each leader kill or pause to the next fire by another replica.
    pub failovers: Vec<Duration>,
}

impl BeatReport {
    /// Whether every instant fired once and none was skipped beyond the
    /// failover bound.
    pub fn clean(&self) -> bool {
        self.summary.total(|e| e.twice) == 0
            && self.summary.total(|e| e.skipped) == 0
            && self.summary.total(|e| e.fires) > 0
    }
}

impl fmt::Display for BeatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plan = &self.plan;
        writeln!(
            f,
            "mode {}: {} replicas for {:?}, leader TTL {} s, failover bound {:?}",
            plan.mode,
            plan.replicas,
            plan.duration,
            plan.ttl_secs,
            plan.failover_bound()
        )?;
        for (at, what) in &self.timeline {
            writeln!(f, "  {at:>7.1}s  {what}")?;
        }
        writeln!(f)?;
        write!(f, "{}", self.summary.table())?;
        let failovers: Vec<String> = self
            .failovers
            .iter()
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .collect();
        writeln!(
            f,
            "\nfires {}, fired twice {}, skipped beyond the bound {}; failovers (fault to the next fire by another replica): {}",
            self.summary.total(|e| e.fires),
            self.summary.total(|e| e.twice),
            self.summary.total(|e| e.skipped),
            if failovers.is_empty() { "none".to_owned() } else { failovers.join(", ") }
        )
    }
}

/// Runs `plan` with the scheduler binary `exe` on the cluster of
/// `kubeconfig`, in a namespace of its own.
pub async fn run(exe: &Path, kubeconfig: &Path, plan: BeatPlan) -> Result<BeatReport> {
    let client = cluster::client(kubeconfig, &Connect::default()).await?;
    let namespace = cluster::create_namespace(&client, "reliability-beat").await?;
    let mut replicas = Replicas::new(exe, kubeconfig, &namespace, false);
    let args = plan.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let mut timeline = Vec::new();
    let mut note = |what: String| timeline.push((start.elapsed().as_secs_f64(), what));
    let mut live: Vec<usize> = Vec::new();
    let tag = std::process::id();
    let mut spawned = 0;
    let mut spawn = |replicas: &mut Replicas| -> Result<usize> {
        spawned += 1;
        Ok(replicas.spawn(&format!("beat-{spawned}-{tag}"), &args, &[])?)
    };
    for _ in 0..plan.replicas {
        live.push(spawn(&mut replicas)?);
    }
    note(format!("{} replicas started", plan.replicas));
    let mut failovers = Vec::new();
    let at = |fraction: f64| start + plan.duration.mul_f64(fraction);
    if plan.faults {
        // Leader SIGKILL; a new replica replaces it, as a Deployment does.
        sleep_until(at(0.25), &mut replicas).await;
        let leader = leader_of(&replicas, &live);
        replicas.signal(leader, "KILL")?;
        let killed = Instant::now();
        note(format!("SIGKILL replica {leader} (the leader)"));
        live.retain(|&r| r != leader);
        failovers.push(next_fire(&mut replicas, leader, killed).await?);
        live.push(spawn(&mut replicas)?);
        note("a replacement replica started".to_owned());

        // Leader SIGSTOP for longer than the TTL, then SIGCONT.
        sleep_until(at(0.5), &mut replicas).await;
        let leader = leader_of(&replicas, &live);
        replicas.signal(leader, "STOP")?;
        let stopped = Instant::now();
        note(format!("SIGSTOP replica {leader} (the leader)"));
        failovers.push(next_fire(&mut replicas, leader, stopped).await?);
        sleep_until(
            stopped + Duration::from_secs(plan.ttl_secs + 5),
            &mut replicas,
        )
        .await;
        replicas.signal(leader, "CONT")?;
        note(format!(
            "SIGCONT replica {leader}, {:?} after its stop",
            stopped.elapsed()
        ));

        // Rolling restart: a new replica, then the oldest one stopped.
        sleep_until(at(0.75), &mut replicas).await;
        note("rolling restart".to_owned());
        for old in live.clone() {
            live.push(spawn(&mut replicas)?);
            sleep_until(Instant::now() + Duration::from_secs(3), &mut replicas).await;
            replicas.signal(old, "TERM")?;
            let status = replicas.exit_status(old, Duration::from_secs(20)).await?;
            live.retain(|&r| r != old);
            note(format!("replica {old} stopped (SIGTERM): {status}"));
        }
    }
    sleep_until(at(1.0), &mut replicas).await;
    for &replica in &live {
        replicas.signal(replica, "TERM")?;
    }
    for &replica in &live {
        replicas
            .exit_status(replica, Duration::from_secs(20))
            .await?;
    }
    replicas.drain().await;
    note("all replicas stopped".to_owned());
    let summary = replicas.summary(plan.failover_bound());
    Ok(BeatReport {
        plan,
        summary,
        timeline,
        failovers,
    })
}

/// Reads the replicas' output until `deadline`.
async fn sleep_until(deadline: Instant, replicas: &mut Replicas) {
    let _ = replicas.wait_for("nothing", deadline, |_| None::<()>).await;
}

/// The replica that leads by its last `role changed` line, or the first
/// live one (the stock modes log no role).
fn leader_of(replicas: &Replicas, live: &[usize]) -> usize {
    let roles = roles(&replicas.log, replicas.owners.len());
    live.iter()
        .copied()
        .find(|&r| roles.get(r).and_then(Option::as_deref) == Some("leader"))
        .or_else(|| live.first().copied())
        .unwrap_or_default()
}

/// How long after `since` a replica other than `gone` fired.
async fn next_fire(replicas: &mut Replicas, gone: usize, since: Instant) -> Result<Duration> {
    let fired = replicas
        .wait_for(
            "a fire by another replica",
            since + Duration::from_secs(120),
            |log| {
                log.iter()
                    .find(|l| {
                        l.replica != gone
                            && l.at > since
                            && l.event.as_ref().and_then(|e| e.executed()).is_some()
                    })
                    .map(|l| l.at)
            },
        )
        .await?;
    Ok(fired - since)
}
