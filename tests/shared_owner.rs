//! One owner string used by two backend instances at once (celers-beat's
//! default `scheduler-0` on every pod): the trait's same-owner re-entrance
//! stays, but the backend counts and warns about it.

#![cfg(all(feature = "celers-beat-03", feature = "metrics"))]
#![allow(clippy::expect_used)] // a test fails by panicking

mod common;

use std::sync::Arc;

use celers_beat::{BeatScheduler, Schedule, ScheduledTask};
use celers_core_03::lock::DistributedLockBackend;
use celers_kube_lease::KubeLeaseLockBackend;
use common::{fixture, Fixture};
use prometheus_client::registry::Registry;

const SHARED: &str = "celers_lock_shared_owner_total";

async fn counted(fixture: &Fixture) -> (KubeLeaseLockBackend, Registry) {
    let mut registry = Registry::default();
    let backend = fixture
        .builder(fixture.cluster.client().await)
        .metrics(&mut registry)
        .build()
        .expect("valid settings");
    (backend, registry)
}

fn shared(registry: &Registry) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .find_map(|line| line.strip_prefix(SHARED)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {SHARED} in:\n{text}"))
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn one_owner_in_two_backends_still_wins_and_is_counted() {
    let fixture = fixture("shared-owner").await;
    let (a, registry_a) = counted(&fixture).await;
    let (b, registry_b) = counted(&fixture).await;
    assert!(a.try_acquire("job", "scheduler-0", 30).await.expect("a"));
    assert!(a
        .try_acquire("job", "scheduler-0", 30)
        .await
        .expect("a again"));
    assert_eq!(shared(&registry_a), 0.0, "its own lock is not shared");
    // The trait's contract: the same owner gets Ok(true), also elsewhere.
    assert!(b.try_acquire("job", "scheduler-0", 30).await.expect("b"));
    assert_eq!(shared(&registry_b), 1.0);
    assert!(a
        .try_acquire("job", "scheduler-0", 30)
        .await
        .expect("a, after b"));
    assert_eq!(shared(&registry_a), 1.0);
    // Another owner is refused as ever.
    assert!(!b
        .try_acquire("job", "scheduler-1", 30)
        .await
        .expect("other owner"));
    // An expired lock taken back is no sharing.
    assert!(a
        .try_acquire("short", "scheduler-0", 1)
        .await
        .expect("short"));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(b
        .try_acquire("short", "scheduler-0", 30)
        .await
        .expect("expired"));
    assert_eq!(shared(&registry_b), 1.0);
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn stock_celers_beat_with_default_ids_fires_on_every_replica_and_is_counted() {
    let fixture = fixture("shared-owner-beat").await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        let (backend, registry) = counted(&fixture).await;
        let mut scheduler = BeatScheduler::new();
        // In one process the counter gives scheduler-0, -1, -2; in three
        // pods every scheduler is scheduler-0.
        scheduler.set_instance_id("scheduler-0".to_owned());
        let locks: Arc<dyn DistributedLockBackend> = Arc::new(backend);
        scheduler.with_lock_backend(locks);
        // A crontab entry: its instant, and so its per-fire key, is the same
        // on every replica (an interval entry's is not: see RELIABILITY.md).
        let schedule = Schedule::crontab("*", "*", "*", "*", "*");
        let task = ScheduledTask::new("report".to_owned(), schedule);
        scheduler.add_task(task).expect("add");
        replicas.push((scheduler, registry));
    }
    let mut fired = 0;
    for (scheduler, _) in &mut replicas {
        fired += scheduler.tick_with_locks(30).await.expect("tick").len();
    }
    assert_eq!(fired, 3, "the per-fire lock excluded nobody");
    let counted: f64 = replicas.iter().map(|(_, registry)| shared(registry)).sum();
    assert_eq!(
        counted, 2.0,
        "the second and third replica shared the first's owner"
    );
}
