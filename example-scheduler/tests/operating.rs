//! What the people who run the scheduler see: its `/metrics` move with the
//! work done, `/healthz` answers, and becoming leader is a Kubernetes Event
//! on the leader Lease.

mod common;

use celers_kube_lease_scheduler::replicas::SHORT_ARGS;

use std::time::{Duration, Instant};

use celers_kube_lease::lease_name;
use common::{executed, Replicas};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on 127.0.0.1:`port`: the status line and the body.
async fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the metrics port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The value of the sample `name` (with its labels, as exposed).
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn metrics_follow_the_work_and_leadership_is_an_event() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("operating").await;
    let port = free_port();
    let mut replicas = Replicas::new(&cluster.kubeconfig, &namespace);
    let owner = format!("operating-{}", std::process::id());
    let port_text = port.to_string();
    replicas.spawn_with_env(&owner, SHORT_ARGS, &[("METRICS_PORT", &port_text)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    replicas
        .wait_for("four executed runs", deadline, |log| {
            (executed(log).len() >= 4).then_some(())
        })
        .await;

    let (status, _) = get(port, "/healthz").await;
    assert!(status.contains(" 200 "), "{status}");
    let (status, first) = get(port, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    // Each fire after an entry's first moves its ledger: one update.
    let acquired = "celers_lock_api_requests_total{verb=\"update\",code=\"200\"}";
    let before = sample(&first, acquired).unwrap_or_else(|| panic!("no {acquired} in:\n{first}"));
    assert_eq!(
        sample(
            &first,
            "leader_election_master_status{name=\"celers-beat\"}"
        ),
        Some(1.0),
        "{first}"
    );
    assert!(
        sample(
            &first,
            "celers_lock_api_requests_total{verb=\"create\",code=\"201\"}"
        )
        .is_some(),
        "{first}"
    );
    assert!(
        first.contains("celers_lock_api_request_duration_seconds_bucket"),
        "{first}"
    );

    // More runs, more acquisitions.
    let runs = executed(replicas.log()).len();
    replicas
        .wait_for(
            "more executed runs",
            deadline + Duration::from_secs(10),
            |log| (executed(log).len() >= runs + 2).then_some(()),
        )
        .await;
    let (_, second) = get(port, "/metrics").await;
    let after = sample(&second, acquired).expect("still there");
    assert!(after >= before + 2.0, "{before} -> {after}");

    // The Event, as kubectl shows it.
    let events = cluster.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &namespace,
        "-o",
        "jsonpath={range .items[*]}{.reason} {.regarding.kind} {.regarding.name} {.note}{\"\\n\"}{end}",
    ]);
    // client-go's reason and message; the identity is the pod name.
    let expected = format!(
        "LeaderElection Lease {} {owner} became leader",
        lease_name("celers-beat/leader")
    );
    assert!(
        events.lines().any(|line| line == expected),
        "{expected:?} not in:\n{events}"
    );

    replicas.signal(0, "TERM");
    let status = replicas.exit_status(0, Duration::from_secs(15)).await;
    assert!(status.success(), "the scheduler exited with {status}");
}
