//! Contenders in child processes (the binary's `contender` subcommand),
//! optionally with a wall clock skewed by libfaketime.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::contender::Plan;
use crate::record::Line;
use crate::Result;

/// How to start a contender process.
#[derive(Clone, Debug)]
pub struct Spawn {
    /// The reliability binary.
    pub exe: PathBuf,
    /// Kubeconfig of the control plane.
    pub kubeconfig: PathBuf,
    /// Connect through this proxy port instead.
    pub server_port: Option<u16>,
    /// Namespace of the locks.
    pub namespace: String,
    /// The backend's request timeout.
    pub request_timeout: Duration,
    /// What the contender does.
    pub plan: Plan,
    /// libfaketime offset of its wall clock, such as `+1h` or `-1h`, or an
    /// offset and a speed such as `+0 x0.999`.
    pub skew: Option<String>,
    /// Whether libfaketime fakes the monotonic (and boot) clock too, as it
    /// must for a speed to slow the process's own sense of elapsed time.
    pub fake_monotonic: bool,
    /// The backend's `api_server_skew`; `None`: one API server's (zero).
    pub api_server_skew: Option<Duration>,
}

/// A running contender process.
pub struct Contender {
    /// Its owner identity.
    pub owner: String,
    /// Its skew, if any.
    pub skew: Option<String>,
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<Line>>>,
    stdout: JoinHandle<()>,
    stderr: JoinHandle<String>,
}

/// A contender process that has exited.
#[derive(Debug)]
pub struct Finished {
    /// Its owner identity.
    pub owner: String,
    /// How it exited.
    pub status: ExitStatus,
    /// Its log.
    pub lines: Vec<Line>,
    /// Its stderr.
    pub stderr: String,
}

impl Contender {
    /// Starts the process.
    pub fn spawn(spawn: &Spawn) -> Result<Self> {
        let plan = &spawn.plan;
        let mut command = Command::new(&spawn.exe);
        command
            .arg("contender")
            .arg("--kubeconfig")
            .arg(&spawn.kubeconfig)
            .args(["--namespace", &spawn.namespace])
            .args(["--owner", &plan.owner])
            .args(["--keys", &plan.keys.join(",")])
            .args(["--ttl", &format!("{}-{}", plan.ttl_secs.0, plan.ttl_secs.1)])
            .args([
                "--pause-ms",
                &format!("{}-{}", plan.pause_ms.0, plan.pause_ms.1),
            ])
            .args(["--duration-ms", &plan.duration.as_millis().to_string()])
            .args(["--seed", &plan.seed.to_string()])
            .args(["--mode", plan.mode.name()])
            .args([
                "--request-timeout-ms",
                &spawn.request_timeout.as_millis().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(skew) = spawn.api_server_skew {
            command.args(["--api-server-skew-ms", &skew.as_millis().to_string()]);
        }
        if let Some(port) = spawn.server_port {
            command.args(["--server-port", &port.to_string()]);
        }
        if let Some(skew) = &spawn.skew {
            command
                .env("LD_PRELOAD", faketime_library()?)
                .env("FAKETIME", skew)
                .env(
                    "FAKETIME_DONT_FAKE_MONOTONIC",
                    if spawn.fake_monotonic { "0" } else { "1" },
                );
            if skew.starts_with('-') {
                command.arg("--ignore-cert-validity-period");
            }
        }
        let mut child = command.spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let sink = lines.clone();
        let stdout = tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = reader.next_line().await {
                if let Ok(line) = serde_json::from_str::<Line>(&text) {
                    if let Ok(mut lines) = sink.lock() {
                        lines.push(line);
                    }
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().ok_or("no stderr")?;
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text).await;
            text
        });
        Ok(Self {
            owner: plan.owner.clone(),
            skew: spawn.skew.clone(),
            child,
            lines,
            stdout,
            stderr,
        })
    }

    /// The log so far.
    pub fn lines(&self) -> Vec<Line> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a logged line satisfies `pred`.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Line) -> bool) -> Result<Line> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(line);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "contender {} did not log the awaited line in {timeout:?}",
                    self.owner
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) -> Result<()> {
        Ok(self.child.start_kill()?)
    }

    /// Waits (at most `timeout`, then kills) for the process to exit.
    pub async fn finish(mut self, timeout: Duration) -> Result<Finished> {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                self.child.start_kill()?;
                self.child.wait().await?
            }
        };
        let _ = self.stdout.await;
        let stderr = self.stderr.await.unwrap_or_default();
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(Finished {
            owner: self.owner,
            status,
            lines,
            stderr,
        })
    }
}

/// The multi-threaded libfaketime (`FAKETIME_LIB` overrides the search).
pub fn faketime_library() -> Result<PathBuf> {
    const NAME: &str = "libfaketimeMT.so.1";
    if let Some(path) = std::env::var_os("FAKETIME_LIB") {
        return Ok(PathBuf::from(path));
    }
    let mut dirs = vec![
        PathBuf::from("/usr/local/lib/faketime"),
        PathBuf::from("/usr/lib/faketime"),
    ];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("faketime")));
    }
    dirs.into_iter()
        .map(|dir| dir.join(NAME))
        .find(|path| Path::is_file(path))
        .ok_or_else(|| {
            format!(
                "libfaketime ({NAME}) is not installed, and the clock-skew checks need it: \
                 install Debian's `faketime` package (apt-get install faketime) or set FAKETIME_LIB"
            )
            .into()
        })
}
