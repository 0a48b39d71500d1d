//! The contention run: contenders in this process and in child processes,
//! some with skewed clocks, some behind proxies, on a few keys, with faults
//! injected on a schedule; then the checks and the clean-up (see
//! [`outcome`](crate::outcome) for what the scenarios share).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease_testkit::ControlPlane;
use tokio::task::JoinSet;

use crate::checker;
use crate::cluster::{self, Connect};
use crate::contender::{self, Mode, Plan};
use crate::history;
use crate::linearizability;
use crate::mono::mono_ns;
use crate::outcome::{check_child, clean_up, Outcome};
use crate::process::{self, Spawn};
use crate::proxy::Proxy;
use crate::record::{Line, Op, Outcome as Answer};
use crate::Result;

/// A fault to inject.
#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL `kube-apiserver` or `etcd` (HA: `kube-apiserver-N`,
    /// `etcd-N`), then restart it.
    Kill(&'static str),
    /// HA: SIGKILL two etcd members (quorum lost), keep them dead for
    /// `lasting`, then restart them. No lock may be taken or renewed while
    /// they are dead.
    QuorumLoss {
        /// The two members.
        members: [&'static str; 2],
        /// How long they stay dead.
        lasting: Duration,
    },
    /// HA: set the clock offset of one API server, in ms (it stays).
    Skew {
        /// `kube-apiserver-N`.
        apiserver: &'static str,
        /// The offset.
        millis: i64,
    },
    /// Blackhole the proxy of the `proxy`-th proxied contender for a while.
    Blackhole {
        /// Which proxy.
        proxy: usize,
        /// For how long.
        lasting: Duration,
    },
}

impl Fault {
    /// The kind, for the figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill("etcd") => "etcd SIGKILL + restart",
            Fault::Kill("kube-apiserver") => "kube-apiserver SIGKILL + restart",
            Fault::Kill(name) if name.starts_with("etcd-") => {
                "etcd member SIGKILL + restart (quorum kept)"
            }
            Fault::Kill(_) => "kube-apiserver behind the balancer SIGKILL + restart",
            Fault::QuorumLoss { .. } => "two etcd members SIGKILLed (quorum lost) + restart",
            Fault::Skew { .. } => "API server clock offset changed",
            Fault::Blackhole { .. } => "network partition of one contender (blackhole > TTL)",
        }
    }
}

/// A contention run.
#[derive(Clone, Debug)]
pub struct Contention {
    /// Kubeconfig of the control plane.
    pub kubeconfig: PathBuf,
    /// Namespace of the locks (must exist).
    pub namespace: String,
    /// The reliability binary, for child processes.
    pub exe: PathBuf,
    /// Contenders in this process, each with its own client.
    pub in_process: usize,
    /// Contenders in this process, each behind its own proxy.
    pub proxied: usize,
    /// Contenders in child processes.
    pub processes: usize,
    /// One more child process per entry, with its wall clock skewed by it.
    pub skews: Vec<String>,
    /// Number of keys.
    pub keys: usize,
    /// TTL range, in seconds.
    pub ttl_secs: (u64, u64),
    /// Pause between calls, in ms.
    pub pause_ms: (u64, u64),
    /// How long the contenders run.
    pub duration: Duration,
    /// The backends' request timeout.
    pub request_timeout: Duration,
    /// The backends' `api_server_skew`: `None` for one API server (zero),
    /// `Some(d)` behind a balancer (the library's default is 250 ms).
    pub api_server_skew: Option<Duration>,
    /// Seed of the random choices.
    pub seed: u64,
    /// Faults, by time since the start.
    pub faults: Vec<(Duration, Fault)>,
    /// Write every call to this file (JSON lines) and check the calls'
    /// [linearizability](crate::linearizability).
    pub history: Option<PathBuf>,
}

/// The contenders' owner names, and the skews of those that have one.
pub fn owners(run: &Contention) -> Vec<(String, Option<String>)> {
    let mut owners = Vec::new();
    owners.extend((0..run.in_process).map(|i| (format!("direct-{i}"), None)));
    owners.extend((0..run.proxied).map(|i| (format!("proxied-{i}"), None)));
    owners.extend((0..run.processes).map(|i| (format!("process-{i}"), None)));
    owners.extend(
        run.skews
            .iter()
            .map(|s| (format!("skewed{s}"), Some(s.clone()))),
    );
    owners
}

/// Runs the contenders, injects the faults, checks the logs and cleans up.
pub async fn contention(
    run: &Contention,
    control_plane: Option<Arc<ControlPlane>>,
) -> Result<Outcome> {
    if !run.skews.is_empty() {
        process::faketime_library()?;
    }
    let upstream = cluster::server_addr(&run.kubeconfig)?;
    let mut proxies = Vec::new();
    for _ in 0..run.proxied {
        proxies.push(Proxy::start(upstream).await?);
    }
    let keys: Vec<String> = (0..run.keys)
        .map(|i| format!("reliability/key-{i}"))
        .collect();
    let plan = |owner: &str, n: usize| Plan {
        owner: owner.to_owned(),
        keys: keys.clone(),
        ttl_secs: run.ttl_secs,
        duration: run.duration,
        pause_ms: run.pause_ms,
        seed: run.seed.wrapping_mul(1_000).wrapping_add(n as u64),
        mode: Mode::Mix,
    };

    let mut tasks: JoinSet<Result<Vec<Line>>> = JoinSet::new();
    let mut children = Vec::new();
    for (n, (owner, skew)) in owners(run).into_iter().enumerate() {
        let plan = plan(&owner, n);
        let proxied = n.checked_sub(run.in_process).filter(|i| *i < run.proxied);
        if n < run.in_process + run.proxied {
            let connect = Connect {
                server_port: proxied.map(|i| proxies[i].port()),
                ignore_cert_validity_period: false,
            };
            let (kubeconfig, namespace, timeout, api_server_skew) = (
                run.kubeconfig.clone(),
                run.namespace.clone(),
                run.request_timeout,
                run.api_server_skew,
            );
            tasks.spawn(async move {
                let client = cluster::client(&kubeconfig, &connect).await?;
                let backend =
                    cluster::contender_backend(client, &namespace, timeout, api_server_skew)?;
                let mut lines = Vec::new();
                contender::run(&backend, &plan, &mut |line| lines.push(line)).await;
                Ok(lines)
            });
        } else {
            children.push(process::Contender::spawn(&Spawn {
                exe: run.exe.clone(),
                kubeconfig: run.kubeconfig.clone(),
                server_port: None,
                namespace: run.namespace.clone(),
                request_timeout: run.request_timeout,
                plan,
                skew,
                fake_monotonic: false,
                api_server_skew: run.api_server_skew,
            })?);
        }
    }

    let mut outcome = Outcome::default();
    let start = tokio::time::Instant::now();
    for (at, fault) in &run.faults {
        tokio::time::sleep_until(start + *at).await;
        let began = mono_ns();
        let done = inject(fault, &proxies, control_plane.clone()).await;
        let outage_ms = (mono_ns() - began) / 1_000_000;
        outcome
            .timeline
            .push((began, mono_ns(), format!("{fault:?}")));
        match done {
            Ok(window) => {
                outcome.quorum_lost.extend(window);
                if let Fault::Skew { apiserver, millis } = fault {
                    outcome
                        .clock_offsets
                        .entry((*apiserver).to_owned())
                        .or_default()
                        .push(*millis);
                }
                *outcome.faults.entry(fault.kind()).or_default() += 1;
                let longest = outcome.longest_outage_ms.entry(fault.kind()).or_default();
                *longest = (*longest).max(outage_ms);
            }
            Err(e) => outcome
                .problems
                .push(format!("injecting {fault:?} failed: {e}")),
        }
    }

    let faults_over = mono_ns();
    let grace = run.duration + Duration::from_secs(60);
    let mut lines = Vec::new();
    while let Some(joined) = tokio::time::timeout(grace, tasks.join_next())
        .await
        .map_err(|_| "in-process contenders did not stop")?
    {
        match joined {
            Ok(Ok(mut l)) => lines.append(&mut l),
            Ok(Err(e)) => outcome
                .problems
                .push(format!("in-process contender failed: {e}")),
            Err(e) => outcome
                .problems
                .push(format!("in-process contender panicked: {e}")),
        }
    }
    let mut finished = Vec::new();
    for child in children {
        let skew = child.skew.clone();
        finished.push((child.finish(grace).await?, skew));
    }
    drop(proxies);
    for (child, skew) in &finished {
        check_child(child, skew.as_deref(), &mut outcome);
        lines.extend(child.lines.iter().cloned());
    }
    outcome.figures = checker::check(&lines);
    if let Some(path) = &run.history {
        let records = history::records(&lines);
        history::write(path, &records)?;
        eprintln!(
            "{} calls written to {}; checking their linearizability",
            records.len(),
            path.display()
        );
        let report = linearizability::check(&records, linearizability::Settings::default());
        eprintln!("{report}");
        outcome.linearizability = Some(report);
    }
    for line in &lines {
        let Line::Op(r) = line else { continue };
        let sent_inside = outcome
            .quorum_lost
            .iter()
            .any(|(from, to)| r.sent_ns >= *from && r.sent_ns <= *to);
        if sent_inside && matches!(r.outcome, Answer::Error { .. }) {
            outcome.errors_sent_without_quorum += 1;
        }
        if !matches!(r.op, Op::TryAcquire | Op::Renew) {
            continue;
        }
        let inside = outcome
            .quorum_lost
            .iter()
            .any(|(from, to)| r.sent_ns >= *from && r.recv_ns <= *to);
        if inside {
            outcome.calls_without_quorum += 1;
            if r.outcome == Answer::True {
                outcome.ok_true_without_quorum.push(format!("{r:?}"));
            }
        }
    }
    outcome.ok_true_after_faults = lines
        .iter()
        .filter(
            |l| matches!(l, Line::Op(r) if r.recv_ns > faults_over && r.outcome == Answer::True),
        )
        .count() as u64;
    let owner_names: Vec<String> = owners(run).into_iter().map(|(o, _)| o).collect();
    clean_up(&run.kubeconfig, &run.namespace, &owner_names, &mut outcome).await?;
    Ok(outcome)
}

/// Injects `fault`; for a quorum loss, returns the monotonic window in
/// which etcd had no quorum.
async fn inject(
    fault: &Fault,
    proxies: &[Proxy],
    cp: Option<Arc<ControlPlane>>,
) -> Result<Option<(u64, u64)>> {
    let needs_cp = || {
        cp.clone()
            .ok_or("this fault needs a control plane of the run's own")
    };
    match fault {
        Fault::Kill(process) => {
            let cp = needs_cp()?;
            let process = *process;
            // ControlPlane panics on failure; the blocking task turns that into an Err.
            tokio::task::spawn_blocking(move || {
                cp.kill(process);
                std::thread::sleep(Duration::from_millis(500));
                if process.contains('-') {
                    cp.start_process(process);
                } else {
                    cp.repair();
                }
            })
            .await?;
            Ok(None)
        }
        Fault::QuorumLoss { members, lasting } => {
            let cp = needs_cp()?;
            let (members, lasting) = (*members, *lasting);
            let window = tokio::task::spawn_blocking(move || {
                for member in members {
                    cp.kill(member);
                }
                let from = mono_ns();
                std::thread::sleep(lasting);
                let to = mono_ns();
                for member in members {
                    cp.start_process(member);
                }
                (from, to)
            })
            .await?;
            Ok(Some(window))
        }
        Fault::Skew { apiserver, millis } => {
            let cp = needs_cp()?;
            let (apiserver, millis) = (*apiserver, *millis);
            tokio::task::spawn_blocking(move || cp.skew(apiserver, millis)).await?;
            // The offset file is re-read at most every 100 ms.
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(None)
        }
        Fault::Blackhole { proxy, lasting } => {
            let proxy = proxies.get(*proxy).ok_or("no such proxy")?;
            proxy.blackhole(true);
            tokio::time::sleep(*lasting).await;
            proxy.blackhole(false);
            Ok(None)
        }
    }
}

/// From `first` on, every `every`: an API server kill, a partition of the
/// first proxied contender, an etcd kill and a partition of the second, in
/// turn (see [`cycled`]).
pub fn fault_schedule(
    duration: Duration,
    first: Duration,
    every: Duration,
) -> Vec<(Duration, Fault)> {
    let cycle = [
        Fault::Kill("kube-apiserver"),
        Fault::Blackhole {
            proxy: 0,
            lasting: Duration::from_secs(4),
        },
        Fault::Kill("etcd"),
        Fault::Blackhole {
            proxy: 1,
            lasting: Duration::from_secs(4),
        },
    ];
    cycled(&cycle, duration, first, every)
}

/// The faults of `cycle` in turn, from `first` on, every `every`; none in
/// the last 6 s of `duration` (the longest TTL and some).
pub fn cycled(
    cycle: &[Fault],
    duration: Duration,
    first: Duration,
    every: Duration,
) -> Vec<(Duration, Fault)> {
    let times = std::iter::successors(Some(first), |at| Some(*at + every))
        .take_while(|at| *at + Duration::from_secs(6) < duration);
    times.zip(cycle.iter().cycle().cloned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_come_in_turn_and_none_in_the_last_seconds() {
        let secs = Duration::from_secs;
        let faults = fault_schedule(secs(40), secs(10), secs(5));
        let at: Vec<u64> = faults.iter().map(|(at, _)| at.as_secs()).collect();
        assert_eq!(at, [10, 15, 20, 25, 30]);
        let kinds: Vec<&str> = faults.iter().map(|(_, fault)| fault.kind()).collect();
        assert_eq!(kinds[4], kinds[0]);
        assert_ne!(kinds[1], kinds[0]);
        assert!(cycled(&[], secs(40), secs(10), secs(5)).is_empty());
    }
}
