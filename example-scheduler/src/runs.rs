//! The one reader of the schedulers' logs: which runs were executed, by
//! which replica, and whether any was executed twice. Used by the
//! `celers-beat-runs` checker (for `make demo` and the kind and pods
//! end-to-end scripts) and by this crate's tests.
//!
//! The scheduler logs JSON lines (`--log-format json`, the default), with the
//! event's fields at the top level: `{"timestamp": …, "message": "executed
//! run", "task": "task-0", "run": 1764140400, "owner": "pod-a", …}`.

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
    /// The task of an `executed run`.
    #[serde(default)]
    pub task: Option<String>,
    /// The run (its scheduled Unix time) of an `executed run`.
    #[serde(default)]
    pub run: Option<u64>,
    /// The replica's owner identity.
    #[serde(default)]
    pub owner: Option<String>,
    /// The new role of a `role changed`: `leader` or `standby`.
    #[serde(default)]
    pub role: Option<String>,
}

/// The message of a run that a replica executed.
pub const EXECUTED: &str = "executed run";
/// The message of a change of role.
pub const ROLE_CHANGED: &str = "role changed";

impl Event {
    /// The event of a log line, if it is a JSON log line.
    pub fn parse(line: &str) -> Option<Self> {
        let start = line.find('{')?;
        serde_json::from_str(&line[start..]).ok()
    }

    /// `(task, run)` of an `executed run` event.
    pub fn executed(&self) -> Option<(&str, u64)> {
        (self.message == EXECUTED).then_some((self.task.as_deref()?, self.run?))
    }

    /// The new role of a `role changed` event.
    pub fn new_role(&self) -> Option<&str> {
        (self.message == ROLE_CHANGED).then_some(self.role.as_deref()?)
    }
}

/// What the replicas' logs say about the runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Runs due from the first to the last executed run, for every task.
    pub scheduled: u64,
    /// Distinct runs executed.
    pub executed: u64,
    /// `(task, run, times)` of every run executed more than once.
    pub twice: Vec<(String, u64, usize)>,
    /// Runs due but executed by nobody.
    pub missed: u64,
    /// Runs executed, by replica.
    pub by_replica: BTreeMap<String, usize>,
}

/// Summarizes the `executed run` events of each replica, for `tasks` tasks
/// that run every `interval_secs`.
pub fn summarize<'a>(
    replicas: impl IntoIterator<Item = (&'a str, &'a [Event])>,
    tasks: u64,
    interval_secs: u64,
) -> Summary {
    let mut times: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut summary = Summary::default();
    for (replica, events) in replicas {
        let count = summary.by_replica.entry(replica.to_owned()).or_default();
        for (task, run) in events.iter().filter_map(Event::executed) {
            *times.entry((task.to_owned(), run)).or_default() += 1;
            *count += 1;
        }
    }
    let runs = times.keys().map(|(_, run)| *run);
    if let (Some(first), Some(last)) = (runs.clone().min(), runs.max()) {
        summary.scheduled = tasks * ((last - first) / interval_secs.max(1) + 1);
    }
    summary.executed = times.len() as u64;
    summary.missed = summary.scheduled.saturating_sub(summary.executed);
    summary.twice = times
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((task, run), n)| (task, run, n))
        .collect();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executed(task: &str, run: u64) -> Event {
        Event {
            message: EXECUTED.to_owned(),
            task: Some(task.to_owned()),
            run: Some(run),
            ..Event::default()
        }
    }

    #[test]
    fn json_lines_are_read_with_any_prefix() {
        let line = r#"{"timestamp":"2026-11-26T06:00:00.1Z","level":"INFO","message":"executed run","task":"task-1","run":1764140400,"owner":"a","lag_ms":4}"#;
        let event = Event::parse(line).expect("json");
        assert_eq!(event.executed(), Some(("task-1", 1_764_140_400)));
        assert_eq!(Event::parse(&format!("pod-a {line}")), Some(event));
        let role = Event::parse(r#"{"message":"role changed","role":"leader","owner":"a"}"#);
        assert_eq!(role.as_ref().and_then(Event::new_role), Some("leader"));
        assert_eq!(
            Event::parse("2026-11-26 INFO executed run task=x run=1"),
            None
        );
    }

    #[test]
    fn runs_executed_twice_and_missed_are_counted() {
        let a = [executed("t0", 10), executed("t1", 10), executed("t0", 12)];
        let b = [executed("t1", 12), executed("t0", 12), executed("t1", 14)];
        let summary = summarize([("a", &a[..]), ("b", &b[..])], 2, 2);
        assert_eq!(summary.scheduled, 6, "2 tasks x runs 10, 12, 14");
        assert_eq!(summary.executed, 5);
        assert_eq!(summary.twice, vec![("t0".to_owned(), 12, 2)]);
        assert_eq!(summary.missed, 1, "t0@14");
        assert_eq!(summary.by_replica.get("a"), Some(&3));
        assert_eq!(
            summarize([("a", &[][..])], 2, 2),
            Summary {
                by_replica: BTreeMap::from([("a".to_owned(), 0)]),
                ..Summary::default()
            }
        );
    }
}
