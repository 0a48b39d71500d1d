//! The requests this crate sends: one HTTP request each, bounded by the
//! request timeout, with the server's `Date` header fed to the clock.
//!
//! kube's typed `Api` hides response headers, so requests are built with
//! `kube::core::Request` and sent with `Client::send`.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use http::StatusCode;
use kube::api::{DeleteParams, GetParams, ListParams, PostParams, WatchParams};
use kube::client::Body;
use kube::core::params::Preconditions;
use kube::core::{Request, WatchEvent};
use serde::de::DeserializeOwned;

use crate::clock::{LocalInstant, Sample, ServerClock, ServerTime};
use crate::error::{Error, Operation, Target};
use crate::lease::{Lease, LeaseList};
use crate::metrics::Metrics;

/// Why a request did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// The API server answered with an error status.
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// No answer within the request timeout.
    Timeout,
    /// The request could not be sent or its answer not received.
    Transport(kube::Error),
    /// The answer could not be read.
    Unexpected(String),
}

impl Failure {
    /// The HTTP status, when the API server answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The `code` label of the request metrics.
    pub fn label(&self) -> String {
        match self {
            Self::Status { code, .. } => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
            Self::Transport(_) => "transport".to_owned(),
            Self::Unexpected(_) => "unreadable".to_owned(),
        }
    }

    /// The error of `operation` on `target` that this failure amounts to;
    /// `timeout` is the request timeout that a [`Failure::Timeout`] hit.
    pub fn into_error(self, operation: Operation, target: Target, timeout: Duration) -> Error {
        match self {
            Self::Status {
                code,
                reason,
                message,
            } => Error::Api {
                operation,
                target,
                status: code,
                reason,
                message,
            },
            Self::Timeout => Error::Timeout {
                operation,
                target,
                timeout,
            },
            Self::Transport(source) => Error::Transport {
                operation,
                target,
                source: Box::new(source),
            },
            Self::Unexpected(detail) => Error::Unexpected {
                operation,
                target,
                detail,
            },
        }
    }
}

/// The Leases of one namespace.
pub struct LeaseApi {
    client: kube::Client,
    request: Request,
    field_manager: String,
    timeout: Duration,
    clock: Mutex<ServerClock>,
    metrics: Metrics,
}

impl LeaseApi {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        field_manager: String,
        timeout: Duration,
        api_server_skew: Duration,
        metrics: Metrics,
    ) -> Self {
        Self {
            client,
            request: Request::new(format!(
                "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
            )),
            field_manager,
            timeout,
            clock: Mutex::new(ServerClock::new(api_server_skew)),
            metrics,
        }
    }

    /// The client the requests go through.
    #[cfg(feature = "events")]
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The server's time now, once any response has been seen.
    pub fn server_time(&self) -> Option<ServerTime> {
        self.server_time_at(LocalInstant::now())
    }

    /// The server's time at the local instant `at`.
    pub fn server_time_at(&self, at: LocalInstant) -> Option<ServerTime> {
        self.clock.lock().map_or(None, |clock| clock.at(at))
    }

    /// The Lease, or `None` if there is none.
    pub async fn get(&self, name: &str) -> Result<Option<Lease>, Failure> {
        let request = self.request.get(name, &GetParams::default());
        match self.send("get", request).await {
            Ok(body) => decode(&body).map(Some),
            Err(failure) if failure.code() == Some(404) => Ok(None),
            Err(failure) => Err(failure),
        }
    }

    /// Creates the Lease; 409 AlreadyExists if it exists.
    pub async fn create(&self, lease: &Lease) -> Result<Lease, Failure> {
        let body = serde_json::to_vec(lease).map_err(|e| Failure::Unexpected(e.to_string()))?;
        let request = self.request.create(&self.post_params(), body);
        decode(&self.send("create", request).await?)
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.field_manager.clone()),
            ..PostParams::default()
        }
    }

    /// Replaces the Lease (PUT) if its resourceVersion is still the one in
    /// `lease` (409 Conflict if it has changed since, 404 if it is gone).
    pub async fn replace(&self, name: &str, lease: &Lease) -> Result<Lease, Failure> {
        let body = serde_json::to_vec(lease).map_err(|e| Failure::Unexpected(e.to_string()))?;
        let request = self.request.replace(name, &self.post_params(), body);
        decode(&self.send("update", request).await?)
    }

    /// Deletes the Lease if it still has this resourceVersion and uid (409
    /// Conflict otherwise, 404 if it is gone).
    pub async fn delete(
        &self,
        name: &str,
        resource_version: &str,
        uid: &str,
    ) -> Result<(), Failure> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version.to_owned()),
                uid: Some(uid.to_owned()),
            }),
            ..DeleteParams::default()
        };
        self.send("delete", self.request.delete(name, &params))
            .await
            .map(drop)
    }

    /// One page of the Leases matching `selector`.
    pub async fn list(
        &self,
        selector: &str,
        limit: u32,
        continue_token: Option<String>,
    ) -> Result<LeaseList, Failure> {
        let params = ListParams {
            label_selector: Some(selector.to_owned()),
            limit: Some(limit),
            continue_token,
            ..ListParams::default()
        };
        decode(&self.send("list", self.request.list(&params)).await?)
    }

    /// The Lease `name` (or `None`) as of the resourceVersion the answer
    /// was read at, which is returned too: a list with a name field
    /// selector, so that a watch from that version sees every later change,
    /// including a Lease created and deleted again right after.
    pub async fn get_with_version(&self, name: &str) -> Result<(Option<Lease>, String), Failure> {
        let params = ListParams {
            field_selector: Some(format!("metadata.name={name}")),
            ..ListParams::default()
        };
        let list: LeaseList = decode(&self.send("list", self.request.list(&params)).await?)?;
        let version = list
            .metadata
            .resource_version
            .filter(|version| !version.is_empty())
            .ok_or_else(|| Failure::Unexpected("a list without a resourceVersion".to_owned()))?;
        let lease = list
            .items
            .into_iter()
            .find(|lease| lease.metadata.name.as_deref() == Some(name));
        Ok((lease, version))
    }

    /// Changes of the Lease `name` after `from` (a resourceVersion), for at
    /// most `timeout_secs` seconds (the server ends the watch then).
    /// Opening it is bounded by the request timeout and by `within`.
    pub async fn watch(
        &self,
        name: &str,
        from: &str,
        timeout_secs: u32,
        within: Duration,
    ) -> Result<BoxStream<'static, Result<WatchEvent<Lease>, kube::Error>>, Failure> {
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(timeout_secs);
        let request = self
            .request
            .watch(&params, from)
            .map_err(|e| Failure::Unexpected(format!("building the request: {e}")))?;
        let limit = self.timeout.min(within);
        match tokio::time::timeout(limit, self.client.request_events::<Lease>(request)).await {
            Ok(Ok(events)) => Ok(events.boxed()),
            Ok(Err(kube::Error::Api(status))) => Err(Failure::Status {
                code: status.code,
                reason: status.reason,
                message: status.message,
            }),
            Ok(Err(error)) => Err(Failure::Transport(error)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn send(
        &self,
        verb: &'static str,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<Bytes, Failure> {
        let started = std::time::Instant::now();
        let outcome = self.exchange(request).await;
        let code = outcome
            .as_ref()
            .map_or_else(Failure::label, |(status, _)| status.as_str().to_owned());
        self.metrics
            .request(verb, &code, started.elapsed().as_secs_f64());
        outcome.map(|(_, body)| body)
    }

    /// One request and its answer: the status and body of a success.
    async fn exchange(
        &self,
        request: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let request =
            request.map_err(|e| Failure::Unexpected(format!("building the request: {e}")))?;
        let exchange = async {
            let sent = LocalInstant::now();
            let response = self
                .client
                .send(request.map(Body::from))
                .await
                .map_err(Failure::Transport)?;
            let received = LocalInstant::now();
            if let Some(date) = response
                .headers()
                .get(http::header::DATE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| httpdate::parse_http_date(value).ok())
            {
                self.observe(Sample {
                    sent,
                    received,
                    date: DateTime::<Utc>::from(date),
                });
            }
            let status = response.status();
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(Failure::Transport)?;
            if status.is_success() {
                Ok((status, body))
            } else {
                Err(status_failure(status, &body))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout))
    }

    fn observe(&self, sample: Sample) {
        if let Ok(mut clock) = self.clock.lock() {
            clock.observe(sample);
        }
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure::Unexpected(format!("unreadable body: {e}")))
}

/// Reads a Kubernetes `Status` body; falls back to the HTTP status alone.
fn status_failure(status: StatusCode, body: &[u8]) -> Failure {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Status {
        reason: String,
        message: String,
    }
    let parsed: Status = serde_json::from_slice(body).unwrap_or_default();
    let reason = if parsed.reason.is_empty() {
        status.canonical_reason().unwrap_or("").to_owned()
    } else {
        parsed.reason
    };
    let message = if parsed.message.is_empty() {
        String::from_utf8_lossy(body).chars().take(200).collect()
    } else {
        parsed.message
    };
    Failure::Status {
        code: status.as_u16(),
        reason,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bodies_are_read() {
        let body = br#"{"kind":"Status","reason":"Conflict","message":"the object has been modified","code":409}"#;
        match status_failure(StatusCode::CONFLICT, body) {
            Failure::Status {
                code,
                reason,
                message,
            } => {
                assert_eq!(code, 409);
                assert_eq!(reason, "Conflict");
                assert_eq!(message, "the object has been modified");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_bodies_fall_back_to_the_http_status() {
        match status_failure(StatusCode::BAD_GATEWAY, b"upstream down") {
            Failure::Status {
                code,
                reason,
                message,
            } => {
                assert_eq!(code, 502);
                assert_eq!(reason, "Bad Gateway");
                assert_eq!(message, "upstream down");
            }
            other => panic!("{other:?}"),
        }
    }
}
