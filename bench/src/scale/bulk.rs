//! The bulk phase: `release_all`, `sweep_expired` and `is_locked` in a
//! namespace of many Leases, and the client memory of listing it at several
//! page sizes. Each measured operation runs in a child process of its own
//! (see [`crate::child`]); the parent counts the API server's requests and
//! the servers' CPU time around it.

use std::time::{Duration, Instant};

use celers_kube_lease::KubeLeaseLockBackend;
use celers_kube_lease_bench::latency::percentile_ms;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::child::{self, Child};
use crate::probe;
use crate::setup::{self, Plan, Population};
use crate::{progress, ChildKind, Context, Result};

/// The largest sweep grace the library accepts (366 days): a sweep with it
/// deletes nothing and so only lists, page by page.
const LIST_ONLY_GRACE: Duration = Duration::from_secs(366 * 24 * 3600);
/// Past the expired Leases' TTL before they are swept: covers a fresh
/// client's uncertainty about the server's clock (1 to 2 s).
const EXPIRY_MARGIN: Duration = Duration::from_secs(3);
/// Calls in flight of the concurrent `is_locked` run.
const IS_LOCKED_IN_FLIGHT: usize = 32;
/// Only a child that hangs takes this long.
const CHILD_LIMIT: Duration = Duration::from_secs(30 * 60);

/// What a child measured.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Measured {
    /// Leases deleted; for `is_locked`, calls answered `true`.
    pub count: u64,
    /// `is_locked` calls made (0 for the others).
    pub calls: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    /// `is_locked` latency (0 for the others).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// VmRSS right before the operation, with the client warmed up.
    pub rss_before_kib: u64,
    /// VmHWM after it: the most resident memory during it.
    pub high_water_kib: u64,
    /// Whether the high-water mark was reset before the operation (else it
    /// also covers the child's start-up, which is smaller).
    pub high_water_reset: bool,
}

impl Measured {
    pub fn growth_kib(&self) -> u64 {
        self.high_water_kib.saturating_sub(self.rss_before_kib)
    }
}

/// One measured operation, with the namespace it ran in and what the
/// servers spent on it.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: ChildKind,
    /// Leases of this crate in the namespace when it started.
    pub own: u64,
    pub page_size: u32,
    pub in_flight: usize,
    pub measured: Measured,
    /// `apiserver_request_total{resource="leases"}` over the operation.
    pub requests: f64,
    /// CPU seconds of the server processes over it.
    pub server_cpu: Vec<(String, f64)>,
}

/// The bulk phase's results.
#[derive(Clone, Debug)]
pub struct Bulk {
    pub plan: Plan,
    pub population: Population,
    /// Foreign Leases in the namespace (counted after populating).
    pub foreign: u64,
    /// How long counting the namespace after populating took.
    pub count_secs: f64,
    /// Leases deleted at the end, and how long that took.
    pub cleanup: (u64, f64),
    /// List-only sweeps: at each page size, first in the full namespace,
    /// then after `release_all` and the sweep.
    pub lists: Vec<Row>,
    pub is_locked: Vec<Row>,
    pub release_all: Row,
    pub sweep: Row,
}

/// Populates the namespace (see [`setup`]), measures, and deletes what it
/// wrote whatever the outcome.
pub async fn run(ctx: &Context, plan: &Plan) -> Result<Bulk> {
    progress(&format!(
        "populating {}: {} Leases of this crate ({} expired, {} of one owner, {} live) and {} foreign",
        ctx.args.common.namespace,
        plan.own,
        plan.expired,
        plan.release_all,
        plan.live(),
        plan.foreign
    ));
    let outcome = match setup::populate(
        &ctx.config,
        &ctx.args.common.namespace,
        plan,
        ctx.args.populate_clients,
        ctx.args.populate_concurrency,
    )
    .await
    {
        Ok(population) => measure(ctx, plan, population).await,
        Err(error) => Err(error),
    };
    progress("deleting the bulk phase's Leases");
    let start = Instant::now();
    let mut deleted: Result<u64> = Ok(0);
    for selector in [plan.own_selector(), plan.foreign_selector()] {
        let gone = setup::delete_all(&ctx.client, &ctx.args.common.namespace, &selector).await;
        deleted = deleted.and_then(|n| Ok(n + gone?));
    }
    // The measurement's error first: a failed cleanup may follow from it.
    let bulk = outcome?;
    Ok(Bulk {
        cleanup: (deleted?, start.elapsed().as_secs_f64()),
        ..bulk
    })
}

async fn measure(ctx: &Context, plan: &Plan, population: Population) -> Result<Bulk> {
    let namespace = &ctx.args.common.namespace;
    let start = Instant::now();
    let own = setup::count(&ctx.client, namespace, Some(&plan.own_selector())).await?;
    let foreign = setup::count(&ctx.client, namespace, Some(&plan.foreign_selector())).await?;
    if own != plan.own as u64 || foreign != plan.foreign as u64 {
        return Err(format!(
            "populated {own} Leases of this crate and {foreign} foreign, not {} and {}",
            plan.own, plan.foreign
        )
        .into());
    }
    let count_secs = start.elapsed().as_secs_f64();
    progress(&format!(
        "populated in {:.1} s ({:.0} Leases/s)",
        population.own_secs + population.foreign_secs,
        population.per_sec(plan)
    ));
    let page_size = ctx.args.page_size;
    let mut lists = Vec::new();
    for &size in &ctx.args.list_page_sizes {
        lists.push(one(ctx, ChildKind::List, own, size, 1).await?);
    }
    // From here on the expired Leases are expired to every client.
    let expired_at = population.done + Duration::from_secs(setup::EXPIRED_TTL_SECS) + EXPIRY_MARGIN;
    tokio::time::sleep_until(expired_at.into()).await;
    let mut is_locked = Vec::new();
    for in_flight in [1, IS_LOCKED_IN_FLIGHT] {
        is_locked.push(one(ctx, ChildKind::IsLocked, own, page_size, in_flight).await?);
    }
    let release_all = one(ctx, ChildKind::ReleaseAll, own, page_size, 1).await?;
    let own = own - release_all.measured.count;
    let sweep = one(ctx, ChildKind::Sweep, own, page_size, 1).await?;
    let own = own - sweep.measured.count;
    for &size in &ctx.args.list_page_sizes {
        lists.push(one(ctx, ChildKind::List, own, size, 1).await?);
    }
    Ok(Bulk {
        plan: plan.clone(),
        population,
        foreign,
        count_secs,
        cleanup: (0, 0.0),
        lists,
        is_locked,
        release_all,
        sweep,
    })
}

/// Runs one measuring child and counts around it.
async fn one(
    ctx: &Context,
    kind: ChildKind,
    own: u64,
    page_size: u32,
    in_flight: usize,
) -> Result<Row> {
    let how = match kind {
        ChildKind::IsLocked => format!("{in_flight} in flight"),
        _ => format!("page size {page_size}"),
    };
    progress(&format!(
        "{} with {own} Leases of this crate, {how}",
        kind.label()
    ));
    let extra = [
        "--page-size".to_owned(),
        page_size.to_string(),
        "--in-flight".to_owned(),
        in_flight.to_string(),
    ];
    let mut child = Child::start(&ctx.args.child_args(kind, &extra)).await?;
    let requests = probe::lease_requests(&ctx.client).await?;
    let cpu = ctx.server_cpu()?;
    child.go().await?;
    let measured: Measured = child.result(CHILD_LIMIT).await?;
    let cpu_after = ctx.server_cpu()?;
    // The API server counts a request as its handler finishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = probe::lease_requests(&ctx.client).await? - requests;
    if let Some(error) = &measured.first_error {
        progress(&format!(
            "{}: {} errors, first: {error}",
            kind.label(),
            measured.errors
        ));
    }
    Ok(Row {
        kind,
        own,
        page_size,
        in_flight,
        measured,
        requests,
        server_cpu: cpu_after
            .into_iter()
            .zip(cpu)
            .map(|((name, after), (_, before))| (name, after - before))
            .collect(),
    })
}

/// In the child: one measured operation; prints [`Measured`].
pub async fn child(ctx: &Context, plan: &Plan, kind: ChildKind) -> Result<()> {
    let args = &ctx.args;
    let builder = KubeLeaseLockBackend::builder(ctx.client.clone())
        .namespace(&args.common.namespace)
        .sweep_interval(None)
        .page_size(args.page_size);
    let backend = match kind {
        ChildKind::Sweep => builder.sweep_grace(Duration::ZERO),
        ChildKind::List => builder.sweep_grace(LIST_ONLY_GRACE),
        _ => builder,
    }
    .build()?;
    let keys = match kind {
        ChildKind::IsLocked => random_keys(plan, args.is_locked),
        _ => Vec::new(),
    };
    // Open the connections the operation uses and learn the server's clock
    // before the baseline.
    let warm_up: Vec<_> = stream::iter(0..args.in_flight)
        .map(|_| backend.is_locked("lease-bench-scale-warm-up"))
        .buffer_unordered(args.in_flight)
        .collect()
        .await;
    warm_up
        .into_iter()
        .collect::<celers_kube_lease::Result<Vec<_>>>()?;

    child::ready().await?;
    let rss_before_kib = probe::status_kib("self", "VmRSS")?;
    let high_water_reset = probe::reset_high_water();
    let start = Instant::now();
    let mut measured = match kind {
        ChildKind::ReleaseAll => deleted(backend.release_all(&plan.leaver()).await)?,
        ChildKind::Sweep | ChildKind::List => deleted(backend.sweep_expired().await)?,
        ChildKind::IsLocked => is_locked(&backend, keys, args.in_flight).await,
        ChildKind::Lifetime => return Err("not a bulk operation".into()),
    };
    measured.secs = start.elapsed().as_secs_f64();
    measured.high_water_kib = probe::status_kib("self", "VmHWM")?;
    measured.rss_before_kib = rss_before_kib;
    measured.high_water_reset = high_water_reset;
    child::emit(&measured)
}

/// The count of a bulk delete; one that failed part-way counts what it
/// deleted and its error.
fn deleted(outcome: celers_kube_lease::Result<u64>) -> Result<Measured> {
    match outcome {
        Ok(count) => Ok(Measured {
            count,
            ..Measured::default()
        }),
        Err(celers_kube_lease::Error::Incomplete {
            deleted, source, ..
        }) => Ok(Measured {
            count: deleted,
            errors: 1,
            first_error: Some(source.to_string()),
            ..Measured::default()
        }),
        Err(error) => Err(error.into()),
    }
}

async fn is_locked(
    backend: &KubeLeaseLockBackend,
    keys: Vec<String>,
    in_flight: usize,
) -> Measured {
    let outcomes: Vec<(Duration, celers_kube_lease::Result<bool>)> = stream::iter(keys)
        .map(|key| async move {
            let start = Instant::now();
            let held = backend.is_locked(&key).await;
            (start.elapsed(), held)
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let mut measured = Measured {
        calls: outcomes.len() as u64,
        ..Measured::default()
    };
    let mut latencies = Vec::with_capacity(outcomes.len());
    for (latency, outcome) in outcomes {
        latencies.push(latency);
        match outcome {
            Ok(held) => measured.count += u64::from(held),
            Err(error) => {
                measured.errors += 1;
                measured
                    .first_error
                    .get_or_insert_with(|| error.to_string());
            }
        }
    }
    latencies.sort_unstable();
    measured.p50_ms = percentile_ms(&latencies, 50.0);
    measured.p99_ms = percentile_ms(&latencies, 99.0);
    measured
}

/// `n` keys of the plan's own Leases drawn at random (a fixed seed, so
/// every run asks the same), held and expired alike.
fn random_keys(plan: &Plan, n: usize) -> Vec<String> {
    let mut state: u64 = 0x5eed_1ea5_e5ca_1e00;
    (0..n)
        .map(|_| {
            // splitmix64: plenty for picking keys, and no dependency.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            plan.lock((z % plan.own.max(1) as u64) as usize).0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_keys_are_spread_over_the_plan() {
        let plan = Plan {
            run: "r".into(),
            own: 1000,
            release_all: 100,
            expired: 500,
            foreign: 0,
        };
        let keys = random_keys(&plan, 1000);
        let expired = keys.iter().filter(|key| key.contains("/expired/")).count();
        assert!((400..600).contains(&expired), "{expired} of 1000 expired");
        assert_eq!(keys, random_keys(&plan, 1000), "the same every run");
    }
}
