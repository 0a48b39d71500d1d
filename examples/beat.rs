//! celers-beat with `KubeBeat`: three replicas of a stock celers-beat
//! `BeatScheduler` (an entry every 2 s) ticked by `KubeBeat`, in one process
//! for the example (in production, one per pod). One replica leads and fires
//! each instant once; after 6 s it steps down, another continues from the
//! ledger in Kubernetes; every instant is printed with its fencing token.
//!
//! Runs against the cluster of the current kubeconfig context, found as kube
//! finds it (`KUBECONFIG`, else `~/.kube/config`, else the pod's service
//! account):
//!
//! ```sh
//! cargo run --example beat --features celers-beat-03 -- [NAMESPACE]
//! ```
//!
//! NAMESPACE defaults to the context's namespace. It needs `get`, `list`,
//! `create`, `update` and `delete` on `leases` (coordination.k8s.io) there.
//! It deletes the ledger it wrote, and exits with 1 if an instant fired
//! twice or nothing fired.

use std::collections::BTreeSet;
use std::time::Duration;

use celers_beat::{BeatScheduler, Schedule, ScheduledTask};
use celers_kube_lease::{KubeBeat, KubeLeaseLockBackend};

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let client = kube::Client::try_default().await?;
    let namespace = std::env::args()
        .nth(1)
        .unwrap_or_else(|| client.default_namespace().to_owned());
    // A name of its own, so that it meets no other scheduler's ledger.
    let name = format!("beat-example-{}", std::process::id());
    let mut replicas = Vec::new();
    for pod in ["pod-a", "pod-b", "pod-c"] {
        let backend = KubeLeaseLockBackend::builder(client.clone())
            .namespace(namespace.as_str())
            .build()?;
        let beat = KubeBeat::builder(backend, pod)
            .name(name.as_str())
            .leader_ttl(Duration::from_secs(5))
            .retry_period(Duration::from_millis(500))
            .build()?;
        let mut scheduler = BeatScheduler::new();
        scheduler.add_task(ScheduledTask::new("report".into(), Schedule::interval(2)))?;
        replicas.push((beat, scheduler));
    }

    let mut fired = BTreeSet::new();
    let mut twice = 0;
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    for tick in 0..60 {
        ticks.tick().await;
        if tick == 30 {
            // As on SIGTERM: the leader hands over at once.
            for (beat, _) in &replicas {
                if beat.step_down().await? {
                    println!("{} stepped down", beat.identity());
                }
            }
        }
        for (beat, scheduler) in &mut replicas {
            for fire in beat.tick(scheduler).await? {
                println!(
                    "{} fired {} at {} (token {})",
                    beat.identity(),
                    fire.entry,
                    fire.instant,
                    fire.token
                );
                if !fired.insert(fire.instant) {
                    twice += 1;
                }
            }
        }
    }

    // Remove the entry: the leader deletes its ledger Lease at its next tick.
    for (beat, scheduler) in &mut replicas {
        scheduler.remove_task("report")?;
        scheduler.add_task(ScheduledTask::new("done".into(), Schedule::interval(3600)))?;
        beat.tick(scheduler).await?;
    }
    for (beat, _) in &replicas {
        beat.step_down().await?;
    }
    println!("{} instants fired, {twice} twice", fired.len());
    if twice > 0 || fired.is_empty() {
        return Err("an instant fired twice, or none fired".into());
    }
    Ok(())
}
