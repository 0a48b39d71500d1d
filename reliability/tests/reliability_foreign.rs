//! Short form: kube-system's Leases and another program's Leases are left
//! alone by every call, `release_all` and `sweep_expired` included.

use celers_kube_lease_reliability::foreign;
use celers_kube_lease_testkit::cluster;

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn foreign_leases_are_never_touched() {
    let cluster = cluster();
    let outcome = foreign::run(&cluster.kubeconfig)
        .await
        .expect("the foreign-object check could not be carried out");
    println!("{outcome:?}");
    assert!(outcome.changed.is_empty(), "{:#?}", outcome.changed);
    // kube-system's identity Lease, and four Leases next to ours.
    assert!(outcome.leases >= 4, "{outcome:?}");
}
