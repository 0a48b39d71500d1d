//! The highly available topology (`hack/control-plane.sh`, `CONTROL_PLANE_TOPOLOGY=ha`):
//! three etcd members, several kube-apiservers with adjustable clocks and
//! HAProxy in front, in http mode so that consecutive requests of one
//! client reach different API servers. The contention run of [`scenario`]
//! on it, with the backends' default `api_server_skew`, while one API
//! server's clock is moved within and beyond that bound, API servers and
//! etcd members are SIGKILLed, and quorum is lost and regained.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease_testkit::ControlPlane;

use crate::cluster::{self, Connect};
use crate::outcome::Outcome;
use crate::paused::{self, PausedTrials};
use crate::scenario::{self, Contention, Fault};
use crate::table::{self, markdown, per_op};
use crate::Result;

/// API servers the HA runs start.
pub const API_SERVERS: u32 = 3;
/// The API server whose clock is moved.
pub const SKEWED: &str = "kube-apiserver-1";
/// The library's default `api_server_skew`, which the HA contenders use.
pub const DEFAULT_API_SERVER_SKEW: Duration = Duration::from_millis(250);

/// Starts an HA control plane (3 etcd members, [`API_SERVERS`] API
/// servers, HAProxy in http mode); stopped when dropped.
pub async fn start_control_plane(name: &str) -> Result<Arc<ControlPlane>> {
    let name = name.to_owned();
    let cp =
        tokio::task::spawn_blocking(move || ControlPlane::start_ha(&name, API_SERVERS, "http"))
            .await?;
    Ok(Arc::new(cp))
}

/// From `first` on, every `every`, in turn: [`SKEWED`] +300 ms, SIGKILL of
/// `kube-apiserver-0`, [`SKEWED`] −300 ms, SIGKILL of `etcd-1`, [`SKEWED`]
/// +1500 ms (beyond the 250 ms bound), quorum loss (`etcd-1` and `etcd-2`
/// dead for `quorum_lost_for`), [`SKEWED`] back to 0. None in the last 6 s.
pub fn schedule(
    duration: Duration,
    first: Duration,
    every: Duration,
    quorum_lost_for: Duration,
) -> Vec<(Duration, Fault)> {
    let cycle = [
        Fault::Skew {
            apiserver: SKEWED,
            millis: 300,
        },
        Fault::Kill("kube-apiserver-0"),
        Fault::Skew {
            apiserver: SKEWED,
            millis: -300,
        },
        Fault::Kill("etcd-1"),
        Fault::Skew {
            apiserver: SKEWED,
            millis: 1_500,
        },
        Fault::QuorumLoss {
            members: ["etcd-1", "etcd-2"],
            lasting: quorum_lost_for,
        },
        Fault::Skew {
            apiserver: SKEWED,
            millis: 0,
        },
    ];
    let mut faults = scenario::cycled(&cycle, duration, first, every);
    // The clock back to 0 before the end, if a cycle was cut short.
    let last_skew = faults.iter().rev().find_map(|(_, f)| match f {
        Fault::Skew { millis, .. } => Some(*millis),
        _ => None,
    });
    if let (Some(millis), Some((last, _))) = (last_skew, faults.last()) {
        if millis != 0 {
            let at = (*last + Duration::from_secs(1)).min(duration);
            faults.push((
                at,
                Fault::Skew {
                    apiserver: SKEWED,
                    millis: 0,
                },
            ));
        }
    }
    faults
}

/// The contention run on the HA control plane `cp`.
pub async fn contention(
    cp: Arc<ControlPlane>,
    exe: &Path,
    duration: Duration,
    faults: Vec<(Duration, Fault)>,
    seed: u64,
    history: Option<PathBuf>,
) -> Result<Outcome> {
    let kubeconfig = cp.cluster().kubeconfig.clone();
    let client = cluster::client(&kubeconfig, &Connect::default()).await?;
    let namespace = cluster::create_namespace(&client, "reliability-ha").await?;
    let run = Contention {
        kubeconfig,
        namespace,
        exe: exe.to_owned(),
        in_process: 1,
        proxied: 0,
        processes: 4,
        skews: Vec::new(),
        keys: 3,
        ttl_secs: (1, 3),
        pause_ms: (20, 100),
        duration,
        request_timeout: Duration::from_secs(2),
        api_server_skew: Some(DEFAULT_API_SERVER_SKEW),
        seed,
        faults,
        history,
    };
    scenario::contention(&run, Some(cp)).await
}

/// The HA table's rows.
pub fn rows(outcome: &Outcome, paused: Option<&PausedTrials>) -> Vec<(String, String)> {
    let f = &outcome.figures;
    let count = |kind: &str| {
        outcome
            .faults
            .iter()
            .filter(|(k, _)| k.starts_with(kind))
            .map(|(_, n)| *n)
            .sum::<u64>()
            .to_string()
    };
    let offsets = if outcome.clock_offsets.is_empty() {
        "none".to_owned()
    } else {
        outcome
            .clock_offsets
            .iter()
            .map(|(server, ms)| {
                // Each distinct offset once, in order of first use, with how
                // often it was set.
                let mut seen: Vec<(i64, usize)> = Vec::new();
                for m in ms {
                    match seen.iter_mut().find(|(v, _)| v == m) {
                        Some((_, n)) => *n += 1,
                        None => seen.push((*m, 1)),
                    }
                }
                let seen: Vec<String> = seen
                    .iter()
                    .map(|(m, n)| format!("{m:+} ms ({n}×)"))
                    .collect();
                format!("{server}: {} (others 0)", seen.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut rows = vec![
        ("contenders".to_owned(), f.contenders.to_string()),
        (
            "operations".to_owned(),
            format!("{} ({})", f.ops(), per_op(f)),
        ),
        ("Ok(true)".to_owned(), f.ok_true().to_string()),
        ("errors".to_owned(), f.errors().to_string()),
        ("holdings (claims)".to_owned(), f.claims.to_string()),
        ("handovers".to_owned(), f.handovers.to_string()),
        (
            "API-server kills (behind the balancer)".to_owned(),
            count("kube-apiserver behind"),
        ),
        (
            "etcd member kills (quorum kept)".to_owned(),
            count("etcd member"),
        ),
        (
            "quorum losses (2 of 3 members)".to_owned(),
            count("two etcd"),
        ),
        (
            "calls inside quorum losses (Ok(true) among them)".to_owned(),
            format!(
                "{} ({})",
                outcome.calls_without_quorum,
                outcome.ok_true_without_quorum.len()
            ),
        ),
        (
            "calls sent inside quorum losses that answered Err".to_owned(),
            outcome.errors_sent_without_quorum.to_string(),
        ),
        ("clock offsets per API server".to_owned(), offsets),
        (
            "skew warnings (clocks disagree beyond api_server_skew)".to_owned(),
            outcome.skew_warnings.to_string(),
        ),
        (
            "Ok(true) after the last fault".to_owned(),
            outcome.ok_true_after_faults.to_string(),
        ),
        (
            "mutual-exclusion violations".to_owned(),
            f.violations.len().to_string(),
        ),
        (
            "locks lost (Lease gone or another holder while the claim ran)".to_owned(),
            f.lost.len().to_string(),
        ),
        (
            "renewals refused in doubt (Lease still names the holder)".to_owned(),
            f.refused_in_doubt.len().to_string(),
        ),
        (
            "other problems".to_owned(),
            outcome.problems.len().to_string(),
        ),
    ];
    rows.extend(table::linearizability_row(outcome));
    if let Some(p) = paused {
        rows.push((
            "paused scheduler leader (SIGSTOP > leader TTL, then SIGCONT)".to_owned(),
            format!(
                "{} pauses, {} instants fired, {} fired by a resumed leader",
                p.pauses, p.instants, p.fired_after_resume
            ),
        ));
        rows.push(("instants fired twice".to_owned(), p.double_runs.to_string()));
    }
    rows
}

/// The faults injected, in the checker's milliseconds.
pub fn timeline(outcome: &Outcome) -> String {
    let base = outcome.figures.base_ns;
    let ms = |t: u64| t.saturating_sub(base) as f64 / 1e6;
    outcome
        .timeline
        .iter()
        .map(|(from, to, what)| format!("{:>10.1} ms .. {:>10.1} ms  {what}", ms(*from), ms(*to)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `ha` found.
#[derive(Debug)]
pub struct Report {
    /// How long the contention ran.
    pub duration: Duration,
    /// The contention run.
    pub contention: Outcome,
    /// The paused scheduler replica, if the scheduler binary was there.
    pub paused: PausedTrials,
}

impl Report {
    /// No violation, no lost lock, no double run.
    pub fn clean(&self) -> bool {
        self.contention.clean() && self.paused.clean()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "HA control plane: 3 etcd members, {API_SERVERS} kube-apiservers behind HAProxy \
             (http mode); contention for {:?}, api_server_skew 250 ms",
            self.duration
        )?;
        writeln!(f)?;
        write!(
            f,
            "{}",
            markdown(&rows(&self.contention, Some(&self.paused)))
        )?;
        writeln!(f)?;
        writeln!(f, "{}", timeline(&self.contention))?;
        for problem in self.contention.problems.iter().chain(&self.paused.problems) {
            writeln!(f, "problem: {problem}")?;
        }
        for v in &self.contention.figures.violations {
            writeln!(f, "violation: {v}")?;
        }
        for l in &self.contention.figures.lost {
            writeln!(f, "lost: {l}")?;
        }
        if let Some(report) = &self.contention.linearizability {
            for v in report.violations() {
                writeln!(f, "linearizability violation: {v}")?;
            }
            for k in report.undecided() {
                writeln!(f, "linearizability of key {k:?} undecided (step budget)")?;
            }
        }
        Ok(())
    }
}

/// The long form: an HA control plane of its own; the contention run with
/// the [`schedule`] for `duration`, then paused-replica trials of the
/// example scheduler (`scheduler`, the `celers-kube-lease-scheduler`
/// binary) on the same control plane.
pub async fn long_form(
    exe: &Path,
    scheduler: &Path,
    duration: Duration,
    seed: u64,
    pauses: u32,
    history: Option<PathBuf>,
) -> Result<Report> {
    if !scheduler.is_file() {
        return Err(format!(
            "{} is missing: build it first (cargo build -p celers-kube-lease-scheduler)",
            scheduler.display()
        )
        .into());
    }
    eprintln!("starting an HA control plane of its own");
    let cp = start_control_plane("reliability-ha").await?;
    let faults = schedule(
        duration,
        Duration::from_secs(5),
        Duration::from_secs(10),
        Duration::from_secs(5),
    );
    eprintln!(
        "contention for {duration:?} with {} faults; then {pauses} paused-replica trials",
        faults.len()
    );
    let contention = contention(cp.clone(), exe, duration, faults, seed, history).await?;
    let kubeconfig: PathBuf = cp.cluster().kubeconfig.clone();
    let paused = paused::trials(scheduler, &kubeconfig, pauses).await?;
    drop(cp);
    Ok(Report {
        duration,
        contention,
        paused,
    })
}
