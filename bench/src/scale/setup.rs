//! The namespace the bulk phase measures: Leases of this crate, written by
//! the library itself (`try_acquire`, so they have exactly the shape it
//! writes and recognises), and foreign Leases beside them. Also counting
//! and deleting them again. Nothing here is measured.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use celers_kube_lease::{
    owner_label_value, KubeLeaseLockBackend, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::{progress, Result};

/// Owners that share the live Leases, as several schedulers would.
pub const LIVE_OWNERS: usize = 8;
/// TTL of the expired Leases.
pub const EXPIRED_TTL_SECS: u64 = 1;
/// TTL of the live Leases: longer than any run of this benchmark.
const LIVE_TTL_SECS: u64 = 24 * 3600;
/// Attempts of one write while populating: a request that timed out on a
/// busy API server is tried again (the same owner taking its own key again
/// is answered true).
const ATTEMPTS: u32 = 3;
/// Bound of each request this module sends itself (the library bounds its
/// own); deletes of whole collections get longer, they take the server a
/// while.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const DELETE_COLLECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Leases per page when counting.
const COUNT_PAGE: u32 = 5000;
/// Label of the foreign Leases, so that they can be deleted again.
const FOREIGN_RUN_LABEL: &str = "lease-bench-scale/run";
/// Prefix of the owner label (the library's default).
const OWNER_LABEL: &str = "celers.io/lock-owner";

/// Which Leases a run writes: own Lease `i` is one of `expired` (first, so
/// that they are long expired when swept), then one of the `release_all`
/// owner's, then a live one of another owner.
#[derive(Clone, Debug)]
pub struct Plan {
    pub run: String,
    pub own: usize,
    pub release_all: usize,
    pub expired: usize,
    pub foreign: usize,
}

impl Plan {
    pub fn live(&self) -> usize {
        self.own - self.release_all - self.expired
    }

    /// Key, owner and TTL of own Lease `i`.
    pub fn lock(&self, i: usize) -> (String, String, u64) {
        let run = &self.run;
        if i < self.expired {
            let key = format!("scale-{run}/expired/{i}");
            (key, self.owner("expired"), EXPIRED_TTL_SECS)
        } else if i < self.expired + self.release_all {
            (
                format!("scale-{run}/leaver/{i}"),
                self.leaver(),
                LIVE_TTL_SECS,
            )
        } else {
            let owner = self.owner(&format!("live-{}", i % LIVE_OWNERS));
            (format!("scale-{run}/live/{i}"), owner, LIVE_TTL_SECS)
        }
    }

    /// The owner whose Leases `release_all` deletes.
    pub fn leaver(&self) -> String {
        self.owner("leaver")
    }

    fn owner(&self, role: &str) -> String {
        format!("scale-{}-{role}", self.run)
    }

    /// Every owner of this plan's Leases.
    fn owners(&self) -> Vec<String> {
        let live = (0..LIVE_OWNERS).map(|i| self.owner(&format!("live-{i}")));
        [self.owner("expired"), self.leaver()]
            .into_iter()
            .chain(live)
            .collect()
    }

    /// Selects this plan's own Leases.
    pub fn own_selector(&self) -> String {
        owners_selector(&self.owners())
    }

    /// Selects its foreign Leases.
    pub fn foreign_selector(&self) -> String {
        format!("{FOREIGN_RUN_LABEL}={}", self.run)
    }
}

/// Selects the Leases of this crate held by any of `owners`.
pub fn owners_selector(owners: &[String]) -> String {
    let values: Vec<String> = owners
        .iter()
        .map(|owner| owner_label_value(owner))
        .collect();
    format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{OWNER_LABEL} in ({})",
        values.join(",")
    )
}

/// How long populating took.
#[derive(Clone, Copy, Debug)]
pub struct Population {
    pub own_secs: f64,
    pub foreign_secs: f64,
    /// When the last own Lease was written: every expired one before.
    pub done: Instant,
}

impl Population {
    pub fn per_sec(&self, plan: &Plan) -> f64 {
        (plan.own + plan.foreign) as f64 / (self.own_secs + self.foreign_secs).max(1e-9)
    }
}

/// Writes the plan's Leases: its own through `try_acquire` with
/// `concurrency` calls in flight spread over `clients` backends (each its
/// own `kube::Client` and connections, background sweep off), then the
/// foreign ones as plain creates.
pub async fn populate(
    config: &kube::Config,
    namespace: &str,
    plan: &Plan,
    clients: usize,
    concurrency: usize,
) -> Result<Population> {
    let backends = (0..clients)
        .map(|_| {
            let client = kube::Client::try_from(config.clone())?;
            Ok(KubeLeaseLockBackend::builder(client)
                .namespace(namespace)
                .sweep_interval(None)
                .build()?)
        })
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let written = AtomicUsize::new(0);
    let report = |what: &str, total: usize, since: Instant| {
        let n = written.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of((total / 10).max(1)) || n == total {
            let rate = n as f64 / since.elapsed().as_secs_f64().max(1e-9);
            progress(&format!("{what}: {n}/{total} ({rate:.0}/s)"));
        }
    };
    stream::iter(0..plan.own)
        .map(|i| {
            let (key, owner, ttl) = plan.lock(i);
            let backend = &backends[i % backends.len()];
            async move {
                acquire(backend, &key, &owner, ttl).await?;
                report("own Leases (try_acquire)", plan.own, start);
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    let done = Instant::now();
    let own_secs = start.elapsed().as_secs_f64();

    let foreign_start = Instant::now();
    written.store(0, Ordering::Relaxed);
    let api: Api<Lease> = Api::namespaced(kube::Client::try_from(config.clone())?, namespace);
    stream::iter(0..plan.foreign)
        .map(|i| {
            let lease = foreign_lease(plan, i);
            let api = &api;
            async move {
                timed(api.create(&PostParams::default(), &lease)).await?;
                report("foreign Leases (create)", plan.foreign, foreign_start);
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    Ok(Population {
        own_secs,
        foreign_secs: foreign_start.elapsed().as_secs_f64(),
        done,
    })
}

async fn acquire(backend: &KubeLeaseLockBackend, key: &str, owner: &str, ttl: u64) -> Result<()> {
    for attempt in 1..=ATTEMPTS {
        match backend.try_acquire(key, owner, ttl).await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                return Err(format!(
                    "{key:?} is held by another owner: left from a run with the same --run?"
                )
                .into())
            }
            Err(error) if attempt == ATTEMPTS => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Err("no attempt made".into())
}

/// A Lease of some other controller: a holder and a duration, no label of
/// this crate (only the run's, to delete it afterwards).
fn foreign_lease(plan: &Plan, i: usize) -> Lease {
    let mut lease = Lease::default();
    lease.metadata.name = Some(format!("foreign-{}-{i}", plan.run));
    lease.metadata.labels = Some([(FOREIGN_RUN_LABEL.to_owned(), plan.run.clone())].into());
    lease.spec = Some(k8s_openapi::api::coordination::v1::LeaseSpec {
        holder_identity: Some(format!("other-controller-{}", i % 10)),
        lease_duration_seconds: Some(15),
        renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::now())),
        ..Default::default()
    });
    lease
}

/// How many Leases in `namespace` match `selector` (all of them for
/// `None`): a paginated list of their metadata only, so exact and cheap.
pub async fn count(client: &kube::Client, namespace: &str, selector: Option<&str>) -> Result<u64> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let mut params = ListParams::default().limit(COUNT_PAGE);
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let mut total = 0;
    loop {
        let page = timed(api.list_metadata(&params)).await?;
        total += page.items.len() as u64;
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(total),
        }
    }
}

/// Deletes the Leases matching `selector`; returns how many there were.
/// The API server deletes a collection one by one and may give up on a
/// large one at its own request timeout: asks again until none is left.
pub async fn delete_all(client: &kube::Client, namespace: &str, selector: &str) -> Result<u64> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let mut before = None;
    for _ in 0..10 {
        let left = count(client, namespace, Some(selector)).await?;
        let before = *before.get_or_insert(left);
        if left == 0 {
            return Ok(before);
        }
        let params = ListParams::default().labels(selector);
        let deleted = tokio::time::timeout(
            DELETE_COLLECTION_TIMEOUT,
            api.delete_collection(&DeleteParams::default(), &params),
        )
        .await;
        if let Ok(Err(error)) = deleted {
            progress(&format!("deleting {selector}: {error}; asking again"));
        }
    }
    Err(format!("Leases matching {selector} are still there after 10 deletes").into())
}

/// `request` bounded by [`REQUEST_TIMEOUT`].
async fn timed<T>(request: impl std::future::Future<Output = kube::Result<T>>) -> Result<T> {
    Ok(tokio::time::timeout(REQUEST_TIMEOUT, request).await??)
}
