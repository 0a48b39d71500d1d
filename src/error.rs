//! Errors, named after the operation that failed and the lock it failed on.

use std::fmt;
use std::time::Duration;

/// A result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The lock operation that failed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// `try_acquire`
    TryAcquire,
    /// `renew`
    Renew,
    /// `release`
    Release,
    /// `is_locked`
    IsLocked,
    /// `owner`
    Owner,
    /// `release_all`
    ReleaseAll,
    /// `sweep_expired`
    SweepExpired,
    /// `try_lock`
    TryLock,
    /// `lock`
    Lock,
    /// `locks`
    Locks,
    /// `describe`
    Describe,
    /// `force_release`
    ForceRelease,
    /// Building the backend or a `KubeBeat`.
    Build,
    /// `KubeBeat::tick`
    BeatTick,
    /// `KubeBeat::step_down`
    StepDown,
    /// `KubeBeat::identity_from_env`
    IdentityFromEnv,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TryAcquire => "try_acquire",
            Self::Renew => "renew",
            Self::Release => "release",
            Self::IsLocked => "is_locked",
            Self::Owner => "owner",
            Self::ReleaseAll => "release_all",
            Self::SweepExpired => "sweep_expired",
            Self::TryLock => "try_lock",
            Self::Lock => "lock",
            Self::Locks => "locks",
            Self::Describe => "describe",
            Self::ForceRelease => "force_release",
            Self::Build => "build",
            Self::BeatTick => "tick",
            Self::StepDown => "step_down",
            Self::IdentityFromEnv => "identity_from_env",
        })
    }
}

/// Which lock, or which Leases, an operation was working on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// The namespace of the Leases.
    pub namespace: String,
    /// The lock key, when the operation concerns one lock.
    pub key: Option<String>,
    /// The Lease name, when the operation concerns one Lease.
    pub lease: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let namespace = &self.namespace;
        match (&self.key, &self.lease) {
            (Some(key), Some(lease)) => write!(f, "lock {key:?} (Lease {namespace}/{lease})"),
            (None, Some(lease)) => write!(f, "Lease {namespace}/{lease}"),
            (Some(key), None) => write!(f, "lock {key:?} in namespace {namespace}"),
            (None, None) => write!(f, "Leases in namespace {namespace}"),
        }
    }
}

/// An error of a lock operation.
///
/// Every variant names the operation and the lock (key and Lease) it failed
/// on. A rejected input or configuration never reaches the API server: the
/// call that returns it wrote nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument of a call was rejected before anything was sent.
    #[error("{operation}: invalid {input}: {reason}")]
    InvalidInput {
        /// The operation called.
        operation: Operation,
        /// The argument: `key`, `owner` or `ttl_secs`.
        input: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// A setting of the backend is invalid.
    #[error("{operation}: invalid setting {setting}: {reason}")]
    InvalidConfig {
        /// The operation called (`build`).
        operation: Operation,
        /// The setting, such as `namespace`.
        setting: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// The API server answered with an error status.
    #[error("{operation} of {target} failed: HTTP {status} {reason}: {message}")]
    Api {
        /// The operation called.
        operation: Operation,
        /// The lock or Leases it worked on.
        target: Target,
        /// The HTTP status code.
        status: u16,
        /// The Kubernetes `Status` reason, such as `Forbidden`.
        reason: String,
        /// The API server's message.
        message: String,
    },

    /// One request took longer than the configured request timeout.
    #[error("{operation} of {target} timed out after {timeout:?}")]
    Timeout {
        /// The operation called.
        operation: Operation,
        /// The lock or Leases it worked on.
        target: Target,
        /// The per-request timeout.
        timeout: Duration,
    },

    /// The API server could not be reached.
    #[error("{operation} of {target}: the API server could not be reached")]
    Transport {
        /// The operation called.
        operation: Operation,
        /// The lock or Leases it worked on.
        target: Target,
        /// What the client reported.
        #[source]
        source: Box<kube::Error>,
    },

    /// The API server's answer could not be understood.
    #[error("{operation} of {target}: unexpected answer from the API server: {detail}")]
    Unexpected {
        /// The operation called.
        operation: Operation,
        /// The lock or Leases it worked on.
        target: Target,
        /// What was wrong with it.
        detail: String,
    },

    /// A Lease with the lock's name exists but was not created by this crate
    /// for this key. It is left untouched.
    #[error(
        "{operation} of {target}: the Lease exists but was not created by celers-kube-lease \
         for this key; it is left untouched"
    )]
    ForeignLease {
        /// The operation called.
        operation: Operation,
        /// The lock it worked on.
        target: Target,
    },

    /// The API server's resourceVersions are not decimal integers, so no
    /// fencing token can be given: guards need resourceVersions that are
    /// integers (etcd's revision: every API server backed by etcd; since
    /// Kubernetes 1.35, KEP-5504, a promise of the API), not a server with
    /// opaque versions such as an aggregated API server. The lock that was
    /// taken has been released.
    #[error(
        "{operation} of {target}: resourceVersion {resource_version:?} is not a decimal integer, \
         so it cannot be a fencing token (guards need an API server backed by etcd); the lock was \
         released"
    )]
    NoFencingToken {
        /// The operation called.
        operation: Operation,
        /// The lock it worked on.
        target: Target,
        /// What the API server sent.
        resource_version: String,
    },

    /// `release_all` or `sweep_expired` stopped part-way (the list failed,
    /// or some deletes did): `deleted` Leases were deleted before that.
    /// Calling again is safe.
    #[error("{operation} of {target} deleted {deleted} Leases, then failed: {source}")]
    Incomplete {
        /// The operation called.
        operation: Operation,
        /// The Leases it worked on.
        target: Target,
        /// How many Leases it deleted.
        deleted: u64,
        /// The first error it met.
        #[source]
        source: Box<Error>,
    },

    /// A schedule entry's instants could not be computed (an invalid
    /// crontab expression or timezone, say). Nothing was fired for it.
    #[error("{operation}: schedule entry {entry:?}: {reason}")]
    Schedule {
        /// The operation called.
        operation: Operation,
        /// The entry's name.
        entry: String,
        /// What celers-beat reported.
        reason: String,
    },

    /// The conditional writes of one call were rejected again and again by
    /// writes that changed nothing about the holder (a lost race to another
    /// owner is answered `false`, not with this error). Something keeps
    /// editing the Lease.
    #[error("{operation} of {target}: gave up after {attempts} conflicting writes in a row")]
    Contended {
        /// The operation called.
        operation: Operation,
        /// The lock it worked on.
        target: Target,
        /// How many conditional writes were rejected.
        attempts: u32,
    },
}

/// How celers treats an error: retry later, fix the configuration, or wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Bad input or settings: retrying will not help.
    Configuration,
    /// A request timed out.
    Timeout,
    /// The API server failed or refused: worth retrying.
    Broker,
}

impl Error {
    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            Self::InvalidInput { operation, .. }
            | Self::InvalidConfig { operation, .. }
            | Self::Api { operation, .. }
            | Self::Timeout { operation, .. }
            | Self::Transport { operation, .. }
            | Self::Unexpected { operation, .. }
            | Self::ForeignLease { operation, .. }
            | Self::Incomplete { operation, .. }
            | Self::NoFencingToken { operation, .. }
            | Self::Schedule { operation, .. }
            | Self::Contended { operation, .. } => *operation,
        }
    }

    /// The HTTP status the API server answered with, if it answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Incomplete { source, .. } => source.status(),
            _ => None,
        }
    }

    pub(crate) fn class(&self) -> Class {
        match self {
            Self::InvalidInput { .. }
            | Self::InvalidConfig { .. }
            | Self::ForeignLease { .. }
            | Self::NoFencingToken { .. }
            | Self::Schedule { .. } => Class::Configuration,
            Self::Timeout { .. } => Class::Timeout,
            Self::Incomplete { source, .. } => source.class(),
            Self::Api { .. }
            | Self::Transport { .. }
            | Self::Unexpected { .. }
            | Self::Contended { .. } => Class::Broker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            namespace: "ns".into(),
            key: Some("Tasks/Daily".into()),
            lease: Some("tasks-daily-0123".into()),
        }
    }

    #[test]
    fn messages_name_operation_key_lease_and_status() {
        let error = Error::Api {
            operation: Operation::Renew,
            target: target(),
            status: 403,
            reason: "Forbidden".into(),
            message: "leases is forbidden".into(),
        };
        assert_eq!(
            error.to_string(),
            "renew of lock \"Tasks/Daily\" (Lease ns/tasks-daily-0123) failed: \
             HTTP 403 Forbidden: leases is forbidden"
        );
        assert_eq!(error.status(), Some(403));
        assert_eq!(error.operation(), Operation::Renew);
        assert_eq!(error.class(), Class::Broker);
    }

    #[test]
    fn targets_say_what_they_know() {
        let mut t = target();
        t.key = None;
        assert_eq!(t.to_string(), "Lease ns/tasks-daily-0123");
        t.lease = None;
        assert_eq!(t.to_string(), "Leases in namespace ns");
        t.key = Some("k".into());
        assert_eq!(t.to_string(), "lock \"k\" in namespace ns");
    }

    #[test]
    fn classes() {
        let invalid = Error::InvalidInput {
            operation: Operation::TryAcquire,
            input: "ttl_secs",
            reason: "must be at least 1".into(),
        };
        assert_eq!(invalid.class(), Class::Configuration);
        assert_eq!(
            invalid.to_string(),
            "try_acquire: invalid ttl_secs: must be at least 1"
        );
        let timeout = Error::Timeout {
            operation: Operation::Owner,
            target: target(),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(timeout.class(), Class::Timeout);
        let foreign = Error::ForeignLease {
            operation: Operation::Release,
            target: target(),
        };
        assert_eq!(foreign.class(), Class::Configuration);
    }
}
