//! Scheduler processes for tests and reliability runs: started with a
//! kubeconfig, a namespace and an owner, their log lines collected, sent
//! signals, killed when dropped. The one place that spawns replicas.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::runs::{summarize, Event, Summary};

/// Settings for short checks: task-0 every second and task-1 every 2 s, no
/// crontab entry, a leader TTL of 3 s (standbys retry every second).
pub const SHORT_ARGS: &[&str] = &[
    "--interval-secs",
    "1",
    "--ttl-secs",
    "3",
    "--tasks",
    "2",
    "--crontab",
    "none",
];

/// The scheduler's environment settings, cleared so that only the
/// arguments given count.
const SETTINGS: &[&str] = &[
    "SCHEDULER_INTERVAL_SECS",
    "SCHEDULER_TTL_SECS",
    "SCHEDULER_TASKS",
    "SCHEDULER_RUN_FOR_SECS",
    "SCHEDULER_CRONTAB",
    "SCHEDULER_MODE",
    "SCHEDULER_TICK_MS",
    "SCHEDULER_TEST_STOP_BEFORE_LOCK",
];

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

/// Scheduler processes of the binary `exe`, killed when dropped.
pub struct Replicas {
    exe: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
    /// Whether each replica's lines are echoed to stderr.
    echo: bool,
    children: Vec<Child>,
    pub owners: Vec<String>,
    sender: mpsc::UnboundedSender<Line>,
    receiver: mpsc::UnboundedReceiver<Line>,
    /// Every line read so far.
    pub log: Vec<Line>,
}

impl Replicas {
    /// Replicas of `exe` on the cluster of `kubeconfig`, in `namespace`;
    /// `echo` copies their output to stderr, prefixed with their index.
    pub fn new(exe: &Path, kubeconfig: &Path, namespace: &str, echo: bool) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            exe: exe.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
            namespace: namespace.to_owned(),
            echo,
            children: Vec::new(),
            owners: Vec::new(),
            sender,
            receiver,
            log: Vec::new(),
        }
    }

    /// Starts a scheduler as `owner` with `args` and more environment
    /// variables `env`; returns its index.
    pub fn spawn(
        &mut self,
        owner: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> std::io::Result<usize> {
        let replica = self.children.len();
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            // No metrics port unless asked for: replicas share a host.
            .env("METRICS_PORT", "0")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("POD_NAME", owner)
            .env("POD_NAMESPACE", &self.namespace)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in SETTINGS {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn()?;
        if let Some(stdout) = child.stdout.take() {
            self.forward(replica, stdout);
        }
        if let Some(stderr) = child.stderr.take() {
            self.forward(replica, stderr);
        }
        self.children.push(child);
        self.owners.push(owner.to_owned());
        Ok(replica)
    }

    fn forward(&self, replica: usize, stream: impl AsyncRead + Unpin + Send + 'static) {
        let sender = self.sender.clone();
        let echo = self.echo;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(text)) = lines.next_line().await {
                if echo {
                    eprintln!("[{replica}] {text}");
                }
                let at = Instant::now();
                let event = Event::parse(&text);
                if sender.send(Line { replica, at, event }).is_err() {
                    break;
                }
            }
        });
    }

    /// Reads lines until `found` returns something for the log; an error
    /// naming `what` at `deadline`.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        deadline: Instant,
        found: impl Fn(&[Line]) -> Option<T>,
    ) -> Result<T, String> {
        loop {
            if let Some(value) = found(&self.log) {
                return Ok(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.receiver.recv()).await {
                Ok(Some(line)) => self.log.push(line),
                Ok(None) | Err(_) => return Err(format!("timed out waiting for {what}")),
            }
        }
    }

    /// Sends `signal` (such as "TERM", "KILL", "STOP") to a replica.
    pub fn signal(&self, replica: usize, signal: &str) -> Result<(), String> {
        let pid = self
            .children
            .get(replica)
            .and_then(Child::id)
            .ok_or_else(|| format!("replica {replica} is not running"))?;
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .map_err(|error| format!("kill -{signal} {pid}: {error}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {pid} failed"))
        }
    }

    /// Waits at most `limit` for a replica to exit.
    pub async fn exit_status(
        &mut self,
        replica: usize,
        limit: Duration,
    ) -> Result<ExitStatus, String> {
        let child = self
            .children
            .get_mut(replica)
            .ok_or_else(|| format!("no replica {replica}"))?;
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(error)) => Err(format!("waiting for replica {replica}: {error}")),
            Err(_) => Err(format!("replica {replica} still running after {limit:?}")),
        }
    }

    /// Reads what is left of the output (once the processes have exited).
    pub async fn drain(&mut self) {
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_millis(300), self.receiver.recv()).await
        {
            self.log.push(line);
        }
    }

    /// What the `celers-beat-runs` checker says of the log so far, with gaps
    /// longer than an entry's interval plus `failover_bound` counted as
    /// skipped.
    pub fn summary(&self, failover_bound: Duration) -> Summary {
        let events: Vec<Vec<Event>> = (0..self.children.len())
            .map(|replica| {
                self.log
                    .iter()
                    .filter(|line| line.replica == replica)
                    .filter_map(|line| line.event.clone())
                    .collect()
            })
            .collect();
        let bound_ms = i64::try_from(failover_bound.as_millis()).unwrap_or(i64::MAX);
        summarize(
            self.owners
                .iter()
                .zip(&events)
                .map(|(owner, events)| (owner.as_str(), events.as_slice())),
            bound_ms,
        )
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

/// The role of each of `replicas` replicas by its latest `role changed`
/// line.
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

/// Whether a Lease holder names the replica `owner` (`<owner>_<suffix>`).
pub fn held_by(holder: Option<&str>, owner: &str) -> bool {
    holder.is_some_and(|holder| {
        holder
            .strip_prefix(owner)
            .is_some_and(|rest| rest.starts_with('_'))
    })
}
