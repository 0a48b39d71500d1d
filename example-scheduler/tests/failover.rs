//! Two scheduler processes elect a leader with celers-beat's `BeatHeartbeat`
//! over Lease locks; when the leader is killed, the other takes over within
//! the TTL, and no run is ever executed twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{duplicates, executed, roles, Line, Replicas};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const TTL_SECS: u64 = 3;
const ARGS: &[&str] = &["--interval-secs", "1", "--ttl-secs", "3", "--tasks", "2"];

async fn leader_lease_holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases
        .get(&celers_kube_lease::lease_name("beat_leader"))
        .await
        .expect("read the leader Lease");
    lease.spec.and_then(|spec| spec.holder_identity)
}

/// The replica that logged `role=leader` last, if any other than `not`.
fn new_leader(log: &[Line], not: usize) -> Option<Instant> {
    log.iter()
        .find(|line| line.replica != not && line.role() == Some("leader"))
        .map(|line| line.at)
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn standby_takes_over_when_the_leader_is_killed() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("failover").await;
    let leases: Api<Lease> = Api::namespaced(cluster.client().await, &namespace);
    let mut replicas = Replicas::new();
    let tag = std::process::id();
    for name in ["a", "b"] {
        let owner = format!("failover-{name}-{tag}");
        replicas.spawn(&cluster.kubeconfig, &namespace, &owner, ARGS);
    }

    // Exactly one leader, and the Lease says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    let roles = replicas
        .wait_for("both replicas to take a role", deadline, |log| {
            let roles = roles(log, 2);
            roles.iter().all(Option::is_some).then_some(roles)
        })
        .await;
    let leaders: Vec<usize> = (0..2)
        .filter(|&i| roles[i].as_deref() == Some("leader"))
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader expected: {roles:?}");
    let (leader, standby) = (leaders[0], 1 - leaders[0]);
    assert_eq!(
        leader_lease_holder(&leases).await.as_deref(),
        Some(replicas.owners[leader].as_str())
    );

    // The leader executes runs; then it dies without releasing anything.
    replicas
        .wait_for("the leader to execute runs", deadline, |log| {
            let runs = executed(log)
                .iter()
                .filter(|(_, _, l)| l.replica == leader)
                .count();
            (runs >= 4).then_some(())
        })
        .await;
    replicas.signal(leader, "KILL");
    let killed = Instant::now();
    let killed_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();

    let limit = Duration::from_secs(TTL_SECS + 3);
    let promoted = replicas
        .wait_for("the standby to become leader", killed + limit, |log| {
            new_leader(log, leader)
        })
        .await;
    let failover = promoted.saturating_duration_since(killed);
    eprintln!("failover took {failover:?}");
    assert!(failover <= limit, "failover took {failover:?}");
    assert_eq!(
        leader_lease_holder(&leases).await.as_deref(),
        Some(replicas.owners[standby].as_str())
    );

    // The new leader executes the runs after the kill, then shuts down cleanly.
    replicas
        .wait_for(
            "the new leader to execute runs",
            Instant::now() + Duration::from_secs(10),
            |log| {
                let after = executed(log)
                    .iter()
                    .filter(|(_, run, l)| l.replica == standby && *run > killed_unix + TTL_SECS)
                    .count();
                (after >= 4).then_some(())
            },
        )
        .await;
    replicas.signal(standby, "TERM");
    let status = replicas.exit_status(standby, Duration::from_secs(15)).await;
    assert!(status.success(), "the survivor exited with {status}");
    replicas.drain().await;
    assert!(
        replicas
            .log
            .iter()
            .any(|l| l.replica == standby && l.says("released locks")),
        "the survivor did not log its shutdown"
    );

    // Exactly once: no run twice, and none skipped between the first and last.
    assert_eq!(duplicates(&replicas.log), Vec::new(), "runs executed twice");
    let mut runs: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (task, run, _) in executed(&replicas.log) {
        runs.entry(task).or_default().insert(run);
    }
    assert_eq!(runs.len(), 2, "runs of both tasks expected: {runs:?}");
    for (task, runs) in &runs {
        let (first, last) = (runs.first().copied(), runs.last().copied());
        let expected = first.zip(last).map_or(0, |(f, l)| l - f + 1);
        assert_eq!(runs.len() as u64, expected, "{task} skipped runs: {runs:?}");
    }
}
