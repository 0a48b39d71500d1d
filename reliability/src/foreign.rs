//! Leases this crate did not make stay untouched by every call, the
//! owner-wide `release_all` and `sweep_expired` included: kube-system's own
//! Leases and another program's Leases next to ours.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use celers_kube_lease::{
    lease_name, KubeLeaseLockBackend, DEFAULT_FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

use crate::cluster::{self, Connect};
use crate::Result;

/// What the check saw.
#[derive(Clone, Debug, Default)]
pub struct Foreign {
    /// Foreign Leases watched.
    pub leases: usize,
    /// Library calls made meanwhile.
    pub calls: usize,
    /// Leases that changed (must be empty).
    pub changed: Vec<String>,
}

impl Foreign {
    /// Nothing changed, and something was watched.
    pub fn clean(&self) -> bool {
        self.changed.is_empty() && self.leases > 0
    }
}

/// The parts of a Lease this crate could write, plus who wrote it.
#[derive(Clone, Debug, PartialEq)]
struct Fingerprint {
    uid: Option<String>,
    /// `None` for Leases that their own program renews meanwhile.
    resource_version: Option<String>,
    holder: Option<String>,
    duration: Option<i32>,
    acquire_time: Option<String>,
    transitions: Option<i32>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    written_by_us: bool,
}

fn fingerprint(lease: &Lease, renewed_by_owner: bool) -> Fingerprint {
    let spec = lease.spec.clone().unwrap_or_default();
    Fingerprint {
        uid: lease.metadata.uid.clone(),
        resource_version: (!renewed_by_owner)
            .then(|| lease.metadata.resource_version.clone())
            .flatten(),
        holder: spec.holder_identity,
        duration: spec.lease_duration_seconds,
        acquire_time: (!renewed_by_owner)
            .then(|| spec.acquire_time.map(|t| format!("{:?}", t.0)))
            .flatten(),
        transitions: spec.lease_transitions,
        labels: lease.metadata.labels.clone(),
        annotations: lease.metadata.annotations.clone(),
        written_by_us: lease
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|f| f.manager.as_deref() == Some(DEFAULT_FIELD_MANAGER)),
    }
}

async fn fingerprints(
    api: &Api<Lease>,
    renewed_by_owner: bool,
) -> Result<BTreeMap<String, Fingerprint>> {
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .iter()
        .map(|l| {
            (
                l.metadata.name.clone().unwrap_or_default(),
                fingerprint(l, renewed_by_owner),
            )
        })
        .collect())
}

/// Every call a backend has, on keys, owners and Leases around the foreign
/// ones. Errors are fine here; only the foreign Leases' state matters.
async fn every_call(backend: &KubeLeaseLockBackend, keys: &[String], owners: &[String]) -> usize {
    let mut calls = 0;
    for key in keys {
        for owner in owners {
            let _ = backend.try_acquire(key, owner, 1).await;
            let _ = backend.renew(key, owner, 1).await;
            let _ = backend.is_locked(key).await;
            let _ = backend.owner(key).await;
            let _ = backend.release(key, owner).await;
            calls += 5;
        }
    }
    for owner in owners {
        let _ = backend.release_all(owner).await;
        calls += 1;
    }
    let _ = backend.sweep_expired().await;
    calls + 1
}

/// Runs the check against the control plane of `kubeconfig`.
pub async fn run(kubeconfig: &Path) -> Result<Foreign> {
    let client = cluster::client(kubeconfig, &Connect::default()).await?;
    let mut outcome = Foreign::default();

    // kube-system: the API server's identity Lease, renewed by the API
    // server itself, so its resourceVersion and renewTime move on their own.
    let system: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let before = fingerprints(&system, true).await?;
    let holders: Vec<String> = before.values().filter_map(|f| f.holder.clone()).collect();
    let names: Vec<String> = before.keys().cloned().collect();
    let backend = KubeLeaseLockBackend::builder(client.clone())
        .namespace("kube-system")
        .sweep_grace(Duration::ZERO)
        .build()?;
    let mut owners = holders.clone();
    owners.push("reliability".to_owned());
    outcome.calls += every_call(&backend, &names, &owners).await;
    compare(
        &before,
        &fingerprints(&system, true).await?,
        "kube-system",
        &mut outcome,
    );

    // Another program's Leases next to ours, expired long ago, one carrying
    // our managed-by label without our key annotation, one a renamed copy
    // of one of ours.
    let namespace = cluster::create_namespace(&client, "reliability-foreign").await?;
    let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let backend = KubeLeaseLockBackend::builder(client.clone())
        .namespace(&namespace)
        .sweep_grace(Duration::ZERO)
        .build()?;
    let key = "reliability/copied";
    backend.try_acquire(key, "copied-owner", 1).await?;
    let mut copy = api.get(&lease_name(key)).await?;
    copy.metadata = kube::api::ObjectMeta {
        name: Some("renamed-copy".to_owned()),
        labels: copy.metadata.labels.clone(),
        annotations: copy.metadata.annotations.clone(),
        ..Default::default()
    };
    api.create(&PostParams::default(), &copy).await?;
    for (name, labels) in [
        (
            "other-program-leader",
            serde_json::json!({ MANAGED_BY_LABEL: "other-program" }),
        ),
        (
            "our-label-no-annotation",
            serde_json::json!({ MANAGED_BY_LABEL: MANAGED_BY_VALUE, "celers.io/lock-owner": "other" }),
        ),
    ] {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "holderIdentity": "other",
                "leaseDurationSeconds": 1,
                "renewTime": "2000-01-01T00:00:00.000000Z",
                "acquireTime": "2000-01-01T00:00:00.000000Z"
            }
        }))?;
        api.create(&PostParams::default(), &lease).await?;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut before = fingerprints(&api, false).await?;
    before.remove(&lease_name(key));
    let keys = vec![
        key.to_owned(),
        "other-program-leader".to_owned(),
        "our-label-no-annotation".to_owned(),
        "renamed-copy".to_owned(),
    ];
    let owners = vec!["other".to_owned(), "copied-owner".to_owned()];
    outcome.calls += every_call(&backend, &keys, &owners).await;
    let mut after = fingerprints(&api, false).await?;
    after.retain(|name, _| before.contains_key(name));
    compare(&before, &after, &namespace, &mut outcome);
    Ok(outcome)
}

fn compare(
    before: &BTreeMap<String, Fingerprint>,
    after: &BTreeMap<String, Fingerprint>,
    namespace: &str,
    outcome: &mut Foreign,
) {
    outcome.leases += before.len();
    for (name, print) in before {
        match after.get(name) {
            Some(now) if now == print && !now.written_by_us => {}
            Some(now) => outcome
                .changed
                .push(format!("{namespace}/{name} changed: {print:?} -> {now:?}")),
            None => outcome
                .changed
                .push(format!("{namespace}/{name} was deleted")),
        }
    }
}
