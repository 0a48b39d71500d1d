//! Short form: the bad-input table, against the shared control plane.

use celers_kube_lease_reliability::bad_input;
use celers_kube_lease_testkit::cluster;

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn every_bad_input_gets_its_documented_answer() {
    let cluster = cluster();
    let cases = bad_input::run(&cluster.kubeconfig)
        .await
        .expect("the bad-input table could not be carried out");
    for case in &cases {
        println!("{case}");
    }
    assert!(cases.len() >= 20, "only {} cases", cases.len());
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.to_string())
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
