//! The lifetime phase: a beat scheduler's steady load for a long while, with
//! the background sweep on, sampled from outside.
//!
//! A child process runs the replicas (each its own `kube::Client` and
//! backend), so that its VmRSS is theirs alone. Task `n` of `tasks` fires
//! every interval, at offset `n × interval / tasks`, so attempts are spread
//! evenly; each run locks a fresh key `celers-beat:dispatch:task-<n>@<run>`
//! (`<run>`: the Unix second of its period) and never releases it. As in the
//! example scheduler, the leader (replica 0) attempts a run when it is due
//! and the standbys half an interval later, when the leader holds it: they
//! are refused. The parent samples the Lease count, the servers' CPU, etcd's
//! database size and the child's RSS every sample period.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use celers_kube_lease::KubeLeaseLockBackend;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::child::{self, Child};
use crate::{probe, progress, setup, ChildKind, Context, Result};

/// How often the child reports its counters.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Beyond the run's duration, how long the child may take to finish its
/// last attempts before it counts as hung.
const FINISH_LIMIT: Duration = Duration::from_secs(120);

/// The child's counters, printed every second and at the end (`done`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Progress {
    pub elapsed_secs: f64,
    /// Attempts by the leader (one per run) and by the standbys.
    pub leader_attempts: u64,
    pub standby_attempts: u64,
    /// `Ok(true)` answers: by the leader, and by standbys (a run the leader
    /// had not locked, e.g. after an error).
    pub acquired: u64,
    pub standby_acquired: u64,
    pub refused: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The most an attempt was sent after its time.
    pub max_lag_ms: f64,
    pub done: bool,
}

/// One sample of the run.
#[derive(Clone, Debug)]
pub struct Sample {
    pub elapsed_secs: f64,
    /// Leases of the replicas (exact: a list of their metadata).
    pub leases: u64,
    /// Locks acquired per second since the previous sample.
    pub acquired_per_sec: Option<f64>,
    /// Each server's CPU share of one core since the previous sample.
    pub cpu: Vec<(String, f64)>,
    /// etcd's database size, allocated and in use, bytes.
    pub etcd_db: Option<(f64, f64)>,
    /// The scheduler process's VmRSS; `None` once it has exited.
    pub rss_kib: Option<u64>,
}

/// The lifetime phase's results.
#[derive(Clone, Debug)]
pub struct Lifetime {
    pub samples: Vec<Sample>,
    /// The child's final counters.
    pub last: Progress,
    /// The API server's Lease requests over the run, samples included.
    pub requests: f64,
    /// Per-run locks per second asked for: tasks ÷ interval.
    pub rate: f64,
    /// rate × (TTL + grace), and that plus rate × sweep interval.
    pub expected: (f64, f64),
    /// Samples from this elapsed time on are past the first sweep that
    /// can delete anything: the plateau.
    pub warm_up_secs: f64,
    /// Over the plateau's samples: (min, mean, max).
    pub observed: Option<(u64, f64, u64)>,
}

/// The owner of replica `r`'s per-run locks.
fn replica_owner(run: &str, r: usize) -> String {
    format!("scale-{run}-replica-{r}")
}

/// Runs the phase, then deletes the Leases it left, whatever the outcome.
pub async fn run(ctx: &Context) -> Result<Lifetime> {
    let owners: Vec<String> = (0..ctx.args.replicas)
        .map(|r| replica_owner(&ctx.args.common.run, r))
        .collect();
    let selector = setup::owners_selector(&owners);
    let outcome = sampled(ctx, &selector).await;
    progress("deleting the lifetime phase's Leases");
    let deleted = setup::delete_all(&ctx.client, &ctx.args.common.namespace, &selector).await;
    // The run's error first: a failed cleanup may follow from it.
    let lifetime = outcome?;
    deleted?;
    Ok(lifetime)
}

async fn sampled(ctx: &Context, selector: &str) -> Result<Lifetime> {
    let args = &ctx.args;
    let rate = args.tasks as f64 / args.interval_secs as f64;
    let expected_low = rate * (args.lock_ttl_secs + args.sweep_grace_secs) as f64;
    let expected = (
        expected_low,
        expected_low + rate * args.sweep_interval_secs as f64,
    );
    let warm_up_secs =
        (args.lock_ttl_secs + args.sweep_grace_secs + args.sweep_interval_secs) as f64;
    progress(&format!(
        "lifetime: {} tasks every {} s ({rate:.0} per-run locks/s), {} replicas, TTL {} s, \
         sweep every {} s with grace {} s, for {:.0} s; expected plateau {:.0} to {:.0} Leases",
        args.tasks,
        args.interval_secs,
        args.replicas,
        args.lock_ttl_secs,
        args.sweep_interval_secs,
        args.sweep_grace_secs,
        args.duration.as_secs_f64(),
        expected.0,
        expected.1
    ));

    let mut child = Child::start(&ctx.args.child_args(ChildKind::Lifetime, &[])).await?;
    let mut sampler = Sampler {
        ctx,
        selector,
        pid: child.pid().to_string(),
        previous: None,
    };
    let requests = probe::lease_requests(&ctx.client).await?;
    child.go().await?;
    let start = Instant::now();
    let limit = args.duration + FINISH_LIMIT;
    let mut ticker = tokio::time::interval(args.sample);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latest = Progress::default();
    let mut last_line = None;
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            line = child.next_line() => match line? {
                Some(line) => {
                    latest = serde_json::from_str(&line)?;
                    last_line = Some(line);
                    if latest.done {
                        break;
                    }
                }
                None => break,
            },
            _ = ticker.tick() => {
                if start.elapsed() > limit {
                    return Err("the scheduler child did not finish".into());
                }
                let sample = sampler.sample(start.elapsed(), &latest).await?;
                progress(&format!(
                    "lifetime: {:.0} s, {} Leases, {} acquired, {} errors, RSS {} KiB",
                    sample.elapsed_secs,
                    sample.leases,
                    latest.acquired + latest.standby_acquired,
                    latest.errors,
                    sample.rss_kib.unwrap_or_default()
                ));
                samples.push(sample);
            }
        }
    }
    samples.push(sampler.sample(start.elapsed(), &latest).await?);
    let last: Progress = child.finish(last_line).await?;
    if !last.done {
        return Err("the scheduler child stopped before it was done".into());
    }
    // The API server counts a request as its handler finishes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = probe::lease_requests(&ctx.client).await? - requests;

    let plateau: Vec<u64> = samples
        .iter()
        .filter(|s| s.elapsed_secs >= warm_up_secs && s.elapsed_secs <= last.elapsed_secs)
        .map(|s| s.leases)
        .collect();
    let observed = match (plateau.iter().min(), plateau.iter().max()) {
        (Some(&min), Some(&max)) => Some((
            min,
            plateau.iter().sum::<u64>() as f64 / plateau.len() as f64,
            max,
        )),
        _ => None,
    };
    Ok(Lifetime {
        samples,
        last,
        requests,
        rate,
        expected,
        warm_up_secs,
        observed,
    })
}

/// Takes the samples; remembers the previous one for the rates.
struct Sampler<'a> {
    ctx: &'a Context,
    selector: &'a str,
    /// The scheduler child's PID.
    pid: String,
    previous: Option<Previous>,
}

/// What the rates of the next sample are counted from.
struct Previous {
    elapsed_secs: f64,
    /// The child's counters.
    progress: Progress,
    /// The servers' CPU seconds.
    cpu: Vec<(String, f64)>,
}

impl Sampler<'_> {
    async fn sample(&mut self, elapsed: Duration, latest: &Progress) -> Result<Sample> {
        let ctx = self.ctx;
        let elapsed_secs = elapsed.as_secs_f64();
        let cpu = ctx.server_cpu()?;
        let rss_kib = probe::status_kib(&self.pid, "VmRSS").ok();
        let leases =
            setup::count(&ctx.client, &ctx.args.common.namespace, Some(self.selector)).await?;
        let etcd_db = match &ctx.args.common.etcd {
            Some(address) => Some(probe::etcd_db_bytes(address).await?),
            None => None,
        };
        let (acquired_per_sec, cpu_share) = match &self.previous {
            Some(Previous {
                elapsed_secs: then,
                progress: before,
                cpu: cpu_before,
            }) => {
                let acquired = |p: &Progress| (p.acquired + p.standby_acquired) as f64;
                let child_secs = latest.elapsed_secs - before.elapsed_secs;
                let rate =
                    (child_secs > 0.0).then(|| (acquired(latest) - acquired(before)) / child_secs);
                let wall = (elapsed_secs - then).max(1e-9);
                let share = cpu
                    .iter()
                    .zip(cpu_before)
                    .map(|((name, now), (_, before))| (name.clone(), (now - before) / wall))
                    .collect();
                (rate, share)
            }
            None => (None, Vec::new()),
        };
        self.previous = Some(Previous {
            elapsed_secs,
            progress: latest.clone(),
            cpu,
        });
        Ok(Sample {
            elapsed_secs,
            leases,
            acquired_per_sec,
            cpu: cpu_share,
            etcd_db,
            rss_kib,
        })
    }
}

/// In the child: the replicas' load; prints [`Progress`] lines.
pub async fn child(ctx: &Context) -> Result<()> {
    let args = &ctx.args;
    let mut replicas = Vec::with_capacity(args.replicas);
    for r in 0..args.replicas {
        let backend = KubeLeaseLockBackend::builder(kube::Client::try_from(ctx.config.clone())?)
            .namespace(&args.common.namespace)
            .sweep_interval(Some(Duration::from_secs(args.sweep_interval_secs)))
            .sweep_grace(Duration::from_secs(args.sweep_grace_secs))
            .build()?;
        // Learns the server's clock, as a replica's first calls would.
        backend.is_locked("lease-bench-scale-warm-up").await?;
        replicas.push((backend, replica_owner(&args.common.run, r)));
    }
    child::ready().await?;

    let start = tokio::time::Instant::now();
    let first_run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let step_nanos = args.interval_secs * 1_000_000_000 / args.tasks as u64;
    let slots = (args.duration.as_nanos() / u128::from(step_nanos.max(1))) as u64;
    let counters = Arc::new(Mutex::new(Progress::default()));
    let reporter = {
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(REPORT_EVERY);
            loop {
                ticker.tick().await;
                if let Ok(mut progress) = counters.lock() {
                    progress.elapsed_secs = start.elapsed().as_secs_f64();
                    let _ = child::emit(&*progress);
                }
            }
        })
    };
    let schedule = Schedule {
        start,
        first_run,
        step_nanos,
        slots,
        tasks: args.tasks as u64,
        interval_secs: args.interval_secs,
        ttl_secs: args.lock_ttl_secs,
    };
    let loops = replicas.iter().enumerate().map(|(r, (backend, owner))| {
        let counters = Arc::clone(&counters);
        schedule.replica(r == 0, backend.clone(), owner.clone(), counters)
    });
    futures::future::join_all(loops).await;
    reporter.abort();
    // Wait for it to stop, so that no progress line follows the last one.
    let _ = reporter.await;
    let mut last = counters
        .lock()
        .map_err(|_| "the counters' lock was poisoned")?
        .clone();
    last.elapsed_secs = start.elapsed().as_secs_f64();
    last.done = true;
    child::emit(&last)
}

/// When the runs are due.
#[derive(Clone, Copy)]
struct Schedule {
    start: tokio::time::Instant,
    /// The Unix second of the first period, the `<run>` of its keys.
    first_run: u64,
    /// Between two attempts: interval ÷ tasks.
    step_nanos: u64,
    slots: u64,
    tasks: u64,
    interval_secs: u64,
    ttl_secs: u64,
}

impl Schedule {
    /// One replica's attempts: slot `s` is run `s / tasks` of task
    /// `s % tasks`, due at `s × step` (standbys: half an interval later).
    async fn replica(
        self,
        leader: bool,
        backend: KubeLeaseLockBackend,
        owner: String,
        counters: Arc<Mutex<Progress>>,
    ) {
        let delay = if leader {
            Duration::ZERO
        } else {
            Duration::from_millis(self.interval_secs * 500)
        };
        let mut in_flight = JoinSet::new();
        for slot in 0..self.slots {
            let due = self.start + delay + Duration::from_nanos(self.step_nanos * slot);
            tokio::time::sleep_until(due).await;
            let lag_ms = due.elapsed().as_secs_f64() * 1000.0;
            let run = self.first_run + slot / self.tasks * self.interval_secs;
            let key = format!("celers-beat:dispatch:task-{}@{run}", slot % self.tasks);
            let (backend, owner, counters) =
                (backend.clone(), owner.clone(), Arc::clone(&counters));
            let ttl = self.ttl_secs;
            in_flight.spawn(async move {
                let outcome = backend.try_acquire(&key, &owner, ttl).await;
                if let Ok(mut progress) = counters.lock() {
                    progress.max_lag_ms = progress.max_lag_ms.max(lag_ms);
                    *if leader {
                        &mut progress.leader_attempts
                    } else {
                        &mut progress.standby_attempts
                    } += 1;
                    match outcome {
                        Ok(true) if leader => progress.acquired += 1,
                        Ok(true) => progress.standby_acquired += 1,
                        Ok(false) => progress.refused += 1,
                        Err(error) => {
                            progress.errors += 1;
                            progress
                                .first_error
                                .get_or_insert_with(|| error.to_string());
                        }
                    }
                }
            });
            // Reap finished attempts so that the set stays small.
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
    }
}
