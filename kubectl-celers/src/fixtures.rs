//! Locks for the unit tests, made by the library itself: `LockInfo` is
//! `#[non_exhaustive]`, so the only way to get one is from the backend. A
//! backend on a mock service lists Leases answered here, with a `Date`
//! header that fixes the API server's clock.

#![allow(clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;

use celers_kube_lease::{lease_name, KubeLeaseLockBackend, LockInfo};
use chrono::{DateTime, Utc};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};

use crate::output::{LeaseMeta, Lock};

/// The API server's clock in every answer.
pub const SERVER_DATE: &str = "Thu, 26 Nov 2026 18:03:15 GMT";

/// An RFC 3339 time.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid time")
        .with_timezone(&Utc)
}

/// A Lease of this crate for `key`; `spec` as given.
pub fn lease(key: &str, resource_version: &str, spec: Value, annotations: Value) -> Value {
    let mut all_annotations = json!({ "celers.io/lock-key": key });
    if let (Some(all), Some(more)) = (all_annotations.as_object_mut(), annotations.as_object()) {
        all.extend(more.clone());
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": lease_name(key),
            "namespace": "ns",
            "uid": format!("uid-{resource_version}"),
            "resourceVersion": resource_version,
            "creationTimestamp": "2026-11-26T16:00:00Z",
            "labels": { "app.kubernetes.io/managed-by": "celers-kube-lease" },
            "annotations": all_annotations,
        },
        "spec": spec,
    })
}

/// What the library makes of `leases`, listed at [`SERVER_DATE`], by key.
pub fn lock_infos(leases: Vec<Value>) -> BTreeMap<String, LockInfo> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "ns");
        let backend = KubeLeaseLockBackend::builder(client)
            .namespace("ns")
            .sweep_interval(None)
            .build()
            .expect("valid settings");
        let server = tokio::spawn(async move {
            let (_request, send) = handle.next_request().await.expect("a list request");
            let body = json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "LeaseList",
                "metadata": { "resourceVersion": "2000" },
                "items": leases,
            });
            send.send_response(
                Response::builder()
                    .header(http::header::DATE, SERVER_DATE)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string().into_bytes()))
                    .expect("a response"),
            );
        });
        let infos = backend.locks("").await.expect("locks");
        server.await.expect("served");
        infos
            .into_iter()
            .map(|info| (info.key.clone(), info))
            .collect()
    })
}

/// Three locks: `tasks/nightly` held (44 s left, held for 3m14s, fencing
/// token 1234), `tasks/b` expired, `k` free (no holder); the first two in
/// namespace `celers-beat`, the last in `other`.
pub fn held_expired_free() -> (Lock, Lock, Lock) {
    let mut infos = lock_infos(vec![
        lease(
            "tasks/nightly",
            "1240",
            json!({
                "holderIdentity": "scheduler-7d9f-abcde",
                "leaseDurationSeconds": 60,
                "acquireTime": "2026-11-26T18:00:00.250000Z",
                "renewTime": "2026-11-26T18:03:00.500000Z",
                "leaseTransitions": 3,
            }),
            json!({ "celers.io/fencing-token": "1234" }),
        ),
        lease(
            "tasks/b",
            "99",
            json!({
                "holderIdentity": "pod-2",
                "leaseDurationSeconds": 1,
                "acquireTime": "2026-11-26T18:03:00.500000Z",
                "renewTime": "2026-11-26T18:03:00.500000Z",
                "leaseTransitions": 0,
            }),
            json!({}),
        ),
        lease("k", "7", json!({ "leaseTransitions": 1 }), json!({})),
    ]);
    let mut lock = |key: &str, namespace: &str, created: &str, labels: &[(&str, &str)]| Lock {
        namespace: namespace.to_owned(),
        info: infos.remove(key).expect("listed"),
        meta: LeaseMeta {
            created: Some(at(created)),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        },
    };
    (
        lock(
            "tasks/nightly",
            "celers-beat",
            "2026-11-26T16:00:00Z",
            &[("team", "data")],
        ),
        lock("tasks/b", "celers-beat", "2026-11-26T18:03:00Z", &[]),
        lock("k", "other", "2026-11-20T18:00:00Z", &[]),
    )
}
