//! A scheduler replica paused (SIGSTOP) just before locking a run, for
//! longer than the run lock's TTL, and resumed after that lock was swept:
//! the other replica has executed the run meanwhile, and the resumed one
//! must not execute it again. The per-run lock alone cannot stop it (it is
//! gone); the task's run ledger does.

mod common;

use std::time::{Duration, Instant};

use celers_kube_lease::KubeLeaseLockBackend;
use common::{duplicates, executed, Line, Replicas};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const TTL_SECS: u64 = 3;
const ARGS: &[&str] = &["--interval-secs", "1", "--ttl-secs", "3", "--tasks", "2"];
/// The paused replica stops before its fifth round of lock requests.
const STOP_AT_ROUND: &str = "5";
const STOPPING: &str = "stopping before locking the run";
const ALREADY_CLAIMED: &str = "run already claimed in the ledger";

/// The run the paused replica stopped before, once it said so.
fn stopped_before(log: &[Line], replica: usize) -> Option<u64> {
    log.iter()
        .filter(|l| l.replica == replica && l.says(STOPPING))
        .find_map(|l| l.event.as_ref()?.run)
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_paused_replica_does_not_execute_a_run_again_after_its_lock_was_swept() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("paused").await;
    let client = cluster.client().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    // Sweeps as any replica's background sweep would, without grace.
    let sweeper = KubeLeaseLockBackend::builder(client)
        .namespace(namespace.as_str())
        .sweep_grace(Duration::ZERO)
        .build()
        .expect("backend");
    let mut replicas = Replicas::new();
    let tag = std::process::id();
    let paused = replicas.spawn_with_env(
        &cluster.kubeconfig,
        &namespace,
        &format!("paused-a-{tag}"),
        ARGS,
        &[("SCHEDULER_TEST_STOP_BEFORE_LOCK", STOP_AT_ROUND)],
    );
    let other = replicas.spawn(
        &cluster.kubeconfig,
        &namespace,
        &format!("paused-b-{tag}"),
        ARGS,
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let run = replicas
        .wait_for("the replica to stop itself", deadline, |log| {
            stopped_before(log, paused)
        })
        .await;
    let stopped_at = Instant::now();
    eprintln!("replica {paused} stopped before locking run {run}");

    // The other replica executes that run of every task.
    replicas
        .wait_for(
            "the other replica to execute the run",
            Instant::now() + Duration::from_secs(15),
            |log| {
                let done = executed(log)
                    .iter()
                    .filter(|(_, r, l)| *r == run && l.replica == other)
                    .count();
                (done == 2).then_some(())
            },
        )
        .await;

    // Past the TTL, the run's locks are expired; sweep until they are gone.
    tokio::time::sleep_until((stopped_at + Duration::from_secs(TTL_SECS + 1)).into()).await;
    let run_leases: Vec<String> = (0..2)
        .map(|i| celers_kube_lease::lease_name(&format!("celers-beat:dispatch:task-{i}@{run}")))
        .collect();
    let swept_by = Instant::now() + Duration::from_secs(15);
    loop {
        sweeper.sweep_expired().await.expect("sweep");
        let mut left = Vec::new();
        for name in &run_leases {
            if leases.get_opt(name).await.expect("read Lease").is_some() {
                left.push(name.clone());
            }
        }
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < swept_by, "never swept: {left:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let paused_for = stopped_at.elapsed();
    assert!(paused_for > Duration::from_secs(TTL_SECS), "{paused_for:?}");

    // Resumed, it locks the run afresh, but must find it claimed.
    replicas.signal(paused, "CONT");
    replicas
        .wait_for(
            "the resumed replica to decide the run",
            Instant::now() + Duration::from_secs(15),
            |log| {
                let decided = log
                    .iter()
                    .filter(|l| {
                        l.replica == paused && l.event.as_ref().and_then(|e| e.run) == Some(run)
                    })
                    .filter(|l| l.says(ALREADY_CLAIMED) || l.says("executed run"))
                    .count();
                (decided == 2).then_some(())
            },
        )
        .await;
    // Let both run on a little, then stop them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for replica in [paused, other] {
        replicas.signal(replica, "TERM");
    }
    for replica in [paused, other] {
        let status = replicas.exit_status(replica, Duration::from_secs(15)).await;
        assert!(status.success(), "replica {replica} exited with {status}");
    }
    replicas.drain().await;

    assert_eq!(duplicates(&replicas.log), Vec::new(), "runs executed twice");
    let claimed = replicas
        .log
        .iter()
        .filter(|l| l.replica == paused && l.says(ALREADY_CLAIMED))
        .count();
    assert!(claimed >= 2, "the resumed replica never met the ledger");
    let after = executed(&replicas.log)
        .iter()
        .filter(|(_, r, _)| *r > run)
        .count();
    assert!(after > 0, "no run executed after the pause");
}
