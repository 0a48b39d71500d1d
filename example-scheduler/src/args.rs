//! Command line and environment settings.

use std::time::Duration;

use celers_kube_lease::MAX_OWNER_BYTES;
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

/// One replica of a celers-beat scheduler whose replicas share Lease-backed
/// locks and a ledger (`KubeBeat`), so that every scheduled instant of every
/// entry is executed by exactly one of them.
#[derive(Debug, Parser)]
#[command(name = "celers-kube-lease-scheduler", version)]
pub struct Args {
    /// Task i (task-0, task-1, ...) runs every (i + 1) × this many seconds.
    #[arg(
        long,
        env = "SCHEDULER_INTERVAL_SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub interval_secs: u64,

    /// TTL of the leader lock, in seconds.
    #[arg(
        long,
        env = "SCHEDULER_TTL_SECS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(2..=3600)
    )]
    pub ttl_secs: u64,

    /// Number of interval tasks (task-0, task-1, ...).
    #[arg(
        long,
        env = "SCHEDULER_TASKS",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub tasks: u32,

    /// A crontab entry named `cron` (five fields, UTC; "none": no such entry).
    #[arg(long, env = "SCHEDULER_CRONTAB", default_value = "* * * * *")]
    pub crontab: String,

    /// How the replicas coordinate: `kube-beat` (KubeBeat: one leader, a
    /// shared ledger), or celers-beat's stock `tick_with_locks` for
    /// comparison: `stock` (default instance ids, no heartbeat),
    /// `stock-ids` (`set_instance_id(<owner>)`), `stock-heartbeat` (unique
    /// ids and a `BeatHeartbeat` with the leader TTL).
    #[arg(long, env = "SCHEDULER_MODE", value_enum, default_value_t = Mode::KubeBeat)]
    pub mode: Mode,

    /// Milliseconds between two ticks.
    #[arg(
        long,
        env = "SCHEDULER_TICK_MS",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(10..=60_000)
    )]
    pub tick_ms: u64,

    /// Exit cleanly (as on SIGTERM) after this many seconds.
    #[arg(
        long,
        env = "SCHEDULER_RUN_FOR_SECS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub run_for_secs: Option<u64>,

    /// Lock owner identity [default: <hostname>-<pid>].
    #[arg(long, env = "POD_NAME")]
    pub owner: Option<String>,

    /// Namespace of the Leases [default: the kubeconfig's, or the Pod's].
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Port of `/metrics` and `/healthz` (0: none).
    #[arg(long, env = "METRICS_PORT", default_value_t = 8080)]
    pub metrics_port: u16,

    /// Log lines as JSON (for log collectors and the `celers-beat-runs`
    /// checker) or as text (for people).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// How the replicas coordinate (see `--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `KubeBeat::tick`.
    KubeBeat,
    /// `tick_with_locks(30)` with `BeatScheduler::new()`'s instance id.
    Stock,
    /// `tick_with_locks(30)` after `set_instance_id(<owner>)`.
    StockIds,
    /// `tick_with_locks(30)` with unique ids and a `BeatHeartbeat`.
    StockHeartbeat,
}

/// How the scheduler writes its log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, the event's fields at the top level.
    Json,
    /// Plain text.
    Text,
}

/// The validated settings.
#[derive(Debug)]
pub struct Settings {
    pub interval_secs: u64,
    pub ttl_secs: u64,
    pub tasks: u32,
    pub crontab: Option<String>,
    pub mode: Mode,
    pub tick: Duration,
    pub run_for: Option<Duration>,
    pub owner: String,
    pub namespace: Option<String>,
    pub log_format: LogFormat,
    pub metrics_port: u16,
}

impl Settings {
    /// Parses the command line and environment; on error prints a message
    /// and exits with status 2.
    pub fn from_env() -> Self {
        let args = Args::parse();
        let fail = |message: String| -> ! {
            Args::command()
                .error(ErrorKind::ValueValidation, message)
                .exit()
        };
        let owner = non_empty(args.owner).unwrap_or_else(default_owner);
        if owner.len() > MAX_OWNER_BYTES {
            fail(format!(
                "owner (POD_NAME) is {} bytes long; at most {MAX_OWNER_BYTES} are allowed",
                owner.len(),
            ));
        }
        if owner.chars().any(char::is_control) {
            fail(format!(
                "owner (POD_NAME) {owner:?} contains control characters"
            ));
        }
        Self {
            interval_secs: args.interval_secs,
            ttl_secs: args.ttl_secs,
            tasks: args.tasks,
            crontab: non_empty(Some(args.crontab)).filter(|crontab| crontab != "none"),
            mode: args.mode,
            tick: Duration::from_millis(args.tick_ms),
            run_for: args.run_for_secs.map(Duration::from_secs),
            owner,
            namespace: non_empty(args.namespace),
            log_format: args.log_format,
            metrics_port: args.metrics_port,
        }
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `<hostname>-<pid>`, for runs outside a Pod.
fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_deployment() {
        let args = Args::try_parse_from(["scheduler"]).expect("defaults parse");
        assert_eq!((args.interval_secs, args.ttl_secs, args.tasks), (5, 15, 3));
        assert_eq!(args.run_for_secs, None);
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        for bad in [
            &["scheduler", "--interval-secs", "0"][..],
            &["scheduler", "--ttl-secs", "1"],
            &["scheduler", "--tick-ms", "0"],
            &["scheduler", "--mode", "leaderless"],
            &["scheduler", "--tasks", "0"],
            &["scheduler", "--run-for-secs", "0"],
            &["scheduler", "--interval-secs", "five"],
        ] {
            let error = Args::try_parse_from(bad).expect_err("rejected");
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        assert_eq!(non_empty(Some("  ".into())), None);
        assert_eq!(non_empty(Some("pod-1".into())).as_deref(), Some("pod-1"));
        assert!(default_owner().ends_with(&format!("-{}", std::process::id())));
    }
}
