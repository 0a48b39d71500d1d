//! The backend: the shell that reads a Lease (or recalls it), asks the
//! decision what to do, and writes conditionally.
//!
//! One API round trip per operation in the common case (see
//! [Requests](crate#requests)). Every answer other than a successful write
//! (`false`, `is_locked`, `owner`, a foreign Lease) comes from a fresh read.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use tracing::Instrument;

use crate::api::{Failure, LeaseApi};
use crate::clock::{LocalInstant, ServerTime};
use crate::config::Config;
use crate::decision::{self, Step, Write};
use crate::error::{Error, Operation, Result, Target};
use crate::input::{check_key_and_owner, check_ttl};
use crate::known::Known;
use crate::lease::{Found, Lease, Marks, Record};
use crate::metrics::{self, Held, Metrics};
use crate::naming::Lock;
use crate::new_keys::NewKeys;
use crate::sweeper::Sweeper;

/// A [`DistributedLockBackend`](celers_core::lock::DistributedLockBackend)
/// that stores each lock as a `coordination.k8s.io/v1` Lease.
///
/// Cheap to clone: clones share the client, the remembered lock states and
/// the estimate of the API server's clock.
#[derive(Clone)]
pub struct KubeLeaseLockBackend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub api: LeaseApi,
    pub config: Config,
    pub marks: Marks,
    pub known: Mutex<Known>,
    pub sweeper: Sweeper,
    pub metrics: Metrics,
    /// For the `held` metric.
    pub held: Mutex<Held>,
    pub new_keys: NewKeys,
    /// Keys already warned about for an owner shared by two instances.
    pub shared_owner_warned: Mutex<HashSet<String>>,
}

/// Most keys remembered as warned about a shared owner (past it, each
/// further one is counted but not logged).
const MAX_SHARED_OWNER_WARNINGS: usize = 1024;

impl KubeLeaseLockBackend {
    /// A backend from settings that
    /// [`KubeLeaseLockBackendBuilder::build`](crate::KubeLeaseLockBackendBuilder::build)
    /// has validated.
    pub(crate) fn from_parts(client: kube::Client, config: Config, metrics: Metrics) -> Self {
        let api = LeaseApi::new(
            client,
            &config.namespace,
            config.field_manager.clone(),
            config.request_timeout,
            config.api_server_skew,
            metrics.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                api,
                marks: Marks::new(&config.label_prefix),
                sweeper: Sweeper::new(config.sweep_interval),
                config,
                known: Mutex::new(Known::default()),
                metrics,
                held: Mutex::default(),
                new_keys: NewKeys::default(),
                shared_owner_warned: Mutex::default(),
            }),
        }
    }
}

/// Where a decision starts from.
pub(crate) enum Hint {
    /// Nothing: read first.
    Nothing,
    /// A state that may be stale (remembered, assumed or listed): only a
    /// successful write is an answer; anything else is decided again from a
    /// fresh read.
    Stale(Found),
    /// A state the server has just sent (a watch event): decided as a read.
    Fresh(Found),
}

/// What one operation on one lock came to.
pub(crate) enum Decided {
    /// Its write succeeded: the Lease is now in this state.
    Wrote(Found),
    /// The answer is no, decided from this state, fresh from the server
    /// (a read, a watch event, or the read after a lost write).
    Refused(Found),
}

impl Decided {
    pub fn wrote(&self) -> bool {
        matches!(self, Self::Wrote(_))
    }
}

/// Outcome of a conditional write.
enum Written {
    /// The write succeeded (or an earlier attempt of it, retried by the
    /// client, did); the Lease is now in this state.
    Done(Found),
    /// The Lease changed (409) or vanished (404) since it was read; it is
    /// now in this state (read once after the answer).
    Lost(Found),
}

impl std::fmt::Debug for KubeLeaseLockBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeaseLockBackend")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl KubeLeaseLockBackend {
    /// The namespace of the Leases.
    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// Takes the lock `key` for `owner` for `ttl_secs` seconds, or refreshes
    /// it if `owner` holds it. `Ok(false)` if another owner holds it, or took
    /// it while this call was deciding.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty or oversized key or owner, or a
    /// TTL outside `1..=i32::MAX`; [`Error::ForeignLease`] if a Lease with the
    /// lock's name was not made by this crate; [`Error::Contended`] if the
    /// Lease keeps changing without changing hands; API, timeout and
    /// transport errors.
    pub async fn try_acquire(&self, key: &str, owner: &str, ttl_secs: u64) -> Result<bool> {
        let op = Operation::TryAcquire;
        let ttl = check_key_and_owner(op, key, owner).and_then(|()| check_ttl(op, ttl_secs))?;
        let span = tracing::debug_span!("try_acquire", key, owner, ttl_secs);
        let decide = |found: &Found, now| decision::try_acquire(found, owner, ttl, now);
        let decided = self.run(op, &Lock::new(key), decide).instrument(span).await;
        self.observed(op, decided.map(|decided| decided.wrote()))
    }

    /// Extends the lock `key` held by `owner` to `ttl_secs` from now.
    /// `Ok(false)` if `owner` does not hold it, it is gone, or it may have
    /// expired (within the clock's uncertainty): an expired lock is never
    /// brought back.
    ///
    /// # Errors
    ///
    /// As for [`try_acquire`](Self::try_acquire).
    pub async fn renew(&self, key: &str, owner: &str, ttl_secs: u64) -> Result<bool> {
        let op = Operation::Renew;
        let ttl = check_key_and_owner(op, key, owner).and_then(|()| check_ttl(op, ttl_secs))?;
        let span = tracing::debug_span!("renew", key, owner, ttl_secs);
        let decide = |found: &Found, now| decision::renew(found, owner, ttl, now);
        let decided = self.run(op, &Lock::new(key), decide).instrument(span).await;
        self.observed(op, decided.map(|decided| decided.wrote()))
    }

    /// Deletes the lock `key` if `owner` holds it (live, or expired and not
    /// taken over). `Ok(false)` if it is gone or held by someone else.
    ///
    /// # Errors
    ///
    /// As for [`try_acquire`](Self::try_acquire), without the TTL.
    pub async fn release(&self, key: &str, owner: &str) -> Result<bool> {
        let op = Operation::Release;
        check_key_and_owner(op, key, owner)?;
        let span = tracing::debug_span!("release", key, owner);
        let decide = |found: &Found, _| decision::release(found, owner);
        let decided = self.run(op, &Lock::new(key), decide).instrument(span).await;
        self.observed(op, decided.map(|decided| decided.wrote()))
    }

    /// One operation on one lock, starting from what is remembered of it.
    /// `Some(state)` when its write succeeded, `None` when the answer is no.
    pub(crate) async fn run(
        &self,
        op: Operation,
        lock: &Lock,
        decide: impl Fn(&Found, ServerTime) -> Step,
    ) -> Result<Decided> {
        let hint = self.remembered(lock).map(Found::Ours);
        let hint = hint.or_else(|| self.assume_missing());
        let hint = hint.map_or(Hint::Nothing, Hint::Stale);
        self.decide_and_write(op, lock, hint, decide).await
    }

    /// A lock this backend knows nothing of is assumed new while that pays
    /// (see [`NewKeys`]) and once the server's clock is known (the first
    /// call reads, to learn it): its Lease is created without a read. A
    /// create that finds the Lease there fails with 409, and the backend
    /// reads it.
    pub(crate) fn assume_missing(&self) -> Option<Found> {
        let known_clock = self.inner.api.server_time().is_some();
        (known_clock && self.inner.new_keys.likely()).then_some(Found::Missing)
    }

    /// Decides from `hint` or from a fresh read, writes, and when the write
    /// loses a race reads and decides again. A write decided from a fresh
    /// state that loses to another owner's acquisition is refused: that
    /// owner held the lock then.
    pub(crate) async fn decide_and_write(
        &self,
        op: Operation,
        lock: &Lock,
        hint: Hint,
        decide: impl Fn(&Found, ServerTime) -> Step,
    ) -> Result<Decided> {
        let (mut found, mut fresh) = match hint {
            Hint::Stale(found) => (found, false),
            Hint::Fresh(found) => (found, true),
            Hint::Nothing => (self.read(op, lock).await?, true),
        };
        let mut conflicts = 0;
        loop {
            let now = self.server_time(op, Some(lock))?;
            match decide(&found, now) {
                Step::Foreign if fresh => return Err(self.foreign(op, lock)),
                Step::Answer(_) if fresh => return Ok(Decided::Refused(found)),
                Step::Answer(_) | Step::Foreign => {}
                Step::Write(write) => {
                    let shared = self.shared_owner(&found, &write, now);
                    match self.write(op, lock, write, fresh).await? {
                        Written::Done(state) => {
                            if let Some((owner, other)) = shared {
                                self.warn_shared_owner(lock, &owner, &other);
                            }
                            self.note_held(lock, &state);
                            return Ok(Decided::Wrote(state));
                        }
                        Written::Lost(after) => {
                            if fresh {
                                if decision::lost_to_another(&found, &after) {
                                    return Ok(Decided::Refused(after));
                                }
                                conflicts += 1;
                                if conflicts > self.inner.config.conflict_retries {
                                    return Err(Error::Contended {
                                        operation: op,
                                        target: self.target(Some(lock)),
                                        attempts: conflicts,
                                    });
                                }
                            }
                            // Decided again from the read the lost write made.
                            found = after;
                            fresh = true;
                            continue;
                        }
                    }
                }
            }
            found = self.read(op, lock).await?;
            fresh = true;
        }
    }

    /// The owner and the other backend instance, when `write` keeps a lock
    /// that is live and held by the same owner string through another
    /// instance: two processes presenting one owner (celers-beat's default
    /// `scheduler-0` on every pod), or a restarted one taking its lock back.
    fn shared_owner(
        &self,
        found: &Found,
        write: &Write,
        now: ServerTime,
    ) -> Option<(String, String)> {
        let (Found::Ours(record), Write::Update { holding, .. }) = (found, write) else {
            return None;
        };
        let same_owner = record.holder.as_deref() == Some(holding.holder.as_str());
        let other = self.inner.marks.other_instance(&record.lease)?;
        (same_owner && !decision::is_expired(record, now))
            .then(|| (holding.holder.clone(), other.to_owned()))
    }

    /// Counts a shared owner, and warns once per key.
    fn warn_shared_owner(&self, lock: &Lock, owner: &str, other: &str) {
        self.inner.metrics.shared_owner();
        let first = self
            .inner
            .shared_owner_warned
            .lock()
            .is_ok_and(|mut warned| {
                warned.len() < MAX_SHARED_OWNER_WARNINGS && warned.insert(lock.key.clone())
            });
        if first {
            tracing::warn!(
                key = %lock.key,
                owner,
                other_instance = other,
                this_instance = %self.inner.marks.instance,
                "a live lock of this owner was written by another backend instance: if two \
                 processes present one owner, both win the lock (celers-beat: call \
                 set_instance_id with the pod name); a restarted process taking back its own \
                 lock shows this once"
            );
        }
    }

    pub(crate) async fn read(&self, op: Operation, lock: &Lock) -> Result<Found> {
        match self.read_lease(op, lock).await? {
            Some(lease) => self.found_in(op, lock, &lease),
            None => {
                self.remember(lock, &Found::Missing);
                Ok(Found::Missing)
            }
        }
    }

    pub(crate) async fn read_lease(&self, op: Operation, lock: &Lock) -> Result<Option<Lease>> {
        self.inner
            .api
            .get(&lock.name)
            .await
            .map_err(|failure| self.failed(op, Some(lock), failure))
    }

    /// What a Lease the server sent (read or watched) is for the lock, which
    /// is remembered.
    pub(crate) fn found_in(&self, op: Operation, lock: &Lock, lease: &Lease) -> Result<Found> {
        let found = if self.inner.marks.key_of(lease) == Some(lock.key.as_str()) {
            Found::Ours(self.record(op, lock, lease)?)
        } else {
            Found::Foreign
        };
        self.remember(lock, &found);
        Ok(found)
    }

    async fn write(
        &self,
        op: Operation,
        lock: &Lock,
        write: Write,
        fresh: bool,
    ) -> Result<Written> {
        let (api, marks) = (&self.inner.api, &self.inner.marks);
        let outcome = match &write {
            Write::Create(holding) => api
                .create(&marks.new_lease(&lock.key, &lock.name, holding))
                .await
                .map(Some),
            Write::Update {
                resource_version,
                base,
                holding,
            } => {
                let lease = marks.replacement(base, resource_version, holding);
                api.replace(&lock.name, &lease).await.map(Some)
            }
            Write::Delete {
                resource_version,
                uid,
            } => api
                .delete(&lock.name, resource_version, uid)
                .await
                .map(|()| None),
        };
        if matches!(write, Write::Create(_)) {
            match &outcome {
                Ok(_) => self.inner.new_keys.record(true),
                Err(failure) if failure.code() == Some(409) => self.inner.new_keys.record(false),
                Err(_) => {}
            }
        }
        match outcome {
            Ok(lease) => {
                let found = match lease {
                    Some(lease) => Found::Ours(self.record(op, lock, &lease)?),
                    None => Found::Missing,
                };
                self.remember(lock, &found);
                if matches!(write, Write::Create(_)) {
                    self.maybe_sweep();
                }
                Ok(Written::Done(found))
            }
            // 404 on a create means the namespace is missing, not a race.
            Err(failure)
                if failure.code() == Some(409)
                    || (failure.code() == Some(404) && !matches!(write, Write::Create(_))) =>
            {
                tracing::debug!(?failure, "lost a write race");
                self.forget(lock);
                // kube's client retries a write answered 429, 503 or 504, so
                // this 409 or 404 may answer the retry of a write that
                // committed: one read tells (see decision::committed).
                let after = self.read(op, lock).await?;
                let signed_by_another = match &after {
                    Found::Ours(record) => marks.other_instance(&record.lease).is_some(),
                    Found::Missing | Found::Foreign => false,
                };
                if decision::committed(&write, &after, fresh) && !signed_by_another {
                    tracing::debug!("a retried write had committed: it is ours");
                    return Ok(Written::Done(after));
                }
                self.inner.metrics.conflict();
                Ok(Written::Lost(after))
            }
            Err(failure) => Err(self.failed(op, Some(lock), failure)),
        }
    }

    fn record(&self, op: Operation, lock: &Lock, lease: &Lease) -> Result<Record> {
        Record::from_lease(lease).ok_or_else(|| Error::Unexpected {
            operation: op,
            target: self.target(Some(lock)),
            detail: "the Lease has no resourceVersion or uid".to_owned(),
        })
    }

    /// The server's time now. Every successful response carries a `Date`
    /// header; an API server without one cannot be used safely.
    pub(crate) fn server_time(&self, op: Operation, lock: Option<&Lock>) -> Result<ServerTime> {
        self.inner
            .api
            .server_time()
            .ok_or_else(|| Error::Unexpected {
                operation: op,
                target: self.target(lock),
                detail: "the API server sent no Date header, so its clock is unknown".to_owned(),
            })
    }
}

/// How the backend names what its errors concern.
impl KubeLeaseLockBackend {
    pub(crate) fn target(&self, lock: Option<&Lock>) -> Target {
        Target {
            namespace: self.inner.config.namespace.clone(),
            key: lock.map(|lock| lock.key.clone()),
            lease: lock.map(|lock| lock.name.clone()),
        }
    }

    pub(crate) fn foreign(&self, operation: Operation, lock: &Lock) -> Error {
        Error::ForeignLease {
            operation,
            target: self.target(Some(lock)),
        }
    }

    pub(crate) fn failed(&self, op: Operation, lock: Option<&Lock>, failure: Failure) -> Error {
        failure.into_error(op, self.target(lock), self.inner.config.request_timeout)
    }
}

/// The backend's use of what it remembers (see [`Known`]).
impl KubeLeaseLockBackend {
    pub(crate) fn remembered(&self, lock: &Lock) -> Option<Record> {
        self.inner.known.lock().ok()?.get(&lock.name, &lock.key)
    }

    pub(crate) fn remember(&self, lock: &Lock, found: &Found) {
        let now = self.inner.api.server_time();
        if let Ok(mut known) = self.inner.known.lock() {
            known.remember(&lock.name, &lock.key, found, now, self.sweep_grace());
        }
    }

    pub(crate) fn forget(&self, lock: &Lock) {
        if let Ok(mut known) = self.inner.known.lock() {
            known.forget(&lock.name);
        }
    }

    pub(crate) fn sweep_grace(&self) -> TimeDelta {
        // Validated to at most 366 days by the builder.
        TimeDelta::from_std(self.inner.config.sweep_grace).unwrap_or(TimeDelta::MAX)
    }
}

/// The backend's records of its calls (see [`Metrics`]).
impl KubeLeaseLockBackend {
    /// Counts `result` in the operation metrics and returns it.
    pub(crate) fn observed(&self, op: Operation, result: Result<bool>) -> Result<bool> {
        self.metrics_of(op, &result, |answer| *answer);
        result
    }

    pub(crate) fn metrics_of<T>(
        &self,
        op: Operation,
        result: &Result<T>,
        answer: impl Fn(&T) -> bool,
    ) {
        let label = match result {
            Ok(value) => metrics::result_of(op, answer(value)),
            Err(error) => metrics::result_of_error(error),
        };
        self.inner.metrics.operation(op, label);
    }

    /// Notes what a write left of the lock, for the `held` metric.
    pub(crate) fn note_held(&self, lock: &Lock, found: &Found) {
        if !self.inner.metrics.enabled() {
            return;
        }
        let Ok(mut held) = self.inner.held.lock() else {
            return;
        };
        let count = held.note(&lock.name, found, LocalInstant::now());
        self.inner.metrics.set_held(count);
    }
}
