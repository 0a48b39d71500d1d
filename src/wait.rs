//! Waiting for a lock: a watch of its one Lease drives each new attempt.
//!
//! The watch is hand-rolled rather than kube-runtime's `watcher` because a
//! waiter needs less and would pay for more: it has just read the Lease and
//! resumes from the resourceVersion it saw, where the watcher starts with a
//! LIST (and lists again when its version is too old); each watch is bounded
//! by the waiter's own deadline, and a lost watch means one fresh read and a
//! new decision, not a re-listed cache; and the library needs no `runtime`
//! feature of kube.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use kube::core::WatchEvent;

use crate::backend::{Decided, Hint, KubeLeaseLockBackend};
use crate::clock::{self, LocalInstant, ServerTime};
use crate::decision::{self, Step};
use crate::error::{Error, Operation, Result};
use crate::lease::{Found, Lease};
use crate::naming::Lock;

/// Longest watch the server is asked for; a longer wait opens another.
const MAX_WATCH_SECS: u32 = 240;

type Events = BoxStream<'static, std::result::Result<WatchEvent<Lease>, kube::Error>>;

/// What woke a waiter.
enum Woken {
    /// The Lease is now in this state.
    Changed(Found),
    /// The holder's lease ran out by the server's clock.
    Expired,
    /// The watch broke off in a way that needs a fresh read.
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
        // A waiter reads first rather than assume the Lease is absent, so
        // that it writes nothing while another owner holds the lock.
        let mut hint = self
            .remembered(lock)
            .map_or(Hint::Nothing, |record| Hint::Stale(Found::Ours(record)));
        let mut watch = Watch::default();
        loop {
            let sent = LocalInstant::now();
            let seen = match self.decide_and_write(op, lock, hint, &decide).await? {
                Decided::Wrote(found) => return Ok(Some((found, sent))),
                Decided::Refused(seen) => seen,
            };
            if let Some(Found::Ours(record)) = &seen {
                watch.seen(&record.resource_version);
            }
            let expiry = seen.as_ref().and_then(decision::expires_at);
            hint = match self
                .next_change(op, lock, &mut watch, expiry, deadline)
                .await?
            {
                Woken::Changed(found) => Hint::Fresh(found),
                Woken::Expired => seen.map_or(Hint::Nothing, Hint::Fresh),
                Woken::Lost => Hint::Nothing,
                Woken::TimedOut => return Ok(None),
            };
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
            let watch_secs = deadline.map_or(MAX_WATCH_SECS, |deadline| {
                let left = deadline.saturating_duration_since(now).as_secs();
                u32::try_from(left.saturating_add(1))
                    .map_or(MAX_WATCH_SECS, |s| s.min(MAX_WATCH_SECS))
            });
            let events = watch.open(self, op, lock, watch_secs).await?;
            // The server ends the watch after watch_secs; a silent network
            // must not hold the waiter longer than that and a request.
            let silence =
                Duration::from_secs(u64::from(watch_secs)) + self.inner.config.request_timeout;
            let wake_at = [deadline, expired_at, now.checked_add(silence)]
                .into_iter()
                .flatten()
                .min();
            let event = tokio::select! {
                event = events.next() => event,
                () = sleep_until(wake_at) => {
                    if expired_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
                        return Ok(Woken::Expired);
                    }
                    watch.close();
                    continue;
                }
            };
            match event {
                Some(Ok(WatchEvent::Added(lease) | WatchEvent::Modified(lease))) => {
                    if let Some(version) = lease.metadata.resource_version.as_deref() {
                        watch.seen(version);
                    }
                    return self.found_in(op, lock, &lease).map(Woken::Changed);
                }
                Some(Ok(WatchEvent::Deleted(lease))) => {
                    if let Some(version) = lease.metadata.resource_version.as_deref() {
                        watch.seen(version);
                    }
                    self.forget(lock);
                    return Ok(Woken::Changed(Found::Missing));
                }
                Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                    watch.seen(&bookmark.metadata.resource_version);
                }
                Some(Ok(WatchEvent::Error(status))) => {
                    // 410 Gone: the version is too old to watch from.
                    tracing::debug!(?status, "watch error; reading afresh");
                    watch.reset();
                    return Ok(Woken::Lost);
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "watch broke off; watching again");
                    watch.close();
                }
                None => watch.close(),
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

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The watch of one Lease, opened when first needed and again after it
/// ends, from the last resourceVersion seen.
#[derive(Default)]
struct Watch {
    events: Option<Events>,
    from: Option<String>,
}

impl Watch {
    fn seen(&mut self, version: &str) {
        self.from = Some(version.to_owned());
    }

    fn close(&mut self) {
        self.events = None;
    }

    fn reset(&mut self) {
        self.events = None;
        self.from = None;
    }

    async fn open(
        &mut self,
        backend: &KubeLeaseLockBackend,
        op: Operation,
        lock: &Lock,
        secs: u32,
    ) -> Result<&mut Events> {
        if self.events.is_none() {
            let events = backend
                .inner
                .api
                .watch(&lock.name, self.from.as_deref(), secs)
                .await
                .map_err(|failure| backend.failed(op, Some(lock), failure))?;
            self.events = Some(events);
        }
        match self.events.as_mut() {
            Some(events) => Ok(events),
            None => Err(Error::Unexpected {
                operation: op,
                target: backend.target(Some(lock)),
                detail: "the watch could not be kept".to_owned(),
            }),
        }
    }
}
