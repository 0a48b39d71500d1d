//! Settings of the backend, and the builder that validates them.

use std::time::Duration;

use std::sync::{Arc, Mutex};

use crate::api::LeaseApi;
use crate::backend::{Inner, KubeLeaseLockBackend};
use crate::bulk::Sweeper;
use crate::error::Result;
use crate::error::{Error, Operation};
use crate::known::Known;
use crate::lease::Marks;
use crate::metrics::Metrics;
use crate::naming;
use crate::new_keys::NewKeys;

/// Validated settings of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub namespace: String,
    pub field_manager: String,
    pub label_prefix: String,
    pub request_timeout: Duration,
    pub conflict_retries: u32,
    pub sweep_interval: Option<Duration>,
    pub sweep_grace: Duration,
    pub page_size: u32,
    pub delete_concurrency: usize,
    pub api_server_skew: Duration,
    pub guard_renewals_per_ttl: u32,
}

/// Default `fieldManager` of every write.
pub const DEFAULT_FIELD_MANAGER: &str = "celers-kube-lease";
/// Default prefix of the owner label and the key annotation.
pub const DEFAULT_LABEL_PREFIX: &str = "celers.io";

/// Longest request timeout accepted.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest sweep interval and sweep grace accepted.
const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);
/// Largest API-server skew accepted.
const MAX_API_SERVER_SKEW: Duration = Duration::from_secs(60);
/// Most conflict retries accepted.
const MAX_CONFLICT_RETRIES: u32 = 100;

impl Config {
    pub(crate) fn defaults(namespace: String) -> Self {
        Self {
            namespace,
            field_manager: DEFAULT_FIELD_MANAGER.to_owned(),
            label_prefix: DEFAULT_LABEL_PREFIX.to_owned(),
            request_timeout: Duration::from_secs(10),
            conflict_retries: 5,
            sweep_interval: Some(Duration::from_secs(300)),
            sweep_grace: Duration::from_secs(60),
            page_size: 500,
            delete_concurrency: 16,
            api_server_skew: Duration::from_millis(250),
            guard_renewals_per_ttl: 3,
        }
    }

    /// The first invalid setting, if any.
    pub(crate) fn validate(&self, operation: Operation) -> Result<(), Error> {
        let invalid = |setting, reason: String| {
            Err(Error::InvalidConfig {
                operation,
                setting,
                reason,
            })
        };
        if !naming::is_valid_dns_label(&self.namespace) {
            return invalid(
                "namespace",
                format!(
                    "{:?} is not a valid namespace name (lowercase letters, digits and '-', \
                     at most 63 characters, starting and ending with a letter or digit)",
                    self.namespace
                ),
            );
        }
        if self.field_manager.is_empty()
            || self.field_manager.len() > 128
            || self.field_manager.chars().any(char::is_control)
        {
            return invalid(
                "field_manager",
                format!(
                    "{:?} must be 1 to 128 printable characters",
                    self.field_manager
                ),
            );
        }
        if self.label_prefix.len() > 200 || !naming::is_valid_dns_subdomain(&self.label_prefix) {
            return invalid(
                "label_prefix",
                format!(
                    "{:?} is not a DNS subdomain such as \"celers.io\"",
                    self.label_prefix
                ),
            );
        }
        if self.request_timeout.is_zero() || self.request_timeout > MAX_REQUEST_TIMEOUT {
            return invalid(
                "request_timeout",
                format!(
                    "{:?} is not in (0, {MAX_REQUEST_TIMEOUT:?}]",
                    self.request_timeout
                ),
            );
        }
        if self.conflict_retries > MAX_CONFLICT_RETRIES {
            return invalid(
                "conflict_retries",
                format!(
                    "{} is more than {MAX_CONFLICT_RETRIES}",
                    self.conflict_retries
                ),
            );
        }
        if let Some(interval) = self.sweep_interval {
            if interval.is_zero() || interval > MAX_SWEEP_PERIOD {
                return invalid(
                    "sweep_interval",
                    format!(
                        "{interval:?} is not in (0, {MAX_SWEEP_PERIOD:?}] (use None to turn \
                         sweeping off)"
                    ),
                );
            }
        }
        if self.sweep_grace > MAX_SWEEP_PERIOD {
            return invalid(
                "sweep_grace",
                format!("{:?} is more than {MAX_SWEEP_PERIOD:?}", self.sweep_grace),
            );
        }
        if self.api_server_skew > MAX_API_SERVER_SKEW {
            return invalid(
                "api_server_skew",
                format!(
                    "{:?} is more than {MAX_API_SERVER_SKEW:?}",
                    self.api_server_skew
                ),
            );
        }
        if !(2..=60).contains(&self.guard_renewals_per_ttl) {
            return invalid(
                "guard_renewals_per_ttl",
                format!("{} is not in 2..=60", self.guard_renewals_per_ttl),
            );
        }
        if !(1..=5000).contains(&self.page_size) {
            return invalid(
                "page_size",
                format!("{} is not in 1..=5000", self.page_size),
            );
        }
        if !(1..=256).contains(&self.delete_concurrency) {
            return invalid(
                "delete_concurrency",
                format!("{} is not in 1..=256", self.delete_concurrency),
            );
        }
        Ok(())
    }
}

/// Builds a [`KubeLeaseLockBackend`]; [`build`](Self::build) validates.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use celers_kube_lease::KubeLeaseLockBackend;
///
/// let client = kube::Client::try_default().await?;
/// let backend = KubeLeaseLockBackend::builder(client)
///     .namespace("celers-beat")
///     .request_timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use]
pub struct KubeLeaseLockBackendBuilder {
    client: kube::Client,
    config: Config,
    metrics: Metrics,
}

impl std::fmt::Debug for KubeLeaseLockBackendBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLeaseLockBackendBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KubeLeaseLockBackendBuilder {
    pub(crate) fn new(client: kube::Client) -> Self {
        let namespace = client.default_namespace().to_owned();
        Self {
            client,
            config: Config::defaults(namespace),
            metrics: Metrics::default(),
        }
    }

    /// Namespace of the Leases. Default: the client's default namespace (the
    /// kubeconfig context's, or the pod's own in a cluster).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = namespace.into();
        self
    }

    /// `fieldManager` of every write, as shown in `managedFields` after a
    /// create (updates reset `managedFields`; see the README's "Requests").
    /// Default: `celers-kube-lease`.
    pub fn field_manager(mut self, field_manager: impl Into<String>) -> Self {
        self.config.field_manager = field_manager.into();
        self
    }

    /// Prefix of the owner label (`<prefix>/lock-owner`) and the key
    /// annotation (`<prefix>/lock-key`). Two backends with different prefixes
    /// treat each other's Leases as foreign. Default: `celers.io`.
    pub fn label_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.label_prefix = prefix.into();
        self
    }

    /// Upper bound of each API request; an operation that sends several
    /// requests bounds each one. At most one hour. Default: 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How many times one operation decides again after its conditional
    /// write was rejected (409 Conflict) by a write that changed nothing
    /// about the holder, before it gives up with [`Error::Contended`]. A
    /// write that loses to another owner's acquisition is not counted: the
    /// answer is then `false`. At most 100. Default: 5.
    pub fn conflict_retries(mut self, retries: u32) -> Self {
        self.config.conflict_retries = retries;
        self
    }

    /// How often, at most, a background sweep of expired Leases runs
    /// ([`KubeLeaseLockBackend::sweep_expired`] on a spawned task). A sweep
    /// is started only by a call that *creates* a Lease, only inside a Tokio
    /// runtime, only if this long has passed since the backend was built or
    /// the last sweep started, and never while one is running; its errors
    /// are logged with `tracing` and the next one is tried an interval
    /// later. `None` turns it off. At most 366 days. Default: every 5
    /// minutes.
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.sweep_interval = interval;
        self
    }

    /// How long a Lease must have been expired before a sweep deletes it, so
    /// that its holder can still `release` it for a while. The backend also
    /// forgets the states it remembers of locks expired this long. At most
    /// 366 days. Default: 60 s.
    pub fn sweep_grace(mut self, grace: Duration) -> Self {
        self.config.sweep_grace = grace;
        self
    }

    /// Leases per list page in `release_all` and sweeps. Default: 500.
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.config.page_size = page_size;
        self
    }

    /// Deletes in flight at once in `release_all` and sweeps. Default: 16.
    pub fn delete_concurrency(mut self, concurrency: usize) -> Self {
        self.config.delete_concurrency = concurrency;
        self
    }

    /// The largest difference assumed between the clocks of the API servers
    /// behind the client's endpoint (several behind a load balancer). Every
    /// bound on the server's time is widened by it: takeovers wait this much
    /// longer, and times written into Leases are this much later. Zero is
    /// right for a single API server. At most 60 s. Default: 250 ms. See
    /// [the time model](crate#time).
    pub fn api_server_skew(mut self, skew: Duration) -> Self {
        self.config.api_server_skew = skew;
        self
    }

    /// How many times per TTL a [`LockGuard`](crate::LockGuard) renews its
    /// lock; each renewal, with all its requests, is bounded by TTL / this.
    /// In 2..=60. Default: 3 (every third of the TTL).
    pub fn guard_renewals_per_ttl(mut self, renewals: u32) -> Self {
        self.config.guard_renewals_per_ttl = renewals;
        self
    }

    /// Registers the backend's Prometheus metrics in `registry` (feature
    /// `metrics`); see the [metrics module](crate#metrics) for the list.
    /// Default: no metrics.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics(mut self, registry: &mut prometheus_client::registry::Registry) -> Self {
        self.metrics = Metrics::register(registry);
        self
    }

    /// Validates the settings and builds the backend. Sends nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the first invalid setting and its
    /// range: a namespace that is not a DNS label, an empty field manager, a
    /// label prefix that is not a DNS subdomain, or a number or duration
    /// outside the range its setter documents.
    pub fn build(self) -> Result<KubeLeaseLockBackend, Error> {
        self.config.validate(Operation::Build)?;
        Ok(KubeLeaseLockBackend::from_parts(
            self.client,
            self.config,
            self.metrics,
        ))
    }
}

/// Construction: through the builder, which validates.
impl KubeLeaseLockBackend {
    /// A backend with default settings for the Leases of `namespace`: the
    /// same as `builder(client).namespace(namespace).build()`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `namespace` is not a valid namespace name.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Result<Self> {
        Self::builder(client).namespace(namespace).build()
    }

    /// A builder for the other settings; see [`KubeLeaseLockBackendBuilder`].
    pub fn builder(client: kube::Client) -> KubeLeaseLockBackendBuilder {
        KubeLeaseLockBackendBuilder::new(client)
    }

    /// A backend from settings that [`KubeLeaseLockBackendBuilder::build`]
    /// has validated.
    pub(crate) fn from_parts(client: kube::Client, config: Config, metrics: Metrics) -> Self {
        let api = LeaseApi::new(
            client,
            &config.namespace,
            config.field_manager.clone(),
            config.request_timeout,
            config.api_server_skew,
            metrics.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                api,
                marks: Marks::new(&config.label_prefix),
                sweeper: Sweeper::new(config.sweep_interval),
                config,
                known: Mutex::new(Known::default()),
                metrics,
                held: Mutex::default(),
                new_keys: NewKeys::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(config: Config) -> &'static str {
        match config.validate(Operation::Build) {
            Err(Error::InvalidConfig { setting, .. }) => setting,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(
            Config::defaults("default".into())
                .validate(Operation::Build)
                .ok(),
            Some(())
        );
    }

    #[test]
    fn invalid_settings_are_named() {
        let base = Config::defaults("default".into());
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    namespace: "Not_A_Namespace".into(),
                    ..base.clone()
                },
                "namespace",
            ),
            (
                Config {
                    namespace: String::new(),
                    ..base.clone()
                },
                "namespace",
            ),
            (
                Config {
                    field_manager: String::new(),
                    ..base.clone()
                },
                "field_manager",
            ),
            (
                Config {
                    label_prefix: "Celers".into(),
                    ..base.clone()
                },
                "label_prefix",
            ),
            (
                Config {
                    request_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "request_timeout",
            ),
            (
                Config {
                    sweep_interval: Some(Duration::ZERO),
                    ..base.clone()
                },
                "sweep_interval",
            ),
            (
                Config {
                    page_size: 0,
                    ..base.clone()
                },
                "page_size",
            ),
            (
                Config {
                    delete_concurrency: 0,
                    ..base.clone()
                },
                "delete_concurrency",
            ),
        ];
        let extremes: Vec<(Config, &str)> = vec![
            (
                Config {
                    request_timeout: Duration::MAX,
                    ..base.clone()
                },
                "request_timeout",
            ),
            (
                Config {
                    conflict_retries: u32::MAX,
                    ..base.clone()
                },
                "conflict_retries",
            ),
            (
                Config {
                    sweep_interval: Some(Duration::MAX),
                    ..base.clone()
                },
                "sweep_interval",
            ),
            (
                Config {
                    sweep_grace: Duration::MAX,
                    ..base.clone()
                },
                "sweep_grace",
            ),
            (
                Config {
                    api_server_skew: Duration::MAX,
                    ..base.clone()
                },
                "api_server_skew",
            ),
            (
                Config {
                    guard_renewals_per_ttl: 1,
                    ..base.clone()
                },
                "guard_renewals_per_ttl",
            ),
            (
                Config {
                    page_size: u32::MAX,
                    ..base.clone()
                },
                "page_size",
            ),
            (
                Config {
                    delete_concurrency: usize::MAX,
                    ..base.clone()
                },
                "delete_concurrency",
            ),
        ];
        for (config, setting) in cases.into_iter().chain(extremes) {
            assert_eq!(rejected(config), setting);
        }
    }

    #[test]
    fn rejections_explain_themselves() {
        let config = Config {
            namespace: "Bad Namespace".into(),
            ..Config::defaults(String::new())
        };
        let message = config
            .validate(Operation::Build)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("build: invalid setting namespace: \"Bad Namespace\""),
            "{message}"
        );
    }
}
