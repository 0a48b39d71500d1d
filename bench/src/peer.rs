//! The client-go side: bench/clientgo, one process per scenario and content
//! type. The peer measures its own window (requests, server metrics, CPU).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;

use crate::measure::{Phase, Result, Usage};

/// What client-go sends and asks the API server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentType {
    /// `application/json` (set explicitly: with none, client-go sends
    /// protobuf for built-in types).
    Json,
    /// `application/vnd.kubernetes.protobuf`, JSON accepted too: as
    /// kube-controller-manager and kube-scheduler.
    Protobuf,
}

impl ContentType {
    /// The order of the peer runs and of the report's columns.
    pub const ALL: [Self; 2] = [Self::Json, Self::Protobuf];

    /// The peer's `--content-type`.
    fn flag(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
        }
    }

    /// Names the report's columns and rows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Json => "client-go JSON",
            Self::Protobuf => "client-go protobuf",
        }
    }
}

/// The peer's phases of one scenario, in [`ContentType::ALL`] order; all
/// `None` without a peer.
pub type Peers = [Option<Phase>; ContentType::ALL.len()];

pub struct Peer {
    pub program: PathBuf,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub ttl: u64,
    pub content_type: ContentType,
    /// Passed on: etcd's address, for its WAL fsyncs.
    pub etcd: Option<String>,
    /// Passed on: the server processes whose CPU time the peer reads.
    pub pids: Vec<(String, u32)>,
}

/// The peer's JSON line: a phase, and what its window cost.
#[derive(Deserialize)]
struct Line {
    #[serde(flatten)]
    phase: Phase,
    apiserver_request_secs: f64,
    etcd_request_secs: f64,
    wal_fsyncs: Option<f64>,
    wal_fsync_secs: Option<f64>,
    server_cpu_secs: HashMap<String, f64>,
    client_cpu_secs: f64,
}

impl Peer {
    /// Runs one scenario and reads the JSON line it prints.
    pub async fn run(&self, scenario: &str, extra: &[String]) -> Result<Phase> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace, "--scenario", scenario])
            .args(["--ttl-secs", &self.ttl.to_string()])
            .args(["--content-type", self.content_type.flag()])
            .args(extra);
        if let Some(etcd) = &self.etcd {
            command.args(["--etcd", etcd]);
        }
        for (name, pid) in &self.pids {
            command.arg("--server-pid").arg(format!("{name}={pid}"));
        }
        let output = command
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output()
            .await?;
        let failed =
            |why: String| format!("{}, scenario {scenario}: {why}", self.content_type.label());
        if !output.status.success() {
            return Err(failed(output.status.to_string()).into());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().rev().find(|line| !line.trim().is_empty());
        let line: Line = serde_json::from_str(line.ok_or_else(|| failed("no output".into()))?)?;
        Ok(self.phase(line))
    }

    /// The phase of `line`, its usage in the order of our own.
    fn phase(&self, line: Line) -> Phase {
        let servers = self
            .pids
            .iter()
            .filter_map(|(name, _)| Some((name.clone(), *line.server_cpu_secs.get(name)?)));
        let usage = Usage {
            requests: line.phase.requests,
            server_secs: line.apiserver_request_secs,
            etcd_secs: line.etcd_request_secs,
            fsyncs: line.wal_fsyncs.zip(line.wal_fsync_secs),
            cpu_secs: servers
                .chain([("client".to_owned(), line.client_cpu_secs)])
                .collect(),
        };
        Phase {
            implementation: self.content_type.label().to_owned(),
            usage: Some(usage),
            ..line.phase
        }
    }
}
