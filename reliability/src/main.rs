//! `celers-kube-lease-reliability contender ...`: one contender process,
//! logging JSON lines on stdout (spawned by the checks).
//!
//! `celers-kube-lease-reliability fenced-writer ...`: takes a lock, then
//! writes to a fencing sink until killed (spawned by the guard checks).
//!
//! `celers-kube-lease-reliability long [--duration 600s] [--history FILE]`:
//! the long form on a control plane of its own; prints the figures as a
//! table (with `--history`, the calls go to FILE and their linearizability
//! is checked).
//!
//! `celers-kube-lease-reliability beat [--mode kube-beat] [--duration 600s]`:
//! replicas of the example scheduler (a stock celers-beat `BeatScheduler`)
//! through a leader kill, a leader pause and a rolling restart, on a
//! control plane of its own; prints per entry the instants fired twice and
//! skipped.
//!
//! `celers-kube-lease-reliability linearizability FILE...`: checks recorded
//! calls (history files or contender logs) against the TTL lock
//! specification; exits 1 on a violation.
//!
//! `celers-kube-lease-reliability ha [--duration 600s] [--history FILE]`: the HA form on an
//! HA control plane of its own (API server clocks moved, API servers and
//! etcd members killed, quorum lost; then a paused scheduler replica);
//! prints the HA table.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use celers_kube_lease_reliability::beat::{self, BeatPlan};
use celers_kube_lease_reliability::cluster::{self, Connect};
use celers_kube_lease_reliability::contender::{self, Mode, Plan};
use celers_kube_lease_reliability::linearizability::{self, Settings};
use celers_kube_lease_reliability::ttl_lock::Allowance;
use celers_kube_lease_reliability::{fencing, ha, history, long_form, Result};

#[derive(Parser)]
#[command(about = "Correctness checks of celers-kube-lease")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The long form on a control plane of its own.
    Long {
        /// How long the contention runs: 600s, 10m, 1h or seconds.
        #[arg(long, default_value = "600s", value_parser = parse_duration)]
        duration: Duration,
        /// Seed of the contenders' random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write every call to FILE (JSON lines) and check their linearizability.
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
    },
    /// Checks recorded calls against the TTL lock specification.
    Linearizability {
        /// History files (`long`/`ha --history`) or contender logs.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// A grant is certainly held until invoke + TTL - this many ms.
        #[arg(long, default_value_t = 100)]
        margin_ms: u64,
        /// A grant is certainly over at return + TTL + this many ms.
        #[arg(long, default_value_t = 5_000)]
        slack_ms: u64,
        /// A failed call may take effect until this many ms after its error.
        #[arg(long, default_value_t = 60_000)]
        late_ms: u64,
        /// Search steps per key before the key is undecided.
        #[arg(long, default_value_t = 5_000_000)]
        budget: u64,
        /// Refuse a release answered true while another owner took and
        /// released the key during it ("released all the same").
        #[arg(long)]
        strict_release: bool,
    },
    /// The HA form on an HA control plane of its own.
    Ha {
        /// How long the contention runs: 600s, 10m, 1h or seconds.
        #[arg(long, default_value = "600s", value_parser = parse_duration)]
        duration: Duration,
        /// Seed of the contenders' random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Paused-replica trials of the example scheduler afterwards.
        #[arg(long, default_value_t = 4)]
        pauses: u32,
        /// The celers-kube-lease-scheduler binary [default: next to this one].
        #[arg(long)]
        scheduler: Option<PathBuf>,
        /// Write every call to FILE (JSON lines) and check their linearizability.
        #[arg(long, value_name = "FILE")]
        history: Option<PathBuf>,
    },
    /// The celers-beat scenario on a control plane of its own.
    Beat {
        /// The scheduler's mode: kube-beat, stock, stock-ids, stock-heartbeat.
        #[arg(long, default_value = "kube-beat")]
        mode: String,
        /// Scheduler replicas.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
        replicas: u64,
        /// How long: 600s, 10m or seconds.
        #[arg(long, default_value = "600s", value_parser = parse_duration)]
        duration: Duration,
        /// Leader TTL in seconds.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(2..=3600))]
        ttl_secs: u64,
        /// Task i runs every (i + 1) × this many seconds.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval_secs: u64,
        /// Interval tasks.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        tasks: u32,
        /// A crontab entry ("none": no such entry).
        #[arg(long, default_value = "* * * * *")]
        crontab: String,
        /// No kill, pause or rolling restart.
        #[arg(long)]
        no_faults: bool,
        /// Exit 0 even if instants fired twice or were skipped (to measure
        /// a baseline that does).
        #[arg(long)]
        measure_only: bool,
        /// The celers-kube-lease-scheduler binary [default: next to this one].
        #[arg(long)]
        scheduler: Option<PathBuf>,
    },
    /// One contender, logging JSON lines on stdout.
    Contender {
        #[command(flatten)]
        target: Target,
        /// Its owner identity.
        #[arg(long)]
        owner: String,
        /// The keys it contends for, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        keys: Vec<String>,
        /// TTLs are drawn from LOW-HIGH seconds.
        #[arg(long, default_value = "1-3", value_parser = parse_range)]
        ttl: (u64, u64),
        /// Pauses between calls are drawn from LOW-HIGH ms.
        #[arg(long, default_value = "20-100", value_parser = parse_range)]
        pause_ms: (u64, u64),
        /// How long it runs, in ms.
        #[arg(long, default_value_t = 10_000)]
        duration_ms: u64,
        /// Seed of its random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// mix, hold, take or once.
        #[arg(long, default_value = "mix")]
        mode: Mode,
    },
    /// Takes a lock, then writes to a fencing sink every 50 ms until killed.
    FencedWriter {
        #[command(flatten)]
        target: Target,
        /// Its owner identity.
        #[arg(long)]
        owner: String,
        /// The lock key.
        #[arg(long)]
        key: String,
        /// The lock's TTL in seconds.
        #[arg(long)]
        ttl: u64,
        /// The sink's address.
        #[arg(long)]
        sink: SocketAddr,
        /// Take the lock with the plain trait call (no guard, no token).
        #[arg(long)]
        plain: bool,
    },
}

/// Where a child process finds the locks.
#[derive(clap::Args)]
struct Target {
    /// Kubeconfig of the control plane.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Namespace of the locks.
    #[arg(long)]
    namespace: String,
    /// Each request's timeout, in ms.
    #[arg(long, default_value_t = 2_000)]
    request_timeout_ms: u64,
    /// Connect through this local proxy port instead.
    #[arg(long)]
    server_port: Option<u16>,
    /// Accept a server certificate that is not valid yet (a clock behind).
    #[arg(long)]
    ignore_cert_validity_period: bool,
    /// The backend's `api_server_skew` in ms [default: 0, one API server].
    #[arg(long)]
    api_server_skew_ms: Option<u64>,
}

impl Target {
    async fn backend(&self) -> Result<celers_kube_lease::KubeLeaseLockBackend> {
        let connect = Connect {
            server_port: self.server_port,
            ignore_cert_validity_period: self.ignore_cert_validity_period,
        };
        let client = cluster::client(&self.kubeconfig, &connect).await?;
        let timeout = Duration::from_millis(self.request_timeout_ms);
        let skew = self.api_server_skew_ms.map(Duration::from_millis);
        cluster::contender_backend(client, &self.namespace, timeout, skew)
    }
}

#[tokio::main]
async fn main() {
    let outcome = match Cli::parse().command {
        Command::Long {
            duration,
            seed,
            history,
        } => run_long(duration, seed, history).await,
        Command::Linearizability {
            files,
            margin_ms,
            slack_ms,
            late_ms,
            budget,
            strict_release,
        } => {
            let settings = Settings {
                allowance: Allowance {
                    margin_ns: margin_ms.saturating_mul(1_000_000),
                    slack_ns: slack_ms.saturating_mul(1_000_000),
                    late_ns: late_ms.saturating_mul(1_000_000),
                },
                budget,
                strict_release,
            };
            run_linearizability(&files, settings)
        }
        Command::Ha {
            duration,
            seed,
            pauses,
            scheduler,
            history,
        } => run_ha(duration, seed, pauses, scheduler, history).await,
        Command::Beat {
            mode,
            replicas,
            duration,
            ttl_secs,
            interval_secs,
            tasks,
            crontab,
            no_faults,
            measure_only,
            scheduler,
        } => {
            let plan = BeatPlan {
                mode,
                replicas: usize::try_from(replicas).unwrap_or(1),
                duration,
                ttl_secs,
                interval_secs,
                tasks,
                crontab: (crontab != "none").then_some(crontab),
                faults: !no_faults,
            };
            run_beat(plan, measure_only, scheduler).await
        }
        Command::Contender {
            target,
            owner,
            keys,
            ttl,
            pause_ms,
            duration_ms,
            seed,
            mode,
        } => {
            let plan = Plan {
                owner,
                keys,
                ttl_secs: ttl,
                duration: Duration::from_millis(duration_ms),
                pause_ms,
                seed,
                mode,
            };
            run_contender(&target, &plan).await
        }
        Command::FencedWriter {
            target,
            owner,
            key,
            ttl,
            sink,
            plain,
        } => match target.backend().await {
            Ok(backend) => {
                fencing::write_until_killed(&backend, &key, &owner, ttl, sink, plain).await
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = outcome {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

async fn run_contender(target: &Target, plan: &Plan) -> Result<()> {
    // The library's warnings (such as API servers' clocks disagreeing) go
    // to stderr, where the checks look for them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let backend = target.backend().await?;
    let mut emit = |line| {
        if let Ok(text) = serde_json::to_string(&line) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    };
    contender::run(&backend, plan, &mut emit).await;
    Ok(())
}

async fn run_long(duration: Duration, seed: u64, history: Option<PathBuf>) -> Result<()> {
    let exe = std::env::current_exe()?;
    let report = long_form::run(&exe, duration, seed, history).await?;
    println!("{report}");
    if report.clean() {
        Ok(())
    } else {
        Err("the long form found violations (see above)".into())
    }
}

async fn run_ha(
    duration: Duration,
    seed: u64,
    pauses: u32,
    scheduler: Option<PathBuf>,
    history: Option<PathBuf>,
) -> Result<()> {
    let exe = std::env::current_exe()?;
    let scheduler = match scheduler {
        Some(path) => path,
        None => exe.with_file_name("celers-kube-lease-scheduler"),
    };
    let report = ha::long_form(&exe, &scheduler, duration, seed, pauses, history).await?;
    println!("{report}");
    if report.clean() {
        Ok(())
    } else {
        Err("the HA form found violations (see above)".into())
    }
}

fn run_linearizability(files: &[PathBuf], settings: Settings) -> Result<()> {
    let records = history::read(files)?;
    let report = linearizability::check(&records, settings);
    println!("{report}");
    if !report.violations().is_empty() {
        // 1, not the 2 of a harness error: the history is not linearizable.
        std::process::exit(1);
    }
    if !report.undecided().is_empty() {
        return Err("the search ran out of steps on some keys (see above; --budget)".into());
    }
    Ok(())
}

async fn run_beat(plan: BeatPlan, measure_only: bool, scheduler: Option<PathBuf>) -> Result<()> {
    let exe = std::env::current_exe()?;
    let scheduler = scheduler.unwrap_or_else(|| exe.with_file_name("celers-kube-lease-scheduler"));
    let cp = tokio::task::spawn_blocking(|| celers_kube_lease_testkit::ControlPlane::start("beat"))
        .await?;
    let report = beat::run(&scheduler, &cp.cluster().kubeconfig, plan).await?;
    println!("{report}");
    if report.clean() || measure_only {
        Ok(())
    } else {
        Err("instants fired twice or skipped beyond the failover bound (see above)".into())
    }
}

/// `600s`, `10m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad duration unit in {text:?} (s, m, h)")),
    };
    Ok(Duration::from_secs(secs))
}

/// `LOW-HIGH`.
fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("bad range {text:?} (LOW-HIGH)");
    let (low, high) = text.split_once('-').ok_or_else(bad)?;
    let low: u64 = low.parse().map_err(|_| bad())?;
    let high: u64 = high.parse().map_err(|_| bad())?;
    if low > high {
        return Err(bad());
    }
    Ok((low, high))
}
