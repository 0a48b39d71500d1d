//! Short form of the fault checks: kube-apiserver and etcd SIGKILLed and
//! restarted and contenders cut off by a blackholing proxy in the middle of
//! a contention run; and a holder isolated until its lock is taken over,
//! which must never renew it after healing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use celers_kube_lease::KubeLeaseLockBackend;
use celers_kube_lease_reliability::checker;
use celers_kube_lease_reliability::cluster::{self, Connect};
use celers_kube_lease_reliability::contender::{Mode, Plan};
use celers_kube_lease_reliability::mono::mono_ns;
use celers_kube_lease_reliability::process::{Contender, Spawn};
use celers_kube_lease_reliability::proxy::Proxy;
use celers_kube_lease_reliability::record::{Line, Op, OpRecord, Outcome};
use celers_kube_lease_reliability::scenario::{self, Contention};
use celers_kube_lease_reliability::table;
use celers_kube_lease_testkit::{cluster, ControlPlane};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn restarts_and_partitions_keep_locks_exclusive() {
    let cp = tokio::task::spawn_blocking(|| ControlPlane::start("rel-faults"))
        .await
        .expect("control plane");
    let cp = Arc::new(cp);
    let namespace = cp.cluster().namespace("rel-faults").await;
    let duration = Duration::from_secs(34);
    let run = Contention {
        kubeconfig: cp.cluster().kubeconfig.clone(),
        namespace,
        exe: PathBuf::from(env!("CARGO_BIN_EXE_celers-kube-lease-reliability")),
        in_process: 2,
        proxied: 2,
        processes: 2,
        skews: Vec::new(),
        keys: 3,
        ttl_secs: (1, 3),
        pause_ms: (20, 100),
        duration,
        request_timeout: Duration::from_secs(2),
        api_server_skew: None,
        seed: 23,
        faults: scenario::fault_schedule(duration, Duration::from_secs(4), Duration::from_secs(7)),
        history: None,
    };
    let outcome = scenario::contention(&run, Some(cp.clone()))
        .await
        .expect("the fault run could not be carried out");
    println!("{}", table::markdown(&table::contention_rows(&outcome)));
    outcome.assert_clean();
    let f = &outcome.figures;
    let injected: u64 = outcome.faults.values().sum();
    assert_eq!(injected, 4, "{:?}", outcome.faults);
    assert_eq!(outcome.faults.len(), 3, "{:?}", outcome.faults);
    assert!(f.errors() > 0, "the faults went unnoticed: {f:?}");
    assert!(
        outcome.ok_true_after_faults > 0,
        "the locks did not recover"
    );
}

/// Logs calls as a contender does, for the checker.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Line>>>);

impl Log {
    async fn call(
        &self,
        backend: &KubeLeaseLockBackend,
        owner: &str,
        op: Op,
        key: &str,
        ttl: u64,
    ) -> Outcome {
        let sent_ns = mono_ns();
        let outcome = match op {
            Op::TryAcquire => Outcome::of_bool(&backend.try_acquire(key, owner, ttl).await),
            Op::Renew => Outcome::of_bool(&backend.renew(key, owner, ttl).await),
            Op::Release => Outcome::of_bool(&backend.release(key, owner).await),
            other => panic!("not used here: {other:?}"),
        };
        let record = OpRecord {
            owner: owner.to_owned(),
            op,
            key: Some(key.to_owned()),
            ttl_secs: ttl,
            sent_ns,
            recv_ns: mono_ns(),
            outcome: outcome.clone(),
        };
        self.0.lock().expect("log").push(Line::Op(record));
        outcome
    }

    fn lines(&self) -> Vec<Line> {
        self.0.lock().expect("log").clone()
    }
}

/// The rival holds on long enough for every check after healing.
const RIVAL_TTL: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn an_isolated_holder_never_renews_a_lock_taken_over() {
    let cluster = cluster();
    let namespace = cluster.namespace("rel-partition").await;
    let kubeconfig = &cluster.kubeconfig;
    let proxy = Proxy::start(cluster::server_addr(kubeconfig).expect("server"))
        .await
        .expect("proxy");
    let via_proxy = Connect {
        server_port: Some(proxy.port()),
        ..Connect::default()
    };
    let isolated = cluster::backend(
        cluster::client(kubeconfig, &via_proxy)
            .await
            .expect("client"),
        &namespace,
        Duration::from_secs(1),
    )
    .expect("backend");
    let rival = cluster::backend(
        cluster::client(kubeconfig, &Connect::default())
            .await
            .expect("client"),
        &namespace,
        Duration::from_secs(2),
    )
    .expect("backend");
    let log = Log::default();
    let key = "reliability/partitioned";
    let ttl = 2;

    assert_eq!(
        log.call(&isolated, "isolated", Op::TryAcquire, key, ttl)
            .await,
        Outcome::True
    );
    let mut last_renewal = mono_ns();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        last_renewal = mono_ns();
        assert_eq!(
            log.call(&isolated, "isolated", Op::Renew, key, ttl).await,
            Outcome::True
        );
        assert_eq!(
            log.call(&rival, "rival", Op::TryAcquire, key, RIVAL_TTL)
                .await,
            Outcome::False
        );
    }

    proxy.blackhole(true);
    // The isolated holder keeps renewing; every call fails with an Err.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let renewals = {
        let (log, isolated, stop) = (log.clone(), isolated.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                answers.push(log.call(&isolated, "isolated", Op::Renew, key, ttl).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        })
    };
    let taken_at = loop {
        assert!(
            mono_ns() - last_renewal < 10_000_000_000,
            "the rival never took the lock over"
        );
        if log
            .call(&rival, "rival", Op::TryAcquire, key, RIVAL_TTL)
            .await
            == Outcome::True
        {
            break mono_ns();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = renewals.await.expect("renewals");
    assert!(!during.is_empty());
    for answer in &during {
        assert!(
            matches!(answer, Outcome::Error { .. }),
            "while cut off: {answer:?}"
        );
    }
    let after = Duration::from_nanos(taken_at - last_renewal);
    println!("taken over {after:?} after the isolated holder's last renewal");
    assert!(after <= Duration::from_secs(ttl + 2), "{after:?}");

    // Healed: whatever it buffered reaches the API server now, and the
    // holder must learn that it lost the lock.
    proxy.blackhole(false);
    for _ in 0..5 {
        let answer = log.call(&isolated, "isolated", Op::Renew, key, ttl).await;
        assert!(
            answer != Outcome::True,
            "the isolated holder renewed a lock taken over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        log.call(&isolated, "isolated", Op::TryAcquire, key, ttl)
            .await,
        Outcome::False
    );
    assert_eq!(
        log.call(&isolated, "isolated", Op::Release, key, 0).await,
        Outcome::False
    );
    assert_eq!(
        rival.owner(key).await.expect("owner"),
        Some("rival".to_owned())
    );
    assert_eq!(
        log.call(&rival, "rival", Op::Renew, key, RIVAL_TTL).await,
        Outcome::True
    );

    let figures = checker::check(&log.lines());
    assert!(figures.clean(), "{figures:?}");
    for owner in ["isolated", "rival"] {
        rival.release_all(owner).await.expect("release_all");
    }
    let client = cluster::client(kubeconfig, &Connect::default())
        .await
        .expect("client");
    let left = cluster::our_leases(&client, &namespace)
        .await
        .expect("list");
    assert!(left.is_empty(), "{left:?}");
}

/// A holder whose own clock runs 0.1 % slow (libfaketime slows its monotonic
/// and boot clocks) counts its TTL longer than the API server does; the
/// drift allowance in the written times must cover that, so a contender
/// polling every 10 ms gets the lock only after the holder's own TTL ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn a_holder_whose_clock_runs_slow_stops_before_its_lock_is_taken() {
    const TTL: u64 = 60;
    let cluster = cluster();
    let namespace = cluster.namespace("rel-drift").await;
    let key = "reliability/drift";
    let holder = Contender::spawn(&Spawn {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_celers-kube-lease-reliability")),
        kubeconfig: cluster.kubeconfig.clone(),
        server_port: None,
        namespace: namespace.clone(),
        request_timeout: Duration::from_secs(5),
        plan: Plan {
            owner: "slow-holder".to_owned(),
            keys: vec![key.to_owned()],
            ttl_secs: (TTL, TTL),
            duration: Duration::from_secs(TTL + 30),
            pause_ms: (0, 0),
            seed: 1,
            mode: Mode::Once,
        },
        skew: Some("+0 x0.999".to_owned()),
        fake_monotonic: true,
        api_server_skew: None,
    })
    .expect("holder process");
    let acquired = holder
        .wait_for(
            Duration::from_secs(30),
            |l| matches!(l, Line::Op(r) if r.op == Op::TryAcquire && r.outcome == Outcome::True),
        )
        .await
        .expect("the holder took the lock");
    let Line::Op(acquired) = acquired else {
        unreachable!()
    };
    let contender = cluster::backend(
        cluster::client(&cluster.kubeconfig, &Connect::default())
            .await
            .expect("client"),
        &namespace,
        Duration::from_secs(5),
    )
    .expect("backend");
    let taken_ns = loop {
        let deadline = acquired.sent_ns + (TTL + 20) * 1_000_000_000;
        assert!(mono_ns() < deadline, "the lock was never taken over");
        if contender
            .try_acquire(key, "contender", TTL)
            .await
            .expect("an answer")
        {
            break mono_ns();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let window_end = holder
        .wait_for(Duration::from_secs(5), |l| {
            matches!(l, Line::WindowEnd { .. })
        })
        .await
        .expect("the holder's TTL ended by its own clock");
    let Line::WindowEnd {
        mono_ns: end_ns, ..
    } = window_end
    else {
        unreachable!()
    };
    let finished = holder.finish(Duration::from_secs(10)).await.expect("exit");
    assert!(finished.status.success(), "{}", finished.stderr);
    let own_window = Duration::from_nanos(end_ns - acquired.sent_ns);
    let margin_ms = (taken_ns as f64 - end_ns as f64) / 1e6;
    println!(
        "slow holder's TTL ended {own_window:?} after it sent its acquire (TTL {TTL} s); \
         taken over {margin_ms:.1} ms after that"
    );
    assert!(
        own_window > Duration::from_secs(TTL) + Duration::from_millis(50),
        "libfaketime did not slow the holder's clock: {own_window:?}"
    );
    assert!(
        taken_ns > end_ns,
        "taken over {:.1} ms before the holder's own TTL ended",
        -margin_ms
    );
}
