//! `lease-bench-scale`: celers-kube-lease at scale. Two phases:
//!
//! - bulk: a namespace of many Leases of this crate and foreign ones;
//!   `release_all`, `sweep_expired` and `is_locked` in it, and the client
//!   memory of listing it at several page sizes;
//! - lifetime: a beat scheduler's steady load of per-run locks with the
//!   background sweep on, sampled over time (Lease count, server CPU, etcd
//!   database size, client RSS), with a plot.
//!
//! Progress goes to stderr, the tables (Markdown) to stdout. Measured work
//! runs in child processes (this binary with `--child`), see `child`.

mod bulk;
mod child;
mod lifetime;
mod plot;
mod probe;
mod report;
mod setup;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use celers_kube_lease_bench::cli::{parse_positive, Common};
use celers_kube_lease_bench::procfs;
use clap::{Parser, ValueEnum};

use report::{thousands, Report};
use setup::Plan;

pub use celers_kube_lease_bench::Result;

/// The sizes, the defaults: the estimate of a full run scales
/// this run's times to them.
const FULL_OWN: usize = 100_000;
const FULL_FOREIGN: usize = 10_000;
const FULL_DURATION_SECS: u64 = 600;
const FULL_TASKS: usize = 1000;
const FULL_INTERVAL_SECS: u64 = 10;
const FULL_RELEASE_ALL: usize = 10_000;
const FULL_EXPIRED: usize = 50_000;
const FULL_IS_LOCKED: usize = 1000;
/// Bound of the API server version request.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// celers-kube-lease at scale: bulk operations in a namespace of many
/// Leases, and a beat scheduler's lifetime.
#[derive(Parser, Clone, Debug)]
#[command(name = "lease-bench-scale")]
pub struct Args {
    /// Run one measured operation in this process (the parent starts it so).
    #[arg(long, hide = true, value_enum)]
    child: Option<ChildKind>,
    /// Calls in flight in the child's operation.
    #[arg(long, hide = true, default_value_t = 1, value_parser = parse_positive)]
    in_flight: usize,
    #[command(flatten)]
    common: Common,
    /// Which phases to run.
    #[arg(long, value_delimiter = ',', default_value = "bulk,lifetime", value_parser = clap::builder::PossibleValuesParser::new(["bulk", "lifetime"]))]
    phases: Vec<String>,
    /// Bulk: Leases of this crate in the namespace.
    #[arg(long, default_value_t = FULL_OWN, value_parser = parse_positive)]
    own: usize,
    /// Bulk: foreign Leases beside them (no label of this crate).
    #[arg(long, default_value_t = FULL_FOREIGN)]
    foreign: usize,
    /// Bulk: of this crate's Leases, held by the one owner `release_all` frees.
    #[arg(long, default_value_t = FULL_RELEASE_ALL)]
    release_all: usize,
    /// Bulk: of this crate's Leases, expired (TTL 1 s) for `sweep_expired`.
    #[arg(long, default_value_t = FULL_EXPIRED)]
    expired: usize,
    /// Bulk: `is_locked` calls on random keys, per run.
    #[arg(long, default_value_t = FULL_IS_LOCKED, value_parser = parse_positive)]
    is_locked: usize,
    /// Bulk: list page size of `release_all` and `sweep_expired`.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=5000))]
    page_size: u32,
    /// Bulk: page sizes of the list-only sweeps that show the memory bound.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,5000", value_parser = clap::value_parser!(u32).range(1..=5000))]
    list_page_sizes: Vec<u32>,
    /// Bulk: `try_acquire` calls in flight while populating.
    #[arg(long, default_value_t = 64, value_parser = parse_positive)]
    populate_concurrency: usize,
    /// Bulk: backends (each its own `kube::Client`) they are spread over.
    #[arg(long, default_value_t = 8, value_parser = parse_positive)]
    populate_clients: usize,
    /// Lifetime: how long the load runs, seconds.
    #[arg(long = "duration-secs", default_value = "600", value_parser = parse_secs)]
    duration: Duration,
    /// Lifetime: scheduled tasks.
    #[arg(long, default_value_t = FULL_TASKS, value_parser = parse_positive)]
    tasks: usize,
    /// Lifetime: every task fires this often, seconds.
    #[arg(long, default_value_t = FULL_INTERVAL_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    interval_secs: u64,
    /// Lifetime: scheduler replicas; the first leads, the others attempt
    /// each run half an interval later.
    #[arg(long, default_value_t = 3, value_parser = parse_positive)]
    replicas: usize,
    /// Lifetime: TTL of the per-run locks, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    lock_ttl_secs: u64,
    /// Lifetime: the background sweep's interval, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    sweep_interval_secs: u64,
    /// Lifetime: the sweep grace, seconds.
    #[arg(long, default_value_t = 60)]
    sweep_grace_secs: u64,
    /// Lifetime: sample period, seconds.
    #[arg(long = "sample-secs", default_value = "10", value_parser = parse_secs)]
    sample: Duration,
    /// Write the lifetime plot (SVG) here; the Markdown links to it.
    #[arg(long)]
    plot: Option<PathBuf>,
}

impl Args {
    /// The arguments of a child that measures `kind`: what it needs of
    /// this run's, then `extra`.
    pub fn child_args(&self, kind: ChildKind, extra: &[String]) -> Vec<OsString> {
        let mut child: Vec<OsString> = vec![
            "--child".into(),
            kind.flag().into(),
            "--kubeconfig".into(),
            self.common.kubeconfig.clone().into(),
        ];
        let pairs = [
            ("--namespace", self.common.namespace.clone()),
            ("--run", self.common.run.clone()),
            ("--own", self.own.to_string()),
            ("--foreign", self.foreign.to_string()),
            ("--release-all", self.release_all.to_string()),
            ("--expired", self.expired.to_string()),
            ("--is-locked", self.is_locked.to_string()),
            ("--duration-secs", self.duration.as_secs_f64().to_string()),
            ("--tasks", self.tasks.to_string()),
            ("--interval-secs", self.interval_secs.to_string()),
            ("--replicas", self.replicas.to_string()),
            ("--lock-ttl-secs", self.lock_ttl_secs.to_string()),
            (
                "--sweep-interval-secs",
                self.sweep_interval_secs.to_string(),
            ),
            ("--sweep-grace-secs", self.sweep_grace_secs.to_string()),
        ];
        for (flag, value) in pairs {
            child.push(flag.into());
            child.push(value.into());
        }
        child.extend(extra.iter().map(OsString::from));
        child
    }
}

/// What a child process measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChildKind {
    ReleaseAll,
    Sweep,
    /// A sweep that deletes nothing: lists every Lease of this crate.
    List,
    IsLocked,
    Lifetime,
}

impl ChildKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::ReleaseAll => "release_all",
            Self::Sweep => "sweep_expired",
            Self::List => "list-only sweep",
            Self::IsLocked => "is_locked",
            Self::Lifetime => "lifetime",
        }
    }

    fn flag(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_owned())
            .unwrap_or_default()
    }
}

fn parse_secs(text: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be more than 0".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

pub fn progress(what: &str) {
    eprintln!("lease-bench-scale: {what}");
}

/// What every phase needs.
pub struct Context {
    pub args: Args,
    pub config: kube::Config,
    /// For counting, deleting and reading `/metrics` (and a child's backend).
    pub client: kube::Client,
}

impl Context {
    async fn new(args: Args) -> Result<Self> {
        let config = celers_kube_lease_testkit::config_from(&args.common.kubeconfig).await?;
        let client = kube::Client::try_from(config.clone())?;
        Ok(Self {
            args,
            config,
            client,
        })
    }

    fn plan(&self) -> Plan {
        let args = &self.args;
        Plan {
            run: args.common.run.clone(),
            own: args.own,
            release_all: args.release_all,
            expired: args.expired,
            foreign: args.foreign,
        }
    }

    /// CPU seconds so far of each `--server-pid` process.
    pub fn server_cpu(&self) -> Result<Vec<(String, f64)>> {
        self.args
            .common
            .pids
            .iter()
            .map(|(name, pid)| Ok((name.clone(), probe::cpu_secs(&pid.to_string())?)))
            .collect()
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let outcome = match args.child {
        Some(kind) => run_child(args, kind).await,
        None => run(args).await,
    };
    if let Err(error) = outcome {
        eprintln!("lease-bench-scale: {error}");
        std::process::exit(1);
    }
}

async fn run_child(args: Args, kind: ChildKind) -> Result<()> {
    let ctx = Context::new(args).await?;
    match kind {
        ChildKind::Lifetime => lifetime::child(&ctx).await,
        _ => bulk::child(&ctx, &ctx.plan(), kind).await,
    }
}

async fn run(args: Args) -> Result<()> {
    if args.release_all + args.expired > args.own {
        return Err(format!(
            "--release-all {} and --expired {} do not fit in --own {}",
            args.release_all, args.expired, args.own
        )
        .into());
    }
    let ctx = Context::new(args).await?;
    let args = &ctx.args;
    let phase = |name: &str| args.phases.iter().any(|p| p == name);
    let mut about = environment(&ctx).await?;
    let start = Instant::now();

    let bulk = if phase("bulk") {
        Some(bulk::run(&ctx, &ctx.plan()).await?)
    } else {
        None
    };
    let bulk_secs = start.elapsed().as_secs_f64();
    let lifetime = if phase("lifetime") {
        Some(lifetime::run(&ctx).await?)
    } else {
        None
    };
    let lifetime_secs = start.elapsed().as_secs_f64() - bulk_secs;
    let estimate = estimate(
        args,
        bulk.as_ref().map(|bulk| (bulk, bulk_secs)),
        lifetime.as_ref().map(|_| lifetime_secs),
    );

    let mut plot_link = None;
    if let (Some(path), Some(lifetime)) = (&args.plot, &lifetime) {
        std::fs::write(path, lifetime_plot(args, lifetime))?;
        progress(&format!("wrote {}", path.display()));
        plot_link = Some(link(path, args.common.markdown.as_deref()));
    }
    about.push((
        "Wall time".to_owned(),
        format!("{:.1} min", start.elapsed().as_secs_f64() / 60.0),
    ));
    about.push(("Load average at the end".to_owned(), procfs::load_average()));
    let report = Report {
        args,
        about,
        bulk,
        lifetime,
        plot: plot_link,
    };
    println!("{}", report.markdown());
    if let Some(path) = &args.common.markdown {
        report.write_into(path)?;
        progress(&format!("wrote {}", path.display()));
    }
    progress(&estimate);
    Ok(())
}

/// How long a run with the default sizes would take: each stage of this
/// run scaled by the Leases it handles at the default sizes (at this run's
/// rate), the rest (child start-ups, waits) as it took here.
fn estimate(args: &Args, bulk: Option<(&bulk::Bulk, f64)>, lifetime_secs: Option<f64>) -> String {
    let mut total = 0.0;
    let mut parts = Vec::new();
    if let Some((bulk, wall)) = bulk {
        let plan = &bulk.plan;
        let ratio = |full: usize, here: u64| full as f64 / here.max(1) as f64;
        let full_left = FULL_OWN - FULL_RELEASE_ALL - FULL_EXPIRED;
        let population = bulk.population.own_secs + bulk.population.foreign_secs;
        let mut scaled = vec![
            (
                population,
                ratio(FULL_OWN + FULL_FOREIGN, (plan.own + plan.foreign) as u64),
            ),
            (
                bulk.count_secs,
                ratio(FULL_OWN + FULL_FOREIGN, (plan.own + plan.foreign) as u64),
            ),
            (
                bulk.release_all.measured.secs,
                ratio(FULL_RELEASE_ALL, bulk.release_all.measured.count),
            ),
            (
                bulk.sweep.measured.secs,
                ratio(FULL_EXPIRED, bulk.sweep.measured.count),
            ),
            (
                bulk.cleanup.1,
                ratio(full_left + FULL_FOREIGN, bulk.cleanup.0),
            ),
        ];
        for row in &bulk.lists {
            let full = if row.own == plan.own as u64 {
                FULL_OWN
            } else {
                full_left
            };
            scaled.push((row.measured.secs, ratio(full, row.own)));
        }
        for row in &bulk.is_locked {
            scaled.push((row.measured.secs, ratio(FULL_IS_LOCKED, row.measured.calls)));
        }
        let measured: f64 = scaled.iter().map(|(secs, _)| secs).sum();
        let secs = (wall - measured).max(0.0)
            + scaled
                .iter()
                .map(|(secs, factor)| secs * factor)
                .sum::<f64>();
        parts.push(format!("bulk {:.0} s", secs));
        total += secs;
    }
    if let Some(wall) = lifetime_secs {
        // Start-up, the tail and the cleanup, which grows with the plateau.
        let rate = |tasks: usize, interval: u64| tasks as f64 / interval as f64;
        let overhead = (wall - args.duration.as_secs_f64()).max(0.0)
            * (rate(FULL_TASKS, FULL_INTERVAL_SECS) / rate(args.tasks, args.interval_secs))
                .max(1.0);
        let secs = FULL_DURATION_SECS as f64 + overhead;
        parts.push(format!("lifetime {:.0} s", secs));
        total += secs;
    }
    format!(
        "at this run's rates, a run with the default sizes would take about {:.0} min ({})",
        total / 60.0,
        parts.join(", ")
    )
}

fn lifetime_plot(args: &Args, lifetime: &lifetime::Lifetime) -> String {
    let leases = lifetime
        .samples
        .iter()
        .map(|s| (s.elapsed_secs, s.leases as f64))
        .collect();
    let rss = lifetime
        .samples
        .iter()
        .filter_map(|s| Some((s.elapsed_secs, s.rss_kib? as f64 / 1024.0)))
        .collect();
    let panels = [
        plot::Panel {
            y_label: "Leases of the replicas",
            color: "#1f77b4",
            points: leases,
            band: Some((
                lifetime.expected.0,
                lifetime.expected.1,
                format!(
                    "expected plateau {} to {}",
                    thousands(lifetime.expected.0 as u64),
                    thousands(lifetime.expected.1 as u64)
                ),
            )),
        },
        plot::Panel {
            y_label: "client VmRSS, MiB",
            color: "#d62728",
            points: rss,
            band: None,
        },
    ];
    let title = format!(
        "{} tasks every {} s, {} replicas, TTL {} s, sweep every {} s, grace {} s",
        thousands(args.tasks as u64),
        args.interval_secs,
        args.replicas,
        args.lock_ttl_secs,
        args.sweep_interval_secs,
        args.sweep_grace_secs
    );
    let marker = (lifetime.warm_up_secs, "plateau from here →");
    plot::svg(&title, "elapsed, s", Some(marker), &panels)
}

/// How the Markdown in `markdown` refers to `plot`: relative to its
/// directory when the plot is below it, else as given.
fn link(plot: &Path, markdown: Option<&Path>) -> String {
    let base = markdown
        .and_then(Path::parent)
        .filter(|dir| !dir.as_os_str().is_empty());
    let relative = match base {
        Some(dir) => plot.strip_prefix(dir).unwrap_or(plot),
        None => plot,
    };
    relative.to_string_lossy().replace('\\', "/")
}

/// Machine, versions and settings, for the report.
async fn environment(ctx: &Context) -> Result<Vec<(String, String)>> {
    let args = &ctx.args;
    let version = tokio::time::timeout(VERSION_TIMEOUT, ctx.client.apiserver_version()).await??;
    let mut about = procfs::machine(version.git_version);
    about.extend(args.common.about.iter().cloned());
    about.push((
        "Settings".to_owned(),
        format!(
            "namespace {}, release_all and sweep page size {}, list-only page sizes {}",
            args.common.namespace,
            args.page_size,
            args.list_page_sizes
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    Ok(about)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_is_linked_relative_to_the_markdown() {
        let plot = Path::new("bench/scale-lifetime.svg");
        assert_eq!(
            link(plot, Some(Path::new("BENCHMARKS.md"))),
            "bench/scale-lifetime.svg"
        );
        assert_eq!(
            link(plot, Some(Path::new("bench/SCALE.md"))),
            "scale-lifetime.svg"
        );
        assert_eq!(link(plot, None), "bench/scale-lifetime.svg");
    }

    #[test]
    fn the_defaults_are_the_full_sizes_the_estimate_assumes() {
        let args = Args::parse_from(["lease-bench-scale", "--kubeconfig", "k"]);
        assert_eq!(args.duration, Duration::from_secs(FULL_DURATION_SECS));
        assert_eq!((args.own, args.foreign), (FULL_OWN, FULL_FOREIGN));
        assert_eq!(
            (args.tasks, args.interval_secs),
            (FULL_TASKS, FULL_INTERVAL_SECS)
        );
    }

    #[test]
    fn children_get_the_run_and_the_sizes() {
        let args = Args::parse_from(["lease-bench-scale", "--kubeconfig", "k", "--own", "30"]);
        let extra = ["--page-size".to_owned(), "7".to_owned()];
        let child = Args::parse_from(
            std::iter::once(OsString::from("lease-bench-scale"))
                .chain(args.child_args(ChildKind::Sweep, &extra)),
        );
        assert_eq!(child.child, Some(ChildKind::Sweep));
        assert_eq!(child.common.run, args.common.run);
        assert_eq!(child.own, 30);
        assert_eq!(child.page_size, 7);
    }
}
