//! The builder of a backend: one setter per setting, validated by `build`.

use std::time::Duration;

use crate::backend::KubeLeaseLockBackend;
use crate::config::Config;
use crate::error::{Error, Operation, Result};
use crate::metrics::Metrics;

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
}
