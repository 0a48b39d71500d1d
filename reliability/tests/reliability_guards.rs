//! Short form of the guard checks: a paused holder's stale writes are
//! fenced off by its token, and `lost()` fires before anyone else can take
//! a partitioned guard's lock.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease::KubeLeaseLockBackend;
use celers_kube_lease_reliability::cluster::{self, Connect};
use celers_kube_lease_reliability::fencing::Sink;
use celers_kube_lease_reliability::mono::mono_ns;
use celers_kube_lease_reliability::proxy::Proxy;
use celers_kube_lease_testkit::{cluster, Cluster};
use tokio::process::{Child, Command};

const TTL_SECS: u64 = 2;

async fn backend(cluster: &Cluster, namespace: &str, connect: &Connect) -> KubeLeaseLockBackend {
    let client = cluster::client(&cluster.kubeconfig, connect)
        .await
        .expect("client");
    cluster::backend(client, namespace, Duration::from_secs(2)).expect("backend")
}

fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid}");
}

fn writer(kubeconfig: &Path, namespace: &str, key: &str, sink: &Sink, plain: bool) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_celers-kube-lease-reliability"));
    command
        .arg("fenced-writer")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--namespace", namespace, "--owner", "paused", "--key", key])
        .args(["--ttl", &TTL_SECS.to_string()])
        .args(["--sink", &sink.addr().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if plain {
        command.arg("--plain");
    }
    command.spawn().expect("writer process")
}

/// Stale writes of a paused holder that reached the sink after the lock
/// was taken over: (accepted, rejected).
async fn paused_holder(cluster: &Cluster, namespace: &str, plain: bool) -> (usize, usize) {
    let sink = Sink::start().await.expect("sink");
    let key = if plain { "fence/plain" } else { "fence/guard" };
    let mut paused = writer(&cluster.kubeconfig, namespace, key, &sink, plain);
    let by_paused = |sink: &Sink| {
        sink.writes()
            .into_iter()
            .filter(|w| w.writer == "paused")
            .count()
    };
    let deadline = mono_ns() + 20_000_000_000;
    while by_paused(&sink) < 3 {
        assert!(mono_ns() < deadline, "the writer never wrote");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&paused, "-STOP");
    // Another replica waits for the lock and writes with its own token.
    let rival = backend(cluster, namespace, &Connect::default()).await;
    let guard = rival
        .lock(
            key,
            "rival",
            Duration::from_secs(30),
            Duration::from_secs(20),
        )
        .await
        .expect("lock")
        .expect("taken over");
    for _ in 0..3 {
        assert!(sink.write("rival", Some(guard.fencing_token().get())));
    }
    let resumed_ns = mono_ns();
    signal(&paused, "-CONT");
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&paused, "-KILL");
    let _ = paused.wait().await;
    assert!(guard.release().await.expect("release"));
    let stale: Vec<_> = sink
        .writes()
        .into_iter()
        .filter(|w| w.writer == "paused" && w.at_ns > resumed_ns)
        .collect();
    assert!(!stale.is_empty(), "the resumed holder wrote nothing");
    let accepted = stale.iter().filter(|w| w.accepted).count();
    (accepted, stale.len() - accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn a_paused_holders_stale_writes_are_fenced_off() {
    let cluster = cluster();
    let namespace = cluster.namespace("rel-fencing").await;
    let (accepted, rejected) = paused_holder(&cluster, &namespace, false).await;
    println!("guard: {rejected} stale writes after the takeover, {accepted} accepted");
    assert_eq!(accepted, 0, "a stale write got through");
    let (accepted, rejected) = paused_holder(&cluster, &namespace, true).await;
    println!("plain try_acquire: {accepted} stale writes accepted, {rejected} rejected");
    assert_eq!(rejected, 0, "without a token the sink cannot tell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn lost_fires_before_anyone_else_takes_a_partitioned_lock() {
    let trials: usize = std::env::var("CELERS_GUARD_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let cluster = cluster();
    let namespace = cluster.namespace("rel-lost").await;
    let proxy = Proxy::start(cluster::server_addr(&cluster.kubeconfig).expect("server"))
        .await
        .expect("proxy");
    let via_proxy = Connect {
        server_port: Some(proxy.port()),
        ..Connect::default()
    };
    let isolated = backend(&cluster, &namespace, &via_proxy).await;
    let rival = backend(&cluster, &namespace, &Connect::default()).await;
    // Batches of 20 guards at once: like 20 replicas' worth of locks, not a
    // machine so busy that no timer fires on time.
    let mut margins_ms = Vec::new();
    for batch in 0..trials.div_ceil(BATCH) {
        let keys: Vec<String> = (batch * BATCH..trials.min((batch + 1) * BATCH))
            .map(|i| format!("lost/{i}"))
            .collect();
        margins_ms.extend(partitioned(&proxy, &isolated, &rival, &keys).await);
    }
    margins_ms.sort_by(f64::total_cmp);
    println!(
        "{trials} partitioned guards: lost() fired before every takeover; margin min {:.1} ms, \
         median {:.1} ms, max {:.1} ms",
        margins_ms[0],
        margins_ms[margins_ms.len() / 2],
        margins_ms[margins_ms.len() - 1]
    );
}

const BATCH: usize = 20;

/// Guards on `keys` cut off by the proxy while a rival polls every 50 ms to
/// take their locks: how long before each takeover was sent `lost()` fired.
async fn partitioned(
    proxy: &Proxy,
    isolated: &KubeLeaseLockBackend,
    rival: &KubeLeaseLockBackend,
    keys: &[String],
) -> Vec<f64> {
    let mut guards = Vec::new();
    for key in keys {
        let guard = isolated
            .try_lock(key, "isolated", Duration::from_secs(TTL_SECS))
            .await
            .expect("try_lock")
            .expect("free");
        let lost = guard.lost();
        let lost_at = tokio::spawn(async move {
            lost.cancelled().await;
            mono_ns()
        });
        guards.push((Arc::new(guard), lost_at));
    }
    proxy.blackhole(true);
    let takers: Vec<_> = keys
        .iter()
        .zip(&guards)
        .map(|(key, (guard, _))| {
            let (rival, key, guard) = (rival.clone(), key.clone(), Arc::clone(guard));
            tokio::spawn(async move {
                let deadline = mono_ns() + 20_000_000_000;
                loop {
                    assert!(mono_ns() < deadline, "{key} was never taken over");
                    let sent = mono_ns();
                    if rival
                        .try_acquire(&key, "rival", 30)
                        .await
                        .expect("an answer")
                    {
                        // The guard must not claim the lock any more: its
                        // own clock says so, however late lost() is told.
                        assert!(!guard.is_held(), "{key}: still held after the takeover");
                        return sent;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    let mut margins_ms = Vec::new();
    for ((guard, lost_at), taker) in guards.into_iter().zip(takers) {
        let taken_sent = taker.await.expect("taker");
        let lost_at = lost_at.await.expect("lost");
        assert!(
            lost_at < taken_sent,
            "{}: lost() fired {:.1} ms after the takeover was sent",
            guard.key(),
            (lost_at - taken_sent) as f64 / 1e6
        );
        margins_ms.push((taken_sent - lost_at) as f64 / 1e6);
    }
    proxy.blackhole(false);
    margins_ms
}
