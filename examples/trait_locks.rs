//! celers-core's `DistributedLockBackend` on Kubernetes Leases: what a
//! celers-beat scheduler does with its locks, step by step, as two replicas.
//!
//! Runs against the cluster of the current kubeconfig context, found as kube
//! finds it (`KUBECONFIG`, else `~/.kube/config`, else the pod's service
//! account):
//!
//! ```sh
//! cargo run --example trait_locks -- [NAMESPACE]
//! ```
//!
//! NAMESPACE defaults to the context's namespace. It needs `get`, `list`,
//! `create`, `update` and `delete` on `leases` (coordination.k8s.io) there.
//! It leaves no Lease behind, and exits with 1 if the cluster answered
//! anything else than the trait promises.

use std::sync::Arc;

use celers_core::lock::DistributedLockBackend;
use celers_kube_lease::KubeLeaseLockBackend;

type Failure = Box<dyn std::error::Error>;

/// Fails with `what` unless `ok`.
fn check(ok: bool, what: &str) -> Result<(), Failure> {
    if ok {
        println!("ok: {what}");
        Ok(())
    } else {
        Err(format!("unexpected: {what}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let client = kube::Client::try_default().await?;
    let namespace = std::env::args()
        .nth(1)
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let backend = KubeLeaseLockBackend::builder(client)
        .namespace(namespace.as_str())
        .build()?;
    // What a scheduler holds: the trait object.
    let locks: Arc<dyn DistributedLockBackend> = Arc::new(backend);
    println!("locks in namespace {namespace}");

    let key = "examples/nightly-report";
    let (a, b) = ("example-replica-a", "example-replica-b");

    // Replica a takes the lock for 30 s; replica b is refused while it lives.
    check(locks.try_acquire(key, a, 30).await?, "a acquires")?;
    check(!locks.try_acquire(key, b, 30).await?, "b is refused")?;
    check(locks.is_locked(key).await?, "the lock is held")?;
    check(
        locks.owner(key).await?.as_deref() == Some(a),
        "a is the owner",
    )?;

    // The holder renews; someone else cannot renew nor release it.
    check(locks.renew(key, a, 60).await?, "a renews for 60 s")?;
    check(!locks.renew(key, b, 60).await?, "b cannot renew")?;
    check(!locks.release(key, b).await?, "b cannot release")?;

    // The holder releases; now b gets it.
    check(locks.release(key, a).await?, "a releases")?;
    check(!locks.is_locked(key).await?, "the lock is free")?;
    check(locks.try_acquire(key, b, 30).await?, "b acquires")?;

    // At shutdown a replica frees everything it holds in one call.
    check(
        locks.try_acquire("examples/cleanup", b, 30).await?,
        "b acquires a second lock",
    )?;
    let freed = locks.release_all(b).await?;
    check(freed == 2, &format!("release_all(b) freed {freed} locks"))?;
    check(!locks.is_locked(key).await?, "nothing is held")?;
    Ok(())
}
