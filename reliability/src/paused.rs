//! A paused leader of the example scheduler (`celers-kube-lease-scheduler`,
//! a stock celers-beat `BeatScheduler` driven by `KubeBeat`): it stops
//! itself (SIGSTOP, through its test fault `SCHEDULER_TEST_STOP_BEFORE_LOCK`)
//! while it leads, stays stopped for longer than the leader TTL while the
//! other replica takes over and fires, and is resumed (SIGCONT). It must
//! fire nothing after it resumes, and no instant may fire twice, as the
//! `celers-beat-runs` checker counts them.

use std::path::Path;
use std::time::{Duration, Instant};

use celers_kube_lease_scheduler::replicas::{executed, roles, Replicas, SHORT_ARGS};

use crate::cluster::{self, Connect};
use crate::Result;

/// The leader TTL of `SHORT_ARGS`.
const TTL: Duration = Duration::from_secs(3);
const STOPPING: &str = "stopping before locking the run";

/// What the trials found.
#[derive(Clone, Debug, Default)]
pub struct PausedTrials {
    /// Leaders paused and resumed.
    pub pauses: u64,
    /// Distinct instants fired.
    pub instants: u64,
    /// Fires by a resumed replica before it led again: must be 0.
    pub fired_after_resume: u64,
    /// Instants fired more than once: must be 0.
    pub double_runs: u64,
    /// Anything else that went wrong.
    pub problems: Vec<String>,
}

impl PausedTrials {
    /// No double run, no fire after a resume, no problem, and every pause
    /// carried out.
    pub fn clean(&self) -> bool {
        self.double_runs == 0
            && self.fired_after_resume == 0
            && self.problems.is_empty()
            && self.pauses > 0
    }
}

/// `pauses` trials, each in a namespace of its own on the control plane of
/// `kubeconfig`, with two replicas of the scheduler binary `exe`.
pub async fn trials(exe: &Path, kubeconfig: &Path, pauses: u32) -> Result<PausedTrials> {
    let mut found = PausedTrials::default();
    for trial in 0..pauses {
        if let Err(e) = one(exe, kubeconfig, trial, &mut found).await {
            found.problems.push(format!("trial {trial}: {e}"));
        }
    }
    Ok(found)
}

async fn one(exe: &Path, kubeconfig: &Path, trial: u32, found: &mut PausedTrials) -> Result<()> {
    let client = cluster::client(kubeconfig, &Connect::default()).await?;
    let namespace = cluster::create_namespace(&client, "reliability-paused").await?;
    let mut replicas = Replicas::new(exe, kubeconfig, &namespace, false);
    let tag = format!("{}-{trial}", std::process::id());
    // Stop at a different tick each time, 1 to 1.6 s into the lead.
    let tick = (5 + trial % 4).to_string();
    let paused = replicas.spawn(
        &format!("paused-a-{tag}"),
        SHORT_ARGS,
        &[("SCHEDULER_TEST_STOP_BEFORE_LOCK", &tick)],
    )?;
    let within = |secs| Instant::now() + Duration::from_secs(secs);
    replicas
        .wait_for("the first replica to lead", within(30), |log| {
            (roles(log, 1).first()?.as_deref() == Some("leader")).then_some(())
        })
        .await?;
    let other = replicas.spawn(&format!("paused-b-{tag}"), SHORT_ARGS, &[])?;
    let stopped = replicas
        .wait_for("the leader to stop itself", within(30), |log| {
            log.iter()
                .find(|l| l.replica == paused && l.says(STOPPING))
                .map(|l| l.at)
        })
        .await?;
    let took_over = replicas
        .wait_for("the other replica to lead", within(20), |log| {
            log.iter()
                .find(|l| l.replica == other && l.role() == Some("leader"))
                .map(|l| l.at)
        })
        .await?;
    if took_over < stopped + TTL - Duration::from_millis(500) {
        found.problems.push(format!(
            "trial {trial}: taken over {:?} after the pause, before the TTL",
            took_over - stopped
        ));
    }
    replicas
        .wait_for("the new leader to fire", within(20), |log| {
            let fired = executed(log)
                .iter()
                .filter(|(_, _, l)| l.replica == other && l.at > took_over)
                .count();
            (fired >= 4).then_some(())
        })
        .await?;
    replicas.signal(paused, "CONT")?;
    let resumed = Instant::now();
    found.pauses += 1;
    replicas
        .wait_for("the resumed replica to stand by", within(20), |log| {
            log.iter()
                .find(|l| l.replica == paused && l.at > resumed && l.role() == Some("standby"))
                .map(|_| ())
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for replica in [paused, other] {
        replicas.signal(replica, "TERM")?;
    }
    for replica in [paused, other] {
        let status = replicas
            .exit_status(replica, Duration::from_secs(15))
            .await?;
        if !status.success() {
            found.problems.push(format!(
                "trial {trial}: replica {replica} exited with {status}"
            ));
        }
    }
    replicas.drain().await;
    found.fired_after_resume += executed(&replicas.log)
        .iter()
        .filter(|(_, _, l)| l.replica == paused && l.at > resumed)
        .count() as u64;
    let summary = replicas.summary(TTL + Duration::from_secs(4));
    found.instants += summary.total(|e| e.instants);
    found.double_runs += summary.total(|e| e.twice);
    Ok(())
}
