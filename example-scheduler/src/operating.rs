//! What the people who run the scheduler see on a port of its own:
//! `/metrics` (the lock library's metrics and KubeBeat's client-go gauge
//! `leader_election_master_status{name}`) and `/healthz` (KubeBeat's health
//! check: fails a replica that believes it leads while its lease has been
//! over for longer than the tolerance). KubeBeat itself records the
//! leadership Events on the leader Lease.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use celers_kube_lease::KubeBeat;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `/metrics` and `/healthz` on `addr` until `stop` changes.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    beat: Arc<KubeBeat>,
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
        let beat = Arc::clone(&beat);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let registry = Arc::clone(&registry);
                let beat = Arc::clone(&beat);
                async move { Ok::<_, Infallible>(answer(&request, &registry, &beat)) }
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

fn answer(
    request: &Request<Incoming>,
    registry: &Registry,
    beat: &KubeBeat,
) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz" => match beat.check_health() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
            Err(unhealthy) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("{unhealthy}\n"),
            ),
        },
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
