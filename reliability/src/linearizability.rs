//! Linearizability of real histories: whether every key's recorded calls
//! can be ordered, each at one instant within its call, so that the
//! [TTL lock specification](crate::ttl_lock) allows every answer.
//!
//! The search is Wing and Gong's, with Lowe's memo, per key (a lock's keys
//! are independent objects, so the history is linearizable iff each key's
//! is): depth first, it picks the next operation among those that may come
//! next (invoked before every pending one returned), at the earliest instant
//! the specification allows, and remembers each (calls placed, state) it
//! has been in, with the earliest instant, so it never searches the same
//! place twice. A search that needs more than its step budget ends
//! *undecided* rather than running on.
//!
//! A failed call may or may not have taken effect: the search leaves it out
//! unless the succeeded operations cannot be ordered otherwise, and then
//! places it (its successful form, once at most, from its invocation to
//! `late` after its error; a grant no later than the lock it would grant
//! is certainly over) right before a succeeded operation that it lets come
//! next: one failed call per step. This is sound (every order found is an
//! order of the history) but incomplete: a history that only two failed
//! calls in a row could explain is reported as a violation, with the
//! excerpt to judge it by.
//!
//! `release_all` is checked per key, without its count (the count is a sum
//! over keys) and without tying its instants on different keys together:
//! that makes the check weaker, never wrong.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use crate::history::{Answer, Call, History, Operation};
use crate::record::OpRecord;
use crate::ttl_lock::{Allowance, Lock};

/// How the checker judges.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The specification's time bounds.
    pub allowance: Allowance,
    /// Search steps (states expanded) per key before giving up.
    pub budget: u64,
    /// Refuse a `release` answered `Ok(true)` while another owner took and
    /// released the key (see [`Report::all_the_same`]).
    pub strict_release: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowance: Allowance::default(),
            budget: 5_000_000,
            strict_release: false,
        }
    }
}

/// One key's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An order exists.
    Linearizable,
    /// No order exists: an excerpt of the operations where every order
    /// got stuck.
    Violation(String),
    /// The step budget ran out: an excerpt of where the search got furthest.
    Undecided(String),
}

/// One key's history and verdict.
#[derive(Clone, Debug)]
pub struct KeyResult {
    /// The lock key.
    pub key: String,
    /// Its operations.
    pub operations: usize,
    /// Of which failed.
    pub errored: usize,
    /// States the search expanded.
    pub steps: u64,
    /// The verdict.
    pub verdict: Verdict,
}

/// What the checker found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The settings used.
    pub settings: Settings,
    /// Calls read.
    pub calls: u64,
    /// Calls that failed.
    pub errored: u64,
    /// Calls not in any key's history (`sweep_expired`, failed reads).
    pub left_out: u64,
    /// Operations over all keys' histories (a `release_all` once per key).
    pub operations: usize,
    /// Per key.
    pub keys: Vec<KeyResult>,
    /// `release` answered `Ok(true)` while another owner took the key
    /// (`Ok(true)` answered during it) and released it again (sent before
    /// the release was answered): the delete may have found the Lease gone
    /// after the other owner took and released it ("released all the
    /// same"), which the history cannot tell from the caller's own delete.
    /// Linearizable (the caller held the lock at the read that began its
    /// call); violations under `strict_release`.
    pub all_the_same: Vec<String>,
    /// Time the check took.
    pub elapsed: Duration,
}

impl Report {
    /// Keys without an order, with their excerpts (and, under
    /// `strict_release`, the releases in [`all_the_same`](Self::all_the_same)).
    pub fn violations(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .keys
            .iter()
            .filter_map(|k| match &k.verdict {
                Verdict::Violation(excerpt) => Some(format!("key {:?}: {excerpt}", k.key)),
                _ => None,
            })
            .collect();
        if self.settings.strict_release {
            found.extend(self.all_the_same.iter().cloned());
        }
        found
    }

    /// Keys whose search ran out of budget.
    pub fn undecided(&self) -> Vec<&str> {
        self.keys
            .iter()
            .filter(|k| matches!(k.verdict, Verdict::Undecided(_)))
            .map(|k| k.key.as_str())
            .collect()
    }

    /// Every key linearizable.
    pub fn clean(&self) -> bool {
        self.violations().is_empty() && self.undecided().is_empty()
    }

    /// One line of figures for a run's table.
    pub fn summary(&self) -> String {
        format!(
            "{} histories (keys), {} operations ({} errored), {} violations, {} undecided, \
             checked in {:.2} s",
            self.keys.len(),
            self.operations,
            self.keys.iter().map(|k| k.errored).sum::<usize>(),
            self.violations().len(),
            self.undecided().len(),
            self.elapsed.as_secs_f64()
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.settings.allowance;
        writeln!(
            f,
            "linearizability against a TTL lock per key (margin {} ms, slack {} ms, late effect {} ms{})",
            a.margin_ns / 1_000_000,
            a.slack_ns / 1_000_000,
            a.late_ns / 1_000_000,
            if self.settings.strict_release {
                ", strict release"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "calls {} ({} errored, {} left out); histories (keys) {}; operations {}",
            self.calls,
            self.errored,
            self.left_out,
            self.keys.len(),
            self.operations
        )?;
        for k in &self.keys {
            let verdict = match &k.verdict {
                Verdict::Linearizable => "linearizable",
                Verdict::Violation(_) => "VIOLATION",
                Verdict::Undecided(_) => "undecided (step budget)",
            };
            writeln!(
                f,
                "  {}: {} operations ({} errored), {verdict}, {} steps",
                k.key, k.operations, k.errored, k.steps
            )?;
        }
        writeln!(
            f,
            "releases true while another owner took and released the key (released all the same): {}",
            self.all_the_same.len()
        )?;
        writeln!(
            f,
            "violations {}, undecided {}, time {:.2} s",
            self.violations().len(),
            self.undecided().len(),
            self.elapsed.as_secs_f64()
        )?;
        for v in self.violations() {
            writeln!(f, "violation: {v}")?;
        }
        for k in &self.keys {
            if let Verdict::Undecided(excerpt) = &k.verdict {
                writeln!(f, "undecided: key {:?}: {excerpt}", k.key)?;
            }
        }
        Ok(())
    }
}

/// Checks the calls of a run.
pub fn check(records: &[OpRecord], settings: Settings) -> Report {
    let started = Instant::now();
    let history = History::of(records);
    let keys: Vec<(&String, &Vec<Operation>)> = history.keys.iter().collect();
    // Keys are independent: one thread each.
    let results: Vec<KeyResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .iter()
            .map(|(key, ops)| {
                let history = &history;
                scope.spawn(move || check_key(history, key, ops, settings))
            })
            .collect();
        handles
            .into_iter()
            .zip(&keys)
            .map(|(h, (key, ops))| {
                h.join().unwrap_or_else(|_| KeyResult {
                    key: (*key).clone(),
                    operations: ops.len(),
                    errored: 0,
                    steps: 0,
                    verdict: Verdict::Violation("the search panicked".to_owned()),
                })
            })
            .collect()
    });
    let mut all_the_same = Vec::new();
    for (key, ops) in &history.keys {
        for r in ops
            .iter()
            .filter(|o| o.call == Call::Release && o.answer == Answer::Bool(true))
        {
            // Another owner's grant answered during the release, and that
            // owner's release (which may have deleted the Lease) sent after
            // it and before the release was answered.
            let grant_and_release = ops.iter().find_map(|g| {
                let granted = g.owner != r.owner
                    && matches!(g.call, Call::TryAcquire | Call::Renew)
                    && g.answer == Answer::Bool(true)
                    && g.return_ns >= r.invoke_ns
                    && g.return_ns <= r.return_ns;
                if !granted {
                    return None;
                }
                ops.iter()
                    .find(|e| {
                        e.owner == g.owner
                            && matches!(e.call, Call::Release | Call::ReleaseAll)
                            && e.answer != Answer::Bool(false)
                            && e.invoke_ns >= g.return_ns
                            && e.invoke_ns < r.return_ns
                    })
                    .map(|e| (g, e))
            });
            if let Some((g, e)) = grant_and_release {
                all_the_same.push(format!(
                    "key {key:?}: {} and {} while {} ran",
                    describe(&history, g),
                    describe(&history, e),
                    describe(&history, r)
                ));
            }
        }
    }
    Report {
        settings,
        calls: history.calls,
        errored: history.errored,
        left_out: history.left_out,
        operations: history.operations(),
        keys: results,
        all_the_same,
        elapsed: started.elapsed(),
    }
}

/// A place in the search: which operations are placed, the lock's state
/// and the instant of the last one placed.
#[derive(Clone, Debug)]
struct Node {
    /// Every succeeded operation before this index is placed.
    prefix: u32,
    /// Succeeded operations from `prefix` on that are placed, sorted.
    extra: Vec<u32>,
    /// Failed operations applied whose window is not over yet, sorted.
    applied: Vec<u32>,
    lock: Lock,
    at: u64,
}

type MemoKey = (u32, Vec<u32>, Vec<u32>, Lock);

struct Search<'a> {
    ok: Vec<&'a Operation>,
    failed: Vec<&'a Operation>,
    /// The longest call among `failed`, to find those still in reach.
    longest_failed: u64,
    allowance: Allowance,
}

/// A way to go on from a node.
enum Move {
    Ok(u32),
    Failed(u32),
}

impl Search<'_> {
    /// Succeeded operations that may be placed next, and the latest instant
    /// anything may be placed at (the earliest return among pending ones).
    fn pending(&self, node: &Node) -> (Vec<u32>, u64) {
        let mut earliest_return = u64::MAX;
        let mut next = Vec::new();
        let mut i = node.prefix as usize;
        while i < self.ok.len() && self.ok[i].invoke_ns <= earliest_return {
            let index = i as u32;
            if node.extra.binary_search(&index).is_err() {
                earliest_return = earliest_return.min(self.ok[i].return_ns);
                next.push(index);
            }
            i += 1;
        }
        next.retain(|i| self.ok[*i as usize].invoke_ns <= earliest_return);
        next.sort_by_key(|i| self.ok[*i as usize].return_ns);
        (next, earliest_return)
    }

    fn children(&self, node: &Node, failed_too: bool) -> Vec<Node> {
        let (next, until) = self.pending(node);
        let mut children = Vec::new();
        if !failed_too {
            for i in next {
                let op = self.ok[i as usize];
                let from = node.at.max(op.invoke_ns);
                for (at, lock) in self.allowance.linearize(node.lock, op, from, until) {
                    children.push(self.placed(node, Move::Ok(i), at, lock));
                }
            }
            return children;
        }
        let reach = node
            .at
            .saturating_sub(self.allowance.late_ns.saturating_add(self.longest_failed));
        let first = self.failed.partition_point(|o| o.invoke_ns < reach);
        for (j, op) in self.failed.iter().enumerate().skip(first) {
            if op.invoke_ns > until {
                break;
            }
            let index = j as u32;
            let window_end = self.window_end(op);
            if window_end < node.at || node.applied.binary_search(&index).is_ok() {
                continue;
            }
            let from = node.at.max(op.invoke_ns);
            for (at, lock) in self
                .allowance
                .linearize(node.lock, op, from, until.min(window_end))
            {
                if lock == node.lock {
                    continue;
                }
                // Only right before a succeeded operation it lets come next.
                let between = self.placed(node, Move::Failed(index), at, lock);
                for i in &next {
                    let ok = self.ok[*i as usize];
                    let from = at.max(ok.invoke_ns);
                    for (at, lock) in self.allowance.linearize(lock, ok, from, until) {
                        children.push(self.placed(&between, Move::Ok(*i), at, lock));
                    }
                }
            }
        }
        children
    }

    /// The last instant a failed call may take effect: `late` after its
    /// error, and for a grant no later than the lock it would grant is
    /// certainly over (taking effect later would change nothing).
    fn window_end(&self, op: &Operation) -> u64 {
        let late = match op.call {
            Call::TryAcquire | Call::Renew => self
                .allowance
                .late_ns
                .min(op.ttl_ns.saturating_add(self.allowance.slack_ns)),
            _ => self.allowance.late_ns,
        };
        op.return_ns.saturating_add(late)
    }

    fn placed(&self, node: &Node, step: Move, at: u64, lock: Lock) -> Node {
        let mut next = Node {
            prefix: node.prefix,
            extra: node.extra.clone(),
            applied: node.applied.clone(),
            lock,
            at,
        };
        match step {
            Move::Ok(i) => {
                if let Err(pos) = next.extra.binary_search(&i) {
                    next.extra.insert(pos, i);
                }
                while next.extra.first() == Some(&next.prefix) {
                    next.extra.remove(0);
                    next.prefix += 1;
                }
            }
            Move::Failed(j) => {
                if let Err(pos) = next.applied.binary_search(&j) {
                    next.applied.insert(pos, j);
                }
            }
        }
        next.applied
            .retain(|j| self.window_end(self.failed[*j as usize]) >= at);
        next
    }
}

/// A frame of the depth-first search: a node's children, the succeeded
/// operations' first, the failed ones' only once those are exhausted.
struct Frame {
    node: Node,
    children: std::vec::IntoIter<Node>,
    failed_done: bool,
}

fn check_key(history: &History, key: &str, ops: &[Operation], settings: Settings) -> KeyResult {
    let ok: Vec<&Operation> = ops.iter().filter(|o| !o.errored()).collect();
    let failed: Vec<&Operation> = ops.iter().filter(|o| o.errored()).collect();
    let search = Search {
        longest_failed: failed
            .iter()
            .map(|o| o.return_ns - o.invoke_ns)
            .max()
            .unwrap_or(0),
        ok,
        failed,
        allowance: settings.allowance,
    };
    let mut result = KeyResult {
        key: key.to_owned(),
        operations: ops.len(),
        errored: search.failed.len(),
        steps: 0,
        verdict: Verdict::Linearizable,
    };
    let root = Node {
        prefix: 0,
        extra: Vec::new(),
        applied: Vec::new(),
        lock: Lock::Free,
        at: 0,
    };
    let mut memo: HashMap<MemoKey, u64> = HashMap::new();
    let mut deepest = root.clone();
    let mut stack: Vec<Frame> = Vec::new();
    let mut next = Some(root);
    loop {
        if let Some(node) = next.take() {
            if node.prefix as usize == search.ok.len() {
                return result;
            }
            let key = (
                node.prefix,
                node.extra.clone(),
                node.applied.clone(),
                node.lock,
            );
            if memo.get(&key).is_some_and(|at| *at <= node.at) {
                continue;
            }
            memo.insert(key, node.at);
            result.steps += 1;
            if result.steps > settings.budget {
                result.verdict = Verdict::Undecided(excerpt(history, &search, &deepest));
                return result;
            }
            if node.prefix as usize + node.extra.len()
                > deepest.prefix as usize + deepest.extra.len()
            {
                deepest = node.clone();
            }
            let children = search.children(&node, false).into_iter();
            stack.push(Frame {
                node,
                children,
                failed_done: false,
            });
            continue;
        }
        let Some(frame) = stack.last_mut() else {
            result.verdict = Verdict::Violation(excerpt(history, &search, &deepest));
            return result;
        };
        if let Some(child) = frame.children.next() {
            next = Some(child);
        } else if !frame.failed_done {
            frame.children = search.children(&frame.node, true).into_iter();
            frame.failed_done = true;
        } else {
            stack.pop();
        }
    }
}

/// Where the search got furthest: the lock's state there, the operations
/// that could come next and none of which the specification allows, and the
/// operations placed just before.
fn excerpt(history: &History, search: &Search, deepest: &Node) -> String {
    let (next, _) = search.pending(deepest);
    let placed = deepest.prefix as usize + deepest.extra.len();
    let ms = |t: u64| history.ms(t);
    let state = match deepest.lock {
        Lock::Free => "free".to_owned(),
        Lock::Expired { owner, expired_by } => format!(
            "expired (last held by {}, who may look like the holder until {:.1} ms)",
            name(history, owner),
            ms(expired_by)
        ),
        Lock::Held {
            owner,
            sure_until,
            expired_by,
        } => format!(
            "held by {} (certainly until {:.1} ms, certainly over at {:.1} ms)",
            name(history, owner),
            ms(sure_until),
            ms(expired_by)
        ),
    };
    let mut text = format!(
        "no order places more than {placed} of {} succeeded operations; after them, at {:.1} ms, \
         the lock is {state}, and none of these can come next:",
        search.ok.len(),
        ms(deepest.at)
    );
    for i in &next {
        text.push_str(&format!(
            "\n    {}",
            describe(history, search.ok[*i as usize])
        ));
    }
    let first_next = next.iter().copied().min().unwrap_or(deepest.prefix) as usize;
    let before: Vec<&Operation> = search.ok[..first_next]
        .iter()
        .rev()
        .filter(|o| !matches!(o.answer, Answer::Bool(false) | Answer::Holder(_)))
        .take(4)
        .copied()
        .collect();
    if !before.is_empty() {
        text.push_str("\n  after:");
        for op in before.iter().rev() {
            text.push_str(&format!("\n    {}", describe(history, op)));
        }
    }
    text
}

fn name(history: &History, owner: u32) -> &str {
    history
        .owners
        .get(owner as usize)
        .map_or("?", String::as_str)
}

/// `direct-0 try_acquire(ttl 2 s) [10.0, 15.3] ms -> Ok(true) (call 17)`.
fn describe(history: &History, op: &Operation) -> String {
    let call = match op.call {
        Call::TryAcquire => format!("try_acquire(ttl {} s)", op.ttl_ns / 1_000_000_000),
        Call::Renew => format!("renew(ttl {} s)", op.ttl_ns / 1_000_000_000),
        Call::Release => "release".to_owned(),
        Call::ReleaseAll => "release_all".to_owned(),
        Call::Owner => "owner".to_owned(),
        Call::IsLocked => "is_locked".to_owned(),
    };
    let answer = match &op.answer {
        Answer::Bool(b) => format!("Ok({b})"),
        Answer::Holder(h) => format!("Ok({:?})", h.map(|o| name(history, o))),
        Answer::Unchecked => "Ok(n)".to_owned(),
        Answer::Unknown => "Err".to_owned(),
    };
    format!(
        "{} {call} [{:.1}, {:.1}] ms -> {answer} (call {})",
        name(history, op.owner),
        history.ms(op.invoke_ns),
        history.ms(op.return_ns),
        op.line
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Op, Outcome};

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn call(
        owner: &str,
        op: Op,
        key: &str,
        ttl: u64,
        from_ms: u64,
        to_ms: u64,
        out: Outcome,
    ) -> OpRecord {
        OpRecord {
            owner: owner.into(),
            op,
            key: (op != Op::ReleaseAll).then(|| key.into()),
            ttl_secs: ttl,
            sent_ns: from_ms * MS,
            recv_ns: to_ms * MS,
            outcome: out,
        }
    }

    fn err() -> Outcome {
        Outcome::Error {
            error: "Timeout".into(),
            message: "timed out".into(),
        }
    }

    fn holder(h: Option<&str>) -> Outcome {
        Outcome::Holder {
            holder: h.map(str::to_owned),
        }
    }

    fn verdicts(records: &[OpRecord]) -> Report {
        check(records, Settings::default())
    }

    fn assert_linearizable(records: &[OpRecord]) -> Report {
        let report = verdicts(records);
        assert!(report.clean(), "{report}");
        report
    }

    fn assert_violation(records: &[OpRecord]) -> Report {
        let report = verdicts(records);
        assert_eq!(report.violations().len(), 1, "{report}");
        assert!(report.undecided().is_empty(), "{report}");
        report
    }

    use Op::{Owner, Release, ReleaseAll, Renew, TryAcquire};
    use Outcome::{False, True};

    #[test]
    fn a_sequential_history_is_linearizable() {
        let report = assert_linearizable(&[
            call("a", TryAcquire, "k", 2, 10_000, 10_010, True),
            call("b", TryAcquire, "k", 2, 10_100, 10_110, False),
            call("a", Owner, "k", 0, 10_200, 10_210, holder(Some("a"))),
            call("a", Renew, "k", 2, 11_000, 11_010, True),
            call("a", Release, "k", 0, 11_500, 11_510, True),
            call("b", Owner, "k", 0, 11_600, 11_610, holder(None)),
            call("b", TryAcquire, "k", 3, 11_700, 11_710, True),
            call("a", Release, "k", 0, 11_800, 11_810, False),
            call(
                "b",
                ReleaseAll,
                "",
                0,
                12_000,
                12_010,
                Outcome::Count { n: 1 },
            ),
            call("a", TryAcquire, "k", 2, 12_100, 12_110, True),
        ]);
        assert_eq!((report.keys.len(), report.operations), (1, 10));
    }

    #[test]
    fn overlapping_calls_are_ordered_within_their_intervals() {
        // b's grant returns before a's refusal returns: b first, then a.
        // Logged in invocation order a, b.
        assert_linearizable(&[
            call("a", TryAcquire, "k", 2, 10_000, 10_050, False),
            call("b", TryAcquire, "k", 2, 10_010, 10_020, True),
            call("c", Owner, "k", 0, 10_005, 10_060, holder(Some("b"))),
            call("c", TryAcquire, "k", 2, 10_030, 10_040, False),
        ]);
    }

    #[test]
    fn expiry_then_takeover_is_linearizable() {
        assert_linearizable(&[
            call("a", TryAcquire, "k", 2, 10_000, 10_010, True),
            // a stops renewing; the lock is in doubt from 11.9 s.
            call("b", TryAcquire, "k", 2, 11_000, 11_010, False),
            call("b", TryAcquire, "k", 2, 12_500, 12_510, True),
            call("a", Renew, "k", 2, 12_600, 12_610, False),
            call("a", Release, "k", 0, 12_700, 12_710, False),
            // a's own expired lock, not taken over: released all the same.
            call("c", TryAcquire, "j", 1, 20_000, 20_010, True),
            call("c", Release, "j", 0, 23_000, 23_010, True),
        ]);
    }

    #[test]
    fn an_errored_grant_may_have_taken_effect() {
        let records = [
            call("a", TryAcquire, "k", 3, 10_000, 12_000, err()),
            // Only a's failed grant explains b's refusal and a's renewal.
            call("b", TryAcquire, "k", 2, 12_100, 12_110, False),
            call("a", Renew, "k", 3, 12_200, 12_210, True),
            call("a", Release, "k", 0, 12_300, 12_310, err()),
            call("b", TryAcquire, "k", 2, 12_400, 12_410, True),
        ];
        let report = assert_linearizable(&records);
        assert_eq!((report.errored, report.keys[0].errored), (2, 2));
        // Without the failed grant nobody held the lock: b's refusal is a
        // violation.
        let mut without = records.to_vec();
        without.remove(0);
        assert_violation(&without);
    }

    /// Seen in an HA run: one client's `owner()` proved the expiry while
    /// another client, whose clock could not yet, refused to take the lock.
    #[test]
    fn a_client_in_doubt_may_still_see_an_expired_lock_held() {
        assert_linearizable(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", Owner, "k", 0, 13_300, 13_310, holder(None)),
            call("c", TryAcquire, "k", 1, 13_320, 13_330, False),
            call("b", Owner, "k", 0, 13_340, 13_350, holder(Some("a"))),
            call("c", TryAcquire, "k", 1, 13_400, 13_410, True),
        ]);
        // But not once a client took it, nor after the doubt is over.
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("c", TryAcquire, "k", 1, 13_320, 13_330, True),
            call("b", Owner, "k", 0, 13_340, 13_350, holder(Some("a"))),
        ]);
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", Owner, "k", 0, 13_300, 13_310, holder(None)),
            call("c", TryAcquire, "k", 1, 18_100, 18_110, False),
        ]);
    }

    #[test]
    fn a_planted_double_grant_is_a_violation() {
        let report = assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", TryAcquire, "j", 3, 10_000, 10_010, True),
            call("a", Renew, "k", 3, 11_000, 11_010, True),
            // Planted: b granted k at 11.5 s while a's renewal holds it
            // until 13.9 s.
            call("b", TryAcquire, "k", 3, 11_500, 11_510, True),
            call("a", Renew, "k", 3, 12_000, 12_010, True),
        ]);
        let violation = &report.violations()[0];
        assert!(violation.starts_with("key \"k\""), "{violation}");
        assert!(
            violation.contains("b try_acquire(ttl 3 s) [1500.0, 1510.0] ms -> Ok(true)"),
            "{violation}"
        );
        assert!(violation.contains("held by a"), "{violation}");
        // The other key is fine.
        let j = report.keys.iter().find(|k| k.key == "j").expect("key j");
        assert_eq!(j.verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_double_grant_overlapping_only_by_the_margin_is_caught_too() {
        // a's claim: until 10 s + 2 s − 100 ms = 11.9 s.
        assert_violation(&[
            call("a", TryAcquire, "k", 2, 10_000, 10_010, True),
            call("b", TryAcquire, "k", 2, 11_850, 11_890, True),
        ]);
        assert_linearizable(&[
            call("a", TryAcquire, "k", 2, 10_000, 10_010, True),
            call("b", TryAcquire, "k", 2, 11_850, 11_910, True),
        ]);
    }

    #[test]
    fn a_renewal_by_a_non_holder_is_a_violation() {
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", Renew, "k", 3, 10_500, 10_510, True),
        ]);
    }

    #[test]
    fn a_release_by_a_non_holder_answered_true_is_a_violation() {
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", Release, "k", 0, 10_500, 10_510, True),
        ]);
    }

    #[test]
    fn a_release_refused_to_the_holder_is_a_violation() {
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("a", Release, "k", 0, 10_500, 10_510, False),
        ]);
    }

    #[test]
    fn a_read_naming_another_owner_is_a_violation() {
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", Owner, "k", 0, 10_500, 10_510, holder(Some("b"))),
        ]);
        assert_violation(&[
            call("a", TryAcquire, "k", 3, 10_000, 10_010, True),
            call("b", Owner, "k", 0, 10_500, 10_510, holder(None)),
        ]);
    }

    #[test]
    fn a_resurrected_lock_is_a_violation() {
        // a's lock is certainly over at 10.01 + 2 + 5 s; renewed after that.
        assert_violation(&[
            call("a", TryAcquire, "k", 2, 10_000, 10_010, True),
            call("a", Renew, "k", 2, 17_100, 17_110, True),
        ]);
    }

    #[test]
    fn released_all_the_same_is_linearizable_but_refused_when_strict() {
        let records = [
            call("a", TryAcquire, "k", 1, 10_000, 10_010, True),
            // a's release reads its expired Lease; meanwhile b takes the
            // lock and releases it; a's delete then finds it gone.
            call("a", Release, "k", 0, 10_950, 11_400, True),
            call("b", TryAcquire, "k", 1, 11_000, 11_010, True),
            call("b", Release, "k", 0, 11_100, 11_110, True),
        ];
        let report = assert_linearizable(&records);
        assert_eq!(report.all_the_same.len(), 1, "{report}");
        // Without b's release, a's delete came first: nothing to flag.
        let benign = check(
            &records[..3],
            Settings {
                strict_release: true,
                ..Settings::default()
            },
        );
        assert!(benign.clean() && benign.all_the_same.is_empty(), "{benign}");
        let strict = check(
            &records,
            Settings {
                strict_release: true,
                ..Settings::default()
            },
        );
        assert_eq!(strict.violations().len(), 1, "{strict}");
    }

    #[test]
    fn a_search_over_budget_is_undecided_not_a_verdict() {
        let records: Vec<OpRecord> = (0..50)
            .map(|i| {
                call(
                    "a",
                    TryAcquire,
                    "k",
                    2,
                    10_000 + i * 10,
                    10_005 + i * 10,
                    True,
                )
            })
            .collect();
        let report = check(
            &records,
            Settings {
                budget: 10,
                ..Settings::default()
            },
        );
        assert_eq!(report.undecided(), ["k"]);
        assert!(report.violations().is_empty() && !report.clean());
        assert!(verdicts(&records).clean());
    }

    #[test]
    fn a_history_file_round_trips() {
        let records = [
            call("a", TryAcquire, "k", 2, 10_000, 10_010, True),
            call("b", TryAcquire, "k", 2, 10_500, 10_510, True),
        ];
        let path = std::env::temp_dir().join(format!("lin-test-{}.jsonl", std::process::id()));
        crate::history::write(&path, &records).expect("write");
        let read = crate::history::read(&[&path]).expect("read");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(read.len(), 2);
        assert_eq!(verdicts(&read).violations().len(), 1);
        let missing = crate::history::read(&[&path]).expect_err("gone");
        assert!(missing.to_string().contains("lin-test-"), "{missing}");
    }

    #[test]
    fn a_long_concurrent_history_is_checked_quickly() {
        // Three owners take turns on two keys for 10 minutes of calls,
        // every call overlapping the others' calls.
        let mut records = Vec::new();
        for key in ["k", "j"] {
            let mut t = 1_000;
            for round in 0..3_000u64 {
                let holder = ["a", "b", "c"][(round % 3) as usize];
                records.push(call(holder, TryAcquire, key, 2, t, t + 10, True));
                for (n, other) in ["a", "b", "c"].iter().enumerate() {
                    if *other != holder {
                        let from = t + 20 + n as u64;
                        records.push(call(other, TryAcquire, key, 2, from, t + 90, False));
                    }
                }
                records.push(call(holder, Renew, key, 2, t + 30, t + 40, True));
                records.push(call(holder, Release, key, 0, t + 150, t + 200, True));
                t += 200;
            }
        }
        let started = Instant::now();
        let report = assert_linearizable(&records);
        assert_eq!(report.operations, 2 * 3_000 * 5);
        assert!(started.elapsed() < Duration::from_secs(20), "{report}");
        let _ = S;
    }
}
