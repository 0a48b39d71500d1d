//! Every row of the semantics table, against the real API server.

#![allow(clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use celers_kube_lease::{lease_name, Error, KubeLeaseLockBackend};
use celers_kube_lease_testkit::cluster;
use common::fixture;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};

fn spec(lease: &Lease) -> k8s_openapi::api::coordination::v1::LeaseSpec {
    lease.spec.clone().expect("spec")
}

async fn wait_expiry(ttl_secs: u64) {
    // By the server's clock the Lease ends at most one clock uncertainty
    // (a second and a round trip for a new client) after its TTL, and a new
    // client sees that at most one uncertainty late.
    tokio::time::sleep(Duration::from_millis(ttl_secs * 1000 + 2300)).await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn acquire_creates_the_lease() {
    let f = fixture("acquire").await;
    let backend = f.backend().await;
    assert!(backend
        .try_acquire("job", "alice", 30)
        .await
        .expect("acquire"));

    let lease = f.lease("job").await.expect("the Lease exists");
    let spec = spec(&lease);
    assert_eq!(spec.holder_identity.as_deref(), Some("alice"));
    assert_eq!(spec.lease_duration_seconds, Some(30));
    assert_eq!(spec.lease_transitions, Some(0));
    assert_eq!(spec.acquire_time, spec.renew_time);
    let labels = lease.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("celers-kube-lease")
    );
    assert_eq!(
        labels.get("celers.io/lock-owner").map(String::as_str),
        Some("alice")
    );
    let annotations = lease.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("celers.io/lock-key").map(String::as_str),
        Some("job")
    );

    // MicroTime with exactly six fractional digits, as the server stored it.
    let renew = f.raw("job", ".spec.renewTime");
    let fraction = renew
        .split('.')
        .nth(1)
        .and_then(|rest| rest.strip_suffix('Z'))
        .unwrap_or_default();
    assert_eq!(fraction.len(), 6, "{renew}");

    let table = f.cluster.kubectl_ok(&["get", "leases", "-n", &f.namespace]);
    assert!(
        table.contains(&lease_name("job")) && table.contains("alice"),
        "{table}"
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn the_live_holder_reacquires_with_a_new_ttl() {
    let f = fixture("reacquire").await;
    let backend = f.backend().await;
    assert!(backend
        .try_acquire("job", "alice", 30)
        .await
        .expect("acquire"));
    let before = spec(&f.lease("job").await.expect("lease"));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(backend
        .try_acquire("job", "alice", 60)
        .await
        .expect("reacquire"));
    let after = spec(&f.lease("job").await.expect("lease"));
    assert_eq!(after.lease_duration_seconds, Some(60));
    assert_eq!(after.acquire_time, before.acquire_time, "same term");
    assert!(after.renew_time > before.renew_time);
    assert_eq!(after.lease_transitions, Some(0));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn another_owners_live_lease_is_refused_without_a_write() {
    let f = fixture("refuse").await;
    let alice = f.backend().await;
    let bob = f.backend().await;
    assert!(alice
        .try_acquire("job", "alice", 30)
        .await
        .expect("acquire"));
    let version = f.version("job").await;
    assert!(!bob.try_acquire("job", "bob", 30).await.expect("try"));
    // Also from a backend that has seen the Lease before.
    assert!(!bob.try_acquire("job", "bob", 30).await.expect("try"));
    assert!(!bob.renew("job", "bob", 30).await.expect("renew"));
    assert!(!bob.release("job", "bob").await.expect("release"));
    assert_eq!(f.version("job").await, version, "nothing written");
    assert_eq!(
        bob.owner("job").await.expect("owner").as_deref(),
        Some("alice")
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn an_expired_lease_is_taken_over() {
    let f = fixture("takeover").await;
    let alice = f.backend().await;
    let bob = f.backend().await;
    assert!(alice.try_acquire("job", "alice", 1).await.expect("acquire"));
    let first = spec(&f.lease("job").await.expect("lease"));
    wait_expiry(1).await;
    assert!(!alice.is_locked("job").await.expect("is_locked"));
    assert!(bob.try_acquire("job", "bob", 30).await.expect("takeover"));
    let taken = spec(&f.lease("job").await.expect("lease"));
    assert_eq!(taken.holder_identity.as_deref(), Some("bob"));
    assert_eq!(taken.lease_transitions, Some(1));
    assert_eq!(taken.acquire_time, taken.renew_time);
    assert!(taken.acquire_time > first.acquire_time);
    let labels = f.lease("job").await.and_then(|l| l.metadata.labels);
    assert_eq!(
        labels
            .unwrap_or_default()
            .get("celers.io/lock-owner")
            .map(String::as_str),
        Some("bob"),
        "the owner label follows the holder"
    );
    // The old holder can neither renew nor release it any more.
    assert!(!alice.renew("job", "alice", 30).await.expect("renew"));
    assert!(!alice.release("job", "alice").await.expect("release"));
    assert_eq!(
        alice.owner("job").await.expect("owner").as_deref(),
        Some("bob")
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_lease_without_holder_is_taken_over() {
    let f = fixture("emptyholder").await;
    let alice = f.backend().await;
    assert!(alice
        .try_acquire("job", "alice", 300)
        .await
        .expect("acquire"));
    let patch = serde_json::json!({ "spec": { "holderIdentity": "" } });
    f.leases
        .patch(
            &lease_name("job"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("clear the holder by hand");
    let bob = f.backend().await;
    assert!(!bob.is_locked("job").await.expect("is_locked"));
    assert!(bob.try_acquire("job", "bob", 30).await.expect("takeover"));
    let taken = spec(&f.lease("job").await.expect("lease"));
    assert_eq!(taken.holder_identity.as_deref(), Some("bob"));
    assert_eq!(taken.lease_transitions, Some(1));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_lost_race_is_decided_again_from_a_fresh_read() {
    let f = fixture("conflict").await;
    let alice = f.backend().await;
    let bob = f.backend().await;
    assert!(alice.try_acquire("job", "alice", 1).await.expect("acquire"));
    // Bob remembers alice's Lease as it is now.
    assert!(bob.is_locked("job").await.expect("is_locked"));
    wait_expiry(1).await;
    // Alice starts a new term: the Lease bob remembers is stale.
    assert!(alice
        .try_acquire("job", "alice", 30)
        .await
        .expect("new term"));
    // Bob's remembered state says "expired": his conditional write gets 409,
    // he reads again, sees alice live, and answers false.
    assert!(!bob.try_acquire("job", "bob", 30).await.expect("try"));
    assert_eq!(
        alice.owner("job").await.expect("owner").as_deref(),
        Some("alice")
    );

    // Someone else touches alice's Lease: her remembered resourceVersion is
    // stale, her renew conflicts, reads, and succeeds on the fresh state.
    let patch = serde_json::json!({ "metadata": { "annotations": { "touched": "yes" } } });
    f.leases
        .patch(
            &lease_name("job"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("touch");
    assert!(alice
        .renew("job", "alice", 30)
        .await
        .expect("renew after conflict"));
    assert!(alice.release("job", "alice").await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn renew_extends_only_a_live_lock_of_its_holder() {
    let f = fixture("renew").await;
    let alice = f.backend().await;
    assert!(alice
        .try_acquire("job", "alice", 30)
        .await
        .expect("acquire"));
    let before = spec(&f.lease("job").await.expect("lease"));
    assert!(alice.renew("job", "alice", 45).await.expect("renew"));
    let after = spec(&f.lease("job").await.expect("lease"));
    assert_eq!(after.lease_duration_seconds, Some(45));
    assert!(after.renew_time > before.renew_time);
    assert_eq!(after.acquire_time, before.acquire_time);

    // A second backend of the same owner (another process) renews too.
    let alice_elsewhere = f.backend().await;
    assert!(alice_elsewhere
        .renew("job", "alice", 30)
        .await
        .expect("renew"));

    assert!(!alice
        .renew("missing", "alice", 30)
        .await
        .expect("renew missing"));
    assert!(f.lease("missing").await.is_none(), "renew never creates");

    assert!(alice
        .try_acquire("short", "alice", 1)
        .await
        .expect("acquire"));
    wait_expiry(1).await;
    let version = f.version("short").await;
    assert!(!alice
        .renew("short", "alice", 30)
        .await
        .expect("renew expired"));
    assert_eq!(f.version("short").await, version, "never resurrected");
    assert!(!alice.is_locked("short").await.expect("is_locked"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn release_deletes_only_the_holders_lease() {
    let f = fixture("release").await;
    let alice = f.backend().await;
    let bob = f.backend().await;
    assert!(alice
        .try_acquire("job", "alice", 30)
        .await
        .expect("acquire"));
    assert!(!bob
        .release("job", "bob")
        .await
        .expect("release by non-holder"));
    assert!(f.lease("job").await.is_some());
    assert!(alice.release("job", "alice").await.expect("release"));
    assert!(f.lease("job").await.is_none(), "the Lease is gone");
    assert!(!alice.release("job", "alice").await.expect("release again"));
    assert!(!bob.release("never", "bob").await.expect("release missing"));

    // An expired lock that nobody took over is still its holder's to release,
    // also from a backend that never saw it.
    assert!(alice
        .try_acquire("short", "alice", 1)
        .await
        .expect("acquire"));
    wait_expiry(1).await;
    let alice_elsewhere = f.backend().await;
    assert!(alice_elsewhere
        .release("short", "alice")
        .await
        .expect("release expired"));
    assert!(f.lease("short").await.is_none());
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn is_locked_and_owner_report_only_live_holders() {
    let f = fixture("inspect").await;
    let alice = f.backend().await;
    let observer = f.backend().await;
    assert!(!observer.is_locked("job").await.expect("is_locked"));
    assert_eq!(observer.owner("job").await.expect("owner"), None);
    assert!(alice.try_acquire("job", "alice", 1).await.expect("acquire"));
    assert!(observer.is_locked("job").await.expect("is_locked"));
    assert_eq!(
        observer.owner("job").await.expect("owner").as_deref(),
        Some("alice")
    );
    wait_expiry(1).await;
    assert!(!observer.is_locked("job").await.expect("is_locked"));
    assert_eq!(observer.owner("job").await.expect("owner"), None);
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn release_all_pages_through_an_owners_leases_only() {
    let f = fixture("releaseall").await;
    let alice = KubeLeaseLockBackend::builder(f.cluster.client().await)
        .namespace(&f.namespace)
        .page_size(2)
        .delete_concurrency(3)
        .sweep_interval(None)
        .build()
        .expect("valid settings");
    let bob = f.backend().await;
    let owner = "alice:host/1"; // not a valid label value: sanitized + hashed
    for i in 0..7 {
        assert!(alice
            .try_acquire(&format!("a{i}"), owner, 30)
            .await
            .expect("acquire"));
    }
    assert!(alice
        .try_acquire("expired", owner, 1)
        .await
        .expect("acquire"));
    for i in 0..3 {
        assert!(bob
            .try_acquire(&format!("b{i}"), "bob", 30)
            .await
            .expect("acquire"));
    }
    wait_expiry(1).await;
    let fresh = f.backend().await;
    assert_eq!(fresh.release_all(owner).await.expect("release_all"), 8);
    let left = f.names().await;
    let mut expected: Vec<String> = (0..3).map(|i| lease_name(&format!("b{i}"))).collect();
    expected.sort();
    assert_eq!(left, expected);
    assert_eq!(fresh.release_all(owner).await.expect("again"), 0);
    assert_eq!(bob.release_all("bob").await.expect("bob"), 3);
    assert!(f.names().await.is_empty());
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn any_key_maps_to_its_own_lease() {
    let f = fixture("keys").await;
    let backend = f.backend().await;
    let long = "k".repeat(1000);
    let keys = [
        "beat_leader",
        "celers-beat:dispatch:hourly@2026-11-26T06:00:00+00:00",
        "Tasks/Daily",
        "タスク",
        long.as_str(),
        "Task",
        "task",
    ];
    for key in keys {
        assert!(
            backend.try_acquire(key, "alice", 30).await.expect(key),
            "{key}"
        );
    }
    assert_eq!(f.names().await.len(), keys.len(), "one Lease per key");
    for key in keys {
        let lease = f.lease(key).await.expect("lease");
        let annotations = lease.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("celers.io/lock-key").map(String::as_str),
            Some(key)
        );
    }
    // Locks on distinct keys are independent.
    assert!(!backend.try_acquire("Task", "bob", 30).await.expect("Task"));
    assert!(backend.release("task", "alice").await.expect("task"));
    assert_eq!(
        backend.owner("Task").await.expect("Task").as_deref(),
        Some("alice")
    );
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn expired_leases_are_swept_and_live_ones_kept() {
    let f = fixture("sweep").await;
    let sweeper = KubeLeaseLockBackend::builder(f.cluster.client().await)
        .namespace(&f.namespace)
        .sweep_grace(Duration::ZERO)
        .sweep_interval(Some(Duration::from_millis(100)))
        .build()
        .expect("valid");
    let alice = f.backend().await;
    assert!(alice
        .try_acquire("dead-1", "alice", 1)
        .await
        .expect("acquire"));
    assert!(alice
        .try_acquire("dead-2", "alice", 1)
        .await
        .expect("acquire"));
    assert!(alice
        .try_acquire("live", "alice", 300)
        .await
        .expect("acquire"));
    wait_expiry(1).await;
    assert_eq!(sweeper.sweep_expired().await.expect("sweep"), 2);
    assert_eq!(f.names().await, vec![lease_name("live")]);

    // Opportunistically: creating a lock starts a background sweep once the
    // sweep interval has passed.
    assert!(alice
        .try_acquire("dead-3", "alice", 1)
        .await
        .expect("acquire"));
    wait_expiry(1).await;
    assert!(sweeper
        .try_acquire("new", "bob", 300)
        .await
        .expect("acquire"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.lease("dead-3").await.is_some() {
        assert!(Instant::now() < deadline, "the background sweep never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut expected = vec![lease_name("live"), lease_name("new")];
    expected.sort();
    assert_eq!(f.names().await, expected);
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn eight_clients_on_one_key_never_hold_it_together() {
    const TTL: u64 = 2;
    let f = fixture("contention").await;
    let mut backends = Vec::new();
    for _ in 0..8 {
        backends.push(f.backend().await);
    }
    let origin = Instant::now();
    let run_for = Duration::from_secs(6);
    let tasks = backends.into_iter().enumerate().map(|(i, backend)| {
        tokio::spawn(async move {
            let owner = format!("client-{i}");
            let mut held = Vec::new();
            let mut errors = 0;
            while origin.elapsed() < run_for {
                let sent = Instant::now();
                match backend.try_acquire("hot", &owner, TTL).await {
                    Ok(true) => {
                        let got = Instant::now();
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        let released_at = Instant::now();
                        let until = (sent + Duration::from_secs(TTL)).min(released_at);
                        held.push((got, until));
                        if backend.release("hot", &owner).await.is_err() {
                            errors += 1;
                        }
                    }
                    Ok(false) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(_) => errors += 1,
                }
            }
            (held, errors)
        })
    });
    let mut intervals = Vec::new();
    for task in tasks {
        let (held, errors) = task.await.expect("task");
        assert_eq!(errors, 0);
        intervals.extend(held);
    }
    assert!(
        intervals.len() >= 8,
        "the lock changed hands {} times",
        intervals.len()
    );
    intervals.sort();
    for pair in intervals.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two holders at once: {pair:?}");
    }
}

/// A lost race is an answer: 8 clients cycling acquire-release on one key
/// get `Ok(true)` or `Ok(false)`, never an error, over at least 2,000 calls,
/// even with no conflict retries at all: losing to another owner's write is
/// not a conflict to retry.
#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn clients_cycling_on_one_key_get_answers_not_errors() {
    const CLIENTS: usize = 8;
    const CALLS_EACH: usize = 260;
    let f = fixture("cycling").await;
    let mut backends = Vec::new();
    for _ in 0..CLIENTS {
        let backend = f
            .builder(f.cluster.client().await)
            .conflict_retries(0)
            .build()
            .expect("valid settings");
        backends.push(backend);
    }
    let tasks = backends.into_iter().enumerate().map(|(i, backend)| {
        tokio::spawn(async move {
            let owner = format!("client-{i}");
            let (mut calls, mut wins, mut errors) = (0, 0, Vec::new());
            while calls < CALLS_EACH {
                calls += 1;
                match backend.try_acquire("hot", &owner, 30).await {
                    Ok(true) => {
                        wins += 1;
                        calls += 1;
                        if let Err(error) = backend.release("hot", &owner).await {
                            errors.push(error.to_string());
                        }
                    }
                    Ok(false) => {}
                    Err(error) => errors.push(error.to_string()),
                }
            }
            (calls, wins, errors)
        })
    });
    let (mut calls, mut wins) = (0, 0);
    for task in tasks {
        let (c, w, errors) = task.await.expect("task");
        assert!(
            errors.is_empty(),
            "{} errors, first: {}",
            errors.len(),
            errors[0]
        );
        calls += c;
        wins += w;
    }
    assert!(calls >= 2_000, "{calls} calls");
    assert!(wins >= CLIENTS, "the lock changed hands only {wins} times");
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn concurrent_creates_have_one_winner() {
    let f = fixture("createrace").await;
    let mut backends = Vec::new();
    for _ in 0..8 {
        backends.push(Arc::new(f.backend().await));
    }
    // Warm each backend's clock so that all of them go straight to a create.
    for backend in &backends {
        assert!(!backend.is_locked("warm").await.expect("read"));
    }
    let tasks = backends.iter().enumerate().map(|(i, backend)| {
        let backend = Arc::clone(backend);
        tokio::spawn(async move { backend.try_acquire("race", &format!("c{i}"), 30).await })
    });
    let mut winners = BTreeMap::new();
    for (i, task) in tasks.enumerate() {
        if task.await.expect("task").expect("no error") {
            winners.insert(i, ());
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let holder = spec(&f.lease("race").await.expect("lease")).holder_identity;
    let winner = winners.keys().next().map(|i| format!("c{i}"));
    assert_eq!(holder, winner);
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn many_keys_are_independent() {
    let f = fixture("manykeys").await;
    let alice = f.backend().await;
    let bob = f.backend().await;
    for i in 0..40 {
        let (mine, theirs) = if i % 2 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        let owner = if i % 2 == 0 { "alice" } else { "bob" };
        let other = if i % 2 == 0 { "bob" } else { "alice" };
        let key = format!("k{i}");
        assert!(mine.try_acquire(&key, owner, 30).await.expect("acquire"));
        assert!(!theirs.try_acquire(&key, other, 30).await.expect("refused"));
    }
    assert_eq!(f.names().await.len(), 40);
    assert_eq!(alice.release_all("alice").await.expect("release_all"), 20);
    for i in (1..40).step_by(2) {
        assert_eq!(
            alice
                .owner(&format!("k{i}"))
                .await
                .expect("owner")
                .as_deref(),
            Some("bob")
        );
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_missing_namespace_is_an_api_error() {
    let cluster = cluster();
    let backend = KubeLeaseLockBackend::builder(cluster.client().await)
        .namespace("no-such-namespace")
        .build()
        .expect("valid name");
    match backend.try_acquire("job", "alice", 30).await {
        Err(Error::Api { status: 404, .. }) => {}
        other => panic!("expected 404 for a missing namespace, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn writes_keep_what_people_added_and_drop_field_tracking() {
    let f = fixture("kept").await;
    let alice = f.backend().await;
    assert!(alice
        .try_acquire("job", "alice", 30)
        .await
        .expect("acquire"));
    // A create is tracked by the API server, like any.
    let created = f.lease("job").await.expect("lease");
    assert!(created
        .metadata
        .managed_fields
        .is_some_and(|f| !f.is_empty()));

    // A person labels and annotates the Lease and gives it an owner.
    let owner = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "schedule",
        "uid": "6d4e3c2a-0000-4000-8000-000000000001",
    });
    let edit = serde_json::json!({ "metadata": {
        "labels": { "team": "data" },
        "annotations": { "note": "paged at 03:00" },
        "ownerReferences": [owner],
    }});
    f.leases
        .patch(
            &lease_name("job"),
            &PatchParams::default(),
            &Patch::Merge(&edit),
        )
        .await
        .expect("edit");

    // Alice's renew (conflict, read, replace) and a takeover by bob after
    // the TTL keep all of it, and leave no field tracking behind.
    assert!(alice.renew("job", "alice", 1).await.expect("renew"));
    wait_expiry(1).await;
    let bob = f.backend().await;
    assert!(bob.try_acquire("job", "bob", 30).await.expect("takeover"));
    let lease = f.lease("job").await.expect("lease");
    let labels = lease.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("data"));
    assert_eq!(
        labels.get("celers.io/lock-owner").map(String::as_str),
        Some("bob")
    );
    let annotations = lease.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("note").map(String::as_str),
        Some("paged at 03:00")
    );
    let owners = lease.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].name, "schedule");
    assert_eq!(spec(&lease).holder_identity.as_deref(), Some("bob"));
    assert!(
        lease.metadata.managed_fields.is_none_or(|f| f.is_empty()),
        "no field tracking after an update"
    );
    assert!(bob.release("job", "bob").await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn unknown_locks_are_created_blind_only_while_that_pays() {
    let f = fixture("new-keys").await;
    let before = f.backend().await;
    let keys: Vec<String> = (0..40).map(|i| format!("held-{i}")).collect();
    for key in &keys {
        assert!(before.try_acquire(key, "alice", 60).await.expect("acquire"));
    }

    // Alice restarts: a new backend, which knows none of her locks. Once
    // its clock is known it creates unknown locks without a read; each of
    // these creates finds the Lease (409) and costs a read and an update on
    // top, until most of its recent creates have failed.
    let (after, counts) = f.counted_backend().await;
    assert!(!after.is_locked("warm-up").await.expect("is_locked"));
    let start = counts.get("POST") + counts.reads() + counts.get("PUT");
    for key in &keys {
        assert!(after
            .try_acquire(key, "alice", 60)
            .await
            .expect("take back"));
    }
    let blind = counts.get("POST");
    let requests = counts.get("POST") + counts.reads() + counts.get("PUT") - start;
    assert_eq!(blind, 9, "creates until fewer than half of 16 succeeded");
    assert_eq!(requests, 9 * 3 + 31 * 2, "then a read and an update each");

    // Fresh keys again (the next runs of a schedule): read first and
    // created, until enough creates have succeeded to guess again.
    for i in 0..20 {
        let key = format!("fresh-{i}");
        assert!(after.try_acquire(&key, "alice", 60).await.expect("fresh"));
    }
    let reads_before = counts.reads();
    assert!(after
        .try_acquire("fresh-last", "alice", 60)
        .await
        .expect("fresh"));
    assert_eq!(
        counts.reads(),
        reads_before,
        "a fresh key is one create again"
    );
}
