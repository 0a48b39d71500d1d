//! `lease-bench` with tiny numbers against the shared control plane, so that
//! it keeps building and running. Only completion and the shape of the
//! output are checked, never timing. The client-go peer is left to
//! `make bench` (a cold build of client-go takes over a minute): its columns
//! must read "–".

mod common;

use std::path::Path;
use std::process::Command;

use common::cell_of;

/// The cell in the column headed `column` of the row whose first cell is
/// `label`, in the first Markdown table that has both.
fn cell(output: &str, label: &str, column: &str) -> Option<String> {
    cell_of(output, &[label], column)
}

/// `--server-pid NAME=PID` of process `name` of the control plane whose
/// kubeconfig is `kubeconfig` (in its state directory).
fn server_pid(kubeconfig: &Path, name: &str) -> String {
    let dir = kubeconfig.parent().expect("the control plane's directory");
    let output = Command::new(celers_kube_lease_testkit::control_plane_script())
        .args(["pid", name])
        .env("CONTROL_PLANE_DIR", dir)
        .output()
        .expect("run hack/control-plane.sh");
    let pid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(output.status.success(), "no pid of {name}: {output:?}");
    format!("--server-pid={name}={pid}")
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn lease_bench_runs_with_tiny_numbers() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("lease-bench").await;
    let output = Command::new(env!("CARGO_BIN_EXE_lease-bench"))
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["--namespace", &namespace])
        .args([
            "--iterations",
            "3",
            "--clients",
            "1,2",
            "--duration-secs",
            "0.3",
        ])
        .args(["--release-all", "4,8", "--memory-locks", "20"])
        .args(["--waiters", "1,2", "--handoffs", "3", "--dead-trials", "1"])
        .args(["--dead-ttl-secs", "1"])
        .arg(server_pid(&cluster.kubeconfig, "kube-apiserver"))
        .arg(server_pid(&cluster.kubeconfig, "etcd"))
        .output()
        .expect("run lease-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "lease-bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );

    let operations = [
        "acquire, free key",
        "acquire, expired key, never seen",
        "acquire, expired key, seen held",
        "re-acquire by the holder",
        "re-acquire by the holder, new backend/elector",
        "renew",
        "release",
        "is_locked",
        "owner",
    ];
    for label in operations {
        let requests = cell(&stdout, label, "Requests/op ours")
            .unwrap_or_else(|| panic!("no row {label:?} in:\n{stdout}"));
        let requests: f64 = requests.parse().expect("a number of requests");
        if ["acquire, free key", "renew", "release"].contains(&label) {
            assert!(requests > 0.0, "{label}: no requests counted\n{stdout}");
        }
        for column in [
            "Requests/op client-go JSON",
            "p50 / p99 ms client-go protobuf",
            "Speed-up (p50) vs client-go JSON",
        ] {
            let peer = cell(&stdout, label, column);
            assert_eq!(peer.as_deref(), Some("–"), "{label}, {column}:\n{stdout}");
        }
        // The API server cost table: ours measured, no peer.
        for server in ["kube-apiserver", "etcd"] {
            let ours = cell(&stdout, label, &format!("{server} CPU ms/op ours"))
                .unwrap_or_else(|| panic!("no {server} CPU of {label:?} in:\n{stdout}"));
            let ours: f64 = ours.parse().expect("CPU milliseconds");
            assert!(ours >= 0.0, "{label}: {server} CPU {ours}\n{stdout}");
            let peer = cell(
                &stdout,
                label,
                &format!("{server} CPU ms/op client-go JSON"),
            );
            assert_eq!(peer.as_deref(), Some("–"), "{label}:\n{stdout}");
        }
        let ratio = cell(&stdout, label, "Ratio ours ÷ client-go protobuf");
        assert_eq!(ratio.as_deref(), Some("–"), "{label}:\n{stdout}");
    }
    for (clients, keys) in [("1", "distinct"), ("2", "distinct"), ("2", "one hot key")] {
        let found = stdout
            .lines()
            .any(|line| line.starts_with(&format!("| {clients} | {keys} |")));
        assert!(
            found,
            "no throughput row for {clients} clients, {keys}:\n{stdout}"
        );
    }
    for clients in ["1", "2"] {
        for workload in [
            "dispatch: a fresh key per op",
            "cycle: acquire, then release",
        ] {
            let row = [clients, workload];
            let requests = cell_of(&stdout, &row, "Requests/op ours")
                .unwrap_or_else(|| panic!("no row {row:?} in:\n{stdout}"));
            let requests: f64 = requests.parse().expect("a number of requests");
            assert!(requests > 0.0, "{row:?}: no requests counted\n{stdout}");
            // Every operation takes a free key: all succeed.
            let succeeded = cell_of(&stdout, &row, "Succeeded ours").unwrap_or_default();
            let all = succeeded
                .split_once('/')
                .is_some_and(|(done, ops)| done == ops && ops != "0");
            assert!(all, "{row:?}: succeeded {succeeded:?}\n{stdout}");
        }
    }
    for leases in ["4", "8"] {
        assert!(
            cell(&stdout, leases, "Deleted")
                .is_some_and(|deleted| deleted == format!("{leases}/{leases}")),
            "release_all of {leases}:\n{stdout}"
        );
    }
    assert!(
        cell(&stdout, "20", "Bytes per lock").is_some(),
        "no memory row:\n{stdout}"
    );
    for label in [
        "1 waiters",
        "2 waiters",
        "dead holder (TTL 1 s): after the TTL",
    ] {
        let handoffs = cell(&stdout, label, "Handoffs ours")
            .unwrap_or_else(|| panic!("no handoff row {label:?} in:\n{stdout}"));
        assert!(handoffs != "0", "{label}: no handoffs\n{stdout}");
    }
    // Every row of every table has its costs.
    for label in [
        "throughput, 2 clients, one hot key",
        "cycle, 2 clients",
        "handoff, 2 waiters",
        "release_all of 8",
    ] {
        for column in ["kube-apiserver CPU ms/op ours", "CPU ms/op client"] {
            let found = cell(&stdout, label, column);
            assert!(
                found.is_some_and(|ms| ms.parse::<f64>().is_ok()),
                "no {column:?} of {label:?} in:\n{stdout}"
            );
        }
    }
}
