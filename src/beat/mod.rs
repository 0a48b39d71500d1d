//! [`KubeBeat`]: celers-beat 0.3's `BeatScheduler` on Kubernetes, each
//! scheduled instant fired once across replicas, by stateless pods. The
//! why and how are on the type.

mod config;
mod identity;
mod leadership;
pub(crate) mod ledger;
mod plan;
mod store;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use celers_beat::BeatScheduler;
use chrono::{DateTime, Utc};

use crate::clock::LocalInstant;
use crate::error::{Error, Operation, Result};
use crate::fencing::FencingToken;
use crate::guard::LockGuard;
use crate::KubeLeaseLockBackend;

pub use config::{KubeBeatBuilder, DEFAULT_BEAT_NAME, DEFAULT_LEADER_TTL, DEFAULT_RETRY_PERIOD};
use leadership::Observers;
pub use leadership::{Unhealthy, DEFAULT_HEALTH_TOLERANCE};
use ledger::{Claim, Entry, LedgerMarks};

/// One scheduled instant of one entry, given out by the leader.
///
/// Dispatch it with its token: a consumer that remembers the highest token
/// it has seen can refuse fires of a leader whose tenure has ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fire {
    /// The schedule entry's name.
    pub entry: String,
    /// The scheduled instant (without jitter), the same on every replica.
    pub instant: DateTime<Utc>,
    /// The fencing token of the leader's tenure.
    pub token: FencingToken,
}

/// Drives celers-beat 0.3's `BeatScheduler` on several replicas so that
/// each scheduled instant fires once.
///
/// Built with [`KubeBeat::builder`]. Call [`tick`](Self::tick) where the
/// stock loop calls `scheduler.tick_with_locks(ttl)`, on every replica.
///
/// celers-beat 0.3's `BeatScheduler` on Kubernetes: each scheduled instant
/// fired once across replicas, by stateless pods.
///
/// Stock `tick_with_locks` leaves three holes on several replicas: every
/// process's first scheduler is `scheduler-0` (so the per-fire lock, which
/// a same-owner acquire re-enters, excludes nobody); each replica computes
/// instants from its own `last_run_at` (so the per-fire keys of two
/// replicas, or of a new leader and the old one, differ and never collide);
/// and leadership is a bool read before the dispatch (so a leader paused
/// after that read fires after another has taken over). [`KubeBeat`]
/// closes them:
///
/// - **One leader, with a token.** The replicas elect a leader with a
///   [`LockGuard`] on the key `<name>/leader`, held under an owner string
///   no other process can present (the identity and a random suffix).
/// - **Instants from a shared ledger.** Per entry, the last instant fired
///   and the token of the leader that fired it are kept in a Lease (see
///   `ledger.rs`), which survives the per-run locks, the sweeps and the
///   pods. A new leader reads it and continues from there; instants come
///   from the schedule and the ledger only (`plan.rs`), so every leader
///   computes the same ones.
/// - **A fire is a conditional write.** To fire an instant the leader moves
///   the entry's ledger forward, conditional on the resourceVersion it last
///   saw and refused if a later token wrote it, and gives the fire out only
///   if its guard is still held when that answer is back and when `tick`
///   returns. A paused leader that resumes finds its guard lost (the
///   guard's deadline comes before anyone can take over) or its write
///   refused.
///
/// What exactly-once means here: each instant of an entry is given out by
/// at most one replica, once (at-most-once dispatch to the broker), and a
/// fire carries the leader's [`FencingToken`] so that a consumer can refuse
/// the fires of a tenure that has ended. An instant is skipped only when a
/// leader loses its guard between recording it and returning it (a pause
/// or partition of about `leader_ttl` at that moment), and instants due
/// while nobody leads are caught up by the entry's catch-up policy.
#[derive(Debug)]
pub struct KubeBeat {
    backend: KubeLeaseLockBackend,
    identity: String,
    owner: String,
    name: String,
    leader_key: String,
    leader_ttl: Duration,
    retry_period: Duration,
    health_tolerance: Duration,
    observers: Observers,
    marks: LedgerMarks,
    /// The leader guard while this replica leads.
    leader: Mutex<Option<LockGuard>>,
    ticking: tokio::sync::Mutex<Ticking>,
}

/// What one tick leaves for the next.
#[derive(Debug, Default)]
struct Ticking {
    /// The token of the tenure `ledger` was read in.
    tenure: Option<FencingToken>,
    /// When the tenure began, by the API server's clock.
    leading_since: Option<DateTime<Utc>>,
    /// The ledger as this tenure read and wrote it.
    ledger: Option<HashMap<String, Entry>>,
    /// A standby tries to take the lead no earlier than this.
    next_attempt: Option<LocalInstant>,
}

impl KubeBeat {
    /// A builder for the replica `identity` (its pod name, for example from
    /// [`identity_from_env`](Self::identity_from_env)), keeping its locks
    /// and ledger through `backend`.
    pub fn builder(backend: KubeLeaseLockBackend, identity: impl Into<String>) -> KubeBeatBuilder {
        KubeBeatBuilder::new(backend, identity.into())
    }

    /// The replica's identity from the environment: `POD_NAME` (set it from
    /// the Downward API's `metadata.name`), else `HOSTNAME`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming both variables when neither is set.
    pub fn identity_from_env() -> Result<String> {
        identity::identity_from_env()
    }

    /// The replica's identity, as given to the builder.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The owner the leader lock is held under (`holderIdentity` of the
    /// `<name>/leader` Lease): the identity, `_`, and a random suffix.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The beat's name (its leader lock is `<name>/leader`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The leader lock's key.
    pub fn leader_key(&self) -> &str {
        &self.leader_key
    }

    /// The leader guard's TTL.
    pub fn leader_ttl(&self) -> Duration {
        self.leader_ttl
    }

    /// Whether this replica leads now: its leader guard is still held.
    pub fn is_leader(&self) -> bool {
        self.leader_token().is_some()
    }

    /// The fencing token of this replica's tenure while it leads.
    pub fn leader_token(&self) -> Option<FencingToken> {
        let leader = self.leader.lock().ok()?;
        leader
            .as_ref()
            .filter(|guard| guard.is_held())
            .map(LockGuard::fencing_token)
    }

    /// Healthy unless this replica believes it leads (it took the lead and
    /// no tick has dropped it since) and its lease ended longer than the
    /// health tolerance ago: a leader whose loop is stuck, to restart, as
    /// client-go's `HealthzAdaptor` tells. Serve it as the liveness probe.
    ///
    /// # Errors
    ///
    /// [`Unhealthy`], saying how long the lease has been over.
    pub fn check_health(&self) -> std::result::Result<(), Unhealthy> {
        let Ok(leader) = self.leader.lock() else {
            return Ok(());
        };
        let Some(guard) = leader.as_ref() else {
            return Ok(());
        };
        let expired_for = LocalInstant::now().saturating_since(guard.held_until());
        if expired_for > self.health_tolerance {
            return Err(Unhealthy {
                leader_key: self.leader_key.clone(),
                expired_for,
                tolerance: self.health_tolerance,
            });
        }
        Ok(())
    }

    /// Gives out the instants of `scheduler`'s entries that are due, if this
    /// replica leads; the drop-in for `scheduler.tick_with_locks(ttl)`.
    /// Call it on every replica, a few times a second or at least once per
    /// second for second-granularity schedules. Do not also configure
    /// celers-beat's heartbeat or call `tick_with_locks`.
    ///
    /// A standby returns an empty list; at most once per `retry_period` it
    /// tries to take the lead (one request). The leader sends one
    /// conditional write per fire, and its guard renews in the background.
    /// Each fire is also recorded on the scheduler's task (`last_run_at` is
    /// the instant, `total_run_count` grows), so that celers-beat's own views
    /// stay right; the ledger, not `last_run_at`, decides what is due.
    ///
    /// Entries the scheduler no longer has lose their ledger Lease (when the
    /// scheduler has at least one entry: an empty one is taken as not set
    /// up yet).
    ///
    /// # Errors
    ///
    /// Errors of taking the lead (as for
    /// [`try_lock`](KubeLeaseLockBackend::try_lock)), of the ledger's reads
    /// and writes (operation `tick`, naming the ledger Lease), and
    /// [`Error::Schedule`] for an entry whose instants cannot be computed.
    /// An error after some fires were recorded is logged instead, and those
    /// fires are returned: the failed entry is tried again next tick.
    pub async fn tick(&self, scheduler: &mut BeatScheduler) -> Result<Vec<Fire>> {
        let mut ticking = self.ticking.lock().await;
        let Some(token) = self.lead(&mut ticking).await? else {
            return Ok(Vec::new());
        };
        let ledger = match ticking.ledger.take() {
            Some(ledger) => ledger,
            None => {
                let ledger = self.load_ledger().await?;
                sync_scheduler(scheduler, &ledger);
                ledger
            }
        };
        let since = ticking.leading_since;
        let ledger = ticking.ledger.insert(ledger);
        let mut fires = Vec::new();
        let outcome = self
            .fire_due(scheduler, ledger, token, since, &mut fires)
            .await;
        if let Err(error) = outcome {
            if fires.is_empty() {
                return Err(error);
            }
            tracing::warn!(%error, fired = fires.len(), "beat tick stopped part-way");
        }
        self.forget_removed(scheduler, ledger).await;
        if !self.is_leader() {
            if !fires.is_empty() {
                tracing::warn!(
                    skipped = fires.len(),
                    "lost the lead while firing: the instants recorded are not given out"
                );
            }
            return Ok(Vec::new());
        }
        for fire in &fires {
            record_run(scheduler, &fire.entry, fire.instant);
        }
        Ok(fires)
    }

    /// Stops leading: releases the leader lock (a conditional delete), so
    /// that a standby takes over within its `retry_period` rather than the
    /// TTL; this replica tries to lead again only a retry period later. Call it when the process is asked to stop (SIGTERM). `Ok(false)`
    /// when this replica did not lead.
    ///
    /// # Errors
    ///
    /// API, timeout and transport errors of the release; the replica has
    /// stopped leading anyway.
    pub async fn step_down(&self) -> Result<bool> {
        let mut ticking = self.ticking.lock().await;
        let Some(guard) = self.leader.lock().ok().and_then(|mut leader| leader.take()) else {
            return Ok(false);
        };
        // Leave the lead to another replica: try again only a retry period on.
        *ticking = Ticking {
            next_attempt: Some(LocalInstant::now().saturating_add(self.retry_period)),
            ..Ticking::default()
        };
        tracing::info!(identity = %self.identity, "stepped down");
        self.observers.changed(&self.identity, false).await;
        guard.release().await
    }

    /// The token of this replica's tenure, taking the lead if it is free and
    /// this standby's `retry_period` has passed; `None` on a standby.
    async fn lead(&self, ticking: &mut Ticking) -> Result<Option<FencingToken>> {
        if let Some(token) = self.leader_token() {
            if ticking.tenure == Some(token) {
                return Ok(Some(token));
            }
        }
        let lost = self.leader.lock().ok().and_then(|mut leader| leader.take());
        if lost.is_some() {
            drop(lost);
            tracing::warn!(identity = %self.identity, "stopped leading");
            self.observers.changed(&self.identity, false).await;
        }
        ticking.tenure = None;
        ticking.ledger = None;
        ticking.leading_since = None;
        let now = LocalInstant::now();
        if ticking.next_attempt.is_some_and(|next| now < next) {
            return Ok(None);
        }
        ticking.next_attempt = Some(now.saturating_add(self.retry_period));
        let taken = self
            .backend
            .try_lock(&self.leader_key, &self.owner, self.leader_ttl)
            .await?;
        let Some(guard) = taken else {
            return Ok(None);
        };
        let token = guard.fencing_token();
        tracing::info!(identity = %self.identity, %token, "became leader");
        if let Ok(mut leader) = self.leader.lock() {
            *leader = Some(guard);
        }
        ticking.tenure = Some(token);
        ticking.leading_since = self.server_now().ok();
        self.observers.changed(&self.identity, true).await;
        Ok(Some(token))
    }

    /// Records and collects every due instant, entry by entry in name order,
    /// until an error or the end of the tenure.
    async fn fire_due(
        &self,
        scheduler: &BeatScheduler,
        ledger: &mut HashMap<String, Entry>,
        token: FencingToken,
        leading_since: Option<DateTime<Utc>>,
        fires: &mut Vec<Fire>,
    ) -> Result<()> {
        let now = self.server_now()?;
        let leading_since = leading_since.unwrap_or(now);
        let mut entries: Vec<_> = scheduler
            .list_tasks()
            .values()
            .filter(|task| task.enabled)
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for task in entries {
            let last = ledger.get(&task.name).map(|entry| entry.instant);
            let instants =
                plan::due(task, last, now, leading_since).map_err(|error| Error::Schedule {
                    operation: Operation::BeatTick,
                    entry: task.name.clone(),
                    reason: error.to_string(),
                })?;
            for instant in instants {
                let mut current = ledger.get(&task.name).cloned();
                let claimed = self.claim(&mut current, &task.name, instant, token).await;
                match current {
                    Some(entry) => ledger.insert(task.name.clone(), entry),
                    None => ledger.remove(&task.name),
                };
                match claimed? {
                    Claim::Write | Claim::Ours if self.is_leader() => fires.push(Fire {
                        entry: task.name.clone(),
                        instant,
                        token,
                    }),
                    Claim::Fired => {}
                    Claim::Write | Claim::Ours | Claim::Superseded => return Ok(()),
                }
            }
        }
        Ok(())
    }

    /// Deletes the ledger Leases of entries the scheduler no longer has.
    async fn forget_removed(&self, scheduler: &BeatScheduler, ledger: &mut HashMap<String, Entry>) {
        let tasks = scheduler.list_tasks();
        if tasks.is_empty() || !self.is_leader() {
            return;
        }
        let removed: Vec<_> = ledger
            .keys()
            .filter(|entry| !tasks.contains_key(*entry))
            .cloned()
            .collect();
        for entry in removed {
            let Some(seen) = ledger.remove(&entry) else {
                continue;
            };
            match self.forget(&entry, &seen).await {
                Ok(()) => tracing::info!(entry, "removed entry: its ledger Lease is deleted"),
                Err(error) => {
                    tracing::warn!(%error, "deleting a removed entry's ledger Lease failed");
                    ledger.insert(entry, seen);
                }
            }
        }
    }

    /// The earliest the API servers' clocks can read now: an instant is
    /// due only once every server's clock has reached it.
    fn server_now(&self) -> Result<DateTime<Utc>> {
        self.backend
            .inner
            .api
            .server_time()
            .map(|now| now.earliest)
            .ok_or_else(|| Error::Unexpected {
                operation: Operation::BeatTick,
                target: self.backend.target(None),
                detail: "the API server's clock is not known yet".to_owned(),
            })
    }
}

/// Brings the scheduler's `last_run_at` in line with the ledger, for
/// celers-beat's own views (the ledger decides what is due).
fn sync_scheduler(scheduler: &mut BeatScheduler, ledger: &HashMap<String, Entry>) {
    for (entry, record) in ledger {
        let stale = scheduler
            .get_task(entry)
            .is_some_and(|task| task.last_run_at != Some(record.instant));
        if stale {
            set_last_run(scheduler, entry, record.instant, 0);
        }
    }
}

/// Records a fire of `entry` at `instant` on the scheduler's task.
fn record_run(scheduler: &mut BeatScheduler, entry: &str, instant: DateTime<Utc>) {
    set_last_run(scheduler, entry, instant, 1);
}

/// celers-beat has no mutable access to a task: take it out, change it,
/// put it back (which also refreshes its next-run cache).
fn set_last_run(scheduler: &mut BeatScheduler, entry: &str, instant: DateTime<Utc>, runs: u64) {
    let Ok(Some(mut task)) = scheduler.remove_task(entry) else {
        return;
    };
    task.last_run_at = Some(instant);
    task.total_run_count = task.total_run_count.saturating_add(runs);
    if let Err(error) = scheduler.add_task(task) {
        tracing::warn!(entry, %error, "saving the scheduler's state failed");
    }
}
