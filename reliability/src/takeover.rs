//! A holder process is SIGKILLed; a contender with a skewed wall clock must
//! take the lock over within TTL + 2 s, and not before the holder's claim
//! ended.

use std::path::Path;
use std::time::Duration;

use crate::checker::{self, Figures};
use crate::contender::{Mode, Plan};
use crate::mono::mono_ns;
use crate::outcome::{check_child, check_killed_child, clean_up, Outcome};
use crate::process::{self, Spawn};
use crate::record::{Line, Op, Outcome as Answer};
use crate::Result;

/// TTL of the killed holder's lock, in seconds.
pub const TTL_SECS: u64 = 3;
/// How long after the kill the takeover may come, beyond the TTL.
pub const SLACK: Duration = Duration::from_secs(2);

/// One trial.
#[derive(Clone, Debug)]
pub struct Trial {
    /// The holder's skew.
    pub holder_skew: Option<String>,
    /// The taker's skew.
    pub taker_skew: Option<String>,
    /// From the SIGKILL to the taker's `Ok(true)`.
    pub after_kill: Duration,
    /// From the holder's last successful renewal being sent to the taker's
    /// `Ok(true)`: at least the TTL.
    pub after_last_renewal: Duration,
    /// The logs' figures (violations must be empty).
    pub outcome: Outcome,
}

impl Trial {
    /// Taken over in time, without overlap, without problems.
    pub fn clean(&self) -> bool {
        self.outcome.clean()
            && self.after_kill <= Duration::from_secs(TTL_SECS) + SLACK
            && self.after_last_renewal >= Duration::from_secs(TTL_SECS)
    }

    /// `-1h → +1h`.
    pub fn label(&self) -> String {
        let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "unskewed".to_owned());
        format!("{} → {}", name(&self.holder_skew), name(&self.taker_skew))
    }
}

/// The trials of the checks: each skew takes over from the other and from
/// an unskewed holder.
pub async fn trials(kubeconfig: &Path, namespace: &str, exe: &Path) -> Result<Vec<Trial>> {
    let cases = [
        (Some("-1h"), Some("+1h")),
        (Some("+1h"), Some("-1h")),
        (None, Some("+1h")),
        (None, Some("-1h")),
    ];
    // Concurrently, each on its own key.
    let mut tasks = tokio::task::JoinSet::new();
    for (n, (holder, taker)) in cases.into_iter().enumerate() {
        let (kubeconfig, namespace, exe) =
            (kubeconfig.to_owned(), namespace.to_owned(), exe.to_owned());
        tasks.spawn(async move {
            let key = format!("reliability/takeover-{n}");
            let trial = killed_holder(
                &kubeconfig,
                &namespace,
                &exe,
                &key,
                holder.map(str::to_owned),
                taker.map(str::to_owned),
            )
            .await;
            (n, trial)
        });
    }
    let mut trials = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, trial) = joined?;
        trials.push((n, trial?));
    }
    trials.sort_by_key(|(n, _)| *n);
    Ok(trials.into_iter().map(|(_, t)| t).collect())
}

/// Runs one trial on `key`.
pub async fn killed_holder(
    kubeconfig: &Path,
    namespace: &str,
    exe: &Path,
    key: &str,
    holder_skew: Option<String>,
    taker_skew: Option<String>,
) -> Result<Trial> {
    let spawn = |owner: &str, mode, skew: Option<String>| Spawn {
        exe: exe.to_owned(),
        kubeconfig: kubeconfig.to_owned(),
        server_port: None,
        namespace: namespace.to_owned(),
        request_timeout: Duration::from_secs(2),
        plan: Plan {
            owner: owner.to_owned(),
            keys: vec![key.to_owned()],
            ttl_secs: (TTL_SECS, TTL_SECS),
            duration: Duration::from_secs(30),
            pause_ms: (50, 50),
            seed: 7,
            mode,
        },
        skew,
        fake_monotonic: false,
        api_server_skew: None,
    };
    let tag = key.rsplit('-').next().unwrap_or_default();
    let holder_name = format!("holder-{tag}");
    let taker_name = format!("taker-{tag}");
    let mut holder =
        process::Contender::spawn(&spawn(&holder_name, Mode::Hold, holder_skew.clone()))?;
    holder
        .wait_for(Duration::from_secs(20), |l| is_true(l, Op::Renew))
        .await?;
    let taker = process::Contender::spawn(&spawn(&taker_name, Mode::Take, taker_skew.clone()))?;
    // The taker is connected and has been refused at least once.
    taker
        .wait_for(
            Duration::from_secs(20),
            |l| matches!(l, Line::Op(r) if r.outcome == Answer::False),
        )
        .await?;
    let killed_at = mono_ns();
    holder.kill()?;
    let taken = taker
        .wait_for(
            Duration::from_secs(TTL_SECS) + SLACK + Duration::from_secs(10),
            |l| is_true(l, Op::TryAcquire),
        )
        .await?;
    let taken_at = match taken {
        Line::Op(r) => r.recv_ns,
        _ => killed_at,
    };
    let holder = holder.finish(Duration::from_secs(5)).await?;
    let taker = taker.finish(Duration::from_secs(10)).await?;

    let mut outcome = Outcome::default();
    check_killed_child(&holder, holder_skew.as_deref(), &mut outcome);
    check_child(&taker, taker_skew.as_deref(), &mut outcome);
    let mut lines = holder.lines;
    lines.extend(taker.lines);
    outcome.figures = checker::check(&lines);
    clean_up(
        kubeconfig,
        namespace,
        &[holder_name.clone(), taker_name],
        &mut outcome,
    )
    .await?;
    // Other trials' Leases may still be there; only this key's matter.
    let lease = celers_kube_lease::lease_name(key);
    outcome.leftover.retain(|name| *name == lease);
    let last_renewal = lines
        .iter()
        .filter_map(|l| match l {
            Line::Op(r) if r.owner == holder_name && r.outcome == Answer::True => Some(r.sent_ns),
            _ => None,
        })
        .max()
        .unwrap_or(killed_at);
    Ok(Trial {
        holder_skew,
        taker_skew,
        after_kill: Duration::from_nanos(taken_at.saturating_sub(killed_at)),
        after_last_renewal: Duration::from_nanos(taken_at.saturating_sub(last_renewal)),
        outcome,
    })
}

fn is_true(line: &Line, op: Op) -> bool {
    matches!(line, Line::Op(r) if r.op == op && r.outcome == Answer::True)
}

/// The trials' logs, merged.
pub fn figures(trials: &[Trial]) -> Figures {
    let mut all = Figures::default();
    for t in trials {
        let f = &t.outcome.figures;
        all.contenders += f.contenders;
        all.keys += f.keys;
        for (op, c) in &f.by_op {
            let e = all.by_op.entry(*op).or_default();
            e.calls += c.calls;
            e.ok_true += c.ok_true;
            e.ok_false += c.ok_false;
            e.ok_other += c.ok_other;
            e.errors += c.errors;
        }
        all.violations.extend(f.violations.iter().cloned());
        all.lost.extend(f.lost.iter().cloned());
        all.read_mismatches
            .extend(f.read_mismatches.iter().cloned());
    }
    all
}
