//! The local control plane treats Leases as a real cluster does: create, read,
//! optimistic concurrency (409 on a stale resourceVersion), delete, kubectl.

#![allow(clippy::expect_used)] // a test fails by panicking

use celers_kube_lease_testkit::cluster;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn leases_round_trip_with_optimistic_concurrency() {
    let cluster = cluster();
    let namespace = cluster.namespace("smoke").await;
    let leases: Api<Lease> = Api::namespaced(cluster.client().await, &namespace);

    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "smoke" },
        "spec": { "holderIdentity": "alice", "leaseDurationSeconds": 30 }
    }))
    .expect("lease");
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    let read = leases.get("smoke").await.expect("get");
    assert_eq!(
        read.spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref()),
        Some("alice")
    );
    assert_eq!(
        read.metadata.resource_version,
        created.metadata.resource_version
    );

    let table = cluster.kubectl_ok(&["get", "leases", "-n", &namespace]);
    assert!(
        table.contains("smoke") && table.contains("alice"),
        "{table}"
    );

    let mut fresh = read.clone();
    fresh.spec.as_mut().expect("spec").holder_identity = Some("bob".into());
    leases
        .replace("smoke", &PostParams::default(), &fresh)
        .await
        .expect("replace with the current resourceVersion");

    let mut stale = read;
    stale.spec.as_mut().expect("spec").holder_identity = Some("mallory".into());
    match leases
        .replace("smoke", &PostParams::default(), &stale)
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("a stale resourceVersion must get 409 Conflict, got {other:?}"),
    }

    leases
        .delete("smoke", &DeleteParams::default())
        .await
        .expect("delete");
    match leases.get("smoke").await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
        other => panic!("expected 404 after delete, got {other:?}"),
    }
    let table = cluster.kubectl_ok(&["get", "leases", "-n", &namespace]);
    assert!(!table.contains("smoke"), "{table}");
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn the_api_server_lists_its_own_leases() {
    let cluster = cluster();
    let table = cluster.kubectl_ok(&["get", "leases", "-A"]);
    assert!(table.contains("kube-system"), "{table}");
    assert!(table.contains("apiserver-"), "{table}");
}
