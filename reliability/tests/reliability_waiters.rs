//! A waiter must not sleep through a free lock (issue 26, item 1): its
//! create loses to a rival that creates and releases the Lease before the
//! waiter's watch would have started, on a network path that adds 200 ms
//! each way.

#![allow(clippy::expect_used)] // a test fails by panicking

use std::time::Duration;

use celers_kube_lease_reliability::cluster::{self, Connect};
use celers_kube_lease_reliability::proxy::Proxy;
use celers_kube_lease_testkit::cluster;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn a_slow_waiter_takes_a_lock_created_and_released_while_it_raced() {
    let cluster = cluster();
    let namespace = cluster.namespace("rel-slow-waiter").await;
    let kubeconfig = &cluster.kubeconfig;
    let proxy = Proxy::start(cluster::server_addr(kubeconfig).expect("server"))
        .await
        .expect("proxy");
    let via_proxy = Connect {
        server_port: Some(proxy.port()),
        ..Connect::default()
    };
    let timeout = Duration::from_secs(5);
    let waiter = cluster::backend(
        cluster::client(kubeconfig, &via_proxy)
            .await
            .expect("client"),
        &namespace,
        timeout,
    )
    .expect("backend");
    let rival = cluster::backend(
        cluster::client(kubeconfig, &Connect::default())
            .await
            .expect("client"),
        &namespace,
        timeout,
    )
    .expect("backend");
    // Connections up and clocks known before the delay starts.
    waiter.is_locked("warm-up").await.expect("warm up");
    rival.is_locked("warm-up").await.expect("warm up");
    proxy.set_delay(Duration::from_millis(200));

    let key = "slow-waiter";
    let start = Instant::now();
    let rival_task = tokio::spawn(async move {
        // The waiter's list reaches the server at about +200 ms and finds
        // no Lease; its create reaches it at about +600 ms.
        tokio::time::sleep_until(start + Duration::from_millis(550)).await;
        let created = rival.try_acquire(key, "rival", 30).await.expect("create");
        tokio::time::sleep_until(start + Duration::from_millis(700)).await;
        let released = created && rival.release(key, "rival").await.expect("release");
        (created, released, Instant::now())
    });
    let guard = waiter
        .lock(
            key,
            "waiter",
            Duration::from_secs(30),
            Duration::from_secs(8),
        )
        .await
        .expect("lock");
    let took = start.elapsed();
    let (created, released, released_at) = rival_task.await.expect("rival");
    let guard = guard.unwrap_or_else(|| {
        panic!(
            "the waiter slept through a free lock (rival created: {created}, released: {released})"
        )
    });
    if created && released {
        let after_release = took.saturating_sub(released_at.duration_since(start));
        eprintln!(
            "released at {:?}, held at {took:?}",
            released_at.duration_since(start)
        );
        assert!(
            after_release <= Duration::from_secs(1),
            "held {after_release:?} after the release (at {took:?})"
        );
    } else {
        eprintln!("the rival lost the race this time (created: {created}); held at {took:?}");
    }
    proxy.set_delay(Duration::ZERO);
    assert!(guard.release().await.expect("release"));
}
