//! Clients and backends for the control plane, from a kubeconfig.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease::{KubeLeaseLockBackend, KubeLeaseLockBackendBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::ConfigExt;
use kube::config::Kubeconfig;
use kube::{Client, Config};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Result;

/// How to connect.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// Talk to `https://127.0.0.1:<port>` (a proxy) instead of the
    /// kubeconfig's server; the serving certificate is still verified.
    pub server_port: Option<u16>,
    /// Verify the server's certificate chain and name, but judge its
    /// validity period at the certificate's own `notBefore`. For a process
    /// whose wall clock is set back: the local control plane's certificates
    /// are minutes old, so such a process would see them as not yet valid.
    pub ignore_cert_validity_period: bool,
}

/// The API server's address in the kubeconfig at `path`.
pub fn server_addr(path: &Path) -> Result<SocketAddr> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let server = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or("the kubeconfig names no server")?;
    let uri: http::Uri = server.parse()?;
    let host = uri.host().ok_or("the server URL has no host")?;
    let port = uri.port_u16().unwrap_or(443);
    Ok(format!("{host}:{port}").parse()?)
}

/// A new client with its own connections.
pub async fn client(path: &Path, connect: &Connect) -> Result<Client> {
    let mut config = celers_kube_lease_testkit::config_from(path).await?;
    if let Some(port) = connect.server_port {
        config.cluster_url = format!("https://127.0.0.1:{port}").parse()?;
    }
    if connect.ignore_cert_validity_period {
        client_ignoring_validity_period(config)
    } else {
        Ok(Client::try_from(config)?)
    }
}

/// A backend on `client` with the settings the checks use.
pub fn backend(
    client: Client,
    namespace: &str,
    request_timeout: Duration,
) -> Result<KubeLeaseLockBackend> {
    Ok(builder(client, namespace, request_timeout).build()?)
}

/// A backend as the contenders use it: it also sweeps expired Leases in
/// the background, every 2 s and without grace, so that sweeps race with
/// takeovers and late releases. `api_server_skew` is the builder's setting:
/// `None` for one API server (see [`ONE_API_SERVER_SKEW`]), `Some(d)` for
/// several behind a balancer (the library's default is 250 ms).
pub fn contender_backend(
    client: Client,
    namespace: &str,
    request_timeout: Duration,
    api_server_skew: Option<Duration>,
) -> Result<KubeLeaseLockBackend> {
    Ok(builder(client, namespace, request_timeout)
        .api_server_skew(api_server_skew.unwrap_or(ONE_API_SERVER_SKEW))
        .sweep_interval(Some(Duration::from_secs(2)))
        .sweep_grace(Duration::ZERO)
        .build()?)
}

/// The single-server checks run against one API server, so they assume no
/// skew between API servers: the tightest bound, where a flaw in the time
/// model shows.
pub const ONE_API_SERVER_SKEW: Duration = Duration::ZERO;

fn builder(
    client: Client,
    namespace: &str,
    request_timeout: Duration,
) -> KubeLeaseLockBackendBuilder {
    KubeLeaseLockBackend::builder(client)
        .namespace(namespace)
        .request_timeout(request_timeout)
        .api_server_skew(ONE_API_SERVER_SKEW)
}

/// kube's own client stack (base URI, retries, auth) over a TLS
/// configuration whose verifier ignores only the validity period.
fn client_ignoring_validity_period(config: Config) -> Result<Client> {
    let mut tls = config.rustls_client_config()?;
    let mut roots = RootCertStore::empty();
    for der in config.root_cert.clone().unwrap_or_default() {
        roots.add(CertificateDer::from(der))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
    tls.dangerous()
        .set_certificate_verifier(Arc::new(AtNotBefore { inner }));
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(tower::retry::RetryLayer::new(RetryPolicy::server_retry()))
        .option_layer(config.auth_layer()?)
        .map_err(crate::BoxError::from)
        .service(http_client);
    Ok(Client::new(service, config.default_namespace))
}

#[derive(Debug)]
struct AtNotBefore {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for AtNotBefore {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut at = now;
        for _ in 0..3 {
            match self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                at,
            ) {
                Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                    not_before,
                    ..
                })) => at = not_before,
                other => return other,
            }
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, at)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Creates a namespace named `prefix-<random>` and returns its name.
pub async fn create_namespace(client: &Client, prefix: &str) -> Result<String> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let name = format!("{prefix}-{:08x}", rand::random::<u32>());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(name)
}

/// Names of the Leases of this crate in `namespace`.
pub async fn our_leases(client: &Client, namespace: &str) -> Result<Vec<String>> {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::{Api, ListParams};
    let selector = format!(
        "{}={}",
        celers_kube_lease::MANAGED_BY_LABEL,
        celers_kube_lease::MANAGED_BY_VALUE
    );
    let list = Api::<Lease>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|l| l.metadata.name)
        .collect())
}

/// A client that authenticates with `token` instead of the kubeconfig's
/// client certificate (testkit's, which the other crates' tests use too).
pub async fn client_with_token(path: &Path, token: &str) -> Result<Client> {
    let cluster = celers_kube_lease_testkit::Cluster {
        kubeconfig: path.to_owned(),
    };
    Ok(cluster.client_with_token(token).await)
}
