//! Measured operations run in a child process of their own (this binary,
//! started again with `--child`), so that its memory high-water mark and
//! RSS are those of the operation alone, not of the population or of the
//! other phases.
//!
//! The child builds its client, warms it up, prints `ready` and waits for
//! `go` on stdin: the parent reads the servers' counters in between, so
//! that the child's start-up is not counted. The child then prints JSON
//! lines on stdout (the last one its result) and exits; its progress and
//! errors go to stderr, which it shares with the parent.

use std::process::Stdio;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use crate::Result;

/// How long a child may take to build its clients and warm them up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running child, between `ready` and its last line.
pub struct Child {
    process: tokio::process::Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pid: u32,
}

impl Child {
    /// Starts this binary with `args` and waits until it is ready.
    pub async fn start(args: &[std::ffi::OsString]) -> Result<Self> {
        let mut process = tokio::process::Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = process.id().ok_or("the child exited at once")?;
        let stdin = process.stdin.take().ok_or("no stdin to the child")?;
        let stdout = process.stdout.take().ok_or("no stdout from the child")?;
        let mut child = Self {
            process,
            stdin,
            lines: BufReader::new(stdout).lines(),
            pid,
        };
        match tokio::time::timeout(READY_TIMEOUT, child.lines.next_line()).await? {
            Ok(Some(line)) if line == "ready" => Ok(child),
            _ => Err(child.failure("did not get ready").await),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the child start its measured work.
    pub async fn go(&mut self) -> Result<()> {
        self.stdin.write_all(b"go\n").await?;
        Ok(self.stdin.flush().await?)
    }

    /// The next line the child printed, `None` once it closed stdout.
    /// Cancel-safe (no line is lost when the future is dropped).
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        Ok(self.lines.next_line().await?)
    }

    /// Reads the child's lines until it exits, within `limit`, and returns
    /// its last line parsed.
    pub async fn result<T: DeserializeOwned>(mut self, limit: Duration) -> Result<T> {
        let last = async {
            let mut last = None;
            while let Some(line) = self.lines.next_line().await? {
                last = Some(line);
            }
            Ok::<_, std::io::Error>(last)
        };
        let last = match tokio::time::timeout(limit, last).await {
            Ok(last) => last?,
            Err(_) => return Err(self.failure("timed out").await),
        };
        self.finish(last).await
    }

    /// Waits for the child to exit and parses `last`, its last line.
    pub async fn finish<T: DeserializeOwned>(mut self, last: Option<String>) -> Result<T> {
        let status = tokio::time::timeout(READY_TIMEOUT, self.process.wait()).await??;
        match last {
            Some(line) if status.success() => Ok(serde_json::from_str(&line)?),
            _ => Err(format!("the measuring child failed: {status}").into()),
        }
    }

    /// An error for a child that misbehaved, after killing it.
    async fn failure(mut self, what: &str) -> Box<dyn std::error::Error + Send + Sync> {
        let _ = self.process.kill().await;
        format!("the measuring child {what}").into()
    }
}

/// In the child: says it is ready and waits for the parent's `go`.
pub async fn ready() -> Result<()> {
    println!("ready");
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    if line.trim() == "go" {
        Ok(())
    } else {
        Err("the parent did not say go".into())
    }
}

/// In the child: prints one JSON line for the parent.
pub fn emit(value: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
