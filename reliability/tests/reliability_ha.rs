//! Short form of the HA checks, on an HA control plane of the test's own
//! (3 etcd members, 3 kube-apiservers behind HAProxy in http mode, so that
//! consecutive requests reach different API servers). Contenders in
//! processes use the library's default `api_server_skew` (250 ms) while one
//! API server's clock is moved +300 ms, −300 ms and +1500 ms (beyond the
//! bound: the library must warn and wait longer), an API server and an etcd
//! member are SIGKILLed, and two etcd members are killed (quorum lost: no
//! lock may be taken or renewed until they are back). Then a paused replica
//! of the example scheduler on the same control plane. One test, so that
//! one control plane serves both, stopped when dropped.

use std::path::PathBuf;
use std::time::Duration;

use celers_kube_lease_reliability::ha;
use celers_kube_lease_reliability::paused;
use celers_kube_lease_reliability::scenario::Fault;
use celers_kube_lease_reliability::table;

/// The example scheduler's binary, built by `cargo test --workspace`
/// (hack/test.sh) into the same target directory as this test.
fn scheduler_binary() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_celers-kube-lease-reliability"));
    let path = exe.with_file_name("celers-kube-lease-scheduler");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build -p celers-kube-lease-scheduler, \
         which `make test` does)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn ha_skew_kills_and_quorum_loss_keep_locks_exclusive() {
    let scheduler = scheduler_binary();
    let cp = ha::start_control_plane("rel-ha")
        .await
        .expect("HA control plane");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_celers-kube-lease-reliability"));
    let duration = Duration::from_secs(44);
    let faults = ha::schedule(
        duration,
        Duration::from_secs(3),
        Duration::from_secs(5),
        Duration::from_secs(4),
    );
    assert!(
        faults
            .iter()
            .any(|(_, f)| matches!(f, Fault::QuorumLoss { .. })),
        "{faults:?}"
    );
    let outcome = ha::contention(cp.clone(), &exe, duration, faults, 29, None)
        .await
        .expect("the HA run could not be carried out");
    println!("{}", table::markdown(&ha::rows(&outcome, None)));
    println!("{}", ha::timeline(&outcome));
    for refused in &outcome.figures.refused_in_doubt {
        println!("refused in doubt: {refused}");
    }
    outcome.assert_clean();
    let f = &outcome.figures;
    for kind in [
        "kube-apiserver behind the balancer SIGKILL + restart",
        "etcd member SIGKILL + restart (quorum kept)",
        "two etcd members SIGKILLed (quorum lost) + restart",
    ] {
        assert_eq!(outcome.faults.get(kind), Some(&1), "{:?}", outcome.faults);
    }
    assert_eq!(
        outcome.clock_offsets.get(ha::SKEWED),
        Some(&vec![300, -300, 1_500, 0]),
        "{:?}",
        outcome.clock_offsets
    );
    assert!(f.claims > 0 && f.handovers > 0, "no contention: {f:?}");
    assert!(
        outcome.errors_sent_without_quorum > 0,
        "the quorum loss went unnoticed: no call sent during it failed"
    );
    assert!(
        outcome.skew_warnings > 0,
        "an API server 1.5 s off went unnoticed: no warning"
    );
    assert!(
        outcome.ok_true_after_faults > 0,
        "the locks did not recover"
    );

    let kubeconfig = cp.cluster().kubeconfig.clone();
    let paused = paused::trials(&scheduler, &kubeconfig, 1)
        .await
        .expect("the paused-replica trial could not be carried out");
    println!("{paused:?}");
    assert_eq!(paused.double_runs, 0, "instants fired twice: {paused:?}");
    assert!(paused.problems.is_empty(), "{:#?}", paused.problems);
    assert_eq!(paused.pauses, 1);
    assert_eq!(
        paused.fired_after_resume, 0,
        "the resumed leader fired: {paused:?}"
    );
    assert!(paused.instants > 0, "nothing fired: {paused:?}");
    drop(cp);
}
