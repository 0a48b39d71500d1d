//! Correctness checks of `celers-kube-lease` against a real API server:
//! contention between processes, faults (API server and etcd killed, network
//! partitions), skewed wall clocks and bad input.
//!
//! Contenders log every call as a JSON line ([`record::Line`]) stamped on the
//! machine's monotonic clock, which all processes share; [`checker`] turns
//! those logs into holding intervals and checks that no two owners ever held
//! one key at the same time; [`linearizability`] checks the same calls, as a
//! [`history`], against the sequential specification of a TTL lock
//! ([`ttl_lock`]).

pub mod bad_input;
pub mod beat;
pub mod checker;
pub mod cluster;
pub mod contender;
pub mod fencing;
pub mod foreign;
pub mod ha;
pub mod history;
pub mod linearizability;
pub mod long_form;
pub mod mono;
pub mod outcome;
pub mod paused;
pub mod process;
pub mod proxy;
pub mod record;
pub mod scenario;
pub mod table;
pub mod takeover;
pub mod ttl_lock;

/// Errors of the harness itself (not of the library under test).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result of the harness.
pub type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The claim rule's safety margin: a holder counts itself the holder until
/// `sent + ttl - MARGIN`.
pub const MARGIN_NS: u64 = 100_000_000;
