//! Turns contenders' logs into holding intervals and checks them.
//!
//! The claim rule: a contender that got `Ok(true)` from `try_acquire` or
//! `renew` holds the key from the moment the answer arrived until the moment
//! it sent that request plus the TTL minus [`MARGIN_NS`], or until it sends a
//! `release` (or `release_all`), whichever is first; a later success while
//! holding moves that end to its own `sent + TTL - margin`. Two owners'
//! intervals on one key must never overlap.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::record::{Line, Op, OpRecord, Outcome};
use crate::MARGIN_NS;

/// Answers to one kind of call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Calls made.
    pub calls: u64,
    /// `Ok(true)`.
    pub ok_true: u64,
    /// `Ok(false)`.
    pub ok_false: u64,
    /// Other `Ok` answers (`release_all`, `owner`).
    pub ok_other: u64,
    /// `Err`.
    pub errors: u64,
}

/// What a run's logs show.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// The monotonic time of the first call: the checker's messages count
    /// milliseconds from it.
    pub base_ns: u64,
    /// Distinct owners.
    pub contenders: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Answers per call.
    pub by_op: BTreeMap<Op, Counts>,
    /// Errors by variant.
    pub error_kinds: BTreeMap<String, u64>,
    /// Holding intervals.
    pub claims: u64,
    /// Changes of holder between consecutive intervals of a key.
    pub handovers: u64,
    /// Two owners holding one key at once. Must be empty.
    pub violations: Vec<String>,
    /// A holder told, while its claim ran, that it did not hold the lock.
    /// Must be empty.
    pub lost: Vec<String>,
    /// Of the answers in `lost`'s sense, those after which the holder's own
    /// `owner` read still named it ([`Line::Recheck`]): the library refused
    /// to renew in doubt, the Lease was neither gone nor taken. Expected only
    /// while API servers' clocks disagree by more than `api_server_skew`.
    pub refused_in_doubt: Vec<String>,
    /// `owner` named someone else while a claim ran. Must be empty.
    pub read_mismatches: Vec<String>,
    /// Claims that ran out while their holder's calls failed (the API
    /// server was unreachable for longer than the TTL). Expected under faults.
    pub ran_out_unreachable: u64,
}

impl Figures {
    /// Calls made.
    pub fn ops(&self) -> u64 {
        self.by_op.values().map(|c| c.calls).sum()
    }
    /// `Ok(true)` answers.
    pub fn ok_true(&self) -> u64 {
        self.by_op.values().map(|c| c.ok_true).sum()
    }
    /// `Ok(false)` answers.
    pub fn ok_false(&self) -> u64 {
        self.by_op.values().map(|c| c.ok_false).sum()
    }
    /// `Err` answers.
    pub fn errors(&self) -> u64 {
        self.by_op.values().map(|c| c.errors).sum()
    }
    /// Whether the run kept every promise.
    pub fn clean(&self) -> bool {
        self.violations.is_empty() && self.lost.is_empty() && self.read_mismatches.is_empty()
    }
}

#[derive(Clone, Debug)]
struct Interval {
    owner: String,
    start: u64,
    end: u64,
}

#[derive(Clone, Copy, Debug)]
struct Claim {
    start: u64,
    end: u64,
    errors_since: u32,
}

/// Checks the logs of every contender of a run.
pub fn check(lines: &[Line]) -> Figures {
    let mut figures = Figures::default();
    let mut by_owner: BTreeMap<&str, Vec<&OpRecord>> = BTreeMap::new();
    // (owner, key, when) of rechecks that found the owner still named.
    let mut still_named: Vec<(&str, &str, u64)> = Vec::new();
    let mut owners = BTreeSet::new();
    for line in lines {
        match line {
            Line::Start { owner, .. } | Line::WindowEnd { owner, .. } | Line::Done { owner } => {
                owners.insert(owner.as_str());
            }
            Line::Recheck {
                owner,
                key,
                mono_ns,
                holder,
            } => {
                owners.insert(owner.as_str());
                if holder
                    .as_ref()
                    .is_ok_and(|h| h.as_deref() == Some(owner.as_str()))
                {
                    still_named.push((owner.as_str(), key.as_str(), *mono_ns));
                }
            }
            Line::Op(record) => {
                owners.insert(record.owner.as_str());
                by_owner.entry(&record.owner).or_default().push(record);
            }
        }
    }
    figures.contenders = owners.len();
    let base = lines
        .iter()
        .filter_map(|line| match line {
            Line::Op(r) => Some(r.sent_ns),
            _ => None,
        })
        .min()
        .unwrap_or(0);
    figures.base_ns = base;
    let ms = |t: u64| (t.saturating_sub(base)) as f64 / 1e6;

    let mut intervals: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
    for (owner, mut records) in by_owner {
        records.sort_by_key(|r| r.sent_ns);
        let mut claims: HashMap<String, Claim> = HashMap::new();
        let mut close = |key: &str, claim: Claim, end: u64, figures: &mut Figures| {
            let end = end.min(claim.end);
            if end > claim.start {
                intervals.entry(key.to_owned()).or_default().push(Interval {
                    owner: owner.to_owned(),
                    start: claim.start,
                    end,
                });
            }
            if claim.end <= end && claim.errors_since > 0 {
                figures.ran_out_unreachable += 1;
            }
        };
        for r in records {
            count(&mut figures, r);
            let key = r.key.clone().unwrap_or_default();
            // Claims that ran out before this call was sent.
            let ran_out: Vec<String> = claims
                .iter()
                .filter(|(_, c)| c.end <= r.sent_ns)
                .map(|(k, _)| k.clone())
                .collect();
            for k in ran_out {
                if let Some(c) = claims.remove(&k) {
                    close(&k, c, c.end, &mut figures);
                }
            }
            let live = claims.get(&key).filter(|c| c.end > r.recv_ns).copied();
            let what = || {
                format!(
                    "{owner} {} {key:?} sent at {:.1} ms answered {:?} at {:.1} ms, claim until {:.1} ms",
                    r.op,
                    ms(r.sent_ns),
                    r.outcome,
                    ms(r.recv_ns),
                    live.map_or(0.0, |c| ms(c.end)),
                )
            };
            match (r.op, &r.outcome) {
                (Op::TryAcquire | Op::Renew, Outcome::True) => {
                    let end = (r.sent_ns + r.ttl_secs * 1_000_000_000).saturating_sub(MARGIN_NS);
                    match claims.get_mut(&key) {
                        // The Lease now expires `ttl` after this write: the
                        // claim ends with it, even if that is sooner.
                        Some(c) if c.end >= r.recv_ns => {
                            c.end = end;
                            c.errors_since = 0;
                        }
                        _ => {
                            if let Some(old) = claims.remove(&key) {
                                close(&key, old, old.end, &mut figures);
                            }
                            if end > r.recv_ns {
                                claims.insert(
                                    key.clone(),
                                    Claim {
                                        start: r.recv_ns,
                                        end,
                                        errors_since: 0,
                                    },
                                );
                            }
                        }
                    }
                }
                (Op::TryAcquire | Op::Renew, Outcome::False) if live.is_some() => {
                    // The recheck follows the answer at once (within 2 s).
                    let rechecked = still_named.iter().any(|(o, k, at)| {
                        *o == owner
                            && *k == key
                            && *at >= r.recv_ns
                            && *at <= r.recv_ns + 2_000_000_000
                    });
                    if rechecked {
                        figures.refused_in_doubt.push(what());
                    } else {
                        figures.lost.push(what());
                    }
                }
                (Op::TryAcquire | Op::Renew, Outcome::Error { .. }) => {
                    if let Some(c) = claims.get_mut(&key) {
                        c.errors_since += 1;
                    }
                }
                (Op::Release, outcome) => {
                    if live.is_some() && *outcome == Outcome::False {
                        figures.lost.push(what());
                    }
                    if let Some(c) = claims.remove(&key) {
                        close(&key, c, r.sent_ns, &mut figures);
                    }
                }
                (Op::ReleaseAll, outcome) => {
                    let live_claims = claims.values().filter(|c| c.end > r.recv_ns).count();
                    if let Outcome::Count { n } = outcome {
                        if (*n as usize) < live_claims {
                            figures.lost.push(format!(
                                "{owner} release_all sent at {:.1} ms deleted {n} Leases \
                                 while it held {live_claims}",
                                ms(r.sent_ns)
                            ));
                        }
                    }
                    for (k, c) in std::mem::take(&mut claims) {
                        close(&k, c, r.sent_ns, &mut figures);
                    }
                }
                (Op::Owner, Outcome::Holder { holder })
                    if live.is_some() && holder.as_deref() != Some(owner) =>
                {
                    figures.read_mismatches.push(what());
                }
                _ => {}
            }
        }
        for (k, c) in std::mem::take(&mut claims) {
            close(&k, c, c.end, &mut figures);
        }
    }

    figures.keys = intervals.len().max(
        lines
            .iter()
            .filter_map(|l| match l {
                Line::Op(r) => r.key.as_deref(),
                _ => None,
            })
            .collect::<BTreeSet<_>>()
            .len(),
    );
    for (key, mut list) in intervals {
        list.sort_by_key(|i| i.start);
        figures.claims += list.len() as u64;
        figures.handovers += list.windows(2).filter(|w| w[0].owner != w[1].owner).count() as u64;
        let mut latest: HashMap<&str, &Interval> = HashMap::new();
        for i in &list {
            for (other, j) in &latest {
                if *other != i.owner && j.end > i.start {
                    figures.violations.push(format!(
                        "key {key:?}: {} held [{:.1}, {:.1}] ms and {} held [{:.1}, {:.1}] ms",
                        j.owner,
                        ms(j.start),
                        ms(j.end),
                        i.owner,
                        ms(i.start),
                        ms(i.end)
                    ));
                }
            }
            let entry = latest.entry(i.owner.as_str()).or_insert(i);
            if i.end > entry.end {
                *entry = i;
            }
        }
    }
    figures
}

fn count(figures: &mut Figures, r: &OpRecord) {
    let counts = figures.by_op.entry(r.op).or_default();
    counts.calls += 1;
    match &r.outcome {
        Outcome::True => counts.ok_true += 1,
        Outcome::False => counts.ok_false += 1,
        Outcome::Count { .. } | Outcome::Holder { .. } => counts.ok_other += 1,
        Outcome::Error { error, .. } => {
            counts.errors += 1;
            *figures.error_kinds.entry(error.clone()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn op(
        owner: &str,
        op: Op,
        key: &str,
        ttl: u64,
        sent: u64,
        recv: u64,
        outcome: Outcome,
    ) -> Line {
        Line::Op(OpRecord {
            owner: owner.into(),
            op,
            key: (op != Op::ReleaseAll).then(|| key.into()),
            ttl_secs: ttl,
            sent_ns: sent,
            recv_ns: recv,
            outcome,
        })
    }

    #[test]
    fn handover_after_expiry_is_clean() {
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                2,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op(
                "b",
                Op::TryAcquire,
                "k",
                2,
                11 * S,
                11 * S + 5,
                Outcome::False,
            ),
            op(
                "b",
                Op::TryAcquire,
                "k",
                2,
                12 * S,
                12 * S + 5,
                Outcome::True,
            ),
        ];
        let f = check(&lines);
        assert!(f.clean(), "{f:?}");
        assert_eq!((f.claims, f.handovers, f.ops()), (2, 1, 3));
    }

    #[test]
    fn overlapping_holders_are_violations() {
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                2,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op(
                "b",
                Op::TryAcquire,
                "k",
                2,
                11 * S,
                11 * S + 5,
                Outcome::True,
            ),
        ];
        assert_eq!(check(&lines).violations.len(), 1);
    }

    #[test]
    fn a_release_ends_the_claim_when_sent() {
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                3,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op("a", Op::Release, "k", 0, 11 * S, 11 * S + 5, Outcome::True),
            op(
                "b",
                Op::TryAcquire,
                "k",
                3,
                11 * S + 1,
                11 * S + 3,
                Outcome::True,
            ),
        ];
        assert!(check(&lines).clean());
    }

    #[test]
    fn release_all_ends_every_claim() {
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                3,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op(
                "a",
                Op::TryAcquire,
                "j",
                3,
                10 * S + 9,
                10 * S + 10,
                Outcome::True,
            ),
            op(
                "a",
                Op::ReleaseAll,
                "",
                0,
                11 * S,
                11 * S + 5,
                Outcome::Count { n: 2 },
            ),
            op(
                "b",
                Op::TryAcquire,
                "k",
                3,
                11 * S + 6,
                11 * S + 7,
                Outcome::True,
            ),
            op(
                "b",
                Op::TryAcquire,
                "j",
                3,
                11 * S + 8,
                11 * S + 9,
                Outcome::True,
            ),
        ];
        let f = check(&lines);
        assert!(f.clean(), "{f:?}");
        assert_eq!(f.handovers, 2);
    }

    #[test]
    fn a_refused_renew_during_the_claim_is_a_lost_lock() {
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                3,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op("a", Op::Renew, "k", 3, 11 * S, 11 * S + 5, Outcome::False),
        ];
        assert_eq!(check(&lines).lost.len(), 1);
    }

    #[test]
    fn a_claim_that_runs_out_after_errors_is_counted_apart() {
        let error = Outcome::Error {
            error: "Timeout".into(),
            message: String::new(),
        };
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                2,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op("a", Op::Renew, "k", 2, 11 * S, 12 * S, error),
            op("a", Op::Renew, "k", 2, 13 * S, 13 * S + 5, Outcome::False),
        ];
        let f = check(&lines);
        assert!(f.clean(), "{f:?}");
        assert_eq!(f.ran_out_unreachable, 1);
    }

    #[test]
    fn reads_must_name_the_holder() {
        let lines = vec![
            op(
                "a",
                Op::TryAcquire,
                "k",
                3,
                10 * S,
                10 * S + 5,
                Outcome::True,
            ),
            op(
                "a",
                Op::Owner,
                "k",
                0,
                11 * S,
                11 * S + 5,
                Outcome::Holder { holder: None },
            ),
        ];
        assert_eq!(check(&lines).read_mismatches.len(), 1);
    }
}
