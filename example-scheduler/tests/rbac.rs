//! The RBAC of deploy/ is enough for the scheduler, and no more: with the
//! ServiceAccount's token every lock operation works in its namespace, the
//! scheduler binary runs, and Leases elsewhere and Secrets are forbidden.

mod common;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use celers_kube_lease::{Error, KubeLeaseLockBackend};
use celers_kube_lease_testkit::{cluster, repo_root, Cluster};
use common::{executed, Replicas};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

const NAMESPACE: &str = "celers-beat";
const SERVICE_ACCOUNT: &str = "celers-beat-scheduler";

/// Applies deploy/ once per test binary, checks a server dry run of it, and
/// returns a token of the ServiceAccount.
fn service_account_token(cluster: &Cluster) -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let deploy = repo_root().join("deploy");
        let deploy = deploy.to_str().expect("UTF-8 path");
        cluster.kubectl_ok(&["apply", "--server-side", "-k", deploy]);
        cluster.kubectl_ok(&["apply", "--dry-run=server", "-k", deploy]);
        let token = cluster.kubectl_ok(&["-n", NAMESPACE, "create", "token", SERVICE_ACCOUNT]);
        token.trim().to_owned()
    })
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn assert_forbidden<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Api { status: 403, .. }) => {}
        other => panic!("expected HTTP 403 as Error::Api, got {other:?}"),
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn service_account_may_do_every_lock_operation_in_its_namespace_only() {
    let cluster = cluster();
    let client = cluster
        .client_with_token(service_account_token(&cluster))
        .await;
    let backend = KubeLeaseLockBackend::builder(client.clone())
        .namespace(NAMESPACE)
        .build()
        .expect("backend");
    let (key, other_key, owner) = (
        unique("rbac-key"),
        unique("rbac-other"),
        unique("rbac-owner"),
    );

    assert!(backend
        .try_acquire(&key, &owner, 30)
        .await
        .expect("try_acquire"));
    assert!(backend.renew(&key, &owner, 30).await.expect("renew"));
    assert!(backend.is_locked(&key).await.expect("is_locked"));
    assert_eq!(
        backend.owner(&key).await.expect("owner"),
        Some(owner.clone())
    );
    assert!(backend.release(&key, &owner).await.expect("release"));
    assert!(!backend.is_locked(&key).await.expect("is_locked"));
    assert!(backend
        .try_acquire(&other_key, &owner, 30)
        .await
        .expect("try_acquire"));
    assert_eq!(backend.release_all(&owner).await.expect("release_all"), 1);
    backend.sweep_expired().await.expect("sweep_expired");

    // Guards, and waiting for a lock (a watch).
    let guard = backend
        .try_lock(&key, &owner, Duration::from_secs(30))
        .await
        .expect("try_lock")
        .expect("free");
    let waiter = tokio::spawn({
        let (backend, key) = (backend.clone(), key.clone());
        async move {
            backend
                .lock(
                    &key,
                    "rbac-waiter",
                    Duration::from_secs(30),
                    Duration::from_secs(20),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(guard.release().await.expect("release"));
    let next = waiter
        .await
        .expect("waiter")
        .expect("lock")
        .expect("acquired");
    assert!(next.release().await.expect("release"));

    // Leases of another namespace: 403 from every kind of request.
    let elsewhere = KubeLeaseLockBackend::builder(client.clone())
        .namespace("default")
        .build()
        .expect("backend");
    assert_forbidden(elsewhere.try_acquire(&key, &owner, 30).await);
    assert_forbidden(elsewhere.owner(&key).await);
    assert_forbidden(elsewhere.release_all(&owner).await);
    assert_forbidden(
        elsewhere
            .lock(
                &key,
                &owner,
                Duration::from_secs(30),
                Duration::from_secs(1),
            )
            .await,
    );

    // Secrets, even in its own namespace.
    let secrets: Api<Secret> = Api::namespaced(client, NAMESPACE);
    match secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("expected HTTP 403 listing Secrets, got {other:?}"),
    }
}

/// A kubeconfig file that authenticates with `token`; removed when dropped.
struct TokenKubeconfig(PathBuf);

impl TokenKubeconfig {
    fn write(cluster: &Cluster, token: &str) -> Self {
        let kubeconfig = cluster.kubeconfig_with_token(token);
        let path = std::env::temp_dir().join(format!("{}.kubeconfig", unique("celers-rbac")));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("create the kubeconfig");
        // JSON is YAML.
        serde_json::to_writer(&mut file, &kubeconfig).expect("write the kubeconfig");
        file.flush().expect("flush the kubeconfig");
        Self(path)
    }
}

impl Drop for TokenKubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn scheduler_runs_as_the_service_account() {
    let cluster = cluster();
    let kubeconfig = TokenKubeconfig::write(&cluster, service_account_token(&cluster));
    let mut replicas = Replicas::new(&kubeconfig.0, NAMESPACE);
    let owner = unique("rbac-scheduler");
    let args = [
        celers_kube_lease_scheduler::replicas::SHORT_ARGS,
        &["--run-for-secs", "4"],
    ]
    .concat();
    let replica = replicas.spawn(&owner, &args);

    let status = replicas.exit_status(replica, Duration::from_secs(20)).await;
    replicas.drain().await;
    assert!(status.success(), "the scheduler exited with {status}");
    let log = replicas.log();
    assert!(executed(log).len() >= 4, "too few executed runs");
    assert_eq!(replicas.summary(Duration::ZERO).total(|e| e.twice), 0);
    assert!(
        log.iter().any(|l| l.says("released locks")),
        "no shutdown line"
    );
    let problems: Vec<_> = log
        .iter()
        .filter_map(|l| l.event.as_ref())
        .filter(|event| matches!(event.level.as_deref(), Some("WARN" | "ERROR")))
        .collect();
    assert!(problems.is_empty(), "warnings or errors: {problems:#?}");
}
