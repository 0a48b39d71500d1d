//! Lock guards against the real API server: fencing tokens, waiting driven
//! by a watch, renewal and release.

#![allow(clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use celers_kube_lease::{Error, FencingToken};
use common::fixture;

const TTL: Duration = Duration::from_secs(3);

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_guard_holds_renews_and_releases_its_lock() {
    let f = fixture("guard").await;
    let a = f.backend().await;
    let b = f.backend().await;
    let guard = a
        .try_lock("job", "alice", TTL)
        .await
        .expect("try_lock")
        .expect("free");
    assert_eq!(guard.key(), "job");
    assert_eq!(guard.owner(), "alice");
    assert_eq!(guard.ttl(), TTL);
    let token = guard.fencing_token();
    assert_eq!(Some(token.get().to_string()), f.version("job").await);
    assert!(guard.is_held());
    assert!(b
        .try_lock("job", "bob", TTL)
        .await
        .expect("try_lock")
        .is_none());
    assert!(!b.try_acquire("job", "bob", 3).await.expect("try_acquire"));

    // Renewed in the background past its TTL; the token stays.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    assert!(guard.is_held());
    assert_eq!(
        b.owner("job").await.expect("owner").as_deref(),
        Some("alice")
    );
    assert_ne!(
        Some(token.get().to_string()),
        f.version("job").await,
        "renewed"
    );
    assert_eq!(guard.fencing_token(), token);

    let lost = guard.lost();
    assert!(guard.release().await.expect("release"));
    assert!(lost.is_cancelled());
    assert_eq!(f.version("job").await, None);
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_dropped_guard_releases_its_lock() {
    let f = fixture("guard-drop").await;
    let backend = f.backend().await;
    let guard = backend
        .try_lock("job", "alice", TTL)
        .await
        .expect("try_lock")
        .expect("free");
    let lost = guard.lost();
    drop(guard);
    assert!(lost.is_cancelled());
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.version("job").await.is_some() {
        assert!(Instant::now() < deadline, "the dropped guard's lock stayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_guard_that_is_taken_over_learns_it_lost() {
    let f = fixture("guard-lost").await;
    let backend = f.backend().await;
    let guard = backend
        .try_lock("job", "alice", TTL)
        .await
        .expect("try_lock")
        .expect("free");
    // A second guard of the same owner starts a new tenure with a larger
    // token; the first one's tenure is over.
    let second = backend
        .try_lock("job", "alice", TTL)
        .await
        .expect("try_lock")
        .expect("own lock");
    assert!(second.fencing_token() > guard.fencing_token());
    tokio::time::timeout(TTL, guard.lost().cancelled())
        .await
        .expect("the first guard noticed at its next renewal");
    assert!(!guard.is_held());
    assert!(!guard.release().await.expect("release"), "not its tenure");
    assert!(second.is_held());
    assert!(second.release().await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn guard_input_is_checked() {
    let f = fixture("guard-input").await;
    let backend = f.backend().await;
    for ttl in [Duration::ZERO, Duration::from_millis(1_500), Duration::MAX] {
        match backend.try_lock("job", "alice", ttl).await {
            Err(Error::InvalidInput { input, .. }) => assert_eq!(input, "ttl"),
            other => panic!("ttl {ttl:?}: {other:?}"),
        }
    }
    match backend.lock("", "alice", TTL, Duration::from_secs(1)).await {
        Err(Error::InvalidInput { input, .. }) => assert_eq!(input, "key"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.version("job").await, None);
}

/// Tokens strictly increase over randomized tenures: acquire and release,
/// drop, a new term of one's own lock, expiry takeover, sweep and recreate,
/// with several owners and backends. `CELERS_TOKEN_TENURES` sets how many
/// (300 in `make test`).
#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn fencing_tokens_strictly_increase_over_tenures() {
    let tenures: usize = std::env::var("CELERS_TOKEN_TENURES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let f = fixture("tokens").await;
    let backend = || async {
        f.builder(f.cluster.client().await)
            .sweep_grace(Duration::ZERO)
            .build()
            .expect("valid settings")
    };
    let backends = [backend().await, backend().await];
    let keys = ["a", "b", "c"];
    let owners = ["x", "y", "z"];
    let mut last: Option<FencingToken> = None;
    let mut kinds = BTreeMap::<&str, usize>::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for i in 0..tenures {
        let backend = &backends[next(2)];
        let key = keys[next(3)];
        let owner = owners[next(3)];
        // Free the key first, in one of several ways.
        let kind = match (i % 100, next(10)) {
            (0, _) => {
                // A short plain lock expires and is swept away.
                let _ = backend.try_acquire(key, "short", 1).await.expect("acquire");
                tokio::time::sleep(Duration::from_millis(1_600)).await;
                backend.sweep_expired().await.expect("sweep");
                "sweep and recreate"
            }
            (50, _) => {
                let _ = backend.try_acquire(key, "short", 1).await.expect("acquire");
                tokio::time::sleep(Duration::from_millis(1_600)).await;
                "expiry takeover"
            }
            (_, 0..=2) => {
                let _ = backend.try_acquire(key, owner, 30).await.expect("acquire");
                "new term of a held lock"
            }
            _ => "release and create",
        };
        let guard = match backend.try_lock(key, owner, Duration::from_secs(30)).await {
            Ok(Some(guard)) => guard,
            Ok(None) => {
                // Another owner's plain lock is in the way: clear it.
                for other in owners.iter().chain(["short"].iter()) {
                    backend.release(key, other).await.expect("release");
                }
                backend
                    .try_lock(key, owner, Duration::from_secs(30))
                    .await
                    .expect("try_lock")
                    .expect("free now")
            }
            Err(error) => panic!("tenure {i}: {error}"),
        };
        let token = guard.fencing_token();
        assert!(
            last.is_none_or(|last| token > last),
            "tenure {i} ({kind}): {token} after {last:?}"
        );
        assert_eq!(guard.fencing_token(), token, "a repeated read");
        last = Some(token);
        *kinds.entry(kind).or_default() += 1;
        if next(2) == 0 {
            assert!(guard.release().await.expect("release"));
        } else {
            drop(guard);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!("{tenures} tenures, tokens strictly increasing: {kinds:?}");
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_waiter_sends_nothing_while_the_lock_is_held_and_takes_it_on_release() {
    let f = fixture("waiter").await;
    let holder = f.backend().await;
    let (waiter, counts) = f.counted_backend().await;
    let guard = holder
        .try_lock("job", "holder", TTL)
        .await
        .expect("try_lock")
        .expect("free");
    let waiting = tokio::spawn(async move {
        let got = waiter
            .lock("job", "waiter", TTL, Duration::from_secs(30))
            .await;
        (got, Instant::now())
    });
    // The holder renews a few times meanwhile.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    assert_eq!(
        counts.writes(),
        0,
        "the waiter wrote while the lock was held"
    );
    assert_eq!(counts.reads(), 1, "one read to start with");
    assert_eq!(counts.get("WATCH"), 1);
    let released = Instant::now();
    assert!(guard.release().await.expect("release"));
    let (got, acquired) = waiting.await.expect("waiter");
    let got = got
        .expect("lock")
        .expect("acquired before the wait ran out");
    let handoff = acquired - released;
    println!("release -> next holder: {handoff:?}");
    assert!(handoff < Duration::from_secs(2), "{handoff:?}");
    assert_eq!(counts.writes(), 1, "one create");
    assert!(got.release().await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_waiter_takes_over_when_the_holder_dies() {
    let f = fixture("waiter-dead").await;
    let holder = f.backend().await;
    let (waiter, counts) = f.counted_backend().await;
    // A holder that never renews nor releases: dead.
    assert!(holder.try_acquire("job", "dead", 2).await.expect("acquire"));
    let since = Instant::now();
    let guard = waiter
        .lock("job", "waiter", TTL, Duration::from_secs(20))
        .await
        .expect("lock")
        .expect("taken over");
    let after = since.elapsed();
    println!("dead holder (TTL 2 s) -> waiter holds after {after:?}");
    assert!(after >= Duration::from_secs(1), "{after:?}");
    assert!(after < Duration::from_secs(4), "{after:?}");
    assert_eq!(counts.writes(), 1, "one takeover, no polling");
    assert!(guard.release().await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_wait_that_runs_out_is_none() {
    let f = fixture("waiter-timeout").await;
    let holder = f.backend().await;
    let waiter = f.backend().await;
    let guard = holder
        .try_lock("job", "holder", TTL)
        .await
        .expect("try_lock")
        .expect("free");
    let since = Instant::now();
    let got = waiter
        .lock("job", "waiter", TTL, Duration::from_millis(800))
        .await
        .expect("lock");
    assert!(got.is_none());
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(guard.release().await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn eight_waiters_take_turns() {
    let f = fixture("waiters").await;
    let mut tasks = Vec::new();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 0..8 {
        let backend = f.backend().await;
        let held = Arc::clone(&held);
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{i}");
            let guard = backend
                .lock("job", &owner, TTL, Duration::from_secs(30))
                .await
                .expect("lock")
                .expect("acquired");
            let got = Instant::now();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let until = Instant::now();
            held.lock()
                .expect("held")
                .push((got, until, guard.fencing_token()));
            assert!(guard.release().await.expect("release"));
        }));
    }
    for task in tasks {
        task.await.expect("waiter");
    }
    let mut held = held.lock().expect("held").clone();
    held.sort();
    assert_eq!(held.len(), 8);
    for pair in held.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "two holders at once: {pair:?}");
        assert!(pair[0].2 < pair[1].2, "tokens grow with each tenure");
    }
}

/// Issue 26, item 1, the stress form: eight waiters cycle lock → immediate
/// release on one fresh key; no waiter may sleep through a free lock, so
/// every lock comes well within its wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn eight_waiters_cycling_on_one_fresh_key_never_miss_a_free_lock() {
    const CYCLES: usize = 25;
    let f = fixture("guard-cycle").await;
    let wait = Duration::from_secs(10);
    let mut tasks = Vec::new();
    for waiter in 0..8 {
        let backend = f.backend().await;
        tasks.push(tokio::spawn(async move {
            let owner = format!("waiter-{waiter}");
            let mut slowest = Duration::ZERO;
            for _ in 0..CYCLES {
                let started = Instant::now();
                let guard = backend
                    .lock("cycle", &owner, Duration::from_secs(30), wait)
                    .await
                    .expect("lock")
                    .unwrap_or_else(|| panic!("{owner} waited {wait:?} for a lock held 0 s"));
                slowest = slowest.max(started.elapsed());
                assert!(guard.release().await.expect("release"));
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.expect("waiter"));
    }
    assert!(
        slowest < Duration::from_secs(5),
        "the slowest lock() took {slowest:?}"
    );
}

/// Issue 26, item 2: a guard learns within a second that someone else
/// released its Lease (`force_release`, or `release_all` by its owner
/// from another process), long before its next renewal.
#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_guard_learns_at_once_that_someone_else_released_its_lock() {
    let f = fixture("guard-released").await;
    let holder = f.backend().await;
    let other = f.backend().await;
    let ttl = Duration::from_secs(30);

    let guard = holder
        .try_lock("forced", "alice", ttl)
        .await
        .expect("try_lock")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let released = Instant::now();
    assert!(other
        .force_release("forced")
        .await
        .expect("force_release")
        .is_some());
    tokio::time::timeout(Duration::from_secs(1), guard.lost().cancelled())
        .await
        .expect("lost() within a second of a force_release");
    assert!(!guard.is_held());
    eprintln!("lost() {:?} after force_release", released.elapsed());
    drop(guard);

    let guard = holder
        .try_lock("by-owner", "alice", ttl)
        .await
        .expect("try_lock")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(other.release_all("alice").await.expect("release_all"), 1);
    tokio::time::timeout(Duration::from_secs(1), guard.lost().cancelled())
        .await
        .expect("lost() within a second of a release_all");
    assert!(!guard.is_held());
}

/// Issue 26, item 2: two guards of one key, taken by one owner string from
/// two processes (a reused pod name), are never both held for more than a
/// second: the second one starts a new term, and the first sees it.
#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn two_guards_of_one_owner_string_are_not_both_held() {
    let f = fixture("guard-same-owner").await;
    let first_process = f.backend().await;
    let second_process = f.backend().await;
    let ttl = Duration::from_secs(30);
    let first = first_process
        .try_lock("pod", "pod-0", ttl)
        .await
        .expect("try_lock")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = second_process
        .try_lock("pod", "pod-0", ttl)
        .await
        .expect("try_lock")
        .expect("a new term of the same owner");
    let taken = Instant::now();
    assert!(second.fencing_token() > first.fencing_token());
    tokio::time::timeout(Duration::from_secs(1), first.lost().cancelled())
        .await
        .expect("the first guard saw the new term within a second");
    assert!(!first.is_held());
    assert!(second.is_held());
    eprintln!("first guard lost {:?} after the new term", taken.elapsed());
    drop(first);
    assert!(second.release().await.expect("release"));
}

/// Issue 26, item 2: the same owner shortening the guard's Lease through
/// the trait (`try_acquire` with a 2 s TTL) must not leave the guard
/// claiming a lock that another owner can take: the guard renews at once
/// (or says it lost).
#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_same_owner_renewal_with_a_shorter_ttl_does_not_leave_the_guard_behind() {
    let f = fixture("guard-shortened").await;
    let holder = f.backend().await;
    let same_owner = f.backend().await;
    let other = f.backend().await;
    let guard = holder
        .try_lock("short", "alice", Duration::from_secs(30))
        .await
        .expect("try_lock")
        .expect("free");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(same_owner
        .try_acquire("short", "alice", 2)
        .await
        .expect("try_acquire"));
    // Past the shortened expiry and the uncertainty of bob's clock (a few
    // requests at varied moments narrow it), before the guard's next
    // scheduled renewal (every 10 s).
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(1_037)).await;
        let locked = other.is_locked("short").await.expect("is_locked");
        assert!(
            locked || !guard.is_held(),
            "the lock was free while the guard said it held it"
        );
    }
    let taken = other
        .try_acquire("short", "bob", 30)
        .await
        .expect("try_acquire");
    assert!(
        !(taken && guard.is_held()),
        "bob took the lock while the guard still said it held it"
    );
    assert!(!taken, "the guard did not renew after the shortened TTL");
    assert!(guard.is_held());
    assert!(guard.release().await.expect("release"));
}
