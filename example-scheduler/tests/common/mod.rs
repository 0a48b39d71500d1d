//! The library's replica spawner, with the panics a test wants.

// Each test file uses a part of this.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

pub use celers_kube_lease_scheduler::replicas::{executed, held_by, roles, Line};
use celers_kube_lease_scheduler::runs::Summary;

/// Scheduler processes of this package's binary, echoing their output.
pub struct Replicas(pub celers_kube_lease_scheduler::replicas::Replicas);

impl Replicas {
    pub fn new(kubeconfig: &Path, namespace: &str) -> Self {
        let exe = Path::new(env!("CARGO_BIN_EXE_celers-kube-lease-scheduler"));
        Self(celers_kube_lease_scheduler::replicas::Replicas::new(
            exe, kubeconfig, namespace, true,
        ))
    }

    pub fn owners(&self) -> &[String] {
        &self.0.owners
    }

    pub fn log(&self) -> &[Line] {
        &self.0.log
    }

    pub fn spawn(&mut self, owner: &str, args: &[&str]) -> usize {
        self.spawn_with_env(owner, args, &[])
    }

    pub fn spawn_with_env(&mut self, owner: &str, args: &[&str], env: &[(&str, &str)]) -> usize {
        self.0.spawn(owner, args, env).expect("start the scheduler")
    }

    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        found: impl Fn(&[Line]) -> Option<T>,
    ) -> T {
        self.0
            .wait_for(what, deadline, found)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn signal(&self, replica: usize, signal: &str) {
        self.0
            .signal(replica, signal)
            .unwrap_or_else(|error| panic!("{error}"));
    }

    pub async fn exit_status(&mut self, replica: usize, limit: Duration) -> ExitStatus {
        self.0
            .exit_status(replica, limit)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
    }

    pub async fn drain(&mut self) {
        self.0.drain().await;
    }

    pub fn summary(&self, failover_bound: Duration) -> Summary {
        self.0.summary(failover_bound)
    }
}
