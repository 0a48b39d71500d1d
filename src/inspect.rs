//! Locks as the people who run them see them: which task lock is held, by
//! whom, for how much longer (judged on the API server's clock, as the lock
//! judges it), and a way to free a stuck one. `kubectl celers` is built on
//! this.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::backend::{Decided, Hint, KubeLeaseLockBackend};
use crate::bulk::Pages;
use crate::clock::ServerTime;
use crate::decision::{self, Step};
use crate::error::{Error, Operation, Result};
use crate::fencing::FencingToken;
use crate::input::check_key;
use crate::lease::{Found, Lease, Record};
use crate::naming::Lock;

/// One lock, as its Lease stores it, judged on the API server's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockInfo {
    /// The lock's key.
    pub key: String,
    /// The name of its Lease.
    pub lease: String,
    /// `holderIdentity`, live or not.
    pub holder: Option<String>,
    /// `leaseDurationSeconds`.
    pub ttl_secs: Option<i32>,
    /// `acquireTime`: when the current tenure started.
    pub acquired_at: Option<DateTime<Utc>>,
    /// `renewTime`.
    pub renewed_at: Option<DateTime<Utc>>,
    /// When the lock expires by the server's clock.
    pub expires_at: Option<DateTime<Utc>>,
    /// How long it stays held at least (from the latest time the server's
    /// clock can read now); `None` when it is free or expired.
    pub expires_in: Option<Duration>,
    /// How long the current tenure has lasted (from the earliest time the
    /// server's clock can read now).
    pub held_for: Option<Duration>,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// The fencing token of the guard holding it, once the guard has
    /// renewed it (the first write of a tenure cannot know its own token).
    pub fencing_token: Option<FencingToken>,
    /// The Lease's resourceVersion.
    pub resource_version: String,
}

impl LockInfo {
    /// Whether the lock has a live holder.
    pub fn is_held(&self) -> bool {
        self.expires_in.is_some()
    }

    fn new(key: &str, lease: &Lease, record: &Record, token: Option<u64>, now: ServerTime) -> Self {
        let live = !decision::is_expired(record, now);
        let expires_at = record.expires_at();
        Self {
            key: key.to_owned(),
            lease: lease.metadata.name.clone().unwrap_or_default(),
            holder: record.holder.clone(),
            ttl_secs: record.duration_secs,
            acquired_at: record.acquire_time,
            renewed_at: record.renew_time,
            expires_at,
            expires_in: expires_at
                .filter(|_| live)
                .map(|at| (at - now.latest).to_std().unwrap_or(Duration::ZERO)),
            held_for: record
                .acquire_time
                .filter(|_| live)
                .map(|at| (now.earliest - at).to_std().unwrap_or(Duration::ZERO)),
            transitions: record.transitions,
            fencing_token: token
                .and_then(|token| FencingToken::from_resource_version(&token.to_string())),
            resource_version: record.resource_version.clone(),
        }
    }
}

impl KubeLeaseLockBackend {
    /// Whether the lock `key` has a live holder. Always one read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad key, [`Error::ForeignLease`], and
    /// API, timeout and transport errors.
    pub async fn is_locked(&self, key: &str) -> Result<bool> {
        let op = Operation::IsLocked;
        let holder = self.holder(op, key).await;
        self.observed(op, holder.map(|holder| holder.is_some()))
    }

    /// The live holder of the lock `key`, if any. Always one read.
    ///
    /// # Errors
    ///
    /// As for [`is_locked`](Self::is_locked).
    pub async fn owner(&self, key: &str) -> Result<Option<String>> {
        let op = Operation::Owner;
        let holder = self.holder(op, key).await;
        self.metrics_of(op, &holder, |_| true);
        holder
    }

    pub(crate) async fn holder(&self, op: Operation, key: &str) -> Result<Option<String>> {
        check_key(op, key)?;
        let lock = Lock::new(key);
        let span = tracing::debug_span!("read", %op, key);
        async {
            let found = self.read(op, &lock).await?;
            let now = self.server_time(op, Some(&lock))?;
            match decision::live_holder(&found, now) {
                Ok(holder) => Ok(holder.map(str::to_owned)),
                Err(decision::Foreign) => Err(self.foreign(op, &lock)),
            }
        }
        .instrument(span)
        .await
    }

    /// Every lock of this crate in the namespace whose key starts with
    /// `key_prefix` (`""` for all), sorted by key. Lists page by page.
    ///
    /// # Errors
    ///
    /// API, timeout and transport errors.
    pub async fn locks(&self, key_prefix: &str) -> Result<Vec<LockInfo>> {
        let op = Operation::Locks;
        let selector = self.inner.marks.all_locks_selector();
        let mut locks = Vec::new();
        let mut pages = Pages::default();
        let span = tracing::debug_span!("locks", key_prefix);
        while let Some((items, now)) = pages
            .next(self, op, &selector)
            .instrument(span.clone())
            .await?
        {
            locks.extend(items.iter().filter_map(|lease| {
                let key = self.inner.marks.key_of(lease)?;
                let record = Record::from_lease(lease)?;
                let token = self.inner.marks.token_of(lease);
                key.starts_with(key_prefix)
                    .then(|| LockInfo::new(key, lease, &record, token, now))
            }));
        }
        locks.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(locks)
    }

    /// The lock `key`, or `None` when it has no Lease. One read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad key,
    /// [`Error::ForeignLease`](crate::Error::ForeignLease), and API, timeout
    /// and transport errors.
    pub async fn describe(&self, key: &str) -> Result<Option<LockInfo>> {
        let op = Operation::Describe;
        check_key(op, key)?;
        let lock = Lock::new(key);
        let Some(lease) = self.read_lease(op, &lock).await? else {
            return Ok(None);
        };
        let now = self.server_time(op, Some(&lock))?;
        match self.found_in(op, &lock, &lease)? {
            Found::Ours(record) => Ok(Some(LockInfo::new(
                key,
                &lease,
                &record,
                self.inner.marks.token_of(&lease),
                now,
            ))),
            Found::Missing => Ok(None),
            Found::Foreign => Err(self.foreign(op, &lock)),
        }
    }

    /// Frees the lock `key` whoever holds it: deletes its Lease, on the
    /// condition that it is still as just read. Returns the lock as it was
    /// deleted, `None` when it had no Lease. For stuck locks; a holder still
    /// at work is not told (a guard's `lost()` fires at its next renewal).
    ///
    /// # Errors
    ///
    /// As for [`describe`](Self::describe); a Lease this crate did not
    /// create is never deleted.
    pub async fn force_release(&self, key: &str) -> Result<Option<LockInfo>> {
        let op = Operation::ForceRelease;
        check_key(op, key)?;
        let lock = Lock::new(key);
        for _ in 0..=self.inner.config.conflict_retries {
            let Some(before) = self.describe(key).await? else {
                return Ok(None);
            };
            let decide = |found: &Found, _: ServerTime| match found {
                Found::Ours(record) if record.resource_version == before.resource_version => {
                    Step::Write(decision::deletion(record))
                }
                Found::Ours(_) | Found::Missing => Step::Answer(false),
                Found::Foreign => Step::Foreign,
            };
            let decided = self
                .decide_and_write(op, &lock, Hint::Nothing, decide)
                .instrument(tracing::debug_span!("force_release", key))
                .await?;
            match decided {
                Decided::Wrote(_) => return Ok(Some(before)),
                // It changed since it was described: describe it again.
                Decided::Refused(Found::Ours(_)) => {}
                Decided::Refused(_) => return Ok(None),
            }
        }
        Err(Error::Contended {
            operation: op,
            target: self.target(Some(&lock)),
            attempts: self.inner.config.conflict_retries + 1,
        })
    }
}
