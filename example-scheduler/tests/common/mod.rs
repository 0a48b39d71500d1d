//! Runs scheduler processes and collects their log lines.

// Each test file uses a part of this.
#![allow(dead_code)]

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use celers_kube_lease_scheduler::runs::{summarize, Event, Summary};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// One log line of replica `replica`, and when it was read.
#[derive(Clone, Debug)]
pub struct Line {
    pub replica: usize,
    pub at: Instant,
    pub event: Option<Event>,
}

impl Line {
    /// The new role, if the line says the replica's role changed.
    pub fn role(&self) -> Option<&str> {
        self.event.as_ref()?.new_role()
    }

    /// Whether the line's message starts with `prefix`.
    pub fn says(&self, prefix: &str) -> bool {
        self.event
            .as_ref()
            .is_some_and(|event| event.message.starts_with(prefix))
    }
}

/// Scheduler processes, killed when dropped.
pub struct Replicas {
    children: Vec<Child>,
    pub owners: Vec<String>,
    sender: mpsc::UnboundedSender<Line>,
    receiver: mpsc::UnboundedReceiver<Line>,
    /// Every line read so far.
    pub log: Vec<Line>,
}

impl Replicas {
    pub fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            children: Vec::new(),
            owners: Vec::new(),
            sender,
            receiver,
            log: Vec::new(),
        }
    }

    /// Starts a scheduler as `owner` in `namespace`; returns its index.
    pub fn spawn(
        &mut self,
        kubeconfig: &Path,
        namespace: &str,
        owner: &str,
        args: &[&str],
    ) -> usize {
        self.spawn_with_env(kubeconfig, namespace, owner, args, &[])
    }

    /// [`spawn`](Self::spawn) with more environment variables.
    pub fn spawn_with_env(
        &mut self,
        kubeconfig: &Path,
        namespace: &str,
        owner: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let replica = self.children.len();
        let mut child = Command::new(env!("CARGO_BIN_EXE_celers-kube-lease-scheduler"))
            .args(args)
            // No metrics port unless a test asks for one: replicas share a host.
            .env("METRICS_PORT", "0")
            .envs(env.iter().copied())
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", owner)
            .env("POD_NAMESPACE", namespace)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("SCHEDULER_INTERVAL_SECS")
            .env_remove("SCHEDULER_TTL_SECS")
            .env_remove("SCHEDULER_TASKS")
            .env_remove("SCHEDULER_RUN_FOR_SECS")
            .env_remove("SCHEDULER_CRONTAB")
            .env_remove("SCHEDULER_MODE")
            .env_remove("SCHEDULER_TICK_MS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the scheduler");
        self.forward(replica, child.stdout.take().expect("stdout"));
        self.forward(replica, child.stderr.take().expect("stderr"));
        self.children.push(child);
        self.owners.push(owner.to_owned());
        replica
    }

    fn forward(&self, replica: usize, stream: impl AsyncRead + Unpin + Send + 'static) {
        let sender = self.sender.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                eprintln!("[{replica}] {text}");
                let at = Instant::now();
                let event = Event::parse(&text);
                if sender.send(Line { replica, at, event }).is_err() {
                    break;
                }
            }
        });
    }

    /// Reads lines until `found` returns something for the log, or panics
    /// with `what` at `deadline`.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        found: impl Fn(&[Line]) -> Option<T>,
    ) -> T {
        loop {
            if let Some(value) = found(&self.log) {
                return value;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.receiver.recv()).await {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) | Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Sends `signal` (such as "TERM" or "KILL") to a replica.
    pub fn signal(&self, replica: usize, signal: &str) {
        let pid = self.children[replica].id().expect("the replica is running");
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Waits at most `limit` for a replica to exit.
    pub async fn exit_status(&mut self, replica: usize, limit: Duration) -> ExitStatus {
        let child = &mut self.children[replica];
        tokio::time::timeout(limit, child.wait())
            .await
            .unwrap_or_else(|_| panic!("replica {replica} still running after {limit:?}"))
            .expect("wait for the replica")
    }

    /// Reads what is left of the output (the processes have exited).
    pub async fn drain(&mut self) {
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(300), self.receiver.recv()).await
        {
            self.log.push(line);
        }
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

/// The role of each replica according to its latest `role changed` line.
pub fn roles(log: &[Line], replicas: usize) -> Vec<Option<String>> {
    let mut roles = vec![None; replicas];
    for line in log {
        if let (Some(role), Some(slot)) = (line.role(), roles.get_mut(line.replica)) {
            *slot = Some(role.to_owned());
        }
    }
    roles
}

/// `(entry, instant in Unix seconds)` of every `executed run` line, with
/// the line.
pub fn executed(log: &[Line]) -> Vec<(String, i64, &Line)> {
    log.iter()
        .filter_map(|line| {
            let fire = line.event.as_ref()?.executed()?;
            Some((fire.task.to_owned(), fire.run_ms.div_euclid(1000), line))
        })
        .collect()
}

/// What the `celers-beat-runs` checker says of the log, with gaps longer
/// than an entry's interval plus `failover_bound` counted as skipped.
pub fn summary(log: &[Line], failover_bound: Duration) -> Summary {
    let events: Vec<Event> = log.iter().filter_map(|line| line.event.clone()).collect();
    let bound_ms = i64::try_from(failover_bound.as_millis()).expect("a short bound");
    summarize([("all", events.as_slice())], bound_ms)
}

/// The Lease holder names the replica `owner` (`<owner>_<suffix>`).
pub fn held_by(holder: Option<&str>, owner: &str) -> bool {
    holder.is_some_and(|holder| {
        holder
            .strip_prefix(owner)
            .is_some_and(|rest| rest.starts_with('_'))
    })
}
