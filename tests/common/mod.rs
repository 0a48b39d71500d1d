//! What the real-cluster tests of the library share: a namespace of their
//! own on the control plane of `make test`, and backends in it.

// Each test file uses a part of this.
#![allow(dead_code)]
#![allow(clippy::expect_used)] // a test fails by panicking

use celers_kube_lease::{lease_name, KubeLeaseLockBackend, KubeLeaseLockBackendBuilder};
use celers_kube_lease_testkit::{cluster, Cluster, RequestCounts};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};

pub struct Fixture {
    pub cluster: Cluster,
    pub namespace: String,
    pub leases: Api<Lease>,
}

/// A new namespace whose name starts with `name`.
pub async fn fixture(name: &str) -> Fixture {
    let cluster = cluster();
    let namespace = cluster.namespace(name).await;
    let leases = Api::namespaced(cluster.client().await, &namespace);
    Fixture {
        cluster,
        namespace,
        leases,
    }
}

impl Fixture {
    /// A builder for the namespace, the background sweep off.
    pub fn builder(&self, client: kube::Client) -> KubeLeaseLockBackendBuilder {
        KubeLeaseLockBackend::builder(client)
            .namespace(&self.namespace)
            .sweep_interval(None)
    }

    /// A backend with its own client (its own connections and memory).
    pub async fn backend(&self) -> KubeLeaseLockBackend {
        self.builder(self.cluster.client().await)
            .build()
            .expect("valid settings")
    }

    /// A backend whose client counts the requests it sends.
    pub async fn counted_backend(&self) -> (KubeLeaseLockBackend, RequestCounts) {
        let (client, counts) = self.cluster.counting_client().await;
        (
            self.builder(client).build().expect("valid settings"),
            counts,
        )
    }

    pub async fn lease(&self, key: &str) -> Option<Lease> {
        self.leases
            .get_opt(&lease_name(key))
            .await
            .expect("get lease")
    }

    pub async fn version(&self, key: &str) -> Option<String> {
        self.lease(key)
            .await
            .and_then(|lease| lease.metadata.resource_version)
    }

    /// The names of every Lease in the namespace, sorted.
    pub async fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .leases
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|lease| lease.metadata.name)
            .collect();
        names.sort();
        names
    }

    /// A field of the lock's Lease as `kubectl get -o jsonpath` shows it.
    pub fn raw(&self, key: &str, path: &str) -> String {
        self.cluster.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            &self.namespace,
            &lease_name(key),
            "-o",
            &format!("jsonpath={{{path}}}"),
        ])
    }
}
