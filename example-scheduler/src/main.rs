//! `celers-kube-lease-scheduler`: one replica of an example beat-style
//! scheduler. Replicas share Lease-backed locks (celers-kube-lease), so every
//! run of every task is executed by exactly one of them, and elect a leader
//! with celers-beat's `BeatHeartbeat`. See `--help` for the settings.
//!
//! Two lock owners per replica: `<owner>` holds the leader lock and any lock
//! that must be freed on shutdown (`release_all(owner)`); `<owner>.dispatch`
//! holds the per-run locks, which must outlive the replica that executed the
//! run: `release_all(owner)` would otherwise free them on SIGTERM and let
//! another replica execute the same run again.

mod args;
mod dispatch;
mod election;
mod operating;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use celers_beat::heartbeat::{BeatHeartbeat, BeatRole, HeartbeatConfig};
use celers_core_03::lock::DistributedLockBackend;
use celers_kube_lease::KubeLeaseLockBackend;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::args::{LogFormat, Settings, DISPATCH_SUFFIX};
use crate::dispatch::{Dispatcher, RunLedger};
use crate::operating::Leadership;

/// Exit status for invalid settings, as for command line errors.
const CONFIG_ERROR: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = Settings::from_env();
    if let Err(message) = init_tracing(settings.log_format) {
        eprintln!("error: {message}");
        return ExitCode::from(CONFIG_ERROR);
    }
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(message)) => {
            tracing::error!("{message}");
            ExitCode::from(CONFIG_ERROR)
        }
        Err(Failure::Fatal(message)) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Config(String),
    Fatal(String),
}

/// Logs on stdout, JSON lines or text, `RUST_LOG` (default `info`).
fn init_tracing(format: LogFormat) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec)
            .map_err(|error| format!("invalid RUST_LOG {spec:?}: {error}"))?,
        _ => EnvFilter::new("info"),
    };
    let colour = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs.with_ansi(colour).init(),
    }
    Ok(())
}

async fn run(settings: Settings) -> Result<(), Failure> {
    let fatal = |what: &str, error: std::io::Error| Failure::Fatal(format!("{what}: {error}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| fatal("SIGTERM handler", e))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| fatal("SIGINT handler", e))?;

    let client = kube::Client::try_default().await.map_err(|error| {
        Failure::Config(format!(
            "no Kubernetes configuration (in-cluster, or a kubeconfig via KUBECONFIG): {error}"
        ))
    })?;
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let ledger = RunLedger::new(client.clone(), &namespace);
    let mut registry = Registry::default();
    let backend = KubeLeaseLockBackend::builder(client.clone())
        .namespace(namespace.as_str())
        // A request slower than a TTL is of no use.
        .request_timeout(Duration::from_secs(settings.ttl_secs.min(10)))
        .metrics(&mut registry)
        .build()
        .map_err(|error| Failure::Config(error.to_string()))?;
    let leadership = Leadership::new(
        client,
        &namespace,
        &settings.owner,
        operating::leader_gauge(&mut registry),
    );
    let owner = settings.owner.clone();
    let locks: Arc<dyn DistributedLockBackend> = Arc::new(backend.clone());

    // The leader renews three times per TTL; standbys check as often.
    let period = Duration::from_millis(settings.ttl_secs * 1000 / 3);
    let ttl = Duration::from_secs(settings.ttl_secs);
    let config = HeartbeatConfig::new()
        .with_leader_lease_ttl(ttl)
        .with_leader_renewal_interval(period)
        .with_failover_timeout(ttl * 2);
    config
        .validate()
        .map_err(|error| Failure::Config(format!("heartbeat settings: {error}")))?;
    let heartbeat = Arc::new(BeatHeartbeat::new(
        owner.clone(),
        Arc::clone(&locks),
        config,
    ));

    tracing::info!(
        owner = %owner,
        namespace = %namespace,
        interval_secs = settings.interval_secs,
        ttl_secs = settings.ttl_secs,
        tasks = settings.tasks,
        "scheduler starting"
    );
    if let Err(error) = heartbeat.try_become_leader().await {
        tracing::warn!(%error, owner = %owner, "leader election failed; retrying next tick");
    }
    let role = election::log_role(&heartbeat, &owner, BeatRole::Unknown, &leadership).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_task = (settings.metrics_port != 0).then(|| {
        let addr = SocketAddr::from(([0, 0, 0, 0], settings.metrics_port));
        tokio::spawn(operating::serve(addr, Arc::new(registry), stop_rx.clone()))
    });
    let election_task = tokio::spawn(election::run(
        Arc::clone(&heartbeat),
        owner.clone(),
        period,
        role,
        leadership,
        stop_rx.clone(),
    ));
    let dispatcher = Dispatcher {
        backend: locks,
        heartbeat: Arc::clone(&heartbeat),
        owner: owner.clone(),
        run_owner: format!("{owner}{DISPATCH_SUFFIX}"),
        tasks: (0..settings.tasks).map(|i| format!("task-{i}")).collect(),
        interval_secs: settings.interval_secs,
        ttl_secs: settings.ttl_secs,
        ledger,
    };
    let dispatch_task = tokio::spawn(dispatcher.run(stop_rx));

    let run_for = async {
        match settings.run_for {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let reason = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        () = run_for => "--run-for-secs elapsed",
    };
    tracing::info!(owner = %owner, reason = %reason, "shutting down");
    // Let the loops finish what they are doing; each request is bounded.
    let _ = stop_tx.send(true);
    let _ = tokio::join!(election_task, dispatch_task);
    if let Some(task) = metrics_task {
        if let Ok(Err(error)) = task.await {
            tracing::warn!(%error, "the metrics endpoint failed");
        }
    }
    if let Err(error) = heartbeat.shutdown().await {
        tracing::warn!(%error, owner = %owner, "releasing the leader lock failed; it will expire");
    }
    match backend.release_all(&owner).await {
        Ok(released) => tracing::info!(owner = %owner, released, "released locks; exiting"),
        Err(error) => {
            tracing::warn!(%error, owner = %owner, "release_all failed; the locks will expire")
        }
    }
    Ok(())
}
