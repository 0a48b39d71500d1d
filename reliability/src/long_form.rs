//! The long form: everything on a control plane of its own, for a while,
//! with the figures as a [`Report`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease_testkit::ControlPlane;

use crate::cluster::{self, Connect};
use crate::scenario::{self, Contention};
use crate::table::Report;
use crate::{bad_input, foreign, takeover, Result};

/// Runs the long form for `duration`.
pub async fn run(
    exe: &Path,
    duration: Duration,
    seed: u64,
    history: Option<PathBuf>,
) -> Result<Report> {
    eprintln!("starting a control plane of its own");
    let cp =
        Arc::new(tokio::task::spawn_blocking(|| ControlPlane::start("reliability-long")).await?);
    let kubeconfig = cp.cluster().kubeconfig.clone();
    let client = cluster::client(&kubeconfig, &Connect::default()).await?;
    let namespace = cluster::create_namespace(&client, "reliability-long").await?;
    let run = Contention {
        kubeconfig: kubeconfig.clone(),
        namespace: namespace.clone(),
        exe: exe.to_owned(),
        in_process: 3,
        proxied: 2,
        processes: 2,
        skews: vec!["+1h".to_owned(), "-1h".to_owned()],
        keys: 4,
        ttl_secs: (1, 3),
        pause_ms: (20, 100),
        duration,
        request_timeout: Duration::from_secs(2),
        api_server_skew: None,
        seed,
        faults: scenario::fault_schedule(
            duration,
            Duration::from_secs(10),
            Duration::from_secs(15),
        ),
        history,
    };
    eprintln!(
        "contention: {} contenders on {} keys for {duration:?}, {} faults",
        scenario::owners(&run).len(),
        run.keys,
        run.faults.len()
    );
    let contention = scenario::contention(&run, Some(cp.clone())).await?;
    eprintln!("killed-holder takeovers by skewed contenders");
    let takeovers = takeover::trials(&kubeconfig, &namespace, exe).await?;
    eprintln!("bad input");
    let bad_input = bad_input::run(&kubeconfig).await?;
    eprintln!("foreign objects");
    let foreign = foreign::run(&kubeconfig).await?;
    Ok(Report {
        duration,
        contenders: format!(
            "{} in-process with their own clients, {} of them behind proxies; {} processes, {} of them \
             with skewed wall clocks",
            run.in_process + run.proxied,
            run.proxied,
            run.processes + run.skews.len(),
            run.skews.len()
        ),
        contention,
        takeovers,
        bad_input,
        foreign,
    })
}
