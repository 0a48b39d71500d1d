//! `lease-bench`: celers-kube-lease against client-go's LeaseLock on one API
//! server. Progress goes to stderr, the tables (Markdown) to stdout.

mod handoff;
mod measure;
mod ours;
mod peer;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use celers_kube_lease_bench::cli::{parse_positive, Common};
use celers_kube_lease_bench::procfs;
use clap::Parser;

use measure::Result;
use ours::{Loop, Op, Ours};
use peer::{ContentType, Peer, Peers};
use report::{Report, Row};

const PHASES: [&str; 6] = [
    "operations",
    "throughput",
    "workloads",
    "release-all",
    "memory",
    "handoff",
];

/// celers-kube-lease against client-go's LeaseLock on one API server.
#[derive(Parser)]
#[command(name = "lease-bench")]
struct Args {
    /// Run the memory phase in this process (the parent starts it so).
    #[arg(long, hide = true)]
    memory_child: bool,
    #[command(flatten)]
    common: Common,
    /// The built bench/clientgo peer; without it, our side only. It runs
    /// every scenario twice after ours, one run at a time: client-go with
    /// JSON (rest.Config ContentType application/json), then with protobuf
    /// (application/vnd.kubernetes.protobuf, as kube-controller-manager and
    /// kube-scheduler). Each run measures its own window, as ours does.
    #[arg(long)]
    clientgo: Option<PathBuf>,
    /// Operations per sequential phase.
    #[arg(long, default_value_t = 200, value_parser = parse_positive)]
    iterations: usize,
    /// Throughput and workload client counts; a hot-key run follows for
    /// every count above 1.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = parse_positive)]
    clients: Vec<usize>,
    /// Measured time of each throughput or workload run, in seconds.
    #[arg(long = "duration-secs", default_value = "5", value_parser = parse_secs)]
    duration: Duration,
    /// Lock TTL in seconds.
    #[arg(long = "ttl-secs", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    ttl: u64,
    /// `release_all` sizes.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    release_all: Vec<usize>,
    /// Locks held in the memory phase.
    #[arg(long, default_value_t = 10_000)]
    memory_locks: usize,
    /// Waiter counts of the handoff phase.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    waiters: Vec<usize>,
    /// Handoffs per waiter count, ours.
    #[arg(long, default_value_t = 200)]
    handoffs: usize,
    /// Handoffs per waiter count, client-go's LeaderElector (each takes up
    /// to its RetryPeriod, 2 s).
    #[arg(long, default_value_t = 20)]
    peer_handoffs: usize,
    /// Dead-holder trials, each side.
    #[arg(long, default_value_t = 3)]
    dead_trials: usize,
    /// The dead holder's TTL, seconds.
    #[arg(long, default_value_t = 5)]
    dead_ttl_secs: u64,
    /// Which phases to run.
    #[arg(long, value_delimiter = ',', default_value = "operations,throughput,workloads,release-all,memory,handoff", value_parser = clap::builder::PossibleValuesParser::new(PHASES))]
    phases: Vec<String>,
}

fn parse_secs(text: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let outcome = if args.memory_child {
        memory_child(&args).await
    } else {
        run(args).await
    };
    if let Err(error) = outcome {
        eprintln!("lease-bench: {error}");
        std::process::exit(1);
    }
}

async fn memory_child(args: &Args) -> Result<()> {
    let config = celers_kube_lease_testkit::config_from(&args.common.kubeconfig).await?;
    let memory = ours::memory(
        config,
        &args.common.namespace,
        &args.common.run,
        args.memory_locks,
        args.ttl,
    )
    .await?;
    println!("{}", serde_json::to_string(&memory)?);
    Ok(())
}

fn progress(what: &str) {
    eprintln!("lease-bench: {what}");
}

async fn run(args: Args) -> Result<()> {
    let config = celers_kube_lease_testkit::config_from(&args.common.kubeconfig).await?;
    let ours = Ours::new(
        config,
        &args.common.namespace,
        &args.common.run,
        args.ttl,
        args.common.etcd.clone(),
        args.common.pids.clone(),
    )
    .await?;
    let peers: Vec<Peer> = match &args.clientgo {
        Some(program) => ContentType::ALL
            .into_iter()
            .map(|content_type| Peer {
                program: program.clone(),
                kubeconfig: args.common.kubeconfig.clone(),
                namespace: args.common.namespace.clone(),
                ttl: args.ttl,
                content_type,
                etcd: args.common.etcd.clone(),
                pids: args.common.pids.clone(),
            })
            .collect(),
        None => Vec::new(),
    };
    let mut report = Report {
        about: environment(&args, &ours).await?,
        ..Report::default()
    };
    let iterations = ["--iterations".to_owned(), args.iterations.to_string()];
    let run_phase = |phase: &str| args.phases.iter().any(|p| p == phase);

    if run_phase("operations") {
        progress(&format!(
            "sequential phases, {} operations each",
            args.iterations
        ));
        let sequential = [
            ("acquire, free key", Op::AcquireFree, "acquire_free"),
            ("re-acquire by the holder", Op::Reacquire, "renew"),
            (
                "re-acquire by the holder, new backend/elector",
                Op::ReacquireNewBackend,
                "reacquire",
            ),
            ("renew", Op::Renew, "renew"),
            ("release", Op::Release, "release"),
            ("is_locked", Op::IsLocked, "get"),
            ("owner", Op::Owner, "get"),
        ];
        for (label, op, peer_scenario) in sequential {
            let phase = ours.sequential(op, args.iterations).await?;
            let theirs = run_peers(&ours, &peers, peer_scenario, &iterations).await?;
            report
                .operations
                .push(Row::new(label, peer_scenario, phase, theirs));
            if op == Op::AcquireFree {
                let [unseen, seen] = ours.expired(args.iterations).await?;
                let theirs = run_peers(&ours, &peers, "acquire_expired", &iterations).await?;
                report.operations.push(Row::new(
                    "acquire, expired key, never seen",
                    "acquire_expired",
                    unseen,
                    theirs.clone(),
                ));
                report.operations.push(Row::new(
                    "acquire, expired key, seen held",
                    "acquire_expired",
                    seen,
                    theirs,
                ));
            }
        }
    }

    if run_phase("throughput") {
        let distinct = args.clients.iter().map(|&n| (n, Loop::OwnKey));
        let hot = args
            .clients
            .iter()
            .filter(|&&n| n > 1)
            .map(|&n| (n, Loop::HotKey));
        for (clients, workload) in distinct.chain(hot) {
            let keys = if workload == Loop::HotKey {
                "one hot key"
            } else {
                "distinct"
            };
            progress(&format!("throughput, {clients} clients, {keys}"));
            let phase = ours.throughput(clients, args.duration, workload).await?;
            let (scenario, extra) = loop_scenario(&args, clients, workload);
            let theirs = run_peers(&ours, &peers, scenario, &extra).await?;
            report
                .throughput
                .push(Row::new(keys, "throughput", phase, theirs));
        }
    }

    if run_phase("workloads") {
        for &clients in &args.clients {
            for (workload, label) in [
                (Loop::Dispatch, "dispatch: a fresh key per op"),
                (Loop::Cycle, "cycle: acquire, then release"),
            ] {
                progress(&format!("{}, {clients} clients", workload.scenario()));
                let phase = ours.throughput(clients, args.duration, workload).await?;
                let (scenario, extra) = loop_scenario(&args, clients, workload);
                let theirs = run_peers(&ours, &peers, scenario, &extra).await?;
                report
                    .workloads
                    .push(Row::new(label, workload.scenario(), phase, theirs));
            }
        }
    }

    if run_phase("release-all") {
        for &n in &args.release_all {
            progress(&format!("release_all of {n} leases"));
            report.release_all.push(ours.release_all(n).await?);
        }
    }

    if run_phase("memory") {
        progress(&format!("memory with {} locks held", args.memory_locks));
        report.memory = Some(memory(&args).await?);
    }

    if run_phase("handoff") {
        for &waiters in &args.waiters {
            progress(&format!("handoffs with {waiters} waiters"));
            let phase = ours.handoffs(waiters, args.handoffs).await?;
            let clients = (waiters + 1).to_string();
            let extra = vec![
                "--clients".to_owned(),
                clients,
                "--iterations".to_owned(),
                args.peer_handoffs.to_string(),
            ];
            let theirs = run_peers(&ours, &peers, "handoff", &extra).await?;
            report.handoffs.push(Row::new(
                &format!("{waiters} waiters"),
                "handoff",
                phase,
                theirs,
            ));
        }
        progress("dead holders");
        let phase = ours
            .dead_holder(args.dead_trials, args.dead_ttl_secs)
            .await?;
        let extra = vec![
            "--iterations".to_owned(),
            args.dead_trials.to_string(),
            "--ttl-secs".to_owned(),
            args.dead_ttl_secs.to_string(),
        ];
        let theirs = run_peers(&ours, &peers, "dead_holder", &extra).await?;
        report.handoffs.push(Row::new(
            &format!("dead holder (TTL {} s): after the TTL", args.dead_ttl_secs),
            "dead_holder",
            phase,
            theirs,
        ));
    }

    report
        .about
        .push(("Load average at the end".to_owned(), procfs::load_average()));
    let tables = report.markdown();
    println!("{tables}");
    if let Some(path) = &args.common.markdown {
        report.write_into(path)?;
        progress(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Runs `scenario` on each client-go peer in turn (JSON, then protobuf).
/// What a peer left (`--keep-leases`: a dispatch run's Leases, one per
/// operation) is deleted here, after its measured window.
async fn run_peers(ours: &Ours, peers: &[Peer], scenario: &str, extra: &[String]) -> Result<Peers> {
    let mut phases = Peers::default();
    for (slot, peer) in phases.iter_mut().zip(peers) {
        let phase = peer.run(scenario, extra).await?;
        if let Some(prefix) = phase.kept_prefix.as_deref().filter(|p| !p.is_empty()) {
            let deleted = ours.delete_prefixed(prefix).await?;
            progress(&format!("deleted the {deleted} Leases the peer left"));
        }
        *slot = Some(phase);
    }
    Ok(phases)
}

/// The client-go peer's scenario and arguments for `workload` with
/// `clients` clients.
fn loop_scenario(args: &Args, clients: usize, workload: Loop) -> (&'static str, Vec<String>) {
    let mut extra = vec![
        "--clients".to_owned(),
        clients.to_string(),
        "--duration-secs".to_owned(),
        args.duration.as_secs_f64().to_string(),
    ];
    let scenario = match workload {
        Loop::OwnKey => "throughput",
        Loop::HotKey => {
            extra.push("--hot-key".to_owned());
            "throughput"
        }
        Loop::Dispatch => {
            extra.push("--keep-leases".to_owned());
            "dispatch"
        }
        Loop::Cycle => "cycle",
    };
    (scenario, extra)
}

/// Runs the memory phase in a child process (this binary, `memory` mode).
async fn memory(args: &Args) -> Result<ours::Memory> {
    let program = std::env::current_exe()?;
    let output = tokio::process::Command::new(program)
        .arg("--memory-child")
        .arg("--kubeconfig")
        .arg(&args.common.kubeconfig)
        .args([
            "--namespace",
            &args.common.namespace,
            "--run",
            &args.common.run,
        ])
        .args(["--memory-locks", &args.memory_locks.to_string()])
        .args(["--ttl-secs", &args.ttl.to_string()])
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!("the memory phase failed: {}", output.status).into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Settings, machine and versions, for the report.
async fn environment(args: &Args, ours: &Ours) -> Result<Vec<(String, String)>> {
    let kubernetes = ours.kubernetes_version().await?;
    let mut about = procfs::machine(kubernetes);
    about.extend(args.common.about.iter().cloned());
    if args.clientgo.is_some() {
        about.push((
            "client-go columns".to_owned(),
            "client-go JSON: rest.Config ContentType application/json, AcceptContentTypes \
             application/json; client-go protobuf: ContentType \
             application/vnd.kubernetes.protobuf, AcceptContentTypes \
             application/vnd.kubernetes.protobuf,application/json (as kube-controller-manager \
             and kube-scheduler); run one after the other, after ours"
                .to_owned(),
        ));
    }
    about.push((
        "Settings".to_owned(),
        format!(
            "{} operations per sequential phase, {:.1} s per throughput or workload run, \
             TTL {} s, \
             namespace {}{}",
            args.iterations,
            args.duration.as_secs_f64(),
            args.ttl,
            args.common.namespace,
            if args.clientgo.is_some() {
                ""
            } else {
                "; client-go peer not run"
            },
        ),
    ));
    Ok(about)
}
