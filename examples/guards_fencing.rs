//! Guards and fencing tokens: a lock held for a piece of work, renewed in
//! the background, and a store that refuses writes from an earlier tenure.
//!
//! Replica a takes the lock and writes with its token; replica b waits for
//! the lock (woken by a watch, not by polling), gets it when a releases, and
//! writes with a larger token; a's late write with its old token is refused.
//!
//! Runs against the cluster of the current kubeconfig context, found as kube
//! finds it (`KUBECONFIG`, else `~/.kube/config`, else the pod's service
//! account):
//!
//! ```sh
//! cargo run --example guards_fencing -- [NAMESPACE]
//! ```
//!
//! NAMESPACE defaults to the context's namespace. It needs `get`, `list`,
//! `watch`, `create`, `update` and `delete` on `leases` (coordination.k8s.io)
//! there, and Kubernetes 1.35 or newer (integer resourceVersions are the
//! tokens). It leaves no Lease behind, and exits with 1 if anything went
//! otherwise.

use std::sync::Mutex;
use std::time::Duration;

use celers_kube_lease::{FencingToken, KubeLeaseLockBackend};

type Failure = Box<dyn std::error::Error>;

/// A store that remembers the highest token it has seen and refuses writes
/// with a lower one (a database row, an object's metadata, ...).
#[derive(Default)]
struct Reports {
    highest: Mutex<Option<FencingToken>>,
    written: Mutex<Vec<String>>,
}

impl Reports {
    fn write(&self, token: FencingToken, report: &str) -> Result<(), String> {
        let mut highest = self.highest.lock().map_err(|_| "poisoned".to_owned())?;
        if highest.is_some_and(|highest| token < highest) {
            return Err(format!("stale fencing token {token}: refused {report:?}"));
        }
        *highest = Some(token);
        self.written
            .lock()
            .map_err(|_| "poisoned".to_owned())?
            .push(report.to_owned());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let client = kube::Client::try_default().await?;
    let namespace = std::env::args()
        .nth(1)
        .unwrap_or_else(|| client.default_namespace().to_owned());
    // Two replicas: two backends, as two processes would have.
    let replica = || -> Result<KubeLeaseLockBackend, Failure> {
        Ok(KubeLeaseLockBackend::builder(client.clone())
            .namespace(namespace.as_str())
            .build()?)
    };
    let (replica_a, replica_b) = (replica()?, replica()?);
    let reports = Reports::default();
    let key = "examples/guarded-report";
    let ttl = Duration::from_secs(6);

    let Some(guard_a) = replica_a.try_lock(key, "example-replica-a", ttl).await? else {
        return Err(format!("{key} is held by someone else in {namespace}").into());
    };
    let token_a = guard_a.fencing_token();
    println!("a holds {key} with fencing token {token_a}");

    // b waits up to 30 s for the lock, while a works for longer than its TTL:
    // the guard renews in the background (every TTL/3), so a keeps it.
    let waiting_b = replica_b.lock(key, "example-replica-b", ttl, Duration::from_secs(30));
    let working_a = async {
        let lost = guard_a.lost();
        tokio::select! {
            () = lost.cancelled() => Err::<(), Failure>("a lost the lock; stopped".into()),
            () = tokio::time::sleep(ttl + Duration::from_secs(2)) => {
                reports.write(token_a, "report by a")?;
                println!("a wrote its report, still held: {}", guard_a.is_held());
                let released = guard_a.release().await?;
                println!("a released the lock: {released}");
                Ok(())
            }
        }
    };
    let (guard_b, worked_a) = tokio::join!(waiting_b, working_a);
    worked_a?;
    let Some(guard_b) = guard_b? else {
        return Err("b did not get the lock within 30 s".into());
    };
    let token_b = guard_b.fencing_token();
    println!("b holds {key} with fencing token {token_b} (> {token_a})");
    if token_b <= token_a {
        return Err("the later tenure's token is not larger".into());
    }
    reports.write(token_b, "report by b")?;

    // A paused a that wakes up and writes with its old token is refused.
    match reports.write(token_a, "late report by a") {
        Err(refused) => println!("the store refused a's late write: {refused}"),
        Ok(()) => return Err("a stale token was accepted".into()),
    }
    guard_b.release().await?;
    println!(
        "b released the lock; written: {:?}",
        reports.written.lock().map_err(|_| "poisoned")?
    );
    Ok(())
}
