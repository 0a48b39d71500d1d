//! What the people who run the scheduler see: `/metrics` (the lock
//! library's metrics and a leader gauge) and `/healthz` on a port of its
//! own, and a Kubernetes Event on the leader Lease whenever this replica
//! becomes leader or stops being it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The leader gauge: 1 while this replica leads, else 0, as client-go's
/// `leader_election_master_status`.
pub fn leader_gauge(registry: &mut Registry) -> Gauge {
    let gauge = Gauge::default();
    registry.register(
        "leader_election_master_status",
        "1 while this replica is the leader, 0 otherwise (as client-go's)",
        gauge.clone(),
    );
    gauge
}

/// Serves `/metrics` and `/healthz` on `addr` until `stop` changes.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics and /healthz");
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stop.changed() => return Ok(()),
        };
        let registry = Arc::clone(&registry);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let registry = Arc::clone(&registry);
                async move { Ok::<_, Infallible>(answer(&request, &registry)) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "metrics connection ended");
            }
        });
    }
}

fn answer(request: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/metrics" => {
            let mut text = String::new();
            match encode(&mut text, registry) {
                Ok(()) => (
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(error) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("encoding the metrics failed: {error}\n"),
                ),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Records Events about this replica's leadership on the leader Lease.
pub struct Leadership {
    recorder: Recorder,
    lease: ObjectReference,
    owner: String,
    gauge: Gauge,
}

impl Leadership {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        owner: &str,
        leader_key: &str,
        gauge: Gauge,
    ) -> Self {
        let reporter = Reporter {
            controller: "celers-beat-scheduler".to_owned(),
            instance: Some(owner.to_owned()),
        };
        let lease = ObjectReference {
            api_version: Some("coordination.k8s.io/v1".to_owned()),
            kind: Some("Lease".to_owned()),
            name: Some(celers_kube_lease::lease_name(leader_key)),
            namespace: Some(namespace.to_owned()),
            ..ObjectReference::default()
        };
        Self {
            recorder: Recorder::new(client, reporter),
            lease,
            owner: owner.to_owned(),
            gauge,
        }
    }

    /// Sets the gauge and records an Event: `BecameLeader` or
    /// `LostLeadership`. A failure to record is logged, never fatal.
    pub async fn changed(&self, leader: bool, was_leader: bool) {
        self.gauge.set(i64::from(leader));
        let (reason, note) = match (leader, was_leader) {
            (true, false) => ("BecameLeader", format!("{} became the leader", self.owner)),
            (false, true) => (
                "LostLeadership",
                format!("{} is no longer the leader", self.owner),
            ),
            _ => return,
        };
        let event = Event {
            type_: EventType::Normal,
            reason: reason.to_owned(),
            note: Some(note),
            action: "LeaderElection".to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &self.lease).await {
            tracing::warn!(%error, reason, "recording the leadership Event failed");
        }
    }
}
