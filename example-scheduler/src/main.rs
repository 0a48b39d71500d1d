//! `celers-kube-lease-scheduler`: one replica of an example scheduler: a
//! stock celers-beat `BeatScheduler` (interval and crontab entries) ticked
//! by celers-kube-lease's `KubeBeat`, so that every scheduled instant is
//! executed by exactly one replica. `--mode stock…` ticks it with
//! celers-beat's own `tick_with_locks` instead, for comparison. See
//! `--help` for the settings.

mod args;
mod dispatch;
mod operating;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use celers_kube_lease::{KubeBeat, KubeLeaseLockBackend};
use prometheus_client::registry::Registry;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::args::{LogFormat, Settings};
use crate::dispatch::Ticker;

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
    let mut registry = Registry::default();
    let backend = KubeLeaseLockBackend::builder(client.clone())
        .namespace(namespace.as_str())
        // A request slower than a third of the TTL is of no use.
        .request_timeout(Duration::from_secs((settings.ttl_secs / 3).clamp(1, 10)))
        .metrics(&mut registry)
        .build()
        .map_err(|error| Failure::Config(error.to_string()))?;
    let owner = settings.owner.clone();
    let leader_ttl = Duration::from_secs(settings.ttl_secs);
    let beat = KubeBeat::builder(backend.clone(), owner.as_str())
        .leader_ttl(leader_ttl)
        // Standbys look three times per TTL, as the leader renews.
        .retry_period(leader_ttl / 3)
        .metrics(&mut registry)
        .events("celers-beat-scheduler")
        .build()
        .map_err(|error| Failure::Config(error.to_string()))?;
    let beat = Arc::new(beat);
    let mut scheduler = dispatch::scheduler(&settings).map_err(Failure::Config)?;
    let ticker = Ticker::new(
        settings.mode,
        Arc::clone(&beat),
        &backend,
        &mut scheduler,
        &owner,
        leader_ttl,
    )
    .map_err(Failure::Config)?;

    tracing::info!(
        owner = %owner,
        holder = %beat.owner(),
        namespace = %namespace,
        mode = ?settings.mode,
        interval_secs = settings.interval_secs,
        ttl_secs = settings.ttl_secs,
        tasks = settings.tasks,
        crontab = settings.crontab.as_deref().unwrap_or("none"),
        "scheduler starting"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_task = (settings.metrics_port != 0).then(|| {
        let addr = SocketAddr::from(([0, 0, 0, 0], settings.metrics_port));
        tokio::spawn(operating::serve(
            addr,
            Arc::new(registry),
            Arc::clone(&beat),
            stop_rx.clone(),
        ))
    });
    let ticks = tokio::spawn(dispatch::run(
        scheduler,
        ticker,
        owner.clone(),
        settings.tick,
        stop_rx,
    ));

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
    // Let the loop finish its tick; each request is bounded.
    let _ = stop_tx.send(true);
    let scheduler = ticks.await.ok();
    if let Some(task) = metrics_task {
        if let Ok(Err(error)) = task.await {
            tracing::warn!(%error, "the metrics endpoint failed");
        }
    }
    // Hand the lead over at once rather than after the TTL.
    let released = match (
        settings.mode,
        scheduler.as_ref().and_then(|s| s.heartbeat()),
    ) {
        (args::Mode::KubeBeat, _) => beat.step_down().await.map_err(|e| e.to_string()),
        (_, Some(heartbeat)) => heartbeat
            .shutdown()
            .await
            .map(|()| true)
            .map_err(|e| e.to_string()),
        (_, None) => Ok(false),
    };
    match released {
        Ok(released) => tracing::info!(owner = %owner, released, "released locks; exiting"),
        Err(error) => {
            tracing::warn!(%error, owner = %owner, "releasing the lead failed; it will expire")
        }
    }
    Ok(())
}
