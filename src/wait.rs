//! Waiting for a lock: a watch of its one Lease drives each new attempt.
//!
//! # Why a waiter cannot sleep through a free lock
//!
//! A waiter sleeps only on a watch opened *from a resourceVersion it has
//! decided from*: the version of the Lease its refusal was decided from (a
//! read, a watch event, or the read that follows every lost write), or,
//! when it has no such Lease, the version a list of that one Lease was read
//! at. The API server sends every change of the Lease after that version,
//! so a Lease created and deleted again after the decision arrives as two
//! events, and the waiter decides again on each. It never watches from
//! `resourceVersion=""`, which replays only what exists when the watch
//! starts: a Lease created and deleted between the refusal and the watch
//! would never be seen, and the waiter would sleep with the lock free.
//!
//! Hence three rules:
//! - a write that loses (409 or 404) is followed by one read, so a lost
//!   create gives the Lease that won (and its version), or finds it gone
//!   again, and then the waiter creates once more at once;
//! - when the watch cannot go on from its version (410 Gone: compacted; or
//!   an error event), the waiter lists the Lease by name and watches from
//!   the list's version, which is current: no loop of reads and watches
//!   from a version the server no longer has;
//! - a watch that fails to open (a timeout, a transport error, 429 or 5xx)
//!   is opened again from the same version after a short backoff, so a
//!   failed open neither aborts the wait nor loses a change; other errors
//!   (403 without the `watch` verb) end the wait with `Err`.
//!
//! And the wait is bounded: every sleep and every watch open ends at
//! `wait`, so `lock()` returns at most one decision after it (normally
//! one write, and one read when it lost, each bounded by the request
//! timeout).
//!
//! The watch is hand-rolled rather than kube-runtime's `watcher` because a
//! waiter needs less and would pay for more: it resumes from the
//! resourceVersion it decided from, where the watcher lists again after
//! every restart to rebuild a cache; each watch is bounded by the waiter's
//! own deadline; and the library needs no `runtime` feature of kube.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use kube::core::WatchEvent;

use crate::api::{Failure, LeaseApi};
use crate::backend::{Decided, Hint, KubeLeaseLockBackend};
use crate::clock::{self, LocalInstant, ServerTime};
use crate::decision::{self, Step};
use crate::error::{Operation, Result};
use crate::lease::{Found, Lease};
use crate::naming::Lock;

/// Longest watch the server is asked for; a longer wait opens another.
pub(crate) const MAX_WATCH_SECS: u32 = 240;
/// First and longest pause before opening a watch again after it failed to
/// open.
const REOPEN_AFTER: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

pub(crate) type Events = BoxStream<'static, std::result::Result<WatchEvent<Lease>, kube::Error>>;

/// What woke a waiter.
enum Woken {
    /// The Lease is now in this state.
    Changed(Found),
    /// The holder's lease ran out by the server's clock.
    Expired,
    /// The watch cannot go on from its version: list afresh.
    Lost,
    /// The wait is over.
    TimedOut,
}

impl KubeLeaseLockBackend {
    /// Decides and writes, and while refused,
    /// waits for the next change of the Lease (or its expiry) and decides
    /// again, until a write succeeds (`Some`, with the local time it was
    /// sent) or `deadline` passes (`None`).
    pub(crate) async fn wait_and_write(
        &self,
        op: Operation,
        lock: &Lock,
        decide: impl Fn(&Found, ServerTime) -> Step,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<(Found, LocalInstant)>> {
        let mut watch = Watch::default();
        // A waiter reads first rather than assume the Lease is absent, so
        // that it writes nothing while another owner holds the lock; a
        // list, whose version the watch can start from.
        let mut hint = match self.remembered(lock) {
            Some(record) => Hint::Stale(Found::Ours(record)),
            None => Hint::Fresh(self.list_one(op, lock, &mut watch).await?),
        };
        loop {
            let sent = LocalInstant::now();
            let seen = match self.decide_and_write(op, lock, hint, &decide).await? {
                Decided::Wrote(found) => return Ok(Some((found, sent))),
                Decided::Refused(seen) => seen,
            };
            if let Found::Ours(record) = &seen {
                watch.seen(&record.resource_version);
            }
            if matches!(seen, Found::Missing) {
                // A create lost to a Lease created and deleted again since
                // (the read after it found none): the lock is free, so
                // create again at once. Should that lose too, its read
                // gives a version to watch from.
                if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                    return Ok(None);
                }
                hint = Hint::Fresh(Found::Missing);
                continue;
            }
            let expiry = decision::expires_at(&seen);
            hint = match self
                .next_change(op, lock, &mut watch, expiry, deadline)
                .await?
            {
                Woken::Changed(found) => Hint::Fresh(found),
                Woken::Expired => Hint::Fresh(seen),
                Woken::Lost => Hint::Fresh(self.list_one(op, lock, &mut watch).await?),
                Woken::TimedOut => return Ok(None),
            };
        }
    }

    /// The lock's Lease as of a version the watch then starts from.
    pub(crate) async fn list_one(
        &self,
        op: Operation,
        lock: &Lock,
        watch: &mut Watch,
    ) -> Result<Found> {
        let (lease, version) = self
            .inner
            .api
            .get_with_version(&lock.name)
            .await
            .map_err(|failure| self.failed(op, Some(lock), failure))?;
        watch.reset();
        watch.seen(&version);
        match lease {
            Some(lease) => self.found_in(op, lock, &lease),
            None => {
                self.remember(lock, &Found::Missing);
                Ok(Found::Missing)
            }
        }
    }

    /// Waits for the next change of the Lease, its expiry at `expiry` by
    /// the server's clock, or `deadline`.
    async fn next_change(
        &self,
        op: Operation,
        lock: &Lock,
        watch: &mut Watch,
        expiry: Option<DateTime<Utc>>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Woken> {
        let expired_in = expiry.map(|expiry| self.until_certainly_past(expiry));
        let expired_at = expired_in.and_then(|wait| tokio::time::Instant::now().checked_add(wait));
        loop {
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Ok(Woken::TimedOut);
            }
            if expired_at.is_some_and(|at| now >= at) {
                return Ok(Woken::Expired);
            }
            let Some(from) = watch.from.clone() else {
                return Ok(Woken::Lost);
            };
            let left = deadline.map(|deadline| deadline.saturating_duration_since(now));
            let watch_secs = left.map_or(MAX_WATCH_SECS, |left| {
                u32::try_from(left.as_secs().saturating_add(1))
                    .map_or(MAX_WATCH_SECS, |s| s.min(MAX_WATCH_SECS))
            });
            if watch.events.is_none() {
                let within = left.unwrap_or(Duration::MAX);
                match watch
                    .open(&self.inner.api, &lock.name, &from, watch_secs, within)
                    .await
                {
                    Ok(()) => {}
                    Err(failure) if worth_retrying(&failure) => {
                        let pause = watch.failed();
                        tracing::debug!(?failure, ?pause, "opening the watch failed; again soon");
                        let wake_at = [deadline, expired_at, now.checked_add(pause)]
                            .into_iter()
                            .flatten()
                            .min();
                        sleep_until(wake_at).await;
                        continue;
                    }
                    Err(failure) => return Err(self.failed(op, Some(lock), failure)),
                }
            }
            let Some(events) = watch.events.as_mut() else {
                continue;
            };
            // The server ends the watch after watch_secs; a silent network
            // must not hold the waiter longer than that and a request.
            let silence =
                Duration::from_secs(u64::from(watch_secs)) + self.inner.config.request_timeout;
            let silent_at = now.checked_add(silence);
            let wake_at = [deadline, expired_at, silent_at]
                .into_iter()
                .flatten()
                .min();
            let event = tokio::select! {
                event = events.next() => event,
                () = sleep_until(wake_at) => {
                    if silent_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                        watch.close();
                    }
                    continue;
                }
            };
            match watch.take(event) {
                Brought::Lease(lease) => {
                    return self.found_in(op, lock, &lease).map(Woken::Changed);
                }
                Brought::Deleted => {
                    self.forget(lock);
                    return Ok(Woken::Changed(Found::Missing));
                }
                Brought::Gone => return Ok(Woken::Lost),
                Brought::Nothing => {}
            }
        }
    }

    /// How long until the earliest time the server's clock can read is past
    /// `at`, allowing for drift.
    fn until_certainly_past(&self, at: DateTime<Utc>) -> Duration {
        let Some(now) = self.inner.api.server_time() else {
            return Duration::ZERO;
        };
        let left = (at - now.earliest).to_std().unwrap_or(Duration::ZERO);
        left + clock::drift_over(left) + Duration::from_millis(1)
    }
}

/// Whether a watch that failed to open is worth opening again: the server
/// or the network may do better in a moment.
pub(crate) fn worth_retrying(failure: &Failure) -> bool {
    match failure {
        Failure::Timeout | Failure::Transport(_) => true,
        Failure::Status { code, .. } => *code == 429 || *code >= 500,
        Failure::Unexpected(_) => false,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What one item of a watch's stream brought, once [`Watch::take`] has
/// noted its version.
pub(crate) enum Brought {
    /// The Lease in a new state.
    Lease(Box<Lease>),
    /// The Lease was deleted.
    Deleted,
    /// The watch cannot go on from its version (410 Gone, or another error
    /// event): list afresh.
    Gone,
    /// Nothing to decide on (a bookmark; the stream ended or broke off and
    /// is opened again from the same version).
    Nothing,
}

/// The watch of one Lease, opened when first needed and again after it
/// ends, from the newest resourceVersion seen.
#[derive(Default)]
pub(crate) struct Watch {
    pub(crate) events: Option<Events>,
    pub(crate) from: Option<String>,
    /// Failed opens in a row.
    pub(crate) failures: u32,
}

impl Watch {
    /// Notes a version the waiter has decided from (or that the watch has
    /// brought): the watch goes on from the newest.
    pub(crate) fn seen(&mut self, version: &str) {
        let older = match (&self.from, version.parse::<u64>()) {
            (Some(from), Ok(version)) => from.parse::<u64>().is_ok_and(|from| version < from),
            _ => false,
        };
        if !older {
            self.from = Some(version.to_owned());
        }
    }

    /// Opens the watch from `from` for `secs` seconds, the open bounded by
    /// `within` (and the request timeout).
    pub(crate) async fn open(
        &mut self,
        api: &LeaseApi,
        name: &str,
        from: &str,
        secs: u32,
        within: Duration,
    ) -> std::result::Result<(), Failure> {
        self.events = Some(api.watch(name, from, secs, within).await?);
        self.failures = 0;
        Ok(())
    }

    /// Takes in the next item of the stream: notes its version, and closes
    /// or resets the watch when it ended or cannot go on.
    pub(crate) fn take(
        &mut self,
        item: Option<std::result::Result<WatchEvent<Lease>, kube::Error>>,
    ) -> Brought {
        match item {
            Some(Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease))) => {
                if let Some(version) = lease.metadata.resource_version.as_deref() {
                    self.seen(version);
                }
                Brought::Lease(Box::new(lease))
            }
            Some(Ok(WatchEvent::Deleted(lease))) => {
                if let Some(version) = lease.metadata.resource_version.as_deref() {
                    self.seen(version);
                }
                Brought::Deleted
            }
            Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                self.seen(&bookmark.metadata.resource_version);
                Brought::Nothing
            }
            Some(Ok(WatchEvent::Error(status))) => {
                // 410 Gone: the version is too old to watch from.
                tracing::debug!(?status, "watch error; listing afresh");
                self.reset();
                Brought::Gone
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "watch broke off; watching again");
                self.close();
                Brought::Nothing
            }
            None => {
                self.close();
                Brought::Nothing
            }
        }
    }

    pub(crate) fn close(&mut self) {
        self.events = None;
    }

    pub(crate) fn reset(&mut self) {
        self.events = None;
        self.from = None;
    }

    /// Counts a failed open; the pause before the next.
    pub(crate) fn failed(&mut self) -> Duration {
        let (first, longest) = REOPEN_AFTER;
        let pause = first.saturating_mul(1 << self.failures.min(5)).min(longest);
        self.failures = self.failures.saturating_add(1);
        pause
    }
}
