//! What the scenarios find, and the checks and the clean-up they share: the
//! contention run ([`scenario`](crate::scenario)) and the takeover trials
//! ([`takeover`](crate::takeover)) both end with them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::checker::Figures;
use crate::cluster::{self, Connect};
use crate::linearizability;
use crate::mono::{mono_ns, wall_offset_ms, wall_unix_ms};
use crate::process::Finished;
use crate::record::Line;
use crate::Result;

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
    /// The calls checked against the TTL lock specification, when the run
    /// recorded its history.
    pub linearizability: Option<linearizability::Report>,
}

impl Outcome {
    /// No violation, no lost lock, no problem, nothing left behind.
    pub fn clean(&self) -> bool {
        self.figures.clean()
            && self.problems.is_empty()
            && self.leftover.is_empty()
            && self.ok_true_without_quorum.is_empty()
            && self
                .linearizability
                .as_ref()
                .is_none_or(linearizability::Report::clean)
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
        if let Some(report) = &self.linearizability {
            assert!(report.clean(), "{report}");
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
