//! The settings of a [`KubeBeat`], and the builder that validates them.

use std::sync::Mutex;
use std::time::Duration;

use super::identity::unique_owner;
use super::leadership::{Observers, DEFAULT_HEALTH_TOLERANCE};
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
/// Longest health tolerance accepted.
const MAX_HEALTH_TOLERANCE: Duration = Duration::from_secs(3600);
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
    health_tolerance: Duration,
    observers: Observers,
    #[cfg(feature = "events")]
    events_controller: Option<String>,
}

impl KubeBeatBuilder {
    pub(super) fn new(backend: KubeLeaseLockBackend, identity: String) -> Self {
        Self {
            backend,
            identity,
            name: DEFAULT_BEAT_NAME.to_owned(),
            leader_ttl: DEFAULT_LEADER_TTL,
            retry_period: DEFAULT_RETRY_PERIOD,
            health_tolerance: DEFAULT_HEALTH_TOLERANCE,
            observers: Observers::default(),
            #[cfg(feature = "events")]
            events_controller: None,
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

    /// How long past its lease's end a replica that still believes it leads
    /// stays healthy for [`KubeBeat::check_health`] (default 20 s, as
    /// client-go's components pass to `HealthzAdaptor`), at most 1 h.
    pub fn health_tolerance(mut self, tolerance: Duration) -> Self {
        self.health_tolerance = tolerance;
        self
    }

    /// Registers the gauge `leader_election_master_status{name="<name>"}`
    /// in `registry` (feature `metrics`): 1 while this replica leads, else
    /// 0, as client-go's. Default: no gauge.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(mut self, registry: &mut prometheus_client::registry::Registry) -> Self {
        self.observers.gauge = Some(super::leadership::register_gauge(registry, &self.name));
        self
    }

    /// Records an Event on the leader Lease whenever this replica becomes
    /// leader or stops leading (feature `events`), as client-go does: reason
    /// `LeaderElection`, note `<identity> became leader` or `<identity>
    /// stopped leading`, reported by `controller` (the Events' reporting
    /// controller). Needs `create` and `patch` on `events.k8s.io` events.
    /// Default: no Events.
    #[cfg(feature = "events")]
    #[cfg_attr(docsrs, doc(cfg(feature = "events")))]
    pub fn events(mut self, controller: impl Into<String>) -> Self {
        self.events_controller = Some(controller.into());
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (operation `build`) naming the first invalid
    /// setting: `identity`, `name`, `leader_ttl`, `retry_period` or
    /// `health_tolerance`.
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
        if self.health_tolerance > MAX_HEALTH_TOLERANCE {
            return Err(invalid(
                "health_tolerance",
                format!("{:?} is longer than 1 h", self.health_tolerance),
            ));
        }
        let marks = LedgerMarks::new(&self.backend.inner.config.label_prefix);
        let leader_key = format!("{}/leader", self.name);
        #[allow(unused_mut)]
        let mut observers = self.observers;
        #[cfg(feature = "events")]
        if let Some(controller) = &self.events_controller {
            let config = &self.backend.inner.config;
            observers.events = Some(super::leadership::events::Events::new(
                self.backend.inner.api.client().clone(),
                controller,
                &self.identity,
                &config.namespace,
                &crate::naming::lease_name(&leader_key),
                config.request_timeout,
            ));
        }
        Ok(KubeBeat {
            owner: unique_owner(&self.identity),
            leader_key,
            backend: self.backend,
            identity: self.identity,
            name: self.name,
            leader_ttl: self.leader_ttl,
            retry_period: self.retry_period,
            health_tolerance: self.health_tolerance,
            observers,
            marks,
            leader: Mutex::new(None),
            ticking: tokio::sync::Mutex::default(),
        })
    }
}
