//! The Lease as it travels over the wire, and what this crate reads from it.
//!
//! Only the fields the lock needs are read, so a Lease edited by hand into
//! something odd still parses: missing fields become `None`, and the
//! decision treats a Lease without a usable holder, renew time or duration
//! as expired. Every other field is kept as it came (the `rest` maps), so
//! that a replacement of the whole Lease (an update is a conditional PUT)
//! writes back what a person or another tool added: labels, annotations,
//! owner references, finalizers, fields of a newer Kubernetes.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::naming;

/// Value of `app.kubernetes.io/managed-by` on every Lease this crate creates.
pub const MANAGED_BY_VALUE: &str = "celers-kube-lease";
/// The well-known label that marks the Leases of this crate.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// A `coordination.k8s.io/v1` Lease: what the lock reads, and the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
    /// Fields the lock does not read, kept for a replacement.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The object metadata the lock reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Not kept: a replacement resets it (see [`Marks::replacement`]), and
    /// it is most of a Lease's size in memory.
    #[serde(
        default,
        rename = "managedFields",
        skip_serializing,
        deserialize_with = "skip"
    )]
    pub managed_fields: (),
    /// Fields the lock does not read (`ownerReferences`, `finalizers`, …),
    /// kept for a replacement.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Reads a value and drops it.
fn skip<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(drop)
}

/// `LeaseSpec`; times stay strings until [`parse_time`] reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_transitions: Option<i32>,
    /// Fields the lock does not read (`strategy`, `preferredHolder`, …),
    /// kept for a replacement.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A page of a Lease list.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LeaseList {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    pub items: Vec<Lease>,
}

/// The list metadata: the pagination token, and the resourceVersion the
/// list was read at (a watch from it misses nothing that came after).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListMeta {
    #[serde(default, rename = "continue")]
    pub continue_token: Option<String>,
    #[serde(default, rename = "resourceVersion")]
    pub resource_version: Option<String>,
}

/// Label and annotation keys under the configured prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marks {
    /// `<prefix>/lock-owner`: the owner label (sanitized owner).
    pub owner_label: String,
    /// `<prefix>/lock-key`: the annotation holding the original key.
    pub key_annotation: String,
    /// `<prefix>/fencing-token`: the annotation recording a guard's token.
    pub token_annotation: String,
    /// `<prefix>/lock-instance`: the backend instance that wrote the Lease
    /// last, to notice one owner string used by two processes at once.
    pub instance_annotation: String,
    /// This backend instance's value of it: random, new for each backend.
    pub instance: String,
}

impl Marks {
    /// The keys under `prefix`, e.g. `celers.io`, for a new backend instance.
    pub fn new(prefix: &str) -> Self {
        Self {
            owner_label: format!("{prefix}/lock-owner"),
            key_annotation: format!("{prefix}/lock-key"),
            token_annotation: format!("{prefix}/fencing-token"),
            instance_annotation: format!("{prefix}/lock-instance"),
            instance: naming::random_suffix(),
        }
    }

    /// The backend instance that last wrote `lease`, when it is another
    /// than this one.
    pub fn other_instance<'a>(&self, lease: &'a Lease) -> Option<&'a str> {
        let annotations = lease.metadata.annotations.as_ref()?;
        let instance = annotations.get(&self.instance_annotation)?;
        (*instance != self.instance).then_some(instance.as_str())
    }

    /// Label selector for the Leases of this crate, of any owner.
    pub fn all_locks_selector(&self) -> String {
        format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{}", self.owner_label)
    }

    /// Label selector for the Leases whose owner label is `owner`'s.
    pub fn owner_selector(&self, owner: &str) -> String {
        format!(
            "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{}={}",
            self.owner_label,
            naming::owner_label_value(owner)
        )
    }

    /// The labels of a lock held by `owner`.
    pub fn labels(&self, owner: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (self.owner_label.clone(), naming::owner_label_value(owner)),
        ])
    }

    /// The annotations of the lock `key` written by this backend instance.
    pub fn annotations(&self, key: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (self.key_annotation.clone(), key.to_owned()),
            (self.instance_annotation.clone(), self.instance.clone()),
        ])
    }

    /// A new Lease for the lock `key`, named `name`, in the state `holding`.
    pub fn new_lease(&self, key: &str, name: &str, holding: &Holding) -> Lease {
        Lease {
            api_version: Some("coordination.k8s.io/v1".to_owned()),
            kind: Some("Lease".to_owned()),
            metadata: Metadata {
                name: Some(name.to_owned()),
                labels: Some(self.labels(&holding.holder)),
                annotations: Some(self.annotations(key)),
                ..Metadata::default()
            },
            spec: Some(Spec {
                holder_identity: Some(holding.holder.clone()),
                lease_duration_seconds: Some(holding.duration_secs),
                acquire_time: Some(format_time(holding.acquire_time)),
                renew_time: Some(format_time(holding.renew_time)),
                lease_transitions: Some(holding.transitions),
                ..Spec::default()
            }),
            ..Lease::default()
        }
    }

    /// The Lease `base` (as last read or written) in the state `holding`,
    /// to replace it only while its resourceVersion is still
    /// `resource_version`. Every field the lock does not set is kept.
    ///
    /// `managedFields` is reset (`[{}]`): the API server then stops tracking
    /// field ownership on the Lease, a quarter to a third of its CPU time
    /// per update (see BENCHMARKS.md). Nobody applies these Leases, and the
    /// holder is in `spec.holderIdentity` anyway.
    pub fn replacement(&self, base: &Lease, resource_version: &str, holding: &Holding) -> Lease {
        let mut lease = base.clone();
        lease.api_version = Some("coordination.k8s.io/v1".to_owned());
        lease.kind = Some("Lease".to_owned());
        let metadata = &mut lease.metadata;
        metadata.resource_version = Some(resource_version.to_owned());
        metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(self.labels(&holding.holder));
        let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(self.instance_annotation.clone(), self.instance.clone());
        match holding.token {
            TokenNote::Keep => {}
            TokenNote::Record(token) => {
                annotations.insert(self.token_annotation.clone(), token.to_string());
            }
            TokenNote::Remove => {
                annotations.remove(&self.token_annotation);
            }
        }
        metadata
            .rest
            .insert("managedFields".to_owned(), json!([{}]));
        let spec = lease.spec.get_or_insert_with(Spec::default);
        spec.holder_identity = Some(holding.holder.clone());
        spec.lease_duration_seconds = Some(holding.duration_secs);
        spec.acquire_time = Some(format_time(holding.acquire_time));
        spec.renew_time = Some(format_time(holding.renew_time));
        spec.lease_transitions = Some(holding.transitions);
        lease
    }

    /// The fencing token recorded in a Lease by the guard holding it.
    pub fn token_of(&self, lease: &Lease) -> Option<u64> {
        lease
            .metadata
            .annotations
            .as_ref()?
            .get(&self.token_annotation)?
            .parse()
            .ok()
    }

    /// The key of a Lease created by this crate, or `None` for a foreign one.
    ///
    /// A Lease is this crate's when it carries the managed-by label and a key
    /// annotation whose computed Lease name is the Lease's own name.
    pub fn key_of<'a>(&self, lease: &'a Lease) -> Option<&'a str> {
        let managed = lease
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(MANAGED_BY_LABEL))
            .is_some_and(|value| value == MANAGED_BY_VALUE);
        let key = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(&self.key_annotation))?;
        let name = lease.metadata.name.as_deref()?;
        (managed && naming::lease_name(key) == name).then_some(key.as_str())
    }
}

/// What one read of a lock's Lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// No Lease has the lock's name.
    Missing,
    /// A Lease has the name but was not created by this crate for this key.
    Foreign,
    /// A Lease of this crate.
    Ours(Record),
}

/// The state of a lock, as stored in its Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The resourceVersion every conditional write is made against.
    pub resource_version: String,
    /// The uid, a precondition of deletes.
    pub uid: String,
    /// `spec.holderIdentity`; `None` when absent or empty.
    pub holder: Option<String>,
    /// `spec.acquireTime`, when present and parsable.
    pub acquire_time: Option<DateTime<Utc>>,
    /// `spec.renewTime`, when present and parsable.
    pub renew_time: Option<DateTime<Utc>>,
    /// `spec.leaseDurationSeconds`.
    pub duration_secs: Option<i32>,
    /// `spec.leaseTransitions`, 0 when absent.
    pub transitions: i32,
    /// The Lease as the server sent it: the base of a replacement.
    pub lease: Arc<Lease>,
}

impl Record {
    /// Reads the lock state from a Lease of this crate. `None` when the
    /// server's answer lacks a resourceVersion or uid, which it never does.
    pub fn from_lease(lease: &Lease) -> Option<Self> {
        let spec = lease.spec.clone().unwrap_or_default();
        Some(Self {
            resource_version: lease.metadata.resource_version.clone()?,
            uid: lease.metadata.uid.clone()?,
            holder: spec.holder_identity.filter(|holder| !holder.is_empty()),
            acquire_time: spec.acquire_time.as_deref().and_then(parse_time),
            renew_time: spec.renew_time.as_deref().and_then(parse_time),
            duration_secs: spec.lease_duration_seconds,
            transitions: spec.lease_transitions.unwrap_or(0),
            lease: Arc::new(lease.clone()),
        })
    }

    /// When the lock expires by the server's clock, or `None` when it has no
    /// holder or lacks the times to tell (such a Lease counts as expired) or
    /// the expiry is past the end of time (hand-edited).
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.holder.as_ref()?;
        let since = self.renew_time.or(self.acquire_time)?;
        let duration = self.duration_secs.filter(|secs| *secs > 0)?;
        since.checked_add_signed(TimeDelta::seconds(i64::from(duration)))
    }
}

/// The spec a write gives the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    /// New `holderIdentity`.
    pub holder: String,
    /// New `leaseDurationSeconds`.
    pub duration_secs: i32,
    /// New `acquireTime`.
    pub acquire_time: DateTime<Utc>,
    /// New `renewTime`.
    pub renew_time: DateTime<Utc>,
    /// New `leaseTransitions`.
    pub transitions: i32,
    /// What the write does to the fencing-token annotation.
    pub token: TokenNote,
}

/// What a write does to the annotation that records the fencing token of
/// the tenure (so that people can see it; the lock never reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenNote {
    /// Leave it: the tenure goes on (or the Lease is new).
    Keep,
    /// Record this guard's token.
    Record(u64),
    /// Remove it: a new tenure starts, whose token is not known yet.
    Remove,
}

/// Formats a MicroTime as Kubernetes requires: RFC 3339 in UTC with exactly
/// six fractional digits.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a MicroTime (or any RFC 3339 time).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease_for(key: &str, marks: &Marks) -> Lease {
        Lease {
            metadata: Metadata {
                name: Some(naming::lease_name(key)),
                uid: Some("u".into()),
                resource_version: Some("1".into()),
                labels: Some(marks.labels("me")),
                annotations: Some(marks.annotations(key)),
                ..Metadata::default()
            },
            ..Lease::default()
        }
    }

    #[test]
    fn micro_time_has_six_digits() {
        let time = parse_time("2026-11-26T06:00:00Z").expect("valid");
        assert_eq!(format_time(time), "2026-11-26T06:00:00.000000Z");
        let time = parse_time("2026-11-26T06:00:00.1234567+01:00").expect("valid");
        assert_eq!(format_time(time), "2026-11-26T05:00:00.123456Z");
    }

    #[test]
    fn unparsable_times_are_none() {
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn our_leases_are_recognised() {
        let marks = Marks::new("celers.io");
        let lease = lease_for("Tasks/Daily", &marks);
        assert_eq!(marks.key_of(&lease), Some("Tasks/Daily"));
    }

    fn holding(holder: &str) -> Holding {
        let time = parse_time("2026-11-26T06:00:00Z").expect("valid");
        Holding {
            holder: holder.into(),
            duration_secs: 30,
            acquire_time: time,
            renew_time: time,
            transitions: 0,
            token: TokenNote::Keep,
        }
    }

    #[test]
    fn each_backend_instance_signs_its_writes() {
        let (a, b) = (Marks::new("celers.io"), Marks::new("celers.io"));
        assert_ne!(a.instance, b.instance);
        let lease = a.new_lease("k", &naming::lease_name("k"), &holding("x"));
        assert_eq!(a.other_instance(&lease), None);
        assert_eq!(b.other_instance(&lease), Some(a.instance.as_str()));
        let renewed = b.replacement(&lease, "2", &holding("x"));
        assert_eq!(a.other_instance(&renewed), Some(b.instance.as_str()));
    }

    #[test]
    fn foreign_leases_are_not_ours() {
        let marks = Marks::new("celers.io");
        let ours = lease_for("k", &marks);

        let mut unlabelled = ours.clone();
        unlabelled.metadata.labels = None;
        let mut other_manager = ours.clone();
        other_manager.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            "someone-else".to_owned(),
        )]));
        let mut unannotated = ours.clone();
        unannotated.metadata.annotations = None;
        let mut renamed = ours.clone();
        renamed.metadata.name = Some("kube-scheduler".into());
        let mut other_key = ours.clone();
        other_key.metadata.annotations = Some(marks.annotations("other"));
        let other_prefix = Marks::new("example.com");

        for lease in [unlabelled, other_manager, unannotated, renamed, other_key] {
            assert_eq!(marks.key_of(&lease), None, "{lease:?}");
        }
        assert_eq!(other_prefix.key_of(&ours), None);
    }

    #[test]
    fn records_read_the_spec() {
        let marks = Marks::new("celers.io");
        let mut lease = lease_for("k", &marks);
        lease.spec = Some(Spec {
            holder_identity: Some("me".into()),
            lease_duration_seconds: Some(10),
            acquire_time: Some("2026-11-26T06:00:00.000000Z".into()),
            renew_time: Some("2026-11-26T06:00:05.000000Z".into()),
            lease_transitions: Some(3),
            ..Spec::default()
        });
        let record = Record::from_lease(&lease).expect("complete");
        assert_eq!(record.holder.as_deref(), Some("me"));
        assert_eq!(record.transitions, 3);
        assert_eq!(record.expires_at(), parse_time("2026-11-26T06:00:15Z"));
    }

    #[test]
    fn records_without_usable_times_have_no_expiry() {
        let base = Record {
            resource_version: "1".into(),
            uid: "u".into(),
            holder: Some("me".into()),
            acquire_time: None,
            renew_time: parse_time("2026-11-26T06:00:00Z"),
            duration_secs: Some(10),
            transitions: 0,
            lease: Arc::default(),
        };
        assert!(base.expires_at().is_some());
        let cases = [
            Record {
                holder: None,
                ..base.clone()
            },
            Record {
                renew_time: None,
                ..base.clone()
            },
            Record {
                duration_secs: None,
                ..base.clone()
            },
            Record {
                duration_secs: Some(0),
                ..base.clone()
            },
            Record {
                duration_secs: Some(-5),
                ..base.clone()
            },
        ];
        for record in cases {
            assert_eq!(record.expires_at(), None, "{record:?}");
        }
        let acquired_only = Record {
            renew_time: None,
            acquire_time: parse_time("2026-11-26T06:00:00Z"),
            ..base
        };
        assert_eq!(
            acquired_only.expires_at(),
            parse_time("2026-11-26T06:00:10Z")
        );
    }

    #[test]
    fn records_need_version_and_uid() {
        let marks = Marks::new("celers.io");
        let mut lease = lease_for("k", &marks);
        lease.metadata.uid = None;
        assert_eq!(Record::from_lease(&lease), None);
    }

    #[test]
    fn empty_holder_is_no_holder() {
        let marks = Marks::new("celers.io");
        let mut lease = lease_for("k", &marks);
        lease.spec = Some(Spec {
            holder_identity: Some(String::new()),
            ..Spec::default()
        });
        let record = Record::from_lease(&lease).expect("complete");
        assert_eq!(record.holder, None);
    }

    #[test]
    fn a_replacement_keeps_what_the_lock_does_not_set() {
        let marks = Marks::new("celers.io");
        let base: Lease = serde_json::from_value(json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": "n", "uid": "u", "resourceVersion": "41",
                "labels": { "team": "data", "celers.io/lock-owner": "old" },
                "annotations": { "celers.io/lock-key": "k", "note": "by hand",
                                 "celers.io/fencing-token": "40" },
                "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap",
                                      "name": "owner", "uid": "o" }],
                "finalizers": ["example.com/keep"],
                "managedFields": [{ "manager": "kubectl", "operation": "Update" }],
            },
            "spec": { "holderIdentity": "old", "strategy": "OldestEmulationVersion" },
            "status": { "future": true },
        }))
        .expect("a Lease");
        let time = parse_time("2026-11-26T06:00:00Z").expect("valid");
        let holding = Holding {
            holder: "me".into(),
            duration_secs: 30,
            acquire_time: time,
            renew_time: time,
            transitions: 2,
            token: TokenNote::Remove,
        };
        let sent = serde_json::to_value(marks.replacement(&base, "41", &holding)).expect("JSON");
        let metadata = &sent["metadata"];
        assert_eq!(metadata["resourceVersion"], "41");
        assert_eq!(metadata["uid"], "u");
        assert_eq!(metadata["labels"]["team"], "data");
        assert_eq!(metadata["labels"]["celers.io/lock-owner"], "me");
        assert_eq!(metadata["labels"][MANAGED_BY_LABEL], MANAGED_BY_VALUE);
        assert_eq!(metadata["annotations"]["note"], "by hand");
        assert_eq!(metadata["annotations"]["celers.io/lock-key"], "k");
        assert!(metadata["annotations"]
            .get("celers.io/fencing-token")
            .is_none());
        assert_eq!(
            metadata["ownerReferences"],
            base_field(&base, "ownerReferences")
        );
        assert_eq!(metadata["finalizers"], json!(["example.com/keep"]));
        assert_eq!(metadata["managedFields"], json!([{}]));
        assert_eq!(sent["spec"]["strategy"], "OldestEmulationVersion");
        assert_eq!(sent["spec"]["holderIdentity"], "me");
        assert_eq!(sent["spec"]["leaseDurationSeconds"], 30);
        assert_eq!(sent["spec"]["renewTime"], "2026-11-26T06:00:00.000000Z");
        assert_eq!(sent["spec"]["leaseTransitions"], 2);
        assert_eq!(sent["status"], json!({ "future": true }));

        let recorded = Holding {
            token: TokenNote::Record(42),
            ..holding
        };
        let sent = marks.replacement(&base, "41", &recorded);
        assert_eq!(marks.token_of(&sent), Some(42));
    }

    fn base_field(lease: &Lease, name: &str) -> Value {
        lease.metadata.rest.get(name).cloned().unwrap_or_default()
    }

    #[test]
    fn selectors_name_the_labels() {
        let marks = Marks::new("celers.io");
        assert_eq!(
            marks.owner_selector("a b"),
            format!(
                "app.kubernetes.io/managed-by=celers-kube-lease,celers.io/lock-owner={}",
                naming::owner_label_value("a b")
            )
        );
        assert_eq!(
            marks.all_locks_selector(),
            "app.kubernetes.io/managed-by=celers-kube-lease,celers.io/lock-owner"
        );
    }
}
