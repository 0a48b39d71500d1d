//! Flag values the binaries parse alike.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A number above 0.
pub fn parse_positive(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// `NAME=VALUE`.
pub fn parse_pair<T: std::str::FromStr>(text: &str) -> Result<(String, T), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a valid value"))?;
    Ok((name.to_owned(), value))
}

/// A short id that keeps this run's Lease names, keys and owners apart from
/// other runs'.
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}", nanos ^ std::process::id().rotate_left(16))
}

/// The flags both benchmark binaries take, flattened into each one's own.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Kubeconfig of the API server.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Namespace of the Leases (must exist).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Also write the tables into this file (e.g. BENCHMARKS.md), between
    /// the binary's own markers.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A NAME=VALUE line for the environment list.
    #[arg(long, value_parser = parse_pair::<String>)]
    pub about: Vec<(String, String)>,
    /// etcd's client address (HOST:PORT, plain HTTP), to read its metrics
    /// (lease-bench: its WAL fsyncs, passed on to the client-go peer;
    /// lease-bench-scale: its database size).
    #[arg(long)]
    pub etcd: Option<String>,
    /// NAME=PID of a server process whose CPU time is read around each
    /// measured window; repeatable. lease-bench passes them on to the
    /// client-go peer, and its API server cost table compares the first
    /// (`make bench`: kube-apiserver) against its goals.
    #[arg(long = "server-pid", value_parser = parse_pair::<u32>)]
    pub pids: Vec<(String, u32)>,
    /// The run id, part of every key and owner (a child process is given
    /// its parent's).
    #[arg(long, default_value_t = run_id())]
    pub run: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_are_checked() {
        assert_eq!(parse_positive("3"), Ok(3));
        assert!(parse_positive("0").is_err());
        assert_eq!(parse_pair::<u32>("etcd=42"), Ok(("etcd".to_owned(), 42)));
        assert!(parse_pair::<u32>("etcd").is_err());
        assert!(parse_pair::<u32>("etcd=x").is_err());
    }
}
