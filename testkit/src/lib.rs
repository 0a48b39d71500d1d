//! Test support for the crates of this workspace: the real local control
//! plane (etcd + kube-apiserver) that `hack/control-plane.sh` starts.
//!
//! `make test` starts one control plane and points the tests at it through
//! `CELERS_TEST_KUBECONFIG`. A test that needs the cluster calls
//! [`cluster`], which panics, failing the test, when that variable is
//! missing: cluster tests never skip silently. Fault tests that kill the API
//! server start a [`ControlPlane`] of their own.
//!
//! Every binary and test of the workspace that is given a kubeconfig builds
//! its client with [`client_from`] (or [`config_from`], to build several).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Environment variable holding the shared control plane's kubeconfig path.
pub const KUBECONFIG_ENV: &str = "CELERS_TEST_KUBECONFIG";

/// What the kubeconfig helpers fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client settings of the kubeconfig at `path` (its current context).
///
/// # Errors
///
/// When the file cannot be read or does not make a client configuration.
pub async fn config_from(path: &Path) -> Result<Config, BoxError> {
    config_of(Kubeconfig::read_from(path)?).await
}

/// The client settings of `kubeconfig` (its current context).
///
/// # Errors
///
/// When it does not make a client configuration.
pub async fn config_of(kubeconfig: Kubeconfig) -> Result<Config, BoxError> {
    Ok(Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

/// A new client, with its own connections, from the kubeconfig at `path`:
/// how every binary and test of the workspace that is given a kubeconfig
/// builds its client.
///
/// # Errors
///
/// As for [`config_from`], and when the client cannot be built.
pub async fn client_from(path: &Path) -> Result<Client, BoxError> {
    Ok(Client::try_from(config_from(path).await?)?)
}

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `hack/control-plane.sh`.
pub fn control_plane_script() -> PathBuf {
    repo_root().join("hack/control-plane.sh")
}

/// A control plane the tests can talk to.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Its admin kubeconfig.
    pub kubeconfig: PathBuf,
}

/// The shared control plane of `make test`.
///
/// # Panics
///
/// When `CELERS_TEST_KUBECONFIG` is not set or names no file: run the tests
/// with `make test`, which starts the control plane.
pub fn cluster() -> Cluster {
    let path = std::env::var_os(KUBECONFIG_ENV).unwrap_or_else(|| {
        panic!(
            "{KUBECONFIG_ENV} is not set: this test needs the local control plane. \
             Run `make test`, which starts it (or `hack/control-plane.sh up` and export \
             {KUBECONFIG_ENV}=<the path it prints>)."
        )
    });
    let kubeconfig = PathBuf::from(path);
    assert!(
        kubeconfig.is_file(),
        "{KUBECONFIG_ENV}={} is not a file: is the control plane up?",
        kubeconfig.display()
    );
    Cluster { kubeconfig }
}

impl Cluster {
    /// A new client with its own connection pool.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig)
            .await
            .expect("a client from the kubeconfig")
    }

    /// The kubeconfig with `token` in place of the admin certificate.
    pub fn kubeconfig_with_token(&self, token: &str) -> Kubeconfig {
        let mut kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("readable kubeconfig");
        for auth in &mut kubeconfig.auth_infos {
            if let Some(info) = auth.auth_info.as_mut() {
                info.client_certificate_data = None;
                info.client_key_data = None;
                info.token = Some(token.to_owned().into());
            }
        }
        kubeconfig
    }

    /// A client that authenticates with `token` instead of the admin cert.
    pub async fn client_with_token(&self, token: &str) -> Client {
        let config = config_of(self.kubeconfig_with_token(token))
            .await
            .expect("valid kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// A new client that counts the requests it sends.
    pub async fn counting_client(&self) -> (Client, RequestCounts) {
        let config = config_from(&self.kubeconfig)
            .await
            .expect("valid kubeconfig");
        let counts = RequestCounts::default();
        let layer = {
            let counts = counts.clone();
            tower::layer::layer_fn(move |inner| Counting {
                inner,
                counts: counts.clone(),
            })
        };
        let client = kube::client::ClientBuilder::try_from(config)
            .expect("client builder")
            .with_layer(&layer)
            .build();
        (client, counts)
    }

    /// Creates a namespace with a unique name starting with `prefix`.
    pub async fn namespace(&self, prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "{prefix}-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let name: String = name.chars().take(63).collect();
        let name = name.trim_end_matches('-').to_owned();
        let namespaces: Api<Namespace> = Api::all(self.client().await);
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name }
        }))
        .expect("namespace");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        name
    }

    /// Runs the built kubectl against this control plane.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(control_plane_script())
            .arg("kubectl")
            .args(args)
            .env("CONTROL_PLANE_DIR", self.state_dir())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl and returns its stdout, panicking on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn state_dir(&self) -> PathBuf {
        self.kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// Requests a [`Cluster::counting_client`] sent, by kind: `GET`, `WATCH`,
/// `POST`, `PATCH`, `PUT`, `DELETE`.
#[derive(Clone, Debug, Default)]
pub struct RequestCounts(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounts {
    /// Requests of one kind so far.
    pub fn get(&self, kind: &str) -> u64 {
        self.0
            .lock()
            .expect("counts")
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Writes so far: creates, patches, updates and deletes.
    pub fn writes(&self) -> u64 {
        ["POST", "PATCH", "PUT", "DELETE"]
            .iter()
            .map(|kind| self.get(kind))
            .sum()
    }

    /// Reads so far, watches not included.
    pub fn reads(&self) -> u64 {
        self.get("GET")
    }

    fn count<B>(&self, request: &http::Request<B>) {
        let watch = request.uri().query().is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair == "watch=true" || pair == "watch=1")
        });
        let kind = if watch {
            "WATCH".to_owned()
        } else {
            request.method().as_str().to_owned()
        };
        *self.0.lock().expect("counts").entry(kind).or_default() += 1;
    }
}

#[derive(Clone)]
struct Counting<S> {
    inner: S,
    counts: RequestCounts,
}

impl<S, B> tower::Service<http::Request<B>> for Counting<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.counts.count(&request);
        self.inner.call(request)
    }
}

/// A control plane of a test's own, in its own state directory, so that the
/// test may kill and restart its processes. Stopped when dropped.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    cluster: Cluster,
}

impl ControlPlane {
    /// Starts a new instance in a fresh directory named after `name`.
    pub fn start(name: &str) -> Self {
        Self::start_with(name, &[])
    }

    /// Starts a new highly available instance (`CONTROL_PLANE_TOPOLOGY=ha`):
    /// etcd members `etcd-0..2`, `apiservers` kube-apiservers
    /// `kube-apiserver-0..` with adjustable clocks, and `haproxy` in front of
    /// them in `lb_mode` (`tcp` or `http`); the kubeconfig points at HAProxy.
    /// [`kill`](Self::kill), [`start_process`](Self::start_process),
    /// [`skew`](Self::skew) and [`lb_mode`](Self::lb_mode) take those names.
    pub fn start_ha(name: &str, apiservers: u32, lb_mode: &str) -> Self {
        let apiservers = apiservers.to_string();
        Self::start_with(
            name,
            &[
                ("CONTROL_PLANE_TOPOLOGY", "ha"),
                ("CONTROL_PLANE_APISERVERS", apiservers.as_str()),
                ("CONTROL_PLANE_LB_MODE", lb_mode),
            ],
        )
    }

    fn start_with(name: &str, env: &[(&str, &str)]) -> Self {
        let base =
            std::env::temp_dir().join(format!("celers-kube-lease-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("temp dir");
        let dir = base.join("cp");
        let kubeconfig = run_script_env(&dir, &["up"], env);
        Self {
            dir,
            cluster: Cluster {
                kubeconfig: PathBuf::from(kubeconfig),
            },
        }
    }

    /// The cluster to talk to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The PID of `etcd` or `kube-apiserver` (HA: `etcd-0`, `kube-apiserver-1`,
    /// `haproxy`, ...).
    pub fn pid(&self, process: &str) -> u32 {
        run_script(&self.dir, &["pid", process])
            .parse()
            .expect("numeric pid")
    }

    /// Sends SIGKILL to `etcd` or `kube-apiserver`.
    pub fn kill(&self, process: &str) {
        let pid = self.pid(process);
        let status = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {pid} ({process})");
    }

    /// Restarts whatever is dead, on the same ports and data.
    pub fn repair(&self) {
        run_script(&self.dir, &["up"]);
    }

    /// Restarts the dead process `name` on its old ports and data and waits
    /// until it is ready.
    pub fn start_process(&self, name: &str) {
        run_script(&self.dir, &["start", name]);
    }

    /// HA: sets the clock offset of API server `name` (such as
    /// `kube-apiserver-1`) to `millis`, effective within 100 ms.
    pub fn skew(&self, name: &str, millis: i64) {
        run_script(&self.dir, &["skew", name, &millis.to_string()]);
    }

    /// HA: switches the load balancer to `tcp` or `http` mode.
    pub fn lb_mode(&self, mode: &str) {
        run_script(&self.dir, &["lb-mode", mode]);
    }

    /// A kubeconfig that talks to process `name` only (HA), or the admin one.
    pub fn kubeconfig_of(&self, name: &str) -> PathBuf {
        PathBuf::from(run_script(&self.dir, &["kubeconfig", name]))
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(control_plane_script())
            .arg("down")
            .env("CONTROL_PLANE_DIR", &self.dir)
            .output();
        if let Some(base) = self.dir.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

/// Runs `hack/control-plane.sh ARGS` on the instance in `dir` and returns the
/// last line of its output.
fn run_script(dir: &Path, args: &[&str]) -> String {
    run_script_env(dir, args, &[])
}

/// [`run_script`] with more environment.
fn run_script_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(control_plane_script())
        .args(args)
        .env("CONTROL_PLANE_DIR", dir)
        .envs(env.iter().copied())
        .output()
        .expect("run hack/control-plane.sh");
    assert!(
        output.status.success(),
        "hack/control-plane.sh {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}
