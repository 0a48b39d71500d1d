//! The contention run: contenders in this process and in child processes,
//! some with skewed clocks, some behind proxies, on a few keys, with faults
//! injected on a schedule; then the checks and the clean-up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease_testkit::ControlPlane;
use tokio::task::JoinSet;

use crate::checker::{self, Figures};
use crate::cluster::{self, Connect};
use crate::contender::{self, Mode, Plan};
use crate::mono::{mono_ns, wall_offset_ms, wall_unix_ms};
use crate::process::{self, Finished, Spawn};
use crate::proxy::Proxy;
use crate::record::{Line, Op, Outcome as Answer};
use crate::table::Report;
use crate::{bad_input, foreign, takeover, Result};

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
}

/// A skew as seen by the checker.
#[derive(Clone, Debug)]
pub struct SkewSeen {
    /// The contender.
    pub owner: String,
    /// The skew asked for.
    pub asked: String,
    /// Its wall clock minus ours, measured.
    pub measured_ms: i64,
}

/// What a contention run found.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// What the logs show.
    pub figures: Figures,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Longest outage of each kind, in ms.
    pub longest_outage_ms: BTreeMap<&'static str, u64>,
    /// The skewed contenders' clocks.
    pub skews: Vec<SkewSeen>,
    /// Leases of this crate left after the final `release_all` of every owner.
    pub leftover: Vec<String>,
    /// Anything else that went wrong: crashes, panics, a wrong skew.
    pub problems: Vec<String>,
    /// `Ok(true)` answers after the last fault was over: the locks work again.
    pub ok_true_after_faults: u64,
    /// Monotonic windows in which etcd had no quorum (from the second
    /// member's death to just before the restarts began).
    pub quorum_lost: Vec<(u64, u64)>,
    /// `try_acquire`/`renew` calls sent and answered inside such a window.
    pub calls_without_quorum: u64,
    /// Those of them that answered `Ok(true)`: must be none.
    pub ok_true_without_quorum: Vec<String>,
    /// Calls of any kind sent inside such a window that answered `Err`
    /// (whenever the answer came): the loss was noticed.
    pub errors_sent_without_quorum: u64,
    /// The library's warnings that API servers' clocks disagree by more than
    /// `api_server_skew`, as logged by the contender processes.
    pub skew_warnings: u64,
    /// The clock offsets set, in ms, per API server, in order.
    pub clock_offsets: BTreeMap<String, Vec<i64>>,
    /// Every fault injected: monotonic start and end, and what it was, for
    /// lining figures up with them (same time base as the checker's ms).
    pub timeline: Vec<(u64, u64, String)>,
}

impl Outcome {
    /// No violation, no lost lock, no problem, nothing left behind.
    pub fn clean(&self) -> bool {
        self.figures.clean()
            && self.problems.is_empty()
            && self.leftover.is_empty()
            && self.ok_true_without_quorum.is_empty()
    }

    /// Panics, naming what went wrong, unless the run was [`clean`](Self::clean).
    pub fn assert_clean(&self) {
        let f = &self.figures;
        assert!(
            f.violations.is_empty(),
            "overlapping holders: {:#?}",
            f.violations
        );
        assert!(f.lost.is_empty(), "locks lost: {:#?}", f.lost);
        assert!(f.read_mismatches.is_empty(), "{:#?}", f.read_mismatches);
        assert!(self.problems.is_empty(), "{:#?}", self.problems);
        assert!(self.leftover.is_empty(), "left behind: {:?}", self.leftover);
        assert!(
            self.ok_true_without_quorum.is_empty(),
            "locks taken or renewed without etcd quorum: {:#?}",
            self.ok_true_without_quorum
        );
    }
}

/// The contenders' owner names.
fn owners(run: &Contention) -> Vec<(String, Option<String>)> {
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

/// A child must exit by itself, cleanly, without a panic, and show the skew
/// it was given.
pub fn check_child(child: &Finished, skew: Option<&str>, outcome: &mut Outcome) {
    if !child.status.success() {
        outcome.problems.push(format!(
            "contender {} exited with {}: {}",
            child.owner, child.status, child.stderr
        ));
    }
    if !child.lines.iter().any(|l| matches!(l, Line::Done { .. })) {
        outcome
            .problems
            .push(format!("contender {} did not finish its run", child.owner));
    }
    check_killed_child(child, skew, outcome);
}

/// What is left to check of a child that was killed: no panic, and the skew.
pub fn check_killed_child(child: &Finished, skew: Option<&str>, outcome: &mut Outcome) {
    outcome.skew_warnings += child
        .stderr
        .lines()
        .filter(|l| l.contains("clock disagrees with earlier answers"))
        .count() as u64;
    if child.stderr.contains("panicked") {
        outcome.problems.push(format!(
            "contender {} panicked: {}",
            child.owner, child.stderr
        ));
    }
    match measured_skew(&child.lines) {
        Some(measured_ms) => {
            let asked = skew.unwrap_or("+0");
            if let Err(e) = verify_skew(asked, measured_ms) {
                outcome
                    .problems
                    .push(format!("contender {}: {e}", child.owner));
            }
            if skew.is_some() {
                outcome.skews.push(SkewSeen {
                    owner: child.owner.clone(),
                    asked: asked.to_owned(),
                    measured_ms,
                });
            }
        }
        None => outcome
            .problems
            .push(format!("contender {} logged no start line", child.owner)),
    }
}

/// The child's wall clock minus this process's, from its start line.
pub fn measured_skew(lines: &[Line]) -> Option<i64> {
    lines.iter().find_map(|l| match l {
        Line::Start {
            wall_unix_ms: wall,
            mono_ns: mono,
            ..
        } => Some(wall_offset_ms(*wall, *mono) - wall_offset_ms(wall_unix_ms(), mono_ns())),
        _ => None,
    })
}

/// Checks a measured skew against a libfaketime offset (`+1h`, `-30m`, `+0`).
pub fn verify_skew(asked: &str, measured_ms: i64) -> Result<()> {
    let (number, unit) = asked.split_at(asked.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = number.trim_start_matches('+').parse()?;
    let unit_ms = match unit {
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("unknown unit in skew {asked:?}").into()),
    };
    let expected = n * unit_ms;
    if (measured_ms - expected).abs() > 5_000 {
        return Err(format!(
            "its wall clock is {:.1} s off ours, but it was to be skewed by {asked}: \
             is libfaketime working?",
            measured_ms as f64 / 1e3
        )
        .into());
    }
    Ok(())
}

/// A final `release_all` per owner must leave no Lease of this crate.
pub async fn clean_up(
    kubeconfig: &Path,
    namespace: &str,
    owners: &[String],
    outcome: &mut Outcome,
) -> Result<()> {
    let client = cluster::client(kubeconfig, &Connect::default()).await?;
    let backend = cluster::backend(client.clone(), namespace, Duration::from_secs(10))?;
    for owner in owners {
        let mut last = None;
        for _ in 0..5 {
            match backend.release_all(owner).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Some(e) = last {
            outcome
                .problems
                .push(format!("final release_all({owner}) failed: {e}"));
        }
    }
    outcome.leftover = cluster::our_leases(&client, namespace).await?;
    Ok(())
}

/// The long form: everything on a control plane of its own, for `duration`.
pub async fn long_form(exe: &Path, duration: Duration, seed: u64) -> Result<Report> {
    eprintln!("starting a control plane of its own");
    let cp =
        Arc::new(tokio::task::spawn_blocking(|| ControlPlane::start("reliability-long")).await?);
    let kubeconfig = cp.cluster().kubeconfig.clone();
    let client = cluster::client(&kubeconfig, &Connect::default()).await?;
    let namespace = cluster::create_namespace(&client, "reliability-long").await?;
    let run = Contention {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
        exe: exe.to_owned(),
        in_process: 3,
        proxied: 2,
        processes: 2,
        skews: vec!["+1h".to_owned(), "-1h".to_owned()],
        keys: 4,
        ttl_secs: (1, 3),
        pause_ms: (20, 100),
        duration,
        request_timeout: Duration::from_secs(2),
        api_server_skew: None,
        seed,
        faults: fault_schedule(duration, Duration::from_secs(10), Duration::from_secs(15)),
    };
    eprintln!(
        "contention: {} contenders on {} keys for {duration:?}, {} faults",
        owners(&run).len(),
        run.keys,
        run.faults.len()
    );
    let contention = contention(&run, Some(cp.clone())).await?;
    eprintln!("killed-holder takeovers by skewed contenders");
    let takeovers = takeover::trials(&kubeconfig, &namespace, exe).await?;
    eprintln!("bad input");
    let bad_input = bad_input::run(&kubeconfig).await?;
    eprintln!("foreign objects");
    let foreign = foreign::run(&kubeconfig).await?;
    Ok(Report {
        duration,
        contenders: format!(
            "{} in-process with their own clients, {} of them behind proxies; {} processes, {} of them \
             with skewed wall clocks",
            run.in_process + run.proxied,
            run.proxied,
            run.processes + run.skews.len(),
            run.skews.len()
        ),
        contention,
        takeovers,
        bad_input,
        foreign,
    })
}

/// From `first` on, every `every`: an API server kill, a partition of the
/// first proxied contender, an etcd kill and a partition of the second, in
/// turn; none in the last 6 s (the longest TTL and some).
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
    let mut faults = Vec::new();
    let mut at = first;
    let mut i = 0;
    while at + Duration::from_secs(6) < duration {
        faults.push((at, cycle[i % cycle.len()].clone()));
        i += 1;
        at += every;
    }
    faults
}
