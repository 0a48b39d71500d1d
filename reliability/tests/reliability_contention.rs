//! Short form: contenders in this process and in child processes, two of
//! them with wall clocks an hour ahead and an hour behind, never hold a key
//! at the same time; killed holders are taken over by skewed contenders
//! within TTL + 2 s.

use std::path::PathBuf;
use std::time::Duration;

use celers_kube_lease_reliability::scenario::{self, Contention};
use celers_kube_lease_reliability::{table, takeover};
use celers_kube_lease_testkit::cluster;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_celers-kube-lease-reliability"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn contenders_never_overlap_even_with_skewed_clocks() {
    let cluster = cluster();
    let namespace = cluster.namespace("rel-contention").await;
    let run = Contention {
        kubeconfig: cluster.kubeconfig.clone(),
        namespace,
        exe: exe(),
        in_process: 2,
        proxied: 0,
        processes: 2,
        skews: vec!["+1h".to_owned(), "-1h".to_owned()],
        keys: 3,
        ttl_secs: (1, 3),
        pause_ms: (20, 100),
        duration: Duration::from_secs(20),
        request_timeout: Duration::from_secs(2),
        api_server_skew: None,
        seed: 11,
        faults: Vec::new(),
        history: None,
    };
    let outcome = scenario::contention(&run, None)
        .await
        .expect("the contention run could not be carried out");
    println!("{}", table::markdown(&table::contention_rows(&outcome)));
    outcome.assert_clean();
    let f = &outcome.figures;
    assert_eq!(f.contenders, 6);
    assert_eq!(outcome.skews.len(), 2, "{:?}", outcome.skews);
    // Real contention happened: locks changed hands and were refused.
    assert!(f.ok_true() >= 50 && f.ok_false() >= 50, "{f:?}");
    assert!(f.handovers >= 10, "{f:?}");
    // No fault was injected: at most a few slow requests on a busy machine.
    assert!(
        f.error_kinds.keys().all(|k| k == "Timeout") && f.errors() * 100 <= f.ops(),
        "{:?}",
        f.error_kinds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a control plane: run `make test`"]
async fn killed_holders_are_taken_over_by_skewed_contenders() {
    let cluster = cluster();
    let namespace = cluster.namespace("rel-takeover").await;
    let trials = takeover::trials(&cluster.kubeconfig, &namespace, &exe())
        .await
        .expect("the takeover trials could not be carried out");
    assert_eq!(trials.len(), 4);
    for trial in &trials {
        println!(
            "{}: taken over {:.2} s after SIGKILL, {:.2} s after the last renewal was sent",
            trial.label(),
            trial.after_kill.as_secs_f64(),
            trial.after_last_renewal.as_secs_f64()
        );
        let o = &trial.outcome;
        assert!(
            o.figures.violations.is_empty(),
            "{}: {:#?}",
            trial.label(),
            o.figures.violations
        );
        assert!(
            o.problems.is_empty(),
            "{}: {:#?}",
            trial.label(),
            o.problems
        );
        assert!(o.leftover.is_empty(), "{}: {:?}", trial.label(), o.leftover);
        assert!(
            trial.after_kill <= Duration::from_secs(takeover::TTL_SECS) + takeover::SLACK,
            "{}: taken over only {:?} after the kill",
            trial.label(),
            trial.after_kill
        );
        // Not before the Lease could have expired.
        assert!(
            trial.after_last_renewal >= Duration::from_secs(takeover::TTL_SECS),
            "{}: taken over {:?} after the holder's last renewal was sent",
            trial.label(),
            trial.after_last_renewal
        );
        assert!(!o.skews.is_empty(), "{}: {:?}", trial.label(), o.skews);
    }
}
