//! The celers-kube-lease side: each phase sets up its Leases (not measured),
//! then the probe counts requests and costs around the measured work.

use std::time::{Duration, Instant};

use celers_kube_lease::KubeLeaseLockBackend;
use celers_kube_lease_bench::procfs;
use futures::stream::{self, StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams};
use serde::{Deserialize, Serialize};

use crate::measure::{round3, Phase, Probe, Result, Stats};

/// Requests in flight while setting up and cleaning up.
const SETUP_CONCURRENCY: usize = 32;
/// Lease duration of the other owner in the expired-key phases, for `n`
/// keys of each kind: long enough to take all of them and to read the
/// `seen` ones (about 1,000 a second each) before the first expires.
fn expired_ttl_secs(n: usize) -> u64 {
    2 + u64::try_from(n / 200).unwrap_or(u64::MAX)
}
/// Wait past that duration: covers both backends' uncertainty about the
/// server's clock (at most about a second each).
const EXPIRED_MARGIN: Duration = Duration::from_millis(2500);

/// A sequential operation, measured one call at a time on one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    AcquireFree,
    /// By a backend that has never seen the key.
    AcquireExpiredUnseen,
    /// By a backend that read the key (with `is_locked`) while it was held.
    AcquireExpiredSeen,
    /// By the holder's own backend.
    Reacquire,
    /// By the holder, from a new backend (as after a restart).
    ReacquireNewBackend,
    Renew,
    Release,
    IsLocked,
    Owner,
}

impl Op {
    pub fn scenario(self) -> &'static str {
        match self {
            Self::AcquireFree => "acquire_free",
            Self::AcquireExpiredUnseen => "acquire_expired_unseen",
            Self::AcquireExpiredSeen => "acquire_expired_seen",
            Self::Reacquire => "reacquire",
            Self::ReacquireNewBackend => "reacquire_new_backend",
            Self::Renew => "renew",
            Self::Release => "release",
            Self::IsLocked => "is_locked",
            Self::Owner => "owner",
        }
    }
}

/// What each client of a throughput run does in its loop; one iteration is
/// one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    /// `try_acquire` of its own key: after the first call, a renewal.
    OwnKey,
    /// `try_acquire` of one key that all the clients share.
    HotKey,
    /// `try_acquire` of a key never used before, as a beat scheduler's
    /// per-run lock; never released (deleted after the run, not measured).
    Dispatch,
    /// `try_acquire` of its own key, then `release`.
    Cycle,
}

impl Loop {
    /// Names the phase and its Leases; the client-go peer's scenario of the
    /// same name (the hot key: `throughput --hot-key`).
    pub fn scenario(self) -> &'static str {
        match self {
            Self::OwnKey => "throughput",
            Self::HotKey => "throughput_hot_key",
            Self::Dispatch => "dispatch",
            Self::Cycle => "cycle",
        }
    }
}

/// The memory phase's result (printed by the child process as JSON).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Memory {
    pub locks: u64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub bytes_per_lock: f64,
}

pub struct Ours {
    config: kube::Config,
    namespace: String,
    run: String,
    pub(crate) ttl: u64,
    /// Sends the sequential operations; its clock is warm.
    main: KubeLeaseLockBackend,
    /// Holds the expired locks.
    other: KubeLeaseLockBackend,
    client: kube::Client,
    probe: Probe,
}

impl Ours {
    /// `etcd` and `pids` are for the [`Probe`].
    pub async fn new(
        config: kube::Config,
        namespace: &str,
        run: &str,
        ttl: u64,
        etcd: Option<String>,
        pids: Vec<(String, u32)>,
    ) -> Result<Self> {
        let client = kube::Client::try_from(config.clone())?;
        let probe = Probe::new(client.clone(), etcd, pids);
        let main = backend(client.clone(), namespace)?;
        let other = backend(kube::Client::try_from(config.clone())?, namespace)?;
        // One response each, so that both know the server's clock.
        main.is_locked("lease-bench-warm-up").await?;
        other.is_locked("lease-bench-warm-up").await?;
        Ok(Self {
            config,
            namespace: namespace.to_owned(),
            run: run.to_owned(),
            ttl,
            main,
            other,
            probe,
            client,
        })
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub async fn kubernetes_version(&self) -> Result<String> {
        Ok(self.client.apiserver_version().await?.git_version)
    }

    /// A backend with a client (and connections) of its own.
    pub fn fresh_backend(&self) -> Result<KubeLeaseLockBackend> {
        backend(
            kube::Client::try_from(self.config.clone())?,
            &self.namespace,
        )
    }

    pub(crate) fn owner(&self) -> String {
        format!("lease-bench-{}", self.run)
    }

    pub(crate) fn keys(&self, scenario: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("lb-{}-{scenario}-{i}", self.run))
            .collect()
    }

    /// `n` calls of `op`, each on its own key.
    pub async fn sequential(&self, op: Op, n: usize) -> Result<Phase> {
        let owner = self.owner();
        let keys = self.keys(op.scenario(), n);
        let backends = match op {
            Op::AcquireFree => vec![self.main.clone(); n],
            Op::AcquireExpiredUnseen | Op::AcquireExpiredSeen => {
                return Err("the expired-key phases run together; see `expired`".into())
            }
            Op::ReacquireNewBackend => {
                acquire_all(&self.main, &keys, &owner, self.ttl).await?;
                // New backends on the same connections: no remembered state.
                let fresh = |_| backend(self.client.clone(), &self.namespace);
                keys.iter().map(fresh).collect::<Result<_>>()?
            }
            _ => {
                acquire_all(&self.main, &keys, &owner, self.ttl).await?;
                vec![self.main.clone(); n]
            }
        };
        let work = async {
            let mut stats = Stats::default();
            let start = Instant::now();
            for (key, backend) in keys.iter().zip(&backends) {
                match op {
                    Op::Renew => stats.time(backend.renew(key, &owner, self.ttl)).await,
                    Op::Release => stats.time(backend.release(key, &owner)).await,
                    Op::IsLocked => stats.time(backend.is_locked(key)).await,
                    Op::Owner => {
                        let held = async { Ok(backend.owner(key).await?.is_some()) };
                        stats.time(held).await;
                    }
                    _ => stats.time(backend.try_acquire(key, &owner, self.ttl)).await,
                }
            }
            (stats, start.elapsed())
        };
        let ((stats, elapsed), usage) = self.probe.counted(work).await?;
        self.main.release_all(&owner).await?;
        Ok(stats.phase(op.scenario(), 1, elapsed, usage))
    }

    /// Acquisition of keys whose holder (another owner, TTL 1 s) has expired
    /// by the server's clock: by a backend that never saw them, and by one
    /// that read them while they were held.
    pub async fn expired(&self, n: usize) -> Result<[Phase; 2]> {
        let owner = self.owner();
        let other_owner = format!("{owner}-other");
        let unseen = self.keys(Op::AcquireExpiredUnseen.scenario(), n);
        let seen = self.keys(Op::AcquireExpiredSeen.scenario(), n);
        let all: Vec<String> = unseen.iter().chain(&seen).cloned().collect();
        let ttl = expired_ttl_secs(n);
        acquire_all(&self.other, &all, &other_owner, ttl).await?;
        let expired_at = Instant::now() + Duration::from_secs(ttl) + EXPIRED_MARGIN;
        // A backend that has never seen the `unseen` keys.
        let unseen_backend = backend(self.client.clone(), &self.namespace)?;
        unseen_backend.is_locked("lease-bench-warm-up").await?;
        for key in &seen {
            if !self.main.is_locked(key).await? {
                return Err(format!("{key} was not seen held").into());
            }
        }
        tokio::time::sleep_until(expired_at.into()).await;
        let mut phases = Vec::with_capacity(2);
        for (op, keys, backend) in [
            (Op::AcquireExpiredUnseen, &unseen, &unseen_backend),
            (Op::AcquireExpiredSeen, &seen, &self.main),
        ] {
            let work = async {
                let mut stats = Stats::default();
                let start = Instant::now();
                for key in keys {
                    stats.time(backend.try_acquire(key, &owner, self.ttl)).await;
                }
                (stats, start.elapsed())
            };
            let ((stats, elapsed), usage) = self.probe.counted(work).await?;
            phases.push(stats.phase(op.scenario(), 1, elapsed, usage));
        }
        self.main.release_all(&owner).await?;
        self.other.release_all(&other_owner).await?;
        let [unseen, seen]: [Phase; 2] = phases
            .try_into()
            .map_err(|_| "two expired-key phases expected")?;
        Ok([unseen, seen])
    }

    /// `clients` clients, each with its own connections, running `workload`
    /// in a loop for `duration`.
    pub async fn throughput(
        &self,
        clients: usize,
        duration: Duration,
        workload: Loop,
    ) -> Result<Phase> {
        let scenario = workload.scenario();
        let keys = self.keys(scenario, clients);
        let mut workers = Vec::with_capacity(clients);
        for (i, key) in keys.iter().enumerate() {
            let client = kube::Client::try_from(self.config.clone())?;
            let (key, owner) = match workload {
                Loop::OwnKey => (key.clone(), format!("{}-{i}", self.owner())),
                Loop::HotKey => (keys[0].clone(), format!("{}-{i}", self.owner())),
                Loop::Dispatch | Loop::Cycle => {
                    (key.clone(), format!("{}-{scenario}-{i}", self.owner()))
                }
            };
            workers.push((backend(client, &self.namespace)?, key, owner));
        }
        let ttl = self.ttl;
        let work = async {
            let start = Instant::now();
            let deadline = start + duration;
            let tasks: Vec<_> = workers
                .iter()
                .cloned()
                .map(|(backend, key, owner)| {
                    tokio::spawn(async move {
                        let mut stats = Stats::default();
                        let mut run = 0_u64;
                        while Instant::now() < deadline {
                            match workload {
                                Loop::OwnKey | Loop::HotKey => {
                                    stats.time(backend.try_acquire(&key, &owner, ttl)).await;
                                }
                                Loop::Dispatch => {
                                    // A beat scheduler's per-run key,
                                    // `celers-beat:dispatch:<task>@<time>`.
                                    let run_key = format!("celers-beat:dispatch:{key}@{run}");
                                    run += 1;
                                    stats.time(backend.try_acquire(&run_key, &owner, ttl)).await;
                                }
                                Loop::Cycle => {
                                    let cycle = async {
                                        Ok(backend.try_acquire(&key, &owner, ttl).await?
                                            && backend.release(&key, &owner).await?)
                                    };
                                    stats.time(cycle).await;
                                }
                            }
                        }
                        stats
                    })
                })
                .collect();
            let mut all = Stats::default();
            for task in tasks {
                all.merge(task.await?);
            }
            Ok::<_, tokio::task::JoinError>((all, start.elapsed()))
        };
        let (outcome, usage) = self.probe.counted(work).await?;
        let (stats, elapsed) = outcome?;
        // Cleanup, not measured.
        for (backend, key, owner) in &workers {
            match workload {
                Loop::OwnKey | Loop::HotKey => {
                    backend.release(key, owner).await?;
                }
                Loop::Dispatch | Loop::Cycle => {
                    backend.release_all(owner).await?;
                }
            }
        }
        Ok(stats.phase(scenario, clients, elapsed, usage))
    }

    /// Deletes every Lease of the namespace whose name starts with `prefix`
    /// (what the client-go peer left behind); returns how many.
    pub async fn delete_prefixed(&self, prefix: &str) -> Result<u64> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut names = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list_metadata(&params).await?;
            names.extend(
                page.items
                    .into_iter()
                    .filter_map(|lease| lease.metadata.name)
                    .filter(|name| name.starts_with(prefix)),
            );
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        let api = &api;
        stream::iter(&names)
            .map(|name| async move {
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => Ok(1),
                    Err(kube::Error::Api(status)) if status.is_not_found() => Ok(0),
                    Err(error) => Err(error),
                }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_fold(0_u64, |deleted, one| async move { Ok(deleted + one) })
            .await
            .map_err(Into::into)
    }

    /// `release_all` of an owner holding `n` locks: one call, timed.
    pub async fn release_all(&self, n: usize) -> Result<Phase> {
        let owner = format!("{}-all-{n}", self.owner());
        let keys = self.keys(&format!("release-all-{n}"), n);
        acquire_all(&self.main, &keys, &owner, self.ttl).await?;
        let work = async {
            let start = Instant::now();
            let deleted = self.main.release_all(&owner).await;
            (deleted, start.elapsed())
        };
        let ((deleted, elapsed), usage) = self.probe.counted(work).await?;
        let deleted = deleted?;
        let secs = elapsed.as_secs_f64();
        Ok(Phase {
            implementation: "celers-kube-lease".to_owned(),
            clients: 1,
            ops: n as u64,
            errors: (n as u64).saturating_sub(deleted),
            successes: deleted,
            requests: usage.requests,
            requests_per_op: round3(usage.requests as f64 / n.max(1) as f64),
            ops_per_sec: if secs > 0.0 {
                round3(n as f64 / secs)
            } else {
                0.0
            },
            elapsed_secs: round3(secs),
            usage: Some(usage),
            ..Phase::default()
        })
    }
}

/// The backend as the benchmark uses it: no background sweeps.
/// One API server here, so no skew between API servers is assumed.
fn backend(client: kube::Client, namespace: &str) -> Result<KubeLeaseLockBackend> {
    Ok(KubeLeaseLockBackend::builder(client)
        .namespace(namespace)
        .request_timeout(Duration::from_secs(5))
        .api_server_skew(Duration::ZERO)
        .sweep_interval(None)
        .build()?)
}

/// Acquires every key for `owner` (setup: not measured).
async fn acquire_all(
    backend: &KubeLeaseLockBackend,
    keys: &[String],
    owner: &str,
    ttl: u64,
) -> Result<()> {
    stream::iter(keys)
        .map(|key| async move {
            match backend.try_acquire(key, owner, ttl).await? {
                true => Ok(()),
                false => Err(format!("setup could not acquire {key}").into()),
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// The memory phase, run in a process of its own so that nothing else has
/// grown its heap: VmRSS before and after one backend acquires `locks` locks.
pub async fn memory(
    config: kube::Config,
    namespace: &str,
    run: &str,
    locks: usize,
    ttl: u64,
) -> Result<Memory> {
    const CONCURRENCY: usize = 16;
    let backend = backend(kube::Client::try_from(config)?, namespace)?;
    let owner = format!("lease-bench-{run}-memory");
    let keys: Vec<String> = (0..locks).map(|i| format!("lb-{run}-memory-{i}")).collect();
    // Open the connections the acquisitions will use before the baseline.
    stream::iter(0..CONCURRENCY)
        .map(|_| backend.is_locked("lease-bench-warm-up"))
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let before = vm_rss_kib()?;
    let acquired = stream::iter(&keys)
        .map(|key| backend.try_acquire(key, &owner, ttl))
        .buffer_unordered(CONCURRENCY)
        .try_fold(0_u64, |held, ok| async move { Ok(held + u64::from(ok)) })
        .await?;
    let after = vm_rss_kib()?;
    backend.release_all(&owner).await?;
    let delta = after.saturating_sub(before) as f64 * 1024.0;
    Ok(Memory {
        locks: acquired,
        rss_before_kib: before,
        rss_after_kib: after,
        bytes_per_lock: if acquired > 0 {
            (delta / acquired as f64).round()
        } else {
            0.0
        },
    })
}

fn vm_rss_kib() -> Result<u64> {
    procfs::kib_in("/proc/self/status", "VmRSS")
}
