//! The beat ledger: per entry, the last instant fired and the fencing token
//! of the leader that fired it, kept in a Lease of its own.
//!
//! A ledger Lease carries the managed-by label but no owner label, so
//! `release_all`, the sweeps and `locks()` (which select on the owner label)
//! never touch it, and it has no `leaseDurationSeconds`: it never expires.
//! `kubectl get leases -l celers.io/beat=<name>` lists a beat's ledger, the
//! holder column naming the replica that fired each entry last.
//!
//! This module is pure: the wire form and the decision. The I/O is in
//! `store.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::fencing::FencingToken;
use crate::lease::{Lease, Metadata, Spec, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::naming;

/// The ledger key of `entry` in the beat `beat`; its Lease is named after
/// it like a lock's ([`naming::lease_name`]).
pub fn key(beat: &str, entry: &str) -> String {
    format!("{beat}/ledger/{entry}")
}

/// Label and annotation keys of ledger Leases, under the backend's prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerMarks {
    /// `<prefix>/lock-key`, as on locks: the key, to tell a foreign Lease.
    key: String,
    /// `<prefix>/beat`: the beat's name (as a label value).
    beat: String,
    /// `<prefix>/beat-entry`: the entry's name.
    entry: String,
    /// `<prefix>/beat-last-fired`: the last instant fired, RFC 3339.
    last_fired: String,
    /// `<prefix>/fencing-token`: the token of the leader that fired it.
    token: String,
}

/// What a ledger Lease records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The last instant fired.
    pub instant: DateTime<Utc>,
    /// The fencing token of the leader that fired it.
    pub token: u64,
    /// The resourceVersion the next write is conditional on.
    pub resource_version: String,
    /// The uid, a precondition of deletes.
    pub uid: String,
    /// The Lease as the server sent it: the base of a replacement.
    pub lease: Arc<Lease>,
}

/// What to do with an instant a leader is about to fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Record it: nobody has fired it.
    Write,
    /// This tenure's own write already recorded it (a retried request).
    Ours,
    /// It, or a later instant, was fired already: skip it.
    Fired,
    /// A leader with a later token has written the ledger: this tenure is
    /// over, whatever its guard says.
    Superseded,
}

/// Whether the leader of tenure `token` may fire `instant`, given the entry
/// as last read or written.
pub fn claim(current: Option<&Entry>, instant: DateTime<Utc>, token: FencingToken) -> Claim {
    let Some(current) = current else {
        return Claim::Write;
    };
    if current.token > token.get() {
        Claim::Superseded
    } else if current.instant < instant {
        Claim::Write
    } else if current.token == token.get() && current.instant == instant {
        Claim::Ours
    } else {
        Claim::Fired
    }
}

impl LedgerMarks {
    /// The keys under `prefix`, e.g. `celers.io`.
    pub fn new(prefix: &str) -> Self {
        Self {
            key: format!("{prefix}/lock-key"),
            beat: format!("{prefix}/beat"),
            entry: format!("{prefix}/beat-entry"),
            last_fired: format!("{prefix}/beat-last-fired"),
            token: format!("{prefix}/fencing-token"),
        }
    }

    /// Label selector for the ledger of the beat `beat`.
    pub fn selector(&self, beat: &str) -> String {
        format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{}={}",
            self.beat,
            naming::owner_label_value(beat)
        )
    }

    /// A new ledger Lease for `entry` of `beat`, recording `instant` fired by
    /// `holder` with `token`.
    pub fn new_lease(
        &self,
        beat: &str,
        entry: &str,
        holder: &str,
        instant: DateTime<Utc>,
        token: FencingToken,
    ) -> Lease {
        let key = key(beat, entry);
        let mut lease = Lease {
            api_version: Some("coordination.k8s.io/v1".to_owned()),
            kind: Some("Lease".to_owned()),
            metadata: Metadata {
                name: Some(naming::lease_name(&key)),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (self.beat.clone(), naming::owner_label_value(beat)),
                ])),
                annotations: Some(BTreeMap::from([
                    (self.key.clone(), key),
                    (self.entry.clone(), entry.to_owned()),
                ])),
                ..Metadata::default()
            },
            ..Lease::default()
        };
        self.record(&mut lease, holder, instant, token);
        lease
    }

    /// `entry` (as last seen) recording `instant` fired by `holder` with
    /// `token`, to replace it only while its resourceVersion is unchanged.
    pub fn replacement(
        &self,
        entry: &Entry,
        holder: &str,
        instant: DateTime<Utc>,
        token: FencingToken,
    ) -> Lease {
        let mut lease = (*entry.lease).clone();
        lease.metadata.resource_version = Some(entry.resource_version.clone());
        lease
            .metadata
            .rest
            .insert("managedFields".to_owned(), json!([{}]));
        self.record(&mut lease, holder, instant, token);
        lease
    }

    fn record(&self, lease: &mut Lease, holder: &str, instant: DateTime<Utc>, token: FencingToken) {
        let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(
            self.last_fired.clone(),
            instant.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        );
        annotations.insert(self.token.clone(), token.get().to_string());
        lease.spec.get_or_insert_with(Spec::default).holder_identity = Some(holder.to_owned());
    }

    /// The entry name and record of a ledger Lease of `beat`; `None` for a
    /// Lease that is not one (foreign, hand-made, unreadable).
    pub fn read(&self, beat: &str, lease: &Lease) -> Option<(String, Entry)> {
        let annotations = lease.metadata.annotations.as_ref()?;
        let entry = annotations.get(&self.entry)?;
        let own_key = key(beat, entry);
        let name = lease.metadata.name.as_deref()?;
        if annotations.get(&self.key) != Some(&own_key) || naming::lease_name(&own_key) != name {
            return None;
        }
        let instant = DateTime::parse_from_rfc3339(annotations.get(&self.last_fired)?).ok()?;
        let record = Entry {
            instant: instant.with_timezone(&Utc),
            token: annotations.get(&self.token)?.parse().ok()?,
            resource_version: lease.metadata.resource_version.clone()?,
            uid: lease.metadata.uid.clone()?,
            lease: Arc::new(lease.clone()),
        };
        Some((entry.clone(), record))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn token(n: u64) -> FencingToken {
        FencingToken::from_resource_version(&n.to_string()).expect("a decimal token")
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .expect("a valid instant")
    }

    fn served(mut lease: Lease, resource_version: &str) -> Lease {
        lease.metadata.resource_version = Some(resource_version.to_owned());
        lease.metadata.uid = Some("uid-1".to_owned());
        lease
    }

    fn entry(instant: DateTime<Utc>, by: u64) -> Entry {
        let marks = LedgerMarks::new("celers.io");
        let lease = served(
            marks.new_lease("beat", "report", "a", instant, token(by)),
            "7",
        );
        marks.read("beat", &lease).expect("a ledger Lease").1
    }

    #[test]
    fn an_entry_is_written_once_per_instant_and_only_forward() {
        let t = token(10);
        assert_eq!(claim(None, at(5), t), Claim::Write);
        assert_eq!(claim(Some(&entry(at(0), 10)), at(5), t), Claim::Write);
        assert_eq!(claim(Some(&entry(at(0), 3)), at(5), t), Claim::Write);
        assert_eq!(claim(Some(&entry(at(5), 10)), at(5), t), Claim::Ours);
        assert_eq!(claim(Some(&entry(at(5), 3)), at(5), t), Claim::Fired);
        assert_eq!(claim(Some(&entry(at(9), 3)), at(5), t), Claim::Fired);
        assert_eq!(claim(Some(&entry(at(0), 11)), at(5), t), Claim::Superseded);
    }

    #[test]
    fn a_ledger_lease_reads_back_what_was_written() {
        let marks = LedgerMarks::new("celers.io");
        let lease = served(
            marks.new_lease("beat", "report", "pod-a_1", at(5), token(42)),
            "9",
        );
        let (name, entry) = marks.read("beat", &lease).expect("a ledger Lease");
        assert_eq!(name, "report");
        assert_eq!((entry.instant, entry.token), (at(5), 42));
        assert_eq!(
            lease.spec.and_then(|s| s.holder_identity).as_deref(),
            Some("pod-a_1")
        );
        let labels = lease.metadata.labels.unwrap_or_default();
        assert!(
            !labels.keys().any(|label| label.ends_with("lock-owner")),
            "{labels:?}"
        );
        assert_eq!(
            labels.get("celers.io/beat").map(String::as_str),
            Some("beat")
        );
    }

    #[test]
    fn a_replacement_keeps_what_others_added_and_moves_the_record() {
        let marks = LedgerMarks::new("celers.io");
        let mut lease = served(
            marks.new_lease("beat", "report", "a", at(5), token(42)),
            "9",
        );
        lease
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert("team".to_owned(), "billing".to_owned());
        let (_, entry) = marks.read("beat", &lease).expect("a ledger Lease");
        let next = served(marks.replacement(&entry, "b", at(10), token(50)), "9");
        let (_, moved) = marks.read("beat", &next).expect("a ledger Lease");
        assert_eq!((moved.instant, moved.token), (at(10), 50));
        let annotations = next.metadata.annotations.unwrap_or_default();
        assert_eq!(annotations.get("team").map(String::as_str), Some("billing"));
    }

    #[test]
    fn leases_that_are_not_this_beats_ledger_are_not_read() {
        let marks = LedgerMarks::new("celers.io");
        let lease = served(
            marks.new_lease("beat", "report", "a", at(5), token(42)),
            "9",
        );
        assert!(marks.read("other-beat", &lease).is_none());
        let mut renamed = lease.clone();
        renamed.metadata.name = Some("report".to_owned());
        assert!(marks.read("beat", &renamed).is_none());
    }
}
