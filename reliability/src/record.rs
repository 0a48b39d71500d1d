//! What a contender logs: one JSON line per call.

use celers_kube_lease::Error;
use serde::{Deserialize, Serialize};

/// One line of a contender's log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    /// First line: the contender's wall clock, to verify a skew.
    Start {
        /// The contender.
        owner: String,
        /// Its wall clock.
        wall_unix_ms: i64,
        /// The monotonic clock at the same moment.
        mono_ns: u64,
    },
    /// One call of the library.
    Op(OpRecord),
    /// A `once` contender's TTL ran out by its own clock.
    WindowEnd {
        /// The contender.
        owner: String,
        /// The (real) monotonic clock at that moment.
        mono_ns: u64,
    },
    /// After `Ok(false)` to a `try_acquire` or `renew` of a key the
    /// contender held by the claim rule: what `owner` read right after, to
    /// tell a lock lost (Lease gone or another holder) from a renewal the
    /// library refused in doubt (its clock bound, widened by API servers'
    /// clocks that disagree, could not rule out that the lock had expired)
    /// while the Lease still names the holder.
    Recheck {
        /// The contender.
        owner: String,
        /// The key.
        key: String,
        /// Monotonic time of the answer to the read.
        mono_ns: u64,
        /// The live holder read, or the error.
        holder: Result<Option<String>, String>,
    },
    /// Last line: the contender stopped by itself.
    Done {
        /// The contender.
        owner: String,
    },
}

/// A call of the library and its answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpRecord {
    /// Who called.
    pub owner: String,
    /// What.
    pub op: Op,
    /// The lock key (`None` for `release_all`).
    pub key: Option<String>,
    /// The TTL asked for (0 when the call takes none).
    pub ttl_secs: u64,
    /// Monotonic time just before the call.
    pub sent_ns: u64,
    /// Monotonic time just after the answer.
    pub recv_ns: u64,
    /// The answer.
    pub outcome: Outcome,
}

/// The library calls a contender makes: the library's own names.
pub use celers_kube_lease::Operation as Op;

/// The answer to a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// `Ok(true)`
    True,
    /// `Ok(false)`
    False,
    /// `Ok(n)` of `release_all` and `sweep_expired`.
    Count {
        /// How many Leases were deleted.
        n: u64,
    },
    /// `Ok(holder)` of `owner`.
    Holder {
        /// The live holder.
        holder: Option<String>,
    },
    /// `Err(..)`.
    Error {
        /// The variant (with the HTTP status for `Api`).
        error: String,
        /// Its message.
        message: String,
    },
}

impl Outcome {
    /// From a boolean answer.
    pub fn of_bool(result: &celers_kube_lease::Result<bool>) -> Self {
        match result {
            Ok(true) => Outcome::True,
            Ok(false) => Outcome::False,
            Err(e) => Self::of_error(e),
        }
    }

    /// From an error; the message includes its sources.
    pub fn of_error(error: &Error) -> Self {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        Outcome::Error {
            error: error_kind(error),
            message,
        }
    }
}

/// The variant of a library error, e.g. `Api(503)` or `Timeout`.
pub fn error_kind(error: &Error) -> String {
    match error {
        Error::InvalidInput { input, .. } => format!("InvalidInput({input})"),
        Error::InvalidConfig { setting, .. } => format!("InvalidConfig({setting})"),
        Error::Api { status, .. } => format!("Api({status})"),
        Error::Timeout { .. } => "Timeout".to_owned(),
        Error::Transport { .. } => "Transport".to_owned(),
        Error::Unexpected { .. } => "Unexpected".to_owned(),
        Error::ForeignLease { .. } => "ForeignLease".to_owned(),
        Error::Contended { .. } => "Contended".to_owned(),
        Error::Incomplete { source, .. } => format!("Incomplete({})", error_kind(source)),
        _ => "Other".to_owned(),
    }
}
