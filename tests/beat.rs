//! `KubeBeat` against the real API server of `make test`: replicas in one
//! process, each with its own client; what the process-level checks
//! (example-scheduler's tests, `make reliability`) cannot see as directly.

#![cfg(feature = "celers-beat-03")]
#![allow(clippy::expect_used, clippy::result_large_err)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use celers_beat::{BeatScheduler, Schedule, ScheduledTask};
use celers_kube_lease::{Error, Fire, KubeBeat, KubeBeatBuilder};
use chrono::{DateTime, Utc};
use common::{fixture, Fixture};
use kube::api::ListParams;

const TICK: Duration = Duration::from_millis(100);

fn scheduler(entries: &[(&str, u64)]) -> BeatScheduler {
    let mut scheduler = BeatScheduler::new();
    for (name, every) in entries {
        let task = ScheduledTask::new((*name).to_owned(), Schedule::interval(*every));
        scheduler.add_task(task).expect("add a task");
    }
    scheduler
}

async fn beat(fixture: &Fixture, identity: &str) -> KubeBeat {
    KubeBeat::builder(fixture.backend().await, identity)
        .leader_ttl(Duration::from_secs(3))
        .retry_period(Duration::from_millis(500))
        .build()
        .expect("valid settings")
}

/// Ticks every replica for `span`; the fires of each.
async fn tick_all(replicas: &mut [(KubeBeat, BeatScheduler)], span: Duration) -> Vec<Vec<Fire>> {
    let mut fires = vec![Vec::new(); replicas.len()];
    let until = tokio::time::Instant::now() + span;
    while tokio::time::Instant::now() < until {
        for ((beat, scheduler), fired) in replicas.iter_mut().zip(&mut fires) {
            fired.extend(beat.tick(scheduler).await.expect("tick"));
        }
        tokio::time::sleep(TICK).await;
    }
    fires
}

/// Instants per entry, in order.
fn instants(fires: &[Fire]) -> BTreeMap<String, Vec<DateTime<Utc>>> {
    let mut by_entry: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for fire in fires {
        by_entry
            .entry(fire.entry.clone())
            .or_default()
            .push(fire.instant);
    }
    by_entry
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn one_leader_fires_and_its_successor_continues_from_the_ledger() {
    let fixture = fixture("beat-ledger").await;
    let entries = [("every-1s", 1), ("every-2s", 2)];
    let mut replicas = Vec::new();
    for name in ["a", "b", "c"] {
        replicas.push((beat(&fixture, name).await, scheduler(&entries)));
    }
    let first = tick_all(&mut replicas, Duration::from_secs(5)).await;
    let leaders: Vec<usize> = (0..3).filter(|&i| !first[i].is_empty()).collect();
    assert_eq!(leaders.len(), 1, "one replica fires: {first:?}");
    let leader = leaders[0];
    assert!(replicas[leader].0.is_leader());
    let token = replicas[leader].0.leader_token().expect("a token");
    assert!(first[leader].iter().all(|fire| fire.token == token));
    // The scheduler's own view follows the fires.
    let last_fired = first[leader]
        .iter()
        .rev()
        .find(|f| f.entry == "every-1s")
        .map(|f| f.instant);
    let task = replicas[leader].1.get_task("every-1s").expect("the task");
    assert_eq!(task.last_run_at, last_fired);

    // The leader steps down; another takes over within its retry period
    // and continues where it stopped: no instant again, none skipped.
    assert!(replicas[leader].0.step_down().await.expect("step down"));
    let (old_beat, _) = replicas.remove(leader);
    let second = tick_all(&mut replicas, Duration::from_secs(4)).await;
    let next: Vec<usize> = (0..2).filter(|&i| !second[i].is_empty()).collect();
    assert_eq!(
        next.len(),
        1,
        "one replica fires after the handover: {second:?}"
    );
    let successor = &replicas[next[0]].0;
    let new_token = successor.leader_token().expect("a token");
    assert!(new_token > token, "tokens grow with tenures");
    assert!(!old_beat.is_leader());

    let before = instants(&first[leader]);
    let after = instants(&second[next[0]]);
    for (entry, every) in entries {
        let (before, after) = (&before[entry], &after[entry]);
        let step = chrono::TimeDelta::seconds(i64::try_from(every).expect("small"));
        for pair in before.iter().chain(after).collect::<Vec<_>>().windows(2) {
            assert!(*pair[1] > *pair[0], "{entry} fired {} again", pair[1]);
        }
        // The handover took less than a second: at most one instant was
        // due when nobody led, and the catch-up (Skip) fires the latest.
        let gap = after[0] - *before.last().expect("fired before");
        assert!(
            gap >= step && gap <= step * 2,
            "{entry}: {before:?} then {after:?}"
        );
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn the_ledger_outlives_sweeps_and_release_all_and_follows_removed_entries() {
    let fixture = fixture("beat-cleanup").await;
    let beat = beat(&fixture, "a").await;
    let mut scheduler = scheduler(&[("kept", 1), ("removed", 1)]);
    let fires = beat.tick(&mut scheduler).await.expect("tick");
    assert_eq!(fires.len(), 2, "both entries fire at once: {fires:?}");
    let selector = "celers.io/beat=celers-beat";
    let ledger = || async {
        let list = fixture
            .leases
            .list(&ListParams::default().labels(selector))
            .await
            .expect("list the ledger");
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|l| l.metadata.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(ledger().await.len(), 2);

    // A sweep with no grace and release_all by the leader leave it alone.
    let sweeper = fixture
        .builder(fixture.cluster.client().await)
        .sweep_grace(Duration::ZERO)
        .build()
        .expect("backend");
    tokio::time::sleep(Duration::from_secs(2)).await;
    sweeper.sweep_expired().await.expect("sweep");
    sweeper
        .release_all(beat.owner())
        .await
        .expect("release_all");
    assert_eq!(ledger().await.len(), 2, "the ledger was swept or released");
    assert!(sweeper
        .locks("")
        .await
        .expect("locks")
        .iter()
        .all(|lock| !lock.key.contains("/ledger/")));

    // An entry removed from the scheduler loses its ledger Lease.
    scheduler.remove_task("removed").expect("remove");
    beat.tick(&mut scheduler).await.expect("tick");
    let left = ledger().await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("celers-beat-ledger-kept-"), "{left:?}");
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn requests_per_fire_stay_under_two_and_standbys_only_heartbeat() {
    let fixture = fixture("beat-requests").await;
    let entries = [("a", 1), ("b", 1), ("c", 2)];
    let mut replicas = Vec::new();
    let mut counts = Vec::new();
    for name in ["x", "y", "z"] {
        let (backend, count) = fixture.counted_backend().await;
        let beat = KubeBeat::builder(backend, name)
            .leader_ttl(Duration::from_secs(6))
            .build()
            .expect("valid settings");
        replicas.push((beat, scheduler(&entries)));
        counts.push(count);
    }
    // Settle: the leader is elected and every entry has its ledger Lease.
    let settle = tick_all(&mut replicas, Duration::from_secs(3)).await;
    let before: Vec<u64> = counts.iter().map(|c| c.writes() + c.reads()).collect();
    let span = Duration::from_secs(12);
    let fires = tick_all(&mut replicas, span).await;
    let leader = (0..3).find(|&i| !settle[i].is_empty()).expect("a leader");
    let sent = |i: usize| counts[i].writes() + counts[i].reads() - before[i];
    let fired = fires[leader].len() as u64;
    let per_fire = sent(leader) as f64 / fired as f64;
    println!(
        "leader: {fired} fires, {} requests ({per_fire:.2} per fire); standbys: {} and {} requests in {span:?}",
        sent(leader),
        sent((leader + 1) % 3),
        sent((leader + 2) % 3)
    );
    assert!(fired >= 25, "too few fires: {fired}");
    assert!(per_fire <= 2.0, "{per_fire} requests per fire");
    for standby in [(leader + 1) % 3, (leader + 2) % 3] {
        assert!(fires[standby].is_empty());
        // One read per retry period (2 s), nothing else.
        assert!(
            sent(standby) <= 7,
            "standby {standby} sent {}",
            sent(standby)
        );
        assert_eq!(counts[standby].writes(), 0, "a standby wrote");
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn invalid_settings_are_named_and_identities_never_collide() {
    let fixture = fixture("beat-settings").await;
    let backend = fixture.backend().await;
    let build = |identity: &str, set: fn(KubeBeatBuilder) -> KubeBeatBuilder| {
        set(KubeBeat::builder(backend.clone(), identity)).build()
    };
    let setting = |result: Result<KubeBeat, Error>| match result {
        Err(Error::InvalidConfig { setting, .. }) => setting,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    assert_eq!(setting(build("", |b| b)), "identity");
    assert_eq!(setting(build("pod\n1", |b| b)), "identity");
    assert_eq!(setting(build("pod", |b| b.name(""))), "name");
    assert_eq!(
        setting(build("pod", |b| b.leader_ttl(Duration::from_millis(2500)))),
        "leader_ttl"
    );
    assert_eq!(
        setting(build("pod", |b| b.leader_ttl(Duration::from_secs(1)))),
        "leader_ttl"
    );
    assert_eq!(
        setting(build("pod", |b| b.leader_ttl(Duration::MAX))),
        "leader_ttl"
    );
    assert_eq!(
        setting(build("pod", |b| b.retry_period(Duration::ZERO))),
        "retry_period"
    );
    assert_eq!(
        setting(build("pod", |b| b.retry_period(Duration::from_secs(60)))),
        "retry_period"
    );

    // Two replicas given one identity (a copied environment) still get
    // different owners: only one leads.
    let twin_a = build("twin", |b| b).expect("valid");
    let twin_b = build("twin", |b| b).expect("valid");
    assert_ne!(twin_a.owner(), twin_b.owner());
    assert_eq!(twin_a.identity(), twin_b.identity());
    let mut scheduler_a = scheduler(&[("e", 1)]);
    let mut scheduler_b = scheduler(&[("e", 1)]);
    let a = twin_a.tick(&mut scheduler_a).await.expect("tick");
    let b = twin_b.tick(&mut scheduler_b).await.expect("tick");
    assert_eq!(a.len() + b.len(), 1, "one of the twins fires: {a:?} {b:?}");
    assert!(twin_a.is_leader() != twin_b.is_leader());
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_leader_whose_lease_ended_without_a_tick_is_unhealthy() {
    let fixture = fixture("beat-health").await;
    let beat = KubeBeat::builder(fixture.backend().await, "stuck")
        .leader_ttl(Duration::from_secs(2))
        .health_tolerance(Duration::from_millis(200))
        .build()
        .expect("valid settings");
    let mut scheduler = scheduler(&[("e", 60)]);
    beat.tick(&mut scheduler).await.expect("tick");
    assert!(beat.is_leader());
    assert_eq!(beat.check_health(), Ok(()));
    // Someone frees the lock by force; the loop that ticks is stuck, so the
    // replica still believes it leads until its lease ends.
    let other = fixture.backend().await;
    other
        .force_release(beat.leader_key())
        .await
        .expect("force release");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unhealthy = beat
        .check_health()
        .expect_err("a stuck leader is unhealthy");
    assert_eq!(unhealthy.leader_key, "celers-beat/leader");
    assert!(
        unhealthy.expired_for > Duration::from_millis(200),
        "{unhealthy}"
    );
    // The next tick notices, and the replica is healthy again.
    beat.tick(&mut scheduler).await.expect("tick");
    assert_eq!(beat.check_health(), Ok(()));
}
