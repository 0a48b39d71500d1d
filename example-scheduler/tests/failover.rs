//! Three scheduler processes, a stock celers-beat `BeatScheduler` each,
//! driven by `KubeBeat`: one leads; when it is killed another takes over
//! within the leader TTL plus the retry period; when that one is stopped
//! (SIGTERM, as in a rolling restart) it hands over at once; and across it
//! all no instant fires twice and no gap exceeds the failover bound.

mod common;

use celers_kube_lease_scheduler::replicas::SHORT_ARGS;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{executed, held_by, roles, Line, Replicas};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

const TTL: Duration = Duration::from_secs(3);
/// KubeBeat's retry period in the scheduler: a third of the TTL.
const RETRY: Duration = Duration::from_secs(1);
/// TTL + retry period + the clock's uncertainty and a tick, with room.
const FAILOVER_BOUND: Duration = Duration::from_secs(7);

async fn leader_holder(leases: &Api<Lease>) -> Option<String> {
    let lease = leases
        .get_opt(&celers_kube_lease::lease_name("celers-beat/leader"))
        .await
        .expect("read the leader Lease")?;
    lease.spec.and_then(|spec| spec.holder_identity)
}

/// When a replica other than those in `not` first logged `role=leader`
/// after `since`, and which.
fn new_leader(log: &[Line], not: &[usize], since: Instant) -> Option<(usize, Instant)> {
    log.iter()
        .find(|line| {
            !not.contains(&line.replica) && line.at > since && line.role() == Some("leader")
        })
        .map(|line| (line.replica, line.at))
}

fn unix_now() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(now.as_secs()).expect("a sane clock")
}

/// Waits until `replica` has fired `count` instants later than `after`.
async fn fires_after(replicas: &mut Replicas, replica: usize, after: i64, count: usize) {
    replicas
        .wait_for(
            &format!("replica {replica} to fire {count} instants"),
            Instant::now() + Duration::from_secs(20),
            |log| {
                let fired = executed(log)
                    .iter()
                    .filter(|(_, run, line)| line.replica == replica && *run > after)
                    .count();
                (fired >= count).then_some(())
            },
        )
        .await;
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn each_instant_fires_once_across_a_kill_and_a_handover() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("beat-failover").await;
    let leases: Api<Lease> = Api::namespaced(cluster.client().await, &namespace);
    let mut replicas = Replicas::new(&cluster.kubeconfig, &namespace);
    let tag = std::process::id();
    for name in ["a", "b", "c"] {
        let owner = format!("beat-{name}-{tag}");
        replicas.spawn(&owner, SHORT_ARGS);
    }

    // Exactly one leader, and the Lease names it.
    let roles = replicas
        .wait_for(
            "every replica to take a role",
            Instant::now() + Duration::from_secs(20),
            |log| {
                let roles = roles(log, 3);
                roles.iter().all(Option::is_some).then_some(roles)
            },
        )
        .await;
    let leaders: Vec<usize> = (0..3)
        .filter(|&i| roles[i].as_deref() == Some("leader"))
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader expected: {roles:?}");
    let first = leaders[0];
    let holder = leader_holder(&leases).await;
    assert!(
        held_by(holder.as_deref(), &replicas.owners()[first]),
        "{holder:?}"
    );
    fires_after(&mut replicas, first, 0, 4).await;

    // SIGKILL: nothing is released; the lead moves after the TTL.
    replicas.signal(first, "KILL");
    let killed = Instant::now();
    let killed_unix = unix_now();
    let (second, promoted) = replicas
        .wait_for(
            "another replica to lead",
            killed + TTL + RETRY + Duration::from_secs(5),
            |log| new_leader(log, &[first], killed),
        )
        .await;
    let failover = promoted - killed;
    eprintln!("failover after SIGKILL took {failover:?}");
    assert!(
        failover <= TTL + RETRY + Duration::from_secs(3),
        "{failover:?}"
    );
    fires_after(&mut replicas, second, killed_unix, 4).await;

    // SIGTERM: the leader steps down; the last replica leads within its
    // retry period, not the TTL.
    replicas.signal(second, "TERM");
    let stopped = Instant::now();
    let stopped_unix = unix_now();
    let status = replicas.exit_status(second, Duration::from_secs(15)).await;
    assert!(status.success(), "the stopped leader exited with {status}");
    let (third, promoted) = replicas
        .wait_for(
            "the last replica to lead",
            stopped + TTL + Duration::from_secs(5),
            |log| new_leader(log, &[first, second], stopped),
        )
        .await;
    let handover = promoted - stopped;
    eprintln!("handover after SIGTERM took {handover:?}");
    assert!(
        handover < TTL,
        "a stepped-down leader is replaced before its TTL: {handover:?}"
    );
    fires_after(&mut replicas, third, stopped_unix, 3).await;

    replicas.signal(third, "TERM");
    let status = replicas.exit_status(third, Duration::from_secs(15)).await;
    assert!(status.success(), "the last replica exited with {status}");
    replicas.drain().await;

    let summary = replicas.summary(FAILOVER_BOUND);
    eprintln!("{summary:#?}");
    assert_eq!(summary.entries.len(), 2, "both tasks fired: {summary:?}");
    assert_eq!(summary.total(|e| e.twice), 0, "instants fired twice");
    assert_eq!(
        summary.total(|e| e.skipped),
        0,
        "gaps beyond the failover bound"
    );
    assert_eq!(
        leader_holder(&leases).await,
        None,
        "the last leader released its lock"
    );
}
