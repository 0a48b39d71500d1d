//! Deletes across listed Leases: `release_all`, `sweep_expired`, and the
//! sweep that runs in the background.

use futures::stream::{self, StreamExt};
use tracing::Instrument;

use crate::backend::{Decided, Hint, KubeLeaseLockBackend};
use crate::clock::ServerTime;
use crate::decision;
use crate::decision::Step;
use crate::error::{Error, Operation, Result};
use crate::input::check_owner;
use crate::lease::{Found, Lease, Record};
use crate::naming::Lock;

/// How often a listing restarts from the first page when its continue token
/// expired (410 Gone) before it gives up.
const MAX_LIST_RESTARTS: u32 = 3;

impl KubeLeaseLockBackend {
    /// Deletes every lock `owner` holds in the namespace, live or expired, and
    /// returns how many it deleted. Leases are selected on the server by the
    /// owner label, page by page, and each is deleted only if its holder is
    /// still `owner` at that moment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad owner; [`Error::Incomplete`], with
    /// the count, when an error stopped it after some deletes; otherwise the
    /// first API, timeout or transport error. Every listed Lease is
    /// attempted before a delete error is returned; calling again is safe.
    pub async fn release_all(&self, owner: &str) -> Result<u64> {
        let op = Operation::ReleaseAll;
        check_owner(op, owner)?;
        let selector = self.inner.marks.owner_selector(owner);
        let span = tracing::debug_span!("release_all", owner);
        let released = self
            .delete_listed(op, &selector, |found, _| decision::release(found, owner))
            .instrument(span)
            .await;
        self.metrics_of(op, &released, |n| *n > 0);
        released
    }

    /// Deletes the Leases of this crate in the namespace (any owner) that have
    /// been expired for longer than the sweep grace, and returns how many.
    /// Live Leases and Leases not made by this crate are never touched; each
    /// delete is conditional on the state that was judged expired.
    ///
    /// Also runs in the background (see the builder's `sweep_interval`).
    ///
    /// # Errors
    ///
    /// As for [`release_all`](Self::release_all).
    pub async fn sweep_expired(&self) -> Result<u64> {
        let grace = self.sweep_grace();
        let decide = move |found: &Found, now| decision::sweep(found, now, grace);
        let selector = self.inner.marks.all_locks_selector();
        let op = Operation::SweepExpired;
        let swept = self
            .delete_listed(op, &selector, decide)
            .instrument(tracing::debug_span!("sweep_expired"))
            .await;
        self.metrics_of(op, &swept, |n| *n > 0);
        if let Ok(deleted) = swept {
            self.inner.metrics.swept(deleted);
        }
        swept
    }

    /// Lists the Leases matching `selector` and runs `decide` on each, with
    /// the listed state as the hint. Returns how many writes succeeded.
    pub(crate) async fn delete_listed(
        &self,
        op: Operation,
        selector: &str,
        decide: impl Fn(&Found, ServerTime) -> Step + Copy,
    ) -> Result<u64> {
        let mut deleted = 0;
        let mut first_error = None;
        let mut pages = Pages::default();
        let listed = loop {
            let (items, now) = match pages.next(self, op, selector).await {
                Ok(Some(page)) => page,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error),
            };
            // The list is a fresh read: Leases it shows need no write
            // are left alone without reading them again.
            let candidates: Vec<(String, Found)> = items
                .iter()
                .filter_map(|lease| {
                    let key = self.inner.marks.key_of(lease)?;
                    Some((key.to_owned(), Found::Ours(Record::from_lease(lease)?)))
                })
                .filter(|(_, found)| matches!(decide(found, now), Step::Write(_)))
                .collect();
            let outcomes: Vec<Result<Decided>> = stream::iter(candidates)
                .map(|(key, found)| async move {
                    let lock = Lock::new(key);
                    self.decide_and_write(op, &lock, Hint::Stale(found), decide)
                        .await
                })
                .buffer_unordered(self.inner.config.delete_concurrency)
                .collect()
                .await;
            for outcome in outcomes {
                match outcome {
                    Ok(Decided::Wrote(_)) => deleted += 1,
                    Ok(Decided::Refused(_)) => {}
                    Err(error) => {
                        tracing::warn!(%error, "deleting a listed Lease failed");
                        first_error.get_or_insert(error);
                    }
                }
            }
        };
        match first_error.or(listed.err()) {
            None => Ok(deleted),
            Some(error) if deleted == 0 => Err(error),
            Some(error) => Err(Error::Incomplete {
                operation: op,
                target: self.target(None),
                deleted,
                source: Box::new(error),
            }),
        }
    }

    /// Starts a background sweep if one is due (see the builder's
    /// `sweep_interval`).
    pub(crate) fn maybe_sweep(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(running) = self.inner.sweeper.start() else {
            return;
        };
        let backend = self.clone();
        runtime.spawn(async move {
            let _running = running;
            match backend.sweep_expired().await {
                Ok(swept) => tracing::debug!(swept, "swept expired Leases"),
                Err(error) => tracing::warn!(%error, "sweeping expired Leases failed"),
            }
        });
    }
}

/// Pages of a list of Leases, fetched one after the other.
#[derive(Default)]
pub(crate) struct Pages {
    continue_token: Option<String>,
    restarts: u32,
    done: bool,
}

impl Pages {
    /// The next page of the Leases matching `selector`, with the server's
    /// time when it was listed; `None` after the last. Restarts from the
    /// first page when the continue token expired (410 Gone), at most
    /// [`MAX_LIST_RESTARTS`] times.
    pub async fn next(
        &mut self,
        backend: &KubeLeaseLockBackend,
        op: Operation,
        selector: &str,
    ) -> Result<Option<(Vec<Lease>, ServerTime)>> {
        let api = &backend.inner.api;
        loop {
            if self.done {
                return Ok(None);
            }
            let page_size = backend.inner.config.page_size;
            let page = match api
                .list(selector, page_size, self.continue_token.take())
                .await
            {
                Ok(page) => page,
                Err(failure)
                    if failure.code() == Some(410) && self.restarts < MAX_LIST_RESTARTS =>
                {
                    // What was deleted is gone; the rest is judged again.
                    tracing::debug!(?failure, "list continue token expired; restarting");
                    self.restarts += 1;
                    continue;
                }
                Err(failure) => return Err(backend.failed(op, None, failure)),
            };
            let now = backend.server_time(op, None)?;
            self.continue_token = page
                .metadata
                .continue_token
                .filter(|token| !token.is_empty());
            self.done = self.continue_token.is_none();
            return Ok(Some((page.items, now)));
        }
    }
}
