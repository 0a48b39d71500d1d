//! Lock guards: a tenure of a lock with a fencing token, renewed in the
//! background, that says as soon as it can no longer prove it holds the
//! lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backend::{Decided, Hint, KubeLeaseLockBackend};
use crate::clock::{self, LocalInstant, ServerTime};
use crate::decision::{self, GuardSees, Tenure};
use crate::error::{Error, Operation, Result};
use crate::fencing::FencingToken;
use crate::input::{check_key_and_owner, check_ttl_duration};
use crate::lease::{Found, Record};
use crate::naming::Lock;
use crate::wait::{worth_retrying, Brought, Watch, MAX_WATCH_SECS};

/// Longest sleep of a guard's renewal task between two looks at the local
/// clock: Tokio's timers stop while the machine is suspended, the local
/// clock does not.
const MAX_TICK: Duration = Duration::from_secs(1);

impl KubeLeaseLockBackend {
    /// Takes the lock `key` for `owner` with one attempt, as a guard with a
    /// fencing token that renews it in the background. `None` if another
    /// owner holds it.
    ///
    /// Every guard is a tenure of its own: if `owner` already holds the
    /// lock (another guard, or `try_acquire`), it gets a new term, a new
    /// token, and the earlier tenure ends.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad key or owner, or a TTL that is not
    /// a whole number of seconds in `1..=i32::MAX`; [`Error::NoFencingToken`]
    /// on an API server whose resourceVersions are not decimal integers
    /// (not backed by etcd); otherwise as for
    /// [`try_acquire`](Self::try_acquire).
    pub async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>> {
        let op = Operation::TryLock;
        check_key_and_owner(op, key, owner)?;
        let ttl_secs = check_ttl_duration(op, ttl)?;
        let span = tracing::debug_span!("try_lock", key, owner, ttl_secs);
        let guard = async {
            let sent = LocalInstant::now();
            let lock = Lock::new(key);
            let decide = |found: &Found, now| decision::lock(found, owner, ttl_secs, now);
            match self.run(op, &lock, decide).await? {
                Decided::Wrote(found) => self.guard(op, lock, found, sent, ttl).await.map(Some),
                Decided::Refused(_) => Ok(None),
            }
        }
        .instrument(span)
        .await;
        self.metrics_of(op, &guard, Option::is_some);
        guard
    }

    /// Takes the lock `key` for `owner` as a guard, waiting up to `wait` for
    /// it; `None` when `wait` elapsed first.
    ///
    /// Waiting is driven by a watch of the lock's one Lease: a waiter wakes
    /// when the Lease is deleted or changes, and at the holder's expiry by
    /// the server's clock otherwise. While another owner holds the lock it
    /// sends no writes, and no reads either: the watch brings each change.
    /// When the lock comes free, each waiter sends one write (a create, or a
    /// conditional takeover); one wins, and each loser learns it from the
    /// answer and one read. So a handoff costs at most one write and one
    /// read per waiter, and no waiter polls. The watch starts from the
    /// resourceVersion the waiter decided from, so a Lease created and
    /// deleted again before it started is not missed (see `src/wait.rs`).
    ///
    /// Every sleep and watch open ends at `wait`; after it, `lock` finishes
    /// only the decision in flight (a write, and a read if it lost, each
    /// bounded by the request timeout) before it returns `None`. A watch
    /// that fails to open with a timeout, a transport error, 429 or 5xx is
    /// opened again after a backoff (200 ms doubling to 5 s), within `wait`.
    ///
    /// # Errors
    ///
    /// As for [`try_lock`](Self::try_lock); also a watch the server refuses
    /// for good (for example HTTP 403 without the `watch` verb on leases).
    pub async fn lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<LockGuard>> {
        let op = Operation::Lock;
        check_key_and_owner(op, key, owner)?;
        let ttl_secs = check_ttl_duration(op, ttl)?;
        let span = tracing::debug_span!("lock", key, owner, ttl_secs, ?wait);
        let guard = async {
            let deadline = tokio::time::Instant::now().checked_add(wait);
            let lock = Lock::new(key);
            let decide = |found: &Found, now| decision::lock(found, owner, ttl_secs, now);
            match self.wait_and_write(op, &lock, decide, deadline).await? {
                Some((found, sent)) => self.guard(op, lock, found, sent, ttl).await.map(Some),
                None => Ok(None),
            }
        }
        .instrument(span)
        .await;
        self.metrics_of(op, &guard, Option::is_some);
        guard
    }

    /// A guard for the tenure a write of `op` started at local time `sent`.
    async fn guard(
        &self,
        op: Operation,
        lock: Lock,
        found: Found,
        sent: LocalInstant,
        ttl: Duration,
    ) -> Result<LockGuard> {
        let unexpected = |detail: &str| Error::Unexpected {
            operation: op,
            target: self.target(Some(&lock)),
            detail: detail.to_owned(),
        };
        let Found::Ours(record) = found else {
            return Err(unexpected("the Lease was not there after it was written"));
        };
        let mut tenure =
            Tenure::of(&record).ok_or_else(|| unexpected("the Lease has no holder"))?;
        let runtime = tokio::runtime::Handle::try_current();
        let token = FencingToken::from_resource_version(&record.resource_version);
        let (Some(token), Ok(runtime)) = (token, runtime) else {
            let resource_version = record.resource_version.clone();
            let released = self.release_tenure(op, &lock, &tenure, record).await;
            if let Err(error) = released {
                tracing::warn!(%error, "releasing a lock that cannot be guarded failed");
            }
            return Err(match token {
                None => Error::NoFencingToken {
                    operation: op,
                    target: self.target(Some(&lock)),
                    resource_version,
                },
                Some(_) => unexpected("a guard needs a Tokio runtime to renew its lock"),
            });
        };
        tenure.token = Some(token.get());
        let renew_every = ttl / self.inner.config.guard_renewals_per_ttl;
        let shared = Arc::new(Shared {
            backend: self.clone(),
            lock,
            tenure,
            token,
            ttl,
            lost: CancellationToken::new(),
            held: Mutex::new(Held {
                deadline: deadline(sent, ttl),
                record,
            }),
        });
        let renewal = runtime.spawn(renew(Arc::clone(&shared), renew_every));
        Ok(LockGuard {
            shared,
            renewal: Some(renewal),
        })
    }

    async fn release_tenure(
        &self,
        op: Operation,
        lock: &Lock,
        tenure: &Tenure,
        record: Record,
    ) -> Result<bool> {
        let decide = |found: &Found, _| decision::release_tenure(found, tenure);
        let hint = Hint::Stale(Found::Ours(record));
        let decided = self.decide_and_write(op, lock, hint, decide).await?;
        Ok(decided.wrote())
    }
}

/// The end of a tenure by the local clock: the send time of its last
/// successful write plus the TTL, less the drift allowance, which comes
/// before anyone else can take the lock by the server's clock; and less a
/// tenth of the TTL more, so that the holder has time to stop its work
/// (client-go's leader election keeps a margin too: a renew deadline of
/// 10 s for a 15 s lease).
pub fn deadline(sent: LocalInstant, ttl: Duration) -> LocalInstant {
    let margin = clock::drift_over(ttl) + ttl / 10;
    sent.saturating_add(ttl.saturating_sub(margin))
}

/// A held lock: a tenure with a fencing token, renewed in the background
/// until it is released, dropped or lost.
///
/// Dropping a guard stops the renewal, cancels [`lost`](Self::lost) and, when
/// a Tokio runtime is at hand, spawns a best-effort release; call
/// [`release`](Self::release) to know whether the release worked.
#[must_use = "dropping a LockGuard releases the lock"]
#[derive(Debug)]
pub struct LockGuard {
    shared: Arc<Shared>,
    renewal: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    backend: KubeLeaseLockBackend,
    /// The lock, with its Lease name computed once.
    lock: Lock,
    tenure: Tenure,
    token: FencingToken,
    ttl: Duration,
    lost: CancellationToken,
    held: Mutex<Held>,
}

#[derive(Debug)]
struct Held {
    /// The Lease as the last successful write left it.
    record: Record,
    /// When the guard stops claiming the lock unless a renewal succeeds.
    deadline: LocalInstant,
}

impl LockGuard {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.shared.lock.key
    }

    /// The owner holding it.
    pub fn owner(&self) -> &str {
        &self.shared.tenure.holder
    }

    /// The fencing token of this tenure; see [`FencingToken`].
    pub fn fencing_token(&self) -> FencingToken {
        self.shared.token
    }

    /// The TTL each renewal asks for.
    pub fn ttl(&self) -> Duration {
        self.shared.ttl
    }

    /// Cancelled as soon as the guard can no longer prove it holds the lock.
    /// Exactly:
    ///
    /// - **Expiry**: the local deadline (the send time of the last successful
    ///   write plus the TTL, less the drift allowance and a tenth of the TTL)
    ///   passes without a successful renewal. That is always before another
    ///   owner can take the lock by expiry (within the clock assumptions of
    ///   the crate's time model).
    /// - **A tenure ended by a write**: between renewals the guard watches
    ///   its own Lease. A release or `force_release` by anyone, a deletion
    ///   by `release_all` or a sweep, a takeover, and a new term by the same
    ///   owner string (`try_lock` from another process or guard, or a trait
    ///   `try_acquire` of a lock that may have expired) cancel the token when
    ///   the event arrives: on a healthy connection within about one round
    ///   trip of that write, and never later than the next renewal (every
    ///   TTL/3), which is answered "not held". Until then this guard and the
    ///   new holder may both say held; the new tenure's fencing token is
    ///   larger.
    /// - **A tenure shortened by its owner** (a trait `renew` or
    ///   `try_acquire` by the same owner string with a shorter TTL) does not
    ///   end it: the deadline comes forward to the Lease's new expiry and the
    ///   guard renews at once.
    /// - Also when the guard is released or dropped.
    ///
    /// If the server refuses the watch (no `watch` verb), the guard warns
    /// once and only renewals and the deadline tell. Select on
    /// `lost().cancelled()` to stop work. The token is cancelled by the
    /// guard's renewal task: on a runtime starved of CPU that can come late,
    /// so check [`is_held`](Self::is_held), which reads the clock itself,
    /// right before anything that must not happen twice.
    pub fn lost(&self) -> CancellationToken {
        self.shared.lost.clone()
    }

    /// Whether the guard can still prove it holds the lock (checked against
    /// the local clock now, so also right after a suspend).
    pub fn is_held(&self) -> bool {
        !self.shared.lost.is_cancelled() && LocalInstant::now() < self.shared.deadline()
    }

    /// The local instant until which the guard claims the lock unless a
    /// renewal succeeds.
    pub(crate) fn held_until(&self) -> LocalInstant {
        self.shared.deadline()
    }

    /// Stops the renewal and deletes the Lease if this tenure is still
    /// current (conditional delete). `Ok(false)` if the lock had been lost.
    ///
    /// # Errors
    ///
    /// API, timeout and transport errors; the renewal has stopped anyway.
    pub async fn release(mut self) -> Result<bool> {
        self.stop();
        let shared = Arc::clone(&self.shared);
        shared.release().await
    }

    fn stop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        self.shared.lost.cancel();
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.renewal.is_none() {
            return;
        }
        self.stop();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(async move {
                if let Err(error) = shared.release().await {
                    tracing::warn!(%error, "releasing a dropped lock guard failed");
                }
            });
        }
    }
}

impl Shared {
    fn deadline(&self) -> LocalInstant {
        self.held
            .lock()
            .map_or(LocalInstant::now(), |held| held.deadline)
    }

    fn record(&self) -> Option<Record> {
        self.held.lock().ok().map(|held| held.record.clone())
    }

    async fn release(&self) -> Result<bool> {
        let Some(record) = self.record() else {
            return Ok(false);
        };
        self.backend
            .release_tenure(Operation::Release, &self.lock, &self.tenure, record)
            .await
    }

    /// One renewal: `Some` with the new state when it succeeded, `None` when
    /// the tenure is over.
    async fn renew(&self) -> Result<Option<Record>> {
        let Some(record) = self.record() else {
            return Ok(None);
        };
        let ttl_secs = i32::try_from(self.ttl.as_secs()).unwrap_or(i32::MAX);
        let decide =
            |found: &Found, now| decision::renew_tenure(found, &self.tenure, ttl_secs, now);
        let hint = Hint::Stale(Found::Ours(record));
        match self
            .backend
            .decide_and_write(Operation::Renew, &self.lock, hint, decide)
            .await?
        {
            Decided::Wrote(Found::Ours(record)) => Ok(Some(record)),
            Decided::Wrote(_) | Decided::Refused(_) => Ok(None),
        }
    }
}

/// The renewal task of a guard: renews every `every`, each attempt bounded
/// by `every` and by the deadline; retries failed ones sooner; cancels
/// `lost` when a renewal is refused or the deadline passes. Between
/// renewals it watches the guard's own Lease: a release or deletion by
/// anyone, another holder or a new term (also of the same owner string)
/// cancels `lost` as soon as the event arrives; a rewrite within the tenure
/// (the same owner's trait `renew` or `try_acquire`) brings the deadline
/// forward to the Lease's new expiry and triggers a renewal at once.
async fn renew(shared: Arc<Shared>, every: Duration) {
    let retry_after = (every / 4).max(Duration::from_millis(100)).min(every);
    let mut next = LocalInstant::now().saturating_add(every);
    let mut own = OwnWatch::new(shared.record());
    loop {
        let now = LocalInstant::now();
        let deadline = shared.deadline();
        if now >= deadline {
            tracing::warn!(key = %shared.lock.key, "lock guard lost its lock: no renewal in time");
            shared.lost.cancel();
            return;
        }
        if now < next {
            let until = next.min(deadline).saturating_since(now);
            tokio::select! {
                () = tokio::time::sleep(until.min(MAX_TICK)) => {}
                seen = own.next(&shared) => match shared.saw(&seen) {
                    GuardSees::Nothing => {}
                    GuardSees::Ended => {
                        tracing::warn!(
                            key = %shared.lock.key,
                            "lock guard lost its lock: its Lease was released, deleted or taken"
                        );
                        shared.lost.cancel();
                        return;
                    }
                    GuardSees::Rewritten => {
                        tracing::debug!(key = %shared.lock.key, "lock guard's Lease rewritten; renewing");
                        next = LocalInstant::now();
                    }
                },
            }
            continue;
        }
        // Bounded by the deadline too: lost() must not wait for an answer
        // that comes after it.
        let sent = LocalInstant::now();
        let limit = every.min(deadline.saturating_since(sent));
        match tokio::time::timeout(limit, shared.renew()).await {
            Ok(Ok(Some(record))) => {
                if let Ok(mut held) = shared.held.lock() {
                    held.record = record;
                    held.deadline = deadline_after(sent, shared.ttl, held.deadline);
                }
                next = sent.saturating_add(every);
            }
            Ok(Ok(None)) => {
                tracing::warn!(key = %shared.lock.key, "lock guard lost its lock: not held any more");
                shared.lost.cancel();
                return;
            }
            Ok(Err(error)) => {
                tracing::warn!(key = %shared.lock.key, %error, "lock guard renewal failed");
                next = LocalInstant::now().saturating_add(retry_after);
            }
            Err(_) => {
                tracing::warn!(key = %shared.lock.key, "lock guard renewal timed out");
                next = LocalInstant::now().saturating_add(retry_after);
            }
        }
    }
}

impl Shared {
    /// Takes in a state of the Lease that the guard's watch brought: a
    /// rewrite within the tenure becomes the base of the next renewal, and
    /// the deadline comes no later than its expiry allows.
    fn saw(&self, seen: &Found) -> GuardSees {
        let Ok(mut held) = self.held.lock() else {
            return GuardSees::Nothing;
        };
        let sees = decision::guard_sees(&self.tenure, &held.record, seen);
        if let (GuardSees::Rewritten, Found::Ours(record)) = (sees, seen) {
            let now = LocalInstant::now();
            let server = self.backend.inner.api.server_time_at(now);
            if let (Some(server), Some(expiry)) = (server, record.expires_at()) {
                held.deadline = held.deadline.min(deadline_by_expiry(now, server, expiry));
            }
            held.record = record.clone();
        }
        sees
    }
}

/// The guard's watch of its own Lease, from the version of its last write.
struct OwnWatch {
    watch: Watch,
    /// Whether the watch can be used at all (not when the server refuses it,
    /// e.g. 403 without the `watch` verb: renewals alone then tell).
    usable: bool,
    retry_at: Option<tokio::time::Instant>,
    /// When the open watch is overdue to end (a silent network).
    overdue_at: Option<tokio::time::Instant>,
}

impl OwnWatch {
    fn new(record: Option<Record>) -> Self {
        let mut watch = Watch::default();
        if let Some(record) = record {
            watch.seen(&record.resource_version);
        }
        Self {
            watch,
            usable: true,
            retry_at: None,
            overdue_at: None,
        }
    }

    /// The next state of the Lease the watch brings (pending for ever when
    /// the watch cannot be used). Cancel-safe enough: a cancelled open is
    /// opened again.
    async fn next(&mut self, shared: &Shared) -> Found {
        let (backend, lock, op) = (&shared.backend, &shared.lock, Operation::Renew);
        loop {
            if !self.usable {
                std::future::pending::<()>().await;
            }
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
                self.retry_at = None;
            }
            let Some(from) = self.watch.from.clone() else {
                match backend.list_one(op, lock, &mut self.watch).await {
                    Ok(found) => return found,
                    Err(error) => {
                        tracing::debug!(%error, "lock guard: listing its Lease failed");
                        self.failed();
                        continue;
                    }
                }
            };
            if self.watch.events.is_none() {
                let timeout = backend.inner.config.request_timeout;
                let api = &backend.inner.api;
                match self
                    .watch
                    .open(api, &lock.name, &from, MAX_WATCH_SECS, timeout)
                    .await
                {
                    Ok(()) => {
                        let lasts = Duration::from_secs(u64::from(MAX_WATCH_SECS)) + timeout;
                        self.overdue_at = tokio::time::Instant::now().checked_add(lasts);
                    }
                    Err(failure) if worth_retrying(&failure) => {
                        tracing::debug!(?failure, "lock guard: opening its watch failed");
                        self.failed();
                        continue;
                    }
                    Err(failure) => {
                        tracing::warn!(
                            ?failure,
                            key = %lock.key,
                            "lock guard cannot watch its Lease; only renewals will tell it lost"
                        );
                        self.usable = false;
                        continue;
                    }
                }
            }
            let Some(events) = self.watch.events.as_mut() else {
                continue;
            };
            let event = match self.overdue_at {
                Some(at) => tokio::time::timeout_at(at, events.next())
                    .await
                    .ok()
                    .flatten(),
                None => events.next().await,
            };
            match self.watch.take(event) {
                Brought::Lease(lease) => {
                    if let Ok(found) = backend.found_in(op, lock, &lease) {
                        return found;
                    }
                }
                Brought::Deleted => {
                    backend.forget(lock);
                    return Found::Missing;
                }
                Brought::Gone | Brought::Nothing => {}
            }
        }
    }

    fn failed(&mut self) {
        let pause = self.watch.failed();
        self.retry_at = tokio::time::Instant::now().checked_add(pause);
    }
}

/// The local instant by which a Lease that expires at `expiry` by the
/// server's clock may have expired: when the latest time the server's clock
/// can read (`server`, at the local instant `at`) reaches it, less the drift
/// allowance. Never later than the instant any API server's clock reaches it.
pub fn deadline_by_expiry(
    at: LocalInstant,
    server: ServerTime,
    expiry: DateTime<Utc>,
) -> LocalInstant {
    let left = (expiry - server.latest).to_std().unwrap_or(Duration::ZERO);
    at.saturating_add(left.saturating_sub(clock::drift_over(left)))
}

/// A renewal sent at `sent` moves the deadline, never back.
pub fn deadline_after(sent: LocalInstant, ttl: Duration, old: LocalInstant) -> LocalInstant {
    deadline(sent, ttl).max(old)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::lease::parse_time;

    #[test]
    fn a_shortened_lease_brings_the_deadline_forward_to_its_expiry() {
        let noon = parse_time("2026-11-26T12:00:00Z").expect("valid");
        let server = ServerTime {
            earliest: noon - TimeDelta::milliseconds(300),
            latest: noon + TimeDelta::milliseconds(300),
        };
        let at = LocalInstant::from_duration(Duration::from_secs(100));
        // Expires 2 s after noon: 1.7 s by the latest reading, less 1.7 ms.
        let deadline = deadline_by_expiry(at, server, noon + TimeDelta::seconds(2));
        assert_eq!(
            deadline.saturating_since(at),
            Duration::from_millis(1_700) - Duration::from_micros(1_700)
        );
        // Already past by the latest reading: now.
        let past = deadline_by_expiry(at, server, noon + TimeDelta::milliseconds(200));
        assert_eq!(past, at);
    }
}
