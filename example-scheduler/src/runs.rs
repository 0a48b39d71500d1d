//! The one reader of the schedulers' logs: which instants were fired, by
//! which replica, and whether any was fired twice or skipped. Used by the
//! `celers-beat-runs` checker (for `make demo`, the pods and kind end-to-end
//! scripts and the reliability runs) and by this crate's tests.
//!
//! The scheduler logs JSON lines (`--log-format json`, the default), with the
//! event's fields at the top level: `{"timestamp": …, "message": "executed
//! run", "task": "task-0", "run": 1764140400, "run_ms": 1764140400000,
//! "every_secs": 1, "token": 812, "owner": "pod-a", …}`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One log line, as far as the checks read it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// RFC 3339, the replica's wall clock.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `INFO`, `WARN`, `ERROR`, ...
    #[serde(default)]
    pub level: Option<String>,
    /// The event's message, such as `executed run` or `role changed`.
    #[serde(default)]
    pub message: String,
    /// The entry of an `executed run`.
    #[serde(default)]
    pub task: Option<String>,
    /// The instant of an `executed run`, Unix seconds.
    #[serde(default)]
    pub run: Option<i64>,
    /// The instant of an `executed run`, Unix milliseconds.
    #[serde(default)]
    pub run_ms: Option<i64>,
    /// Seconds between two instants of the entry (60 for a crontab entry).
    #[serde(default)]
    pub every_secs: Option<u64>,
    /// The replica's owner identity.
    #[serde(default)]
    pub owner: Option<String>,
    /// The new role of a `role changed`: `leader` or `standby`.
    #[serde(default)]
    pub role: Option<String>,
}

/// The message of an instant that a replica executed.
pub const EXECUTED: &str = "executed run";
/// The message of a change of role.
pub const ROLE_CHANGED: &str = "role changed";

/// One fire, as the summary reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired<'a> {
    pub task: &'a str,
    pub run_ms: i64,
    pub every_secs: u64,
}

impl Event {
    /// The event of a log line, if it is a JSON log line.
    pub fn parse(line: &str) -> Option<Self> {
        let start = line.find('{')?;
        serde_json::from_str(&line[start..]).ok()
    }

    /// The fire of an `executed run` event.
    pub fn executed(&self) -> Option<Fired<'_>> {
        if self.message != EXECUTED {
            return None;
        }
        Some(Fired {
            task: self.task.as_deref()?,
            run_ms: self.run_ms.or_else(|| self.run?.checked_mul(1000))?,
            every_secs: self.every_secs.unwrap_or(1).max(1),
        })
    }

    /// The new role of a `role changed` event.
    pub fn new_role(&self) -> Option<&str> {
        (self.message == ROLE_CHANGED).then_some(self.role.as_deref()?)
    }
}

/// What the replicas' logs say about one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntrySummary {
    /// Seconds between two instants.
    pub every_secs: u64,
    /// Fires given out, by all replicas.
    pub fires: u64,
    /// Instants fired, each counted once: a fire less than half an interval
    /// after the previous one is the same slot fired again.
    pub instants: u64,
    /// Fires of a slot already fired.
    pub twice: u64,
    /// Instants due from the first to the last one fired but fired by nobody.
    pub missed: u64,
    /// Gaps between consecutive instants longer than the interval plus the
    /// failover bound.
    pub skipped: u64,
    /// The longest gap between consecutive instants, in milliseconds.
    pub longest_gap_ms: i64,
}

/// What the replicas' logs say about the runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: BTreeMap<String, EntrySummary>,
    /// Fires, by replica.
    pub by_replica: BTreeMap<String, usize>,
}

impl Summary {
    /// Sum of a count over all entries.
    pub fn total(&self, count: impl Fn(&EntrySummary) -> u64) -> u64 {
        self.entries.values().map(count).sum()
    }

    /// The entries as a Markdown table, one row each.
    pub fn table(&self) -> String {
        let mut table = String::from(
            "| entry | every | fires | instants | fired twice | missed | skipped beyond the bound | longest gap |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for (entry, counts) in &self.entries {
            table.push_str(&format!(
                "| {entry} | {} s | {} | {} | {} | {} | {} | {:.1} s |\n",
                counts.every_secs,
                counts.fires,
                counts.instants,
                counts.twice,
                counts.missed,
                counts.skipped,
                counts.longest_gap_ms as f64 / 1000.0
            ));
        }
        table
    }
}

/// Summarizes the `executed run` events of each replica; a gap between two
/// instants of an entry longer than its interval plus `failover_bound_ms`
/// counts as skipped.
pub fn summarize<'a>(
    replicas: impl IntoIterator<Item = (&'a str, &'a [Event])>,
    failover_bound_ms: i64,
) -> Summary {
    let mut fired: BTreeMap<&str, (u64, Vec<i64>)> = BTreeMap::new();
    let mut summary = Summary::default();
    for (replica, events) in replicas {
        let count = summary.by_replica.entry(replica.to_owned()).or_default();
        for fire in events.iter().filter_map(Event::executed) {
            let entry = fired.entry(fire.task).or_default();
            entry.0 = fire.every_secs;
            entry.1.push(fire.run_ms);
            *count += 1;
        }
    }
    for (task, (every_secs, mut runs)) in fired {
        runs.sort_unstable();
        let every_ms = i64::try_from(every_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut entry = EntrySummary {
            every_secs,
            fires: runs.len() as u64,
            ..EntrySummary::default()
        };
        let mut previous: Option<i64> = None;
        for run in runs {
            match previous {
                Some(last) if run - last < every_ms / 2 => entry.twice += 1,
                Some(last) => {
                    let gap = run - last;
                    entry.instants += 1;
                    entry.missed += u64::try_from(gap / every_ms - 1).unwrap_or(0);
                    entry.skipped += u64::from(gap > every_ms + failover_bound_ms);
                    entry.longest_gap_ms = entry.longest_gap_ms.max(gap);
                    previous = Some(run);
                }
                None => {
                    entry.instants += 1;
                    previous = Some(run);
                }
            }
        }
        summary.entries.insert(task.to_owned(), entry);
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executed(task: &str, run: i64, every_secs: u64) -> Event {
        Event {
            message: EXECUTED.to_owned(),
            task: Some(task.to_owned()),
            run: Some(run),
            every_secs: Some(every_secs),
            ..Event::default()
        }
    }

    #[test]
    fn json_lines_are_read_with_any_prefix() {
        let line = r#"{"timestamp":"2026-11-26T06:00:00.1Z","level":"INFO","message":"executed run","task":"task-1","run":1764140400,"run_ms":1764140400250,"every_secs":2,"owner":"a","lag_ms":4}"#;
        let event = Event::parse(line).expect("json");
        let fire = event.executed().expect("a fire");
        assert_eq!(
            (fire.task, fire.run_ms, fire.every_secs),
            ("task-1", 1_764_140_400_250, 2)
        );
        assert_eq!(Event::parse(&format!("pod-a {line}")), Some(event));
        let role = Event::parse(r#"{"message":"role changed","role":"leader","owner":"a"}"#);
        assert_eq!(role.as_ref().and_then(Event::new_role), Some("leader"));
        assert_eq!(
            Event::parse("2026-11-26 INFO executed run task=x run=1"),
            None
        );
    }

    #[test]
    fn instants_fired_twice_missed_and_skipped_are_counted() {
        // t0 every 2 s: 10, 12 (twice), 14, then 26 after a 12 s gap.
        let a = [
            executed("t0", 10, 2),
            executed("t0", 12, 2),
            executed("t1", 60, 60),
        ];
        let b = [
            executed("t0", 12, 2),
            executed("t0", 14, 2),
            executed("t0", 26, 2),
        ];
        let summary = summarize([("a", &a[..]), ("b", &b[..])], 5_000);
        let t0 = &summary.entries["t0"];
        assert_eq!((t0.fires, t0.instants, t0.twice), (5, 4, 1));
        assert_eq!(t0.missed, 5, "16, 18, 20, 22, 24");
        assert_eq!(t0.skipped, 1, "a 12 s gap is longer than 2 s + 5 s");
        assert_eq!(t0.longest_gap_ms, 12_000);
        assert_eq!(summary.entries["t1"].instants, 1);
        assert_eq!(summary.total(|e| e.twice), 1);
        assert_eq!(summary.by_replica.get("a"), Some(&3));
    }

    #[test]
    fn fires_of_one_slot_at_different_instants_count_as_twice() {
        // Stock replicas name the same slot by different instants.
        let fire = |ms| Event {
            run_ms: Some(ms),
            ..executed("t", 0, 5)
        };
        let events = [
            fire(10_000),
            fire(10_300),
            fire(15_000),
            fire(17_400),
            fire(20_100),
        ];
        let summary = summarize([("all", &events[..])], 0);
        assert_eq!(summary.entries["t"].twice, 2);
        assert_eq!(summary.entries["t"].instants, 3);
    }
}
