//! A run's recorded calls as per-key histories of operations, for the
//! [linearizability](crate::linearizability) checker: one history file (JSON
//! lines of [`Line`], all contenders, all keys) in, one list of operations
//! per key out.
//!
//! `release_all(owner)` touches every key: it becomes one operation on each
//! key of the run (its per-key effect is a `release` by that owner that may
//! find nothing to delete). `sweep_expired` deletes only Leases expired for
//! longer than the sweep grace, which the TTL lock's expiry already allows,
//! so it adds nothing to a history; nor does a call that failed without an
//! effect on the lock (an errored `owner` read).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::Path;

use crate::record::{Line, Op, OpRecord, Outcome};
use crate::Result;

/// What an operation asked and what it answered, in the TTL lock's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `try_acquire(owner, ttl)`.
    TryAcquire,
    /// `renew(owner, ttl)`.
    Renew,
    /// `release(owner)`.
    Release,
    /// `release_all(owner)`, on this key.
    ReleaseAll,
    /// `owner()`.
    Owner,
    /// `is_locked()`.
    IsLocked,
}

/// The answer, as far as the specification looks at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `Ok(true)` / `Ok(false)`.
    Bool(bool),
    /// `owner`'s `Ok(holder)`, as an index into [`History::owners`].
    Holder(Option<u32>),
    /// `release_all`'s count: not checked per key (the sum is over keys).
    Unchecked,
    /// `Err(..)`: the call may or may not have taken effect.
    Unknown,
}

/// One operation of one key's history.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The caller, as an index into [`History::owners`].
    pub owner: u32,
    /// What it called.
    pub call: Call,
    /// The TTL asked for, in ns (0 for calls without one).
    pub ttl_ns: u64,
    /// Invocation: monotonic time just before the call.
    pub invoke_ns: u64,
    /// Response: monotonic time just after the answer.
    pub return_ns: u64,
    /// The answer.
    pub answer: Answer,
    /// Line number in the history file(s), from 1, for messages.
    pub line: usize,
}

impl Operation {
    /// Whether the call failed, so its effect is unknown.
    pub fn errored(&self) -> bool {
        self.answer == Answer::Unknown
    }
}

/// A run's operations, split by key.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Owner names, indexed by [`Operation::owner`].
    pub owners: Vec<String>,
    /// Each key's operations, in order of invocation.
    pub keys: BTreeMap<String, Vec<Operation>>,
    /// Calls read (every `Op` line).
    pub calls: u64,
    /// Calls that failed.
    pub errored: u64,
    /// Calls that add nothing to a key's history (`sweep_expired`, errored
    /// `owner` reads) or that the specification does not model.
    pub left_out: u64,
    /// The earliest invocation, the origin of the checker's milliseconds.
    pub base_ns: u64,
}

impl History {
    /// From the call records of a run.
    pub fn of(records: &[OpRecord]) -> Self {
        let mut history = History {
            base_ns: records.iter().map(|r| r.sent_ns).min().unwrap_or(0),
            ..History::default()
        };
        let mut index: BTreeMap<String, u32> = BTreeMap::new();
        let all_keys: BTreeSet<&str> = records.iter().filter_map(|r| r.key.as_deref()).collect();
        for (n, r) in records.iter().enumerate() {
            history.calls += 1;
            if matches!(r.outcome, Outcome::Error { .. }) {
                history.errored += 1;
            }
            let owner = history.intern(&mut index, &r.owner);
            let Some(call) = call_of(r.op) else {
                history.left_out += 1;
                continue;
            };
            let answer = match &r.outcome {
                Outcome::Error { .. } if matches!(call, Call::Owner | Call::IsLocked) => {
                    history.left_out += 1;
                    continue;
                }
                Outcome::Error { .. } => Answer::Unknown,
                Outcome::True => Answer::Bool(true),
                Outcome::False => Answer::Bool(false),
                Outcome::Count { .. } => Answer::Unchecked,
                Outcome::Holder { holder } => {
                    Answer::Holder(holder.as_deref().map(|h| history.intern(&mut index, h)))
                }
            };
            let operation = Operation {
                owner,
                call,
                ttl_ns: r.ttl_secs.saturating_mul(1_000_000_000),
                invoke_ns: r.sent_ns,
                return_ns: r.recv_ns.max(r.sent_ns),
                answer,
                line: n + 1,
            };
            let keys: Vec<&str> = match (call, r.key.as_deref()) {
                (Call::ReleaseAll, _) => all_keys.iter().copied().collect(),
                (_, Some(key)) => vec![key],
                (_, None) => Vec::new(),
            };
            for key in keys {
                history
                    .keys
                    .entry(key.to_owned())
                    .or_default()
                    .push(operation.clone());
            }
        }
        for ops in history.keys.values_mut() {
            ops.sort_by_key(|o| (o.invoke_ns, o.return_ns));
        }
        history
    }

    fn intern(&mut self, index: &mut BTreeMap<String, u32>, name: &str) -> u32 {
        if let Some(i) = index.get(name) {
            return *i;
        }
        let i = u32::try_from(self.owners.len()).unwrap_or(u32::MAX);
        self.owners.push(name.to_owned());
        index.insert(name.to_owned(), i);
        i
    }

    /// Operations over all keys (a `release_all` counts once per key).
    pub fn operations(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    /// Milliseconds since [`base_ns`](Self::base_ns), for messages.
    pub fn ms(&self, t: u64) -> f64 {
        t.saturating_sub(self.base_ns) as f64 / 1e6
    }
}

fn call_of(op: Op) -> Option<Call> {
    match op {
        Op::TryAcquire => Some(Call::TryAcquire),
        Op::Renew => Some(Call::Renew),
        Op::Release => Some(Call::Release),
        Op::ReleaseAll => Some(Call::ReleaseAll),
        Op::Owner => Some(Call::Owner),
        Op::IsLocked => Some(Call::IsLocked),
        _ => None,
    }
}

/// The call records among `lines`.
pub fn records(lines: &[Line]) -> Vec<OpRecord> {
    lines
        .iter()
        .filter_map(|line| match line {
            Line::Op(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Writes `records` to `path` as JSON lines ([`Line::Op`]).
pub fn write(path: &Path, records: &[OpRecord]) -> Result<()> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create the history file {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for r in records {
        serde_json::to_writer(&mut out, &Line::Op(r.clone()))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads the call records of history files or contender logs (JSON lines of
/// [`Line`]; other lines than calls are skipped).
pub fn read(paths: &[impl AsRef<Path>]) -> Result<Vec<OpRecord>> {
    let mut records = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open the history file {}: {e}", path.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Line>(&line) {
                Ok(Line::Op(r)) => records.push(r),
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "{}:{}: not a history line ({e}): {}",
                        path.display(),
                        n + 1,
                        line.chars().take(120).collect::<String>()
                    )
                    .into())
                }
            }
        }
    }
    Ok(records)
}
