//! Inspecting locks against the real API server: listing, describing and
//! force-releasing, as `kubectl celers` does.

#![allow(clippy::expect_used)] // a test fails by panicking

use std::time::Duration;

use celers_kube_lease::{lease_name, Error, KubeLeaseLockBackend};
use celers_kube_lease_testkit::cluster;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn locks_are_listed_described_and_force_released() {
    let cluster = cluster();
    let namespace = cluster.namespace("inspect").await;
    let backend = KubeLeaseLockBackend::builder(cluster.client().await)
        .namespace(&namespace)
        .sweep_interval(None)
        .build()
        .expect("valid settings");
    assert!(backend
        .try_acquire("tasks/a", "pod-1", 60)
        .await
        .expect("acquire"));
    assert!(backend
        .try_acquire("tasks/b", "pod-2", 1)
        .await
        .expect("acquire"));
    assert!(backend
        .try_acquire("other", "pod-1", 60)
        .await
        .expect("acquire"));
    let guard = backend
        .try_lock("tasks/guarded", "pod-3", Duration::from_secs(3))
        .await
        .expect("try_lock")
        .expect("free");
    // The guard records its token at its first renewal; the 1 s lock
    // expires, also by the earliest the server's clock can read.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let locks = backend.locks("tasks/").await.expect("locks");
    let keys: Vec<&str> = locks.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["tasks/a", "tasks/b", "tasks/guarded"]);
    let a = &locks[0];
    assert!(a.is_held());
    assert_eq!(a.holder.as_deref(), Some("pod-1"));
    assert_eq!(a.lease, lease_name("tasks/a"));
    assert_eq!(a.ttl_secs, Some(60));
    let left = a.expires_in.expect("held");
    assert!(
        left > Duration::from_secs(55) && left <= Duration::from_secs(61),
        "{left:?}"
    );
    let b = &locks[1];
    assert!(!b.is_held(), "expired by the server's clock");
    assert_eq!(b.holder.as_deref(), Some("pod-2"));
    assert_eq!(locks[2].fencing_token, Some(guard.fencing_token()));
    assert_eq!(backend.locks("").await.expect("locks").len(), 4);

    let described = backend
        .describe("tasks/a")
        .await
        .expect("describe")
        .expect("exists");
    assert_eq!(described.holder, a.holder);
    assert_eq!(described.resource_version, a.resource_version);
    assert_eq!(described.expires_at, a.expires_at);
    assert!(described.held_for.is_some());
    assert_eq!(backend.describe("missing").await.expect("describe"), None);

    let freed = backend
        .force_release("tasks/a")
        .await
        .expect("force_release")
        .expect("it was there");
    assert_eq!(freed.holder.as_deref(), Some("pod-1"));
    assert_eq!(backend.owner("tasks/a").await.expect("owner"), None);
    assert_eq!(backend.force_release("tasks/a").await.expect("again"), None);

    // A foreign Lease with a lock's name is never deleted.
    let leases: Api<Lease> = Api::namespaced(cluster.client().await, &namespace);
    let foreign: Lease = serde_json::from_value(serde_json::json!({
        "metadata": { "name": lease_name("foreign") },
        "spec": { "holderIdentity": "someone" },
    }))
    .expect("lease");
    leases
        .create(&PostParams::default(), &foreign)
        .await
        .expect("create");
    assert!(matches!(
        backend.force_release("foreign").await,
        Err(Error::ForeignLease { .. })
    ));
    assert!(leases
        .get_opt(&lease_name("foreign"))
        .await
        .expect("get")
        .is_some());
    assert!(guard.release().await.expect("release"));
}
