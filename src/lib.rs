//! Kubernetes-native distributed locks for CeleRS (the `celers-core` crate).
//!
//! [`KubeLeaseLockBackend`] implements celers-core's
//! `DistributedLockBackend` by storing each lock as a
//! `coordination.k8s.io/v1` Lease in one namespace:
//!
//! - `spec.holderIdentity` is the owner, `spec.leaseDurationSeconds` the TTL,
//!   `acquireTime`/`renewTime` the times and `leaseTransitions` counts changes
//!   of holder, so `kubectl get leases` shows who holds what;
//! - every write is conditional on the resourceVersion it was decided from,
//!   so two replicas can never both win;
//! - expiry is judged on the API server's clock (see [Time](crate#time)),
//!   so replicas whose clocks disagree still agree on who holds a lock;
//! - `release_all` deletes an owner's Leases, selected by an owner label;
//!   [`KubeLeaseLockBackend::sweep_expired`] deletes expired ones;
//! - Leases this crate did not create are never modified or deleted.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use celers_core::lock::DistributedLockBackend;
//! use celers_kube_lease::KubeLeaseLockBackend;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let backend: Arc<dyn DistributedLockBackend> =
//!     Arc::new(KubeLeaseLockBackend::new(client, "celers-beat")?);
//!
//! if backend.try_acquire("nightly-report", "scheduler-1", 60).await? {
//!     // ... run the task ...
//!     backend.release("nightly-report", "scheduler-1").await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Guards
//!
//! [`KubeLeaseLockBackend::try_lock`] and [`KubeLeaseLockBackend::lock`]
//! (which waits, driven by a watch) return a [`LockGuard`]: a tenure of the
//! lock with a [`FencingToken`], renewed in the background, whose
//! [`lost`](LockGuard::lost) token is cancelled before anyone else can take
//! the lock. The README's "Guards and fencing" section has a complete
//! example with a store that rejects stale tokens.
//!
//! # Time
//!
//! A lock is expired when every API server's clock is certainly past
//! `renewTime + leaseDurationSeconds`. The servers' clock is estimated from
//! the `Date` header of every response and a local clock that is not the
//! wall clock; the local wall clock is never read. What this assumes about
//! drift, several API servers and suspend, and why it beats client-go's
//! approach, is explained once, in the documentation of the private `clock`
//! module (`src/clock.rs`), and summarised in the README.
//!
//! # Requests
//!
//! One API request per operation in the common case: acquiring a free key is
//! a create, renewing and re-acquiring are a conditional update (a PUT of the
//! Lease as last seen, which keeps every field the lock does not set and
//! resets `managedFields`, so that the API server skips field tracking; see
//! the README's "Requests"), a release is a conditional delete, `is_locked`
//! and `owner` are a get. The
//! backend remembers the resourceVersion of the locks it has seen; when that
//! is stale, the write fails with 409 Conflict and the backend reads and
//! decides again. A write that loses to another owner's acquisition is
//! answered `false`: that owner held the lock at that moment. The read
//! after a 409 or 404 also recognises a write of this call that had
//! committed before kube's client retried it (after a 429, 503 or 504).
//!
//! # Feature flags
//!
//! - `celers-core-03`: also implement celers-core 0.3's
//!   `DistributedLockBackend` (for celers-beat 0.3).
//! - `celers-beat-03`: [`KubeBeat`], which drives
//!   celers-beat 0.3's `BeatScheduler` so that each scheduled instant fires
//!   once across replicas (implies `celers-core-03`).
//! - `events`: `KubeBeat` records client-go's leader election Events
//!   (reason `LeaderElection`) on its leader Lease, through kube-runtime.
//! - `metrics`: Prometheus metrics (prometheus-client) in a registry the
//!   application passes to the builder; see [Metrics](#metrics).
//!
//! # Metrics
//!
//! With the feature `metrics`,
//! [`KubeLeaseLockBackendBuilder::metrics`](crate::KubeLeaseLockBackendBuilder)
//! registers these under the prefix `celers_lock` (counters end in
//! `_total` in the exposition):
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `celers_lock_operations_total` | counter | `operation`, `result` | calls by result: `acquired`, `refused`, `renewed`, `released`, `not_held`, `answered`, `error_configuration`, `error_timeout`, `error_broker` |
//! | `celers_lock_api_requests_total` | counter | `verb`, `code` | API requests by verb (`get`, `create`, `update`, `delete`, `list`, `watch`) and HTTP status (`timeout`, `transport` when there is none) |
//! | `celers_lock_api_request_duration_seconds` | histogram | `verb` | their latency |
//! | `celers_lock_conflicts_total` | counter | | conditional writes rejected (409, or 404 on a write) |
//! | `celers_lock_shared_owner_total` | counter | | writes that kept a live lock of the same owner written by another backend instance (one owner string in two processes; warned once per key) |
//! | `celers_lock_held` | gauge | | locks this backend holds by its last writes (not yet released, nor past their TTL) |
//! | `celers_lock_sweeps_total` | counter | | sweeps that completed |
//! | `celers_lock_swept_leases_total` | counter | | Leases they deleted |
//!
//! This library enables neither a `k8s-openapi` version feature nor a TLS
//! backend of `kube`: the application chooses both.

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests (with every feature, as
/// `make test` runs them).
#[cfg(all(doctest, feature = "celers-beat-03", feature = "metrics"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The modules, bottom up; none imports one above it, and
// hack/import-cycles.sh checks that no two import each other in a circle:
// - leaves: error, clock, naming, fencing, new_keys; input and config (the
//   validated settings) check arguments and settings into errors;
// - the wire types: lease;
// - the pure core: decision;
// - I/O and what the backend keeps: metrics, api, known, sweeper;
// - the backend (backend) and its operations (bulk, guard, wait, inspect,
//   celers), whose `impl KubeLeaseLockBackend` blocks are split by file;
// - the builder: builder;
// - celers-beat on top of the backend: beat (its own pure core, ledger and
//   plan, under its I/O, store, and its KubeBeat).
mod api;
mod backend;
#[cfg(feature = "celers-beat-03")]
mod beat;
mod builder;
mod bulk;
mod celers;
mod clock;
mod config;
mod decision;
mod error;
mod fencing;
mod guard;
mod input;
mod inspect;
mod known;
mod lease;
mod metrics;
mod naming;
mod new_keys;
mod sweeper;
mod wait;

pub use backend::KubeLeaseLockBackend;
#[cfg(feature = "celers-beat-03")]
#[cfg_attr(docsrs, doc(cfg(feature = "celers-beat-03")))]
pub use beat::{
    Fire, KubeBeat, KubeBeatBuilder, Unhealthy, DEFAULT_BEAT_NAME, DEFAULT_HEALTH_TOLERANCE,
    DEFAULT_LEADER_TTL, DEFAULT_RETRY_PERIOD,
};
pub use builder::KubeLeaseLockBackendBuilder;
pub use config::{DEFAULT_FIELD_MANAGER, DEFAULT_LABEL_PREFIX};
pub use error::{Error, Operation, Result, Target};
pub use fencing::FencingToken;
pub use guard::LockGuard;
pub use input::{MAX_KEY_BYTES, MAX_OWNER_BYTES};
pub use inspect::LockInfo;
pub use lease::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
pub use naming::{lease_name, owner_label_value};
/// The type of [`LockGuard::lost`], re-exported from `tokio-util`.
pub use tokio_util::sync::CancellationToken;

/// Not part of the stable API: the pure core (decisions, the server clock's
/// bound arithmetic, a guard's deadline, the beat ledger's claim),
/// re-exported for the model checker in the repository's `model/` member so
/// that it runs this crate's own code. It may change in any release.
#[doc(hidden)]
pub mod model_seam {
    #[cfg(feature = "celers-beat-03")]
    pub use crate::beat::ledger::{claim, Claim, Entry};
    pub use crate::clock::{drift_over, LocalInstant, Sample, ServerClock, ServerTime, DRIFT_PPM};
    pub use crate::decision::{
        committed, deletion, guard_sees, is_certainly_live, is_expired, lock, lost_to_another,
        release, release_tenure, renew_tenure, sweep, try_acquire, write_time, GuardSees, Step,
        Tenure, Write,
    };
    pub use crate::guard::{deadline, deadline_after, deadline_by_expiry};
    pub use crate::lease::{Found, Holding, Record, TokenNote};

    /// The fencing token of a write answered with `resource_version`.
    pub fn fencing_token(resource_version: &str) -> Option<crate::FencingToken> {
        crate::FencingToken::from_resource_version(resource_version)
    }
}
