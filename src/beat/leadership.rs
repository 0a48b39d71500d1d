//! What operators see of a replica's leadership, with client-go's names: the
//! gauge `leader_election_master_status{name}` (feature `metrics`), Events
//! with reason `LeaderElection` on the leader Lease (feature `events`), and
//! a health check like client-go's `HealthzAdaptor`.

use std::fmt;
use std::time::Duration;

/// Default tolerance of the health check: client-go's components pass 20 s
/// to `HealthzAdaptor`.
pub const DEFAULT_HEALTH_TOLERANCE: Duration = Duration::from_secs(20);

/// Why [`KubeBeat::check_health`](super::KubeBeat::check_health) failed: this
/// replica still believes it leads, but its leader lock has not been renewed
/// for longer than its TTL plus the tolerance (a stuck leader, to restart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unhealthy {
    /// The leader lock's key.
    pub leader_key: String,
    /// How long past the end of its last renewal's tenure.
    pub expired_for: Duration,
    /// The tolerance it exceeded.
    pub tolerance: Duration,
}

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this replica still believes it leads {:?}, but its lease expired {:?} ago \
             (tolerance {:?})",
            self.leader_key, self.expired_for, self.tolerance
        )
    }
}

impl std::error::Error for Unhealthy {}

/// The observers of one replica's leadership.
#[derive(Default)]
pub struct Observers {
    #[cfg(feature = "metrics")]
    pub gauge: Option<prometheus_client::metrics::gauge::Gauge>,
    #[cfg(feature = "events")]
    pub events: Option<events::Events>,
}

impl fmt::Debug for Observers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observers").finish_non_exhaustive()
    }
}

impl Observers {
    /// This replica became leader (`true`) or stopped leading: sets the
    /// gauge and records an Event, as client-go does.
    pub async fn changed(&self, identity: &str, leading: bool) {
        #[cfg(feature = "metrics")]
        if let Some(gauge) = &self.gauge {
            gauge.set(i64::from(leading));
        }
        #[cfg(feature = "events")]
        if let Some(events) = &self.events {
            let what = if leading {
                "became leader"
            } else {
                "stopped leading"
            };
            events.record(&format!("{identity} {what}")).await;
        }
        #[cfg(not(feature = "events"))]
        let _ = (identity, leading);
    }
}

#[cfg(feature = "metrics")]
pub(super) fn register_gauge(
    registry: &mut prometheus_client::registry::Registry,
    name: &str,
) -> prometheus_client::metrics::gauge::Gauge {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    let family = Family::<Vec<(String, String)>, Gauge>::default();
    registry.register(
        "leader_election_master_status",
        "1 while this replica leads the election `name`, else 0 (as client-go's)",
        family.clone(),
    );
    let gauge = family
        .get_or_create(&vec![("name".to_owned(), name.to_owned())])
        .clone();
    gauge
}

#[cfg(feature = "events")]
pub mod events {
    //! Events on the leader Lease through kube-runtime's recorder.

    use std::time::Duration;

    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    /// client-go's reason for every leader election Event.
    pub const REASON: &str = "LeaderElection";

    /// Records `LeaderElection` Events on one Lease.
    pub struct Events {
        recorder: Recorder,
        lease: ObjectReference,
        timeout: Duration,
    }

    impl Events {
        pub fn new(
            client: kube::Client,
            controller: &str,
            identity: &str,
            namespace: &str,
            lease: &str,
            timeout: Duration,
        ) -> Self {
            let reporter = Reporter {
                controller: controller.to_owned(),
                instance: Some(identity.to_owned()),
            };
            let lease = ObjectReference {
                api_version: Some("coordination.k8s.io/v1".to_owned()),
                kind: Some("Lease".to_owned()),
                name: Some(lease.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectReference::default()
            };
            Self {
                recorder: Recorder::new(client, reporter),
                lease,
                timeout,
            }
        }

        /// Records a Normal Event with `note` (client-go's message); a
        /// failure is logged, never fatal.
        pub async fn record(&self, note: &str) {
            let event = Event {
                type_: EventType::Normal,
                reason: REASON.to_owned(),
                note: Some(note.to_owned()),
                action: REASON.to_owned(),
                secondary: None,
            };
            match tokio::time::timeout(self.timeout, self.recorder.publish(&event, &self.lease))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, note, "recording a leader election Event failed")
                }
                Err(_) => tracing::warn!(note, "recording a leader election Event timed out"),
            }
        }
    }
}
