//! A leader paused (SIGSTOP) for longer than its leader TTL while it holds
//! the lead, then resumed (SIGCONT): another replica has taken over and
//! fired the instants meanwhile, and the resumed one must fire nothing: its
//! guard is lost (its deadline came before anyone could take over), and the
//! ledger refuses its writes.

mod common;

use celers_kube_lease_scheduler::replicas::SHORT_ARGS;

use std::time::{Duration, Instant};

use common::{executed, roles, Line, Replicas};

const TTL: Duration = Duration::from_secs(3);
/// The leader stops itself before its tenth tick as the leader (2 s in).
const STOP_AT_TICK: &str = "10";
const STOPPING: &str = "stopping before locking the run";

fn said(log: &[Line], replica: usize, prefix: &str) -> Option<Instant> {
    log.iter()
        .find(|line| line.replica == replica && line.says(prefix))
        .map(|line| line.at)
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_leader_paused_past_its_ttl_fires_nothing_when_it_resumes() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("beat-paused").await;
    let mut replicas = Replicas::new(&cluster.kubeconfig, &namespace);
    let tag = std::process::id();
    let paused = replicas.spawn_with_env(
        &format!("paused-a-{tag}"),
        SHORT_ARGS,
        &[("SCHEDULER_TEST_STOP_BEFORE_LOCK", STOP_AT_TICK)],
    );
    // The paused replica leads first: the other starts once it does.
    replicas
        .wait_for(
            "the first replica to lead",
            Instant::now() + Duration::from_secs(20),
            |log| (roles(log, 1)[0].as_deref() == Some("leader")).then_some(()),
        )
        .await;
    let other = replicas.spawn(&format!("paused-b-{tag}"), SHORT_ARGS);

    let stopped = replicas
        .wait_for(
            "the leader to stop itself",
            Instant::now() + Duration::from_secs(20),
            |log| said(log, paused, STOPPING),
        )
        .await;
    // The other replica takes over and fires.
    let took_over = replicas
        .wait_for(
            "the other replica to lead",
            stopped + TTL + Duration::from_secs(8),
            |log| {
                log.iter()
                    .find(|l| l.replica == other && l.role() == Some("leader"))
                    .map(|l| l.at)
            },
        )
        .await;
    assert!(
        took_over - stopped >= TTL - Duration::from_millis(500),
        "taken over early"
    );
    replicas
        .wait_for(
            "the new leader to fire",
            Instant::now() + Duration::from_secs(10),
            |log| {
                let fired = executed(log)
                    .iter()
                    .filter(|(_, _, l)| l.replica == other && l.at > took_over)
                    .count();
                (fired >= 4).then_some(())
            },
        )
        .await;
    assert!(stopped.elapsed() > TTL, "paused for less than the TTL");

    // Resumed, the old leader must find out that it no longer leads.
    replicas.signal(paused, "CONT");
    let resumed = Instant::now();
    replicas
        .wait_for(
            "the resumed replica to stand by",
            resumed + Duration::from_secs(10),
            |log| {
                log.iter()
                    .find(|l| l.replica == paused && l.at > resumed && l.role() == Some("standby"))
                    .map(|_| ())
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for replica in [paused, other] {
        replicas.signal(replica, "TERM");
    }
    for replica in [paused, other] {
        let status = replicas.exit_status(replica, Duration::from_secs(15)).await;
        assert!(status.success(), "replica {replica} exited with {status}");
    }
    replicas.drain().await;

    let after_resume = executed(replicas.log())
        .iter()
        .filter(|(_, _, l)| l.replica == paused && l.at > resumed)
        .count();
    assert_eq!(
        after_resume, 0,
        "the resumed replica fired after it lost the lead"
    );
    let summary = replicas.summary(TTL + Duration::from_secs(4));
    assert_eq!(
        summary.total(|e| e.twice),
        0,
        "instants fired twice: {summary:?}"
    );
    assert_eq!(
        summary.total(|e| e.skipped),
        0,
        "gaps beyond the bound: {summary:?}"
    );
}
