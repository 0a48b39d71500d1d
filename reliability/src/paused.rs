//! A paused replica of the example scheduler (`celers-kube-lease-scheduler`):
//! it stops itself (SIGSTOP, through its test fault
//! `SCHEDULER_TEST_STOP_BEFORE_LOCK`) just before locking a run, stays
//! stopped for longer than the run lock's TTL while the other replica
//! executes the run and the expired run locks are swept, and is resumed
//! (SIGCONT). It must not execute the run again. Double runs are counted
//! with the scheduler's own `runs` module, as the `celers-beat-runs` checker
//! counts them.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use celers_kube_lease::KubeLeaseLockBackend;
use celers_kube_lease_scheduler::runs::{summarize, Event};
use celers_kube_lease_testkit::scheduler_replica;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::time::{sleep, Instant};

use crate::cluster::{self, Connect};
use crate::Result;

/// Scheduler settings: short, so that a trial takes seconds.
const TTL_SECS: u64 = 3;
const TASKS: u64 = 2;
const ARGS: &[&str] = &["--interval-secs", "1", "--ttl-secs", "3", "--tasks", "2"];
const STOPPING: &str = "stopping before locking the run";
const ALREADY_CLAIMED: &str = "run already claimed in the ledger";
const EXECUTED: &str = "executed run";

/// What the trials found.
#[derive(Clone, Debug, Default)]
pub struct PausedTrials {
    /// Replicas paused and resumed.
    pub pauses: u64,
    /// Distinct runs executed.
    pub executed: u64,
    /// Runs the resumed replicas found claimed in the ledger.
    pub already_claimed: u64,
    /// Runs executed more than once: must be 0.
    pub double_runs: u64,
    /// Anything else that went wrong.
    pub problems: Vec<String>,
}

impl PausedTrials {
    /// No double run, no problem, and every pause carried out.
    pub fn clean(&self) -> bool {
        self.double_runs == 0 && self.problems.is_empty() && self.pauses > 0
    }
}

type Log = Arc<Mutex<Vec<(usize, Event)>>>;

struct Replica {
    child: Child,
}

impl Replica {
    fn spawn(
        exe: &Path,
        kubeconfig: &Path,
        namespace: &str,
        owner: &str,
        stop_at: Option<&str>,
        index: usize,
        log: &Log,
    ) -> Result<Self> {
        let mut command = scheduler_replica(exe, kubeconfig, namespace, owner);
        command
            .args(ARGS)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(round) = stop_at {
            command.env("SCHEDULER_TEST_STOP_BEFORE_LOCK", round);
        }
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                if let Some(event) = Event::parse(&text) {
                    if let Ok(mut log) = log.lock() {
                        log.push((index, event));
                    }
                }
            }
        });
        Ok(Self { child })
    }

    fn signal(&self, signal: &str) -> Result<()> {
        celers_kube_lease_testkit::signal(&self.child, signal)
    }
}

async fn wait_for<T>(
    log: &Log,
    what: &str,
    limit: Duration,
    found: impl Fn(&[(usize, Event)]) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = log.lock().ok().and_then(|log| found(&log)) {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}").into());
        }
        sleep(Duration::from_millis(50)).await;
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
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    // Sweeps as any replica's background sweep would, without grace.
    let sweeper = KubeLeaseLockBackend::builder(client)
        .namespace(namespace.as_str())
        .sweep_grace(Duration::ZERO)
        .build()?;
    let log: Log = Arc::default();
    let tag = format!("{}-{trial}", std::process::id());
    // Stop at a different round each time: leader or standby, early or later.
    let round = (5 + trial % 4).to_string();
    let paused = Replica::spawn(
        exe,
        kubeconfig,
        &namespace,
        &format!("paused-a-{tag}"),
        Some(&round),
        0,
        &log,
    )?;
    let other = Replica::spawn(
        exe,
        kubeconfig,
        &namespace,
        &format!("paused-b-{tag}"),
        None,
        1,
        &log,
    )?;

    let run = wait_for(
        &log,
        "the replica to stop itself",
        Duration::from_secs(40),
        |log| {
            log.iter()
                .find(|(r, e)| *r == 0 && e.message.starts_with(STOPPING))
                .and_then(|(_, e)| e.run)
        },
    )
    .await?;
    let stopped_at = Instant::now();
    wait_for(
        &log,
        "the other replica to execute the run",
        Duration::from_secs(20),
        |log| {
            let done = log
                .iter()
                .filter(|(r, e)| *r == 1 && e.message == EXECUTED && e.run == Some(run))
                .count() as u64;
            (done == TASKS).then_some(())
        },
    )
    .await?;
    sleep_until_secs(stopped_at, TTL_SECS + 1).await;
    let names: Vec<String> = (0..TASKS)
        .map(|i| celers_kube_lease::lease_name(&format!("celers-beat:dispatch:task-{i}@{run}")))
        .collect();
    let swept_by = Instant::now() + Duration::from_secs(20);
    loop {
        sweeper.sweep_expired().await?;
        let mut left = 0;
        for name in &names {
            if leases.get_opt(name).await?.is_some() {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        if Instant::now() >= swept_by {
            return Err(format!("the run locks of {run} were never swept").into());
        }
        sleep(Duration::from_millis(500)).await;
    }
    paused.signal("CONT")?;
    found.pauses += 1;
    wait_for(
        &log,
        "the resumed replica to decide the run",
        Duration::from_secs(20),
        |log| {
            let decided = log
                .iter()
                .filter(|(r, e)| *r == 0 && e.run == Some(run))
                .filter(|(_, e)| e.message == EXECUTED || e.message.starts_with(ALREADY_CLAIMED))
                .count() as u64;
            (decided == TASKS).then_some(())
        },
    )
    .await?;
    sleep(Duration::from_secs(2)).await;
    for replica in [&paused, &other] {
        replica.signal("TERM")?;
    }
    for (i, mut replica) in [paused, other].into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(15), replica.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => found
                .problems
                .push(format!("trial {trial}: replica {i} exited with {status}")),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                let _ = replica.child.start_kill();
                found.problems.push(format!(
                    "trial {trial}: replica {i} did not stop on SIGTERM"
                ));
            }
        }
    }
    sleep(Duration::from_millis(300)).await;
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let per_replica: Vec<Vec<Event>> = (0..2)
        .map(|i| {
            log.iter()
                .filter(|(r, _)| *r == i)
                .map(|(_, e)| e.clone())
                .collect()
        })
        .collect();
    let summary = summarize(
        [
            ("a", per_replica[0].as_slice()),
            ("b", per_replica[1].as_slice()),
        ],
        TASKS,
        1,
    );
    found.executed += summary.executed;
    found.double_runs += summary.twice.len() as u64;
    found.already_claimed += per_replica[0]
        .iter()
        .filter(|e| e.run == Some(run) && e.message.starts_with(ALREADY_CLAIMED))
        .count() as u64;
    Ok(())
}

async fn sleep_until_secs(from: Instant, secs: u64) {
    tokio::time::sleep_until(from + Duration::from_secs(secs)).await;
}
