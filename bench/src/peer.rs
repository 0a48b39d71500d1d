//! The client-go side: bench/clientgo, one process per scenario.

use std::path::PathBuf;
use std::process::Stdio;

use crate::measure::{Phase, Result};

pub struct Peer {
    pub program: PathBuf,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub ttl: u64,
}

impl Peer {
    /// Runs one scenario and reads the JSON line it prints.
    pub async fn run(&self, scenario: &str, extra: &[String]) -> Result<Phase> {
        let output = tokio::process::Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace, "--scenario", scenario])
            .args(["--ttl-secs", &self.ttl.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .output()
            .await?;
        if !output.status.success() {
            return Err(format!("client-go peer, scenario {scenario}: {}", output.status).into());
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().rev().find(|line| !line.trim().is_empty());
        let line = line.ok_or_else(|| format!("client-go peer, scenario {scenario}: no output"))?;
        Ok(serde_json::from_str(line)?)
    }
}
