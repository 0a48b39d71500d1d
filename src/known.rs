//! What a backend remembers of the locks it touched: the last state it saw
//! of each, so that a renew, a re-acquire or a release is one conditional
//! write instead of a read and a write.
//!
//! A remembered state only ever leads to a *conditional* write, so a stale
//! one costs a 409 and a read, never a wrong answer. It is remembered with
//! its key, and given out only for that key: two keys whose Lease names
//! collide never share a state.

use std::collections::HashMap;

use chrono::TimeDelta;

use crate::clock::ServerTime;
use crate::decision;
use crate::lease::{Found, Record};

/// Most lock states remembered at once.
pub const CAPACITY: usize = 1024;

/// The remembered states, by Lease name.
#[derive(Debug, Default)]
pub struct Known {
    entries: HashMap<String, Entry>,
    /// Counts uses, to tell the least recently used entries.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    key: String,
    record: Record,
    used: u64,
}

impl Known {
    /// The state remembered for the lock `key` in the Lease `name`.
    pub fn get(&mut self, name: &str, key: &str) -> Option<Record> {
        self.clock += 1;
        let entry = self
            .entries
            .get_mut(name)
            .filter(|entry| entry.key == key)?;
        entry.used = self.clock;
        Some(entry.record.clone())
    }

    /// Remembers what a read or a write found. When more than [`CAPACITY`]
    /// states are remembered, forgets those expired for longer than `grace`
    /// by `now` (when known), then the least recently used.
    pub fn remember(
        &mut self,
        name: &str,
        key: &str,
        found: &Found,
        now: Option<ServerTime>,
        grace: TimeDelta,
    ) {
        self.clock += 1;
        let Found::Ours(record) = found else {
            self.entries.remove(name);
            return;
        };
        self.entries.insert(
            name.to_owned(),
            Entry {
                key: key.to_owned(),
                record: record.clone(),
                used: self.clock,
            },
        );
        if self.entries.len() <= CAPACITY {
            return;
        }
        if let Some(now) = now {
            self.entries
                .retain(|_, entry| !decision::is_garbage(&entry.record, now, grace));
        }
        if self.entries.len() > CAPACITY {
            // Evict a quarter at once, so that eviction is rare.
            let mut uses: Vec<u64> = self.entries.values().map(|entry| entry.used).collect();
            let keep_from = uses.len() - CAPACITY * 3 / 4;
            let (_, threshold, _) = uses.select_nth_unstable(keep_from);
            let threshold = *threshold;
            self.entries.retain(|_, entry| entry.used >= threshold);
        }
    }

    /// Forgets the state of the Lease `name`.
    pub fn forget(&mut self, name: &str) {
        self.entries.remove(name);
    }

    /// How many states are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::lease::parse_time;

    fn t(secs: i64) -> DateTime<Utc> {
        parse_time("2026-11-26T06:00:00Z").expect("valid") + TimeDelta::seconds(secs)
    }

    fn record(renewed_at: i64, duration: i32) -> Found {
        Found::Ours(Record {
            resource_version: "1".into(),
            uid: "u".into(),
            holder: Some("me".into()),
            acquire_time: Some(t(renewed_at)),
            renew_time: Some(t(renewed_at)),
            duration_secs: Some(duration),
            transitions: 0,
            lease: Default::default(),
        })
    }

    fn at(secs: i64) -> Option<ServerTime> {
        Some(ServerTime {
            earliest: t(secs),
            latest: t(secs),
        })
    }

    const GRACE: TimeDelta = TimeDelta::seconds(60);

    #[test]
    fn a_state_is_given_out_only_for_its_own_key() {
        let mut known = Known::default();
        // Two keys whose Lease names collide.
        known.remember("shared-name", "k1", &record(0, 30), at(0), GRACE);
        assert!(known.get("shared-name", "k1").is_some());
        assert_eq!(known.get("shared-name", "k2"), None);
        known.remember("shared-name", "k2", &record(0, 30), at(0), GRACE);
        assert_eq!(known.get("shared-name", "k1"), None);
    }

    #[test]
    fn missing_and_foreign_leases_are_forgotten() {
        let mut known = Known::default();
        known.remember("n", "k", &record(0, 30), at(0), GRACE);
        known.remember("n", "k", &Found::Foreign, at(0), GRACE);
        assert_eq!(known.get("n", "k"), None);
        known.remember("n", "k", &record(0, 30), at(0), GRACE);
        known.remember("n", "k", &Found::Missing, at(0), GRACE);
        assert_eq!(known.len(), 0);
    }

    #[test]
    fn a_burst_of_keys_leaves_at_most_the_capacity() {
        let mut known = Known::default();
        // 100k keys with TTLs near i32::MAX: none ever expires.
        for i in 0..100_000 {
            let name = format!("n{i}");
            known.remember(&name, &name, &record(0, i32::MAX), at(0), GRACE);
            assert!(known.len() <= CAPACITY);
        }
        // Ten keys in use (touched every 100 new keys) stay remembered.
        for i in 0..10 {
            let name = format!("hot{i}");
            known.remember(&name, &name, &record(0, i32::MAX), at(0), GRACE);
        }
        for i in 0..5_000 {
            if i % 100 == 0 {
                for hot in 0..10 {
                    let name = format!("hot{hot}");
                    assert!(known.get(&name, &name).is_some(), "{name} at {i}");
                }
            }
            let name = format!("cold{i}");
            known.remember(&name, &name, &record(0, i32::MAX), at(0), GRACE);
        }
        assert!(known.len() <= CAPACITY);
    }

    #[test]
    fn expired_states_go_first() {
        let mut known = Known::default();
        for i in 0..CAPACITY {
            let name = format!("old{i}");
            known.remember(&name, &name, &record(0, 1), at(0), GRACE);
        }
        // At 1000 s the old ones are long expired: they all go.
        known.remember("live", "live", &record(1_000, 30), at(1_000), GRACE);
        assert_eq!(known.len(), 1);
        assert!(known.get("live", "live").is_some());
    }
}
