//! The settings of a [`KubeBeat`], and the builder that validates them.

use std::sync::Mutex;
use std::time::Duration;

use super::identity::unique_owner;
use super::ledger::LedgerMarks;
use super::KubeBeat;
use crate::error::{Error, Operation, Result};
use crate::input::{check_key, check_owner, check_ttl_duration};
use crate::KubeLeaseLockBackend;

/// Default name of a beat: its leader lock is `celers-beat/leader`, its
/// ledger Leases carry the label `celers.io/beat=celers-beat`.
pub const DEFAULT_BEAT_NAME: &str = "celers-beat";
/// Default TTL of the leader guard: client-go's default lease duration. A
/// dead leader is replaced within about this plus the retry period.
pub const DEFAULT_LEADER_TTL: Duration = Duration::from_secs(15);
/// Default period at which a standby tries to take the lead: client-go's
/// default retry period.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Shortest leader TTL accepted: the guard renews every third of it.
const MIN_LEADER_TTL: Duration = Duration::from_secs(2);
/// Longest leader TTL accepted.
const MAX_LEADER_TTL: Duration = Duration::from_secs(3600);
/// Shortest retry period accepted.
const MIN_RETRY_PERIOD: Duration = Duration::from_millis(10);
/// Longest beat name accepted, in bytes (it is part of Lease keys).
const MAX_NAME_BYTES: usize = 253;
/// Room left in the owner string for `_` and the random suffix.
const OWNER_SUFFIX_BYTES: usize = 17;

/// Builds a [`KubeBeat`]; every setting is validated by [`build`](Self::build).
#[derive(Debug)]
#[must_use]
pub struct KubeBeatBuilder {
    backend: KubeLeaseLockBackend,
    identity: String,
    name: String,
    leader_ttl: Duration,
    retry_period: Duration,
}

impl KubeBeatBuilder {
    pub(super) fn new(backend: KubeLeaseLockBackend, identity: String) -> Self {
        Self {
            backend,
            identity,
            name: DEFAULT_BEAT_NAME.to_owned(),
            leader_ttl: DEFAULT_LEADER_TTL,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// The beat's name (default [`DEFAULT_BEAT_NAME`]): replicas of one
    /// scheduler share it; two schedulers in one namespace need two names.
    /// 1 to 253 bytes, no control characters.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// TTL of the leader guard (default [`DEFAULT_LEADER_TTL`]), whole
    /// seconds from 2 s to 1 h. The guard renews every third of it; a dead
    /// leader is replaced within about the TTL plus the retry period.
    pub fn leader_ttl(mut self, ttl: Duration) -> Self {
        self.leader_ttl = ttl;
        self
    }

    /// How often a standby tries to take the lead (default
    /// [`DEFAULT_RETRY_PERIOD`]), from 10 ms to the leader TTL: one request
    /// each time, the standby's only one.
    pub fn retry_period(mut self, period: Duration) -> Self {
        self.retry_period = period;
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (operation `build`) naming the first invalid
    /// setting: `identity`, `name`, `leader_ttl` or `retry_period`.
    pub fn build(self) -> Result<KubeBeat> {
        let invalid = |setting, reason: String| Error::InvalidConfig {
            operation: Operation::Build,
            setting,
            reason,
        };
        let reason = |error: Error| match error {
            Error::InvalidInput { reason, .. } => reason,
            other => other.to_string(),
        };
        check_owner(Operation::Build, &self.identity)
            .map_err(|error| invalid("identity", reason(error)))?;
        if self.identity.len() > crate::MAX_OWNER_BYTES - OWNER_SUFFIX_BYTES {
            return Err(invalid(
                "identity",
                format!(
                    "is {} bytes long; at most {} are allowed",
                    self.identity.len(),
                    crate::MAX_OWNER_BYTES - OWNER_SUFFIX_BYTES
                ),
            ));
        }
        check_key(Operation::Build, &self.name).map_err(|error| invalid("name", reason(error)))?;
        if self.name.len() > MAX_NAME_BYTES || self.name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                format!(
                    "{:?}: 1 to {MAX_NAME_BYTES} bytes, no control characters",
                    self.name
                ),
            ));
        }
        check_ttl_duration(Operation::Build, self.leader_ttl)
            .map_err(|error| invalid("leader_ttl", reason(error)))?;
        if !(MIN_LEADER_TTL..=MAX_LEADER_TTL).contains(&self.leader_ttl) {
            return Err(invalid(
                "leader_ttl",
                format!("{:?} is outside 2 s ..= 1 h", self.leader_ttl),
            ));
        }
        if !(MIN_RETRY_PERIOD..=self.leader_ttl).contains(&self.retry_period) {
            return Err(invalid(
                "retry_period",
                format!(
                    "{:?} is outside 10 ms ..= the leader TTL ({:?})",
                    self.retry_period, self.leader_ttl
                ),
            ));
        }
        let marks = LedgerMarks::new(&self.backend.inner.config.label_prefix);
        Ok(KubeBeat {
            owner: unique_owner(&self.identity),
            leader_key: format!("{}/leader", self.name),
            backend: self.backend,
            identity: self.identity,
            name: self.name,
            leader_ttl: self.leader_ttl,
            retry_period: self.retry_period,
            marks,
            leader: Mutex::new(None),
            ticking: tokio::sync::Mutex::default(),
        })
    }
}
