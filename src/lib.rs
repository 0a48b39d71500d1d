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
//! - expiry is judged on the API server's clock (see [`clock`](crate#time)),
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
//!     Arc::new(KubeLeaseLockBackend::new(client, "celers-beat"));
//!
//! if backend.try_acquire("nightly-report", "scheduler-1", 60).await? {
//!     // ... run the task ...
//!     backend.release("nightly-report", "scheduler-1").await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Time
//!
//! A lock is expired when the API server's clock is certainly past
//! `renewTime + leaseDurationSeconds`. The server's clock is estimated from
//! the `Date` header of every response and the local monotonic clock; the
//! local wall clock is never read. Times written into a Lease are the latest
//! the server's clock can read, and a Lease is judged expired only when the
//! earliest it can read is past the expiry, so the uncertainty (about a round
//! trip once a few requests have been made, at most a second plus a round trip
//! after the first) always favours the holder. client-go instead starts a
//! full TTL from when *it* first saw a record, which makes every newcomer wait
//! a TTL even for a holder that died long ago.
//!
//! # Requests
//!
//! One API request per operation in the common case: acquiring a free key is
//! a create, renewing and re-acquiring are a conditional merge patch, a
//! release is a conditional delete, `is_locked` and `owner` are a get. The
//! backend remembers the resourceVersion of the locks it has seen; when that
//! is stale, the write fails with 409 Conflict and the backend reads and
//! decides again (at most `conflict_retries` lost races per call).
//!
//! # Feature flags
//!
//! - `celers-core-03`: also implement celers-core 0.3's
//!   `DistributedLockBackend` (for celers-beat 0.3).
//!
//! This library enables neither a `k8s-openapi` version feature nor a TLS
//! backend of `kube`: the application chooses both.

mod api;
mod backend;
mod celers;
mod clock;
mod config;
mod decision;
mod error;
mod lease;
mod naming;

pub use backend::{KubeLeaseLockBackend, MAX_KEY_BYTES, MAX_OWNER_BYTES};
pub use config::{KubeLeaseLockBackendBuilder, DEFAULT_FIELD_MANAGER, DEFAULT_LABEL_PREFIX};
pub use error::{Error, Operation, Result, Target};
pub use lease::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
pub use naming::{lease_name, owner_label_value};
