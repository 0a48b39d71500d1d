//! The backend: reads and writes Leases, and asks the decision what to do.
//!
//! One API round trip per operation in the common case. The backend
//! remembers the last state it saw of each lock (resourceVersion included),
//! so that a renew, a re-acquire or a release by the holder is a single
//! conditional write, and an acquire of a free key is a single create. A
//! remembered state only ever leads to a *conditional* write: if the Lease has
//! changed since, the write fails with 409 Conflict (or 404), and the backend
//! reads the Lease and decides again. Every answer other than a successful
//! write (`Ok(false)`, `is_locked`, `owner`, a foreign Lease) comes from a
//! fresh read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::TimeDelta;
use futures::stream::{self, StreamExt};
use serde_json::json;
use tracing::Instrument;

use crate::api::{Failure, LeaseApi};
use crate::clock::ServerTime;
use crate::config::{Config, KubeLeaseLockBackendBuilder};
use crate::decision::{self, Holding, Step, Write};
use crate::error::{Error, Operation, Result, Target};
use crate::lease::{self, Found, Lease, Marks, Metadata, Record, Spec};
use crate::naming;

/// Longest key accepted, in bytes (it is stored in an annotation).
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest owner accepted, in bytes (it is `spec.holderIdentity`).
pub const MAX_OWNER_BYTES: usize = 1024;
/// Remembered lock states kept before expired ones are forgotten.
const KNOWN_SOFT_LIMIT: usize = 1024;

/// A [`DistributedLockBackend`](celers_core::lock::DistributedLockBackend)
/// that stores each lock as a `coordination.k8s.io/v1` Lease.
///
/// Cheap to clone: clones share the client, the remembered lock states and
/// the estimate of the API server's clock.
#[derive(Clone)]
pub struct KubeLeaseLockBackend {
    inner: Arc<Inner>,
}

struct Inner {
    api: LeaseApi,
    config: Config,
    marks: Marks,
    /// Set when [`KubeLeaseLockBackend::new`] was given invalid settings.
    invalid: Option<(&'static str, String)>,
    known: Mutex<Known>,
    last_sweep: Mutex<Instant>,
    sweeping: AtomicBool,
}

/// The last state seen of each lock, by Lease name.
#[derive(Default)]
struct Known {
    records: HashMap<String, Record>,
    /// Size after the last pruning; pruning runs when it doubles.
    pruned_at: usize,
}

/// Outcome of a conditional write.
enum Written {
    Done,
    /// The Lease changed (409) or vanished (404) since it was read.
    Lost,
}

impl std::fmt::Debug for KubeLeaseLockBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeaseLockBackend")
            .field("namespace", &self.inner.config.namespace)
            .field("field_manager", &self.inner.config.field_manager)
            .field("label_prefix", &self.inner.config.label_prefix)
            .field("request_timeout", &self.inner.config.request_timeout)
            .finish_non_exhaustive()
    }
}

impl KubeLeaseLockBackend {
    /// A backend with default settings for the Leases of `namespace`.
    ///
    /// Never fails: if `namespace` is not a valid namespace name, every
    /// operation returns [`Error::InvalidConfig`] and sends nothing. Use
    /// [`builder`](Self::builder) to get that error up front.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        let config = Config::defaults(namespace.into());
        let invalid = match config.validate(Operation::Build) {
            Err(Error::InvalidConfig {
                setting, reason, ..
            }) => Some((setting, reason)),
            _ => None,
        };
        Self::with_validity(client, config, invalid)
    }

    /// A builder for the other settings; see [`KubeLeaseLockBackendBuilder`].
    pub fn builder(client: kube::Client) -> KubeLeaseLockBackendBuilder {
        KubeLeaseLockBackendBuilder::new(client)
    }

    pub(crate) fn from_parts(client: kube::Client, config: Config) -> Self {
        Self::with_validity(client, config, None)
    }

    fn with_validity(
        client: kube::Client,
        config: Config,
        invalid: Option<(&'static str, String)>,
    ) -> Self {
        let api = LeaseApi::new(
            client,
            &config.namespace,
            config.field_manager.clone(),
            config.request_timeout,
        );
        Self {
            inner: Arc::new(Inner {
                api,
                marks: Marks::new(&config.label_prefix),
                config,
                invalid,
                known: Mutex::new(Known::default()),
                last_sweep: Mutex::new(Instant::now()),
                sweeping: AtomicBool::new(false),
            }),
        }
    }

    /// The namespace of the Leases.
    pub fn namespace(&self) -> &str {
        &self.inner.config.namespace
    }

    /// The name of the Lease that stores the lock `key`, for `kubectl`.
    pub fn lease_name(&self, key: &str) -> String {
        naming::lease_name(key)
    }

    /// Takes the lock `key` for `owner` for `ttl_secs` seconds, or refreshes
    /// it if `owner` holds it. `Ok(false)` if another owner holds it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty or oversized key or owner, or a
    /// TTL outside `1..=i32::MAX`; [`Error::ForeignLease`] if a Lease with the
    /// lock's name was not made by this crate; [`Error::Contended`] after too
    /// many lost write races; API, timeout and transport errors.
    pub async fn try_acquire(&self, key: &str, owner: &str, ttl_secs: u64) -> Result<bool> {
        let op = Operation::TryAcquire;
        self.check_settings(op)?;
        check_key(op, key)?;
        check_owner(op, owner)?;
        let ttl = check_ttl(op, ttl_secs)?;
        let span = tracing::debug_span!("try_acquire", key, owner, ttl_secs);
        self.run(op, key, |found, now| {
            decision::try_acquire(found, owner, ttl, now)
        })
        .instrument(span)
        .await
    }

    /// Extends the lock `key` held by `owner` to `ttl_secs` from now.
    /// `Ok(false)` if `owner` does not hold it, it is gone, or it has expired:
    /// an expired lock is never brought back.
    ///
    /// # Errors
    ///
    /// As for [`try_acquire`](Self::try_acquire).
    pub async fn renew(&self, key: &str, owner: &str, ttl_secs: u64) -> Result<bool> {
        let op = Operation::Renew;
        self.check_settings(op)?;
        check_key(op, key)?;
        check_owner(op, owner)?;
        let ttl = check_ttl(op, ttl_secs)?;
        let span = tracing::debug_span!("renew", key, owner, ttl_secs);
        self.run(op, key, |found, now| {
            decision::renew(found, owner, ttl, now)
        })
        .instrument(span)
        .await
    }

    /// Deletes the lock `key` if `owner` holds it (live, or expired and not
    /// taken over). `Ok(false)` if it is gone or held by someone else.
    ///
    /// # Errors
    ///
    /// As for [`try_acquire`](Self::try_acquire), without the TTL.
    pub async fn release(&self, key: &str, owner: &str) -> Result<bool> {
        let op = Operation::Release;
        self.check_settings(op)?;
        check_key(op, key)?;
        check_owner(op, owner)?;
        let span = tracing::debug_span!("release", key, owner);
        self.run(op, key, |found, _| decision::release(found, owner))
            .instrument(span)
            .await
    }

    /// Whether the lock `key` has a live holder. Always one read.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad key, [`Error::ForeignLease`], and
    /// API, timeout and transport errors.
    pub async fn is_locked(&self, key: &str) -> Result<bool> {
        Ok(self.holder(Operation::IsLocked, key).await?.is_some())
    }

    /// The live holder of the lock `key`, if any. Always one read.
    ///
    /// # Errors
    ///
    /// As for [`is_locked`](Self::is_locked).
    pub async fn owner(&self, key: &str) -> Result<Option<String>> {
        self.holder(Operation::Owner, key).await
    }

    /// Deletes every lock `owner` holds in the namespace, live or expired, and
    /// returns how many it deleted. Leases are selected on the server by the
    /// owner label, page by page, and each is deleted only if its holder is
    /// still `owner` at that moment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad owner; the first API, timeout or
    /// transport error. Every selected Lease is attempted before an error is
    /// returned; calling again is safe.
    pub async fn release_all(&self, owner: &str) -> Result<u64> {
        let op = Operation::ReleaseAll;
        self.check_settings(op)?;
        check_owner(op, owner)?;
        let selector = self.inner.marks.owner_selector(owner);
        let span = tracing::debug_span!("release_all", owner);
        self.delete_listed(op, &selector, |found, _| decision::release(found, owner))
            .instrument(span)
            .await
    }

    /// Deletes the Leases of this crate in the namespace (any owner) that have
    /// been expired for longer than the sweep grace, and returns how many.
    /// Live Leases and Leases not made by this crate are never touched; each
    /// delete is conditional on the state that was judged expired.
    ///
    /// Also runs in the background after a new lock is created, at most once
    /// per sweep interval (see the builder).
    ///
    /// # Errors
    ///
    /// As for [`release_all`](Self::release_all).
    pub async fn sweep_expired(&self) -> Result<u64> {
        let op = Operation::SweepExpired;
        self.check_settings(op)?;
        let selector = self.inner.marks.all_locks_selector();
        let grace = TimeDelta::from_std(self.inner.config.sweep_grace).unwrap_or(TimeDelta::MAX);
        let span = tracing::debug_span!("sweep_expired");
        self.delete_listed(op, &selector, move |found, now| {
            decision::sweep(found, now, grace)
        })
        .instrument(span)
        .await
    }

    async fn holder(&self, op: Operation, key: &str) -> Result<Option<String>> {
        self.check_settings(op)?;
        check_key(op, key)?;
        let target = self.target(Some(key), Some(naming::lease_name(key)));
        let span = tracing::debug_span!("read", %op, key);
        async {
            let found = self.read(op, key, &target).await?;
            let now = self.server_time(op, &target)?;
            match decision::live_holder(&found, now) {
                Ok(holder) => Ok(holder.map(str::to_owned)),
                Err(decision::Foreign) => Err(Error::ForeignLease {
                    operation: op,
                    target,
                }),
            }
        }
        .instrument(span)
        .await
    }

    /// The read-decide-write loop of one lock.
    async fn run(
        &self,
        op: Operation,
        key: &str,
        decide: impl Fn(&Found, ServerTime) -> Step,
    ) -> Result<bool> {
        let name = naming::lease_name(key);
        let target = self.target(Some(key), Some(name.clone()));
        let hint = self.remembered(&name).map(Found::Ours);
        let hint = hint.or_else(|| self.inner.api.server_time().map(|_| Found::Missing));
        self.decide_and_write(op, key, &target, hint, decide).await
    }

    /// Decides from `hint` (a remembered or listed state, if any) or from a
    /// fresh read, writes, and on a lost race reads and decides again.
    async fn decide_and_write(
        &self,
        op: Operation,
        key: &str,
        target: &Target,
        hint: Option<Found>,
        decide: impl Fn(&Found, ServerTime) -> Step,
    ) -> Result<bool> {
        let (mut found, mut fresh) = match hint {
            Some(found) => (found, false),
            None => (self.read(op, key, target).await?, true),
        };
        let mut lost_races = 0;
        loop {
            let now = self.server_time(op, target)?;
            let step = decide(&found, now);
            tracing::debug!(?step, fresh, "decided");
            match step {
                Step::Answer(answer) if fresh => return Ok(answer),
                Step::Foreign if fresh => {
                    return Err(Error::ForeignLease {
                        operation: op,
                        target: target.clone(),
                    })
                }
                Step::Answer(_) | Step::Foreign => {}
                Step::Write(write) => match self.write(op, key, target, write).await? {
                    Written::Done => return Ok(true),
                    Written::Lost if fresh => {
                        lost_races += 1;
                        if lost_races > self.inner.config.conflict_retries {
                            return Err(Error::Contended {
                                operation: op,
                                target: target.clone(),
                                attempts: lost_races,
                            });
                        }
                    }
                    Written::Lost => {}
                },
            }
            found = self.read(op, key, target).await?;
            fresh = true;
        }
    }

    /// Lists the Leases matching `selector` and runs `decide` on each, with
    /// the listed state as the hint. Returns how many writes succeeded.
    async fn delete_listed(
        &self,
        op: Operation,
        selector: &str,
        decide: impl Fn(&Found, ServerTime) -> Step + Copy,
    ) -> Result<u64> {
        let list_target = self.target(None, None);
        let mut continue_token = None;
        let mut deleted = 0;
        let mut first_error = None;
        loop {
            let page = self
                .inner
                .api
                .list(selector, self.inner.config.page_size, continue_token)
                .await
                .map_err(|failure| self.failed(op, &list_target, failure))?;
            // The list is a fresh read: Leases it shows need no write are
            // left alone without reading them again.
            let now = self.server_time(op, &list_target)?;
            let candidates: Vec<(String, Found)> = page
                .items
                .iter()
                .filter_map(|lease| {
                    let key = self.inner.marks.key_of(lease)?;
                    Some((key.to_owned(), Found::Ours(Record::from_lease(lease)?)))
                })
                .filter(|(_, found)| matches!(decide(found, now), Step::Write(_)))
                .collect();
            let outcomes: Vec<Result<bool>> = stream::iter(candidates)
                .map(|(key, found)| async move {
                    let target = self.target(Some(&key), Some(naming::lease_name(&key)));
                    self.decide_and_write(op, &key, &target, Some(found), decide)
                        .await
                })
                .buffer_unordered(self.inner.config.delete_concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome {
                    Ok(true) => deleted += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(%error, "deleting a listed Lease failed");
                        first_error.get_or_insert(error);
                    }
                }
            }
            continue_token = page
                .metadata
                .continue_token
                .filter(|token| !token.is_empty());
            if continue_token.is_none() {
                break;
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(deleted),
        }
    }

    async fn read(&self, op: Operation, key: &str, target: &Target) -> Result<Found> {
        let name = target.lease.as_deref().unwrap_or_default();
        let lease = self
            .inner
            .api
            .get(name)
            .await
            .map_err(|failure| self.failed(op, target, failure))?;
        let found = match lease {
            None => Found::Missing,
            Some(lease) if self.inner.marks.key_of(&lease) == Some(key) => {
                Found::Ours(self.record(op, target, &lease)?)
            }
            Some(_) => Found::Foreign,
        };
        self.remember(name, &found);
        Ok(found)
    }

    async fn write(
        &self,
        op: Operation,
        key: &str,
        target: &Target,
        write: Write,
    ) -> Result<Written> {
        let name = target.lease.as_deref().unwrap_or_default();
        let api = &self.inner.api;
        let outcome = match &write {
            Write::Create(holding) => {
                let lease = self.new_lease(key, name, holding);
                api.create(&lease).await.map(Some)
            }
            Write::Update {
                resource_version,
                holding,
            } => api
                .patch(name, &self.update_patch(resource_version, holding))
                .await
                .map(Some),
            Write::Delete {
                resource_version,
                uid,
            } => api.delete(name, resource_version, uid).await.map(|()| None),
        };
        match outcome {
            Ok(Some(lease)) => {
                let found = Found::Ours(self.record(op, target, &lease)?);
                self.remember(name, &found);
                if matches!(write, Write::Create(_)) {
                    self.maybe_sweep();
                }
                Ok(Written::Done)
            }
            Ok(None) => {
                self.remember(name, &Found::Missing);
                Ok(Written::Done)
            }
            // 404 on a create means the namespace is missing, not a race.
            Err(failure)
                if failure.code() == Some(409)
                    || (failure.code() == Some(404) && !matches!(write, Write::Create(_))) =>
            {
                tracing::debug!(?failure, "lost a write race");
                self.forget(name);
                Ok(Written::Lost)
            }
            Err(failure) => Err(self.failed(op, target, failure)),
        }
    }

    fn new_lease(&self, key: &str, name: &str, holding: &Holding) -> Lease {
        Lease {
            api_version: Some("coordination.k8s.io/v1".to_owned()),
            kind: Some("Lease".to_owned()),
            metadata: Metadata {
                name: Some(name.to_owned()),
                labels: Some(self.inner.marks.labels(&holding.holder)),
                annotations: Some(self.inner.marks.annotations(key)),
                ..Metadata::default()
            },
            spec: Some(Spec {
                holder_identity: Some(holding.holder.clone()),
                lease_duration_seconds: Some(holding.duration_secs),
                acquire_time: Some(lease::format_time(holding.acquire_time)),
                renew_time: Some(lease::format_time(holding.renew_time)),
                lease_transitions: Some(holding.transitions),
            }),
        }
    }

    fn update_patch(&self, resource_version: &str, holding: &Holding) -> serde_json::Value {
        json!({
            "metadata": {
                "resourceVersion": resource_version,
                "labels": self.inner.marks.labels(&holding.holder),
            },
            "spec": {
                "holderIdentity": holding.holder,
                "leaseDurationSeconds": holding.duration_secs,
                "acquireTime": lease::format_time(holding.acquire_time),
                "renewTime": lease::format_time(holding.renew_time),
                "leaseTransitions": holding.transitions,
            },
        })
    }

    fn record(&self, op: Operation, target: &Target, lease: &Lease) -> Result<Record> {
        Record::from_lease(lease).ok_or_else(|| Error::Unexpected {
            operation: op,
            target: target.clone(),
            detail: "the Lease has no resourceVersion or uid".to_owned(),
        })
    }

    fn server_time(&self, op: Operation, target: &Target) -> Result<ServerTime> {
        // Every successful response carries a Date header; an API server
        // without one cannot be used safely.
        self.inner
            .api
            .server_time()
            .ok_or_else(|| Error::Unexpected {
                operation: op,
                target: target.clone(),
                detail: "the API server sent no Date header, so its clock is unknown".to_owned(),
            })
    }

    fn remembered(&self, name: &str) -> Option<Record> {
        let known = self.inner.known.lock().ok()?;
        known.records.get(name).cloned()
    }

    fn remember(&self, name: &str, found: &Found) {
        let Ok(mut known) = self.inner.known.lock() else {
            return;
        };
        match found {
            Found::Ours(record) => {
                known.records.insert(name.to_owned(), record.clone());
            }
            Found::Missing | Found::Foreign => {
                known.records.remove(name);
            }
        }
        if known.records.len() > KNOWN_SOFT_LIMIT.max(2 * known.pruned_at) {
            // Forget locks that expired long ago: they are only worth a read.
            if let Some(now) = self.inner.api.server_time() {
                known
                    .records
                    .retain(|_, record| !decision::is_garbage(record, now, TimeDelta::seconds(60)));
            }
            known.pruned_at = known.records.len();
        }
    }

    fn forget(&self, name: &str) {
        if let Ok(mut known) = self.inner.known.lock() {
            known.records.remove(name);
        }
    }

    /// Starts a background sweep if the sweep interval has passed since the
    /// last one and none is running.
    fn maybe_sweep(&self) {
        let Some(interval) = self.inner.config.sweep_interval else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let Ok(mut last) = self.inner.last_sweep.lock() else {
                return;
            };
            if last.elapsed() < interval {
                return;
            }
            *last = Instant::now();
        }
        if self.inner.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let backend = self.clone();
        runtime.spawn(async move {
            match backend.sweep_expired().await {
                Ok(swept) => tracing::debug!(swept, "swept expired Leases"),
                Err(error) => tracing::warn!(%error, "sweeping expired Leases failed"),
            }
            backend.inner.sweeping.store(false, Ordering::Release);
        });
    }

    fn check_settings(&self, operation: Operation) -> Result<()> {
        match &self.inner.invalid {
            Some((setting, reason)) => Err(Error::InvalidConfig {
                operation,
                setting,
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn target(&self, key: Option<&str>, lease: Option<String>) -> Target {
        Target {
            namespace: self.inner.config.namespace.clone(),
            key: key.map(str::to_owned),
            lease,
        }
    }

    fn failed(&self, operation: Operation, target: &Target, failure: Failure) -> Error {
        let target = target.clone();
        match failure {
            Failure::Status {
                code,
                reason,
                message,
            } => Error::Api {
                operation,
                target,
                status: code,
                reason,
                message,
            },
            Failure::Timeout => Error::Timeout {
                operation,
                target,
                timeout: self.inner.config.request_timeout,
            },
            Failure::Transport(source) => Error::Transport {
                operation,
                target,
                source: Box::new(source),
            },
            Failure::Unexpected(detail) => Error::Unexpected {
                operation,
                target,
                detail,
            },
        }
    }
}

fn check_key(operation: Operation, key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "must not be empty".to_owned()
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )
    } else if key.contains('\0') {
        "must not contain NUL characters".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        operation,
        input: "key",
        reason,
    })
}

fn check_owner(operation: Operation, owner: &str) -> Result<()> {
    let reason = if owner.is_empty() {
        "must not be empty".to_owned()
    } else if owner.len() > MAX_OWNER_BYTES {
        format!(
            "is {} bytes long; at most {MAX_OWNER_BYTES} are allowed",
            owner.len()
        )
    } else if owner.chars().any(char::is_control) {
        format!("{owner:?} contains control characters")
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        operation,
        input: "owner",
        reason,
    })
}

fn check_ttl(operation: Operation, ttl_secs: u64) -> Result<i32> {
    match i32::try_from(ttl_secs) {
        Ok(ttl) if ttl >= 1 => Ok(ttl),
        _ => Err(Error::InvalidInput {
            operation,
            input: "ttl_secs",
            reason: format!(
                "{ttl_secs} is not in 1..={} (leaseDurationSeconds is an int32)",
                i32::MAX
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(result: Result<impl std::fmt::Debug>) -> &'static str {
        match result {
            Err(Error::InvalidInput { input, .. }) => input,
            other => panic!("expected an input rejection, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_checked() {
        let op = Operation::TryAcquire;
        assert!(check_key(op, "k").is_ok());
        assert!(check_key(op, "タスク").is_ok());
        assert!(check_key(op, &"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert_eq!(input(check_key(op, "")), "key");
        assert_eq!(input(check_key(op, &"k".repeat(MAX_KEY_BYTES + 1))), "key");
        assert_eq!(input(check_key(op, "a\0b")), "key");
    }

    #[test]
    fn owners_are_checked() {
        let op = Operation::Renew;
        assert!(check_owner(op, "scheduler-1").is_ok());
        assert!(check_owner(op, "host:1234 über").is_ok());
        assert_eq!(input(check_owner(op, "")), "owner");
        assert_eq!(input(check_owner(op, "a\0b")), "owner");
        assert_eq!(input(check_owner(op, "a\nb")), "owner");
        assert_eq!(
            input(check_owner(op, &"o".repeat(MAX_OWNER_BYTES + 1))),
            "owner"
        );
    }

    #[test]
    fn ttls_are_checked() {
        let op = Operation::TryAcquire;
        assert_eq!(check_ttl(op, 1).ok(), Some(1));
        assert_eq!(check_ttl(op, i32::MAX as u64).ok(), Some(i32::MAX));
        for bad in [0, i32::MAX as u64 + 1, u64::MAX] {
            assert_eq!(input(check_ttl(op, bad)), "ttl_secs");
        }
    }
}
