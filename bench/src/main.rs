//! `lease-bench`: celers-kube-lease against client-go's LeaseLock on one API
//! server. Progress goes to stderr, the tables (Markdown) to stdout.

mod measure;
mod ours;
mod peer;
mod report;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::config::{KubeConfigOptions, Kubeconfig};

use measure::{Phase, Result};
use ours::{Loop, Op, Ours};
use peer::Peer;
use report::{Report, Row};

const USAGE: &str = "\
usage: lease-bench --kubeconfig PATH [options]
  --namespace NS          namespace of the Leases (must exist; default: default)
  --clientgo PATH         the built bench/clientgo peer; without it, our side only
  --iterations N          operations per sequential phase (default 200)
  --clients LIST          throughput and workload client counts (default 1,8,32);
                          a hot-key run follows for every count above 1
  --duration-secs SECS    measured time of each throughput or workload run (default 5)
  --ttl-secs N            lock TTL (default 15)
  --release-all LIST      release_all sizes (default 100,1000,5000)
  --memory-locks N        locks held in the memory phase (default 10000)
  --phases LIST           which to run (default
                          operations,throughput,workloads,release-all,memory)
  --markdown PATH         also write the tables into PATH (e.g. BENCHMARKS.md)
  --about NAME=VALUE      a line for the environment list (repeatable)
  --etcd HOST:PORT        etcd's client address, to read its WAL fsyncs
  --server-pid NAME=PID   a server process whose CPU time is read (repeatable)";

const PHASES: [&str; 5] = [
    "operations",
    "throughput",
    "workloads",
    "release-all",
    "memory",
];

struct Args {
    memory_child: bool,
    kubeconfig: PathBuf,
    namespace: String,
    clientgo: Option<PathBuf>,
    iterations: usize,
    clients: Vec<usize>,
    duration: Duration,
    ttl: u64,
    release_all: Vec<usize>,
    memory_locks: usize,
    phases: Vec<String>,
    markdown: Option<PathBuf>,
    about: Vec<(String, String)>,
    etcd: Option<String>,
    pids: Vec<(String, u32)>,
    run: String,
}

fn parse_args() -> Result<Args> {
    let mut raw = std::env::args().skip(1).peekable();
    let memory_child = raw.next_if(|arg| arg == "memory").is_some();
    let mut args = Args {
        memory_child,
        kubeconfig: PathBuf::new(),
        namespace: "default".to_owned(),
        clientgo: None,
        iterations: 200,
        clients: vec![1, 8, 32],
        duration: Duration::from_secs(5),
        ttl: 15,
        release_all: vec![100, 1000, 5000],
        memory_locks: 10_000,
        phases: PHASES.iter().map(|phase| phase.to_string()).collect(),
        markdown: None,
        about: Vec::new(),
        etcd: None,
        pids: Vec::new(),
        run: run_id(),
    };
    while let Some(arg) = raw.next() {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), value.to_owned()),
            None => {
                let value = raw
                    .next()
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
                (arg, value)
            }
        };
        let number = |value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--kubeconfig" => args.kubeconfig = value.into(),
            "--namespace" => args.namespace = value,
            "--clientgo" => args.clientgo = Some(value.into()),
            "--iterations" => args.iterations = number(&value)?.max(1),
            "--clients" => {
                args.clients = value
                    .split(',')
                    .map(number)
                    .collect::<std::result::Result<_, _>>()?
            }
            "--duration-secs" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("{flag}: {value:?} is not a number"))?;
                args.duration = Duration::try_from_secs_f64(secs)?;
            }
            "--ttl-secs" => args.ttl = number(&value)?.max(1) as u64,
            "--release-all" => {
                args.release_all = value
                    .split(',')
                    .map(number)
                    .collect::<std::result::Result<_, _>>()?;
            }
            "--memory-locks" => args.memory_locks = number(&value)?.max(1),
            "--phases" => {
                args.phases = value.split(',').map(str::to_owned).collect();
                if let Some(unknown) = args.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    return Err(format!("--phases: unknown phase {unknown:?}").into());
                }
            }
            "--markdown" => args.markdown = Some(value.into()),
            "--about" => {
                let (name, text) = value.split_once('=').ok_or("--about takes NAME=VALUE")?;
                args.about.push((name.to_owned(), text.to_owned()));
            }
            "--etcd" => args.etcd = Some(value),
            "--server-pid" => {
                let (name, pid) = value.split_once('=').ok_or("--server-pid takes NAME=PID")?;
                let pid = pid
                    .parse()
                    .map_err(|_| format!("--server-pid: {pid:?} is not a PID"))?;
                args.pids.push((name.to_owned(), pid));
            }
            // The memory child is given the parent's run id.
            "--run" => args.run = value,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}").into()),
        }
    }
    if args.kubeconfig.as_os_str().is_empty() {
        return Err(format!("--kubeconfig is required\n{USAGE}").into());
    }
    if args.clients.contains(&0) {
        return Err("--clients: counts must be positive".into());
    }
    Ok(args)
}

/// A short id that keeps this run's Lease names apart from other runs'.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    format!("{:x}", nanos ^ std::process::id().rotate_left(16))
}

#[tokio::main]
async fn main() {
    let outcome = match parse_args() {
        Ok(args) if args.memory_child => memory_child(&args).await,
        Ok(args) => run(args).await,
        Err(error) => Err(error),
    };
    if let Err(error) = outcome {
        eprintln!("lease-bench: {error}");
        std::process::exit(1);
    }
}

async fn kube_config(args: &Args) -> Result<kube::Config> {
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

async fn memory_child(args: &Args) -> Result<()> {
    let config = kube_config(args).await?;
    let memory = ours::memory(
        config,
        &args.namespace,
        &args.run,
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
    let config = kube_config(&args).await?;
    let ours = Ours::new(
        config,
        &args.namespace,
        &args.run,
        args.ttl,
        args.etcd.clone(),
        args.pids.clone(),
    )
    .await?;
    let peer = args.clientgo.as_ref().map(|program| Peer {
        program: program.clone(),
        kubeconfig: args.kubeconfig.clone(),
        namespace: args.namespace.clone(),
        ttl: args.ttl,
    });
    let mut report = Report {
        about: environment(&args, &ours).await?,
        ..Report::default()
    };
    let iterations = ["--iterations".to_owned(), args.iterations.to_string()];
    let peer_run = |scenario: &'static str, extra: Vec<String>| {
        let peer = peer.as_ref();
        async move {
            match peer {
                Some(peer) => peer.run(scenario, &extra).await.map(Some),
                None => Ok(None),
            }
        }
    };
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
            let peer = peer_run(peer_scenario, iterations.to_vec()).await?;
            report
                .operations
                .push(Row::new(label, peer_scenario, phase, peer));
            if op == Op::AcquireFree {
                let [unseen, seen] = ours.expired(args.iterations).await?;
                let peer = peer_run("acquire_expired", iterations.to_vec()).await?;
                report.operations.push(Row::new(
                    "acquire, expired key, never seen",
                    "acquire_expired",
                    unseen,
                    peer.clone(),
                ));
                report.operations.push(Row::new(
                    "acquire, expired key, seen held",
                    "acquire_expired",
                    seen,
                    peer,
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
            let peer_phase = peer_loop(&ours, peer.as_ref(), &args, clients, workload).await?;
            report
                .throughput
                .push(Row::new(keys, "throughput", phase, peer_phase));
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
                let peer_phase = peer_loop(&ours, peer.as_ref(), &args, clients, workload).await?;
                report
                    .workloads
                    .push(Row::new(label, workload.scenario(), phase, peer_phase));
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

    report
        .about
        .push(("Load average at the end".to_owned(), load_average()));
    let tables = report.markdown();
    println!("{tables}");
    if let Some(path) = &args.markdown {
        report.write_into(path)?;
        progress(&format!("wrote {}", path.display()));
    }
    Ok(())
}

/// The client-go peer's run of `workload` with `clients` clients, if there
/// is a peer. The server side is measured over the peer's whole run, which is
/// the loop and little else: the Leases a dispatch run creates (one per
/// operation) are left to be deleted here, after the measurement.
async fn peer_loop(
    ours: &Ours,
    peer: Option<&Peer>,
    args: &Args,
    clients: usize,
    workload: Loop,
) -> Result<Option<Phase>> {
    let Some(peer) = peer else {
        return Ok(None);
    };
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
    let (phase, usage) = ours.probe().counted(peer.run(scenario, &extra)).await?;
    let phase = phase?;
    if let Some(prefix) = phase.kept_prefix.as_deref().filter(|p| !p.is_empty()) {
        let deleted = ours.delete_prefixed(prefix).await?;
        progress(&format!("deleted the {deleted} Leases the peer left"));
    }
    Ok(Some(Phase {
        usage: Some(usage),
        ..phase
    }))
}

/// Runs the memory phase in a child process (this binary, `memory` mode).
async fn memory(args: &Args) -> Result<ours::Memory> {
    let program = std::env::current_exe()?;
    let output = tokio::process::Command::new(program)
        .arg("memory")
        .arg("--kubeconfig")
        .arg(&args.kubeconfig)
        .args(["--namespace", &args.namespace, "--run", &args.run])
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
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut about = vec![
        (
            "Measured".to_owned(),
            httpdate::fmt_http_date(SystemTime::now()),
        ),
        (
            "Machine".to_owned(),
            format!(
                "{cores} cores (nproc), {:.1} GiB memory, CPU: {cpu}",
                memory_kib as f64 / 1024.0 / 1024.0
            ),
        ),
        ("Load average at the start".to_owned(), load_average()),
        ("Kubernetes (kube-apiserver)".to_owned(), kubernetes),
    ];
    about.extend(args.about.iter().cloned());
    about.push((
        "Settings".to_owned(),
        format!(
            "{} operations per sequential phase, {:.1} s per throughput or workload run, \
             TTL {} s, \
             namespace {}{}",
            args.iterations,
            args.duration.as_secs_f64(),
            args.ttl,
            args.namespace,
            if args.clientgo.is_some() {
                ""
            } else {
                "; client-go peer not run"
            },
        ),
    ));
    Ok(about)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
