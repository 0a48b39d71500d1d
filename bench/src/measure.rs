//! What a phase measured: latencies on our side, requests and costs from the
//! servers' own metrics and /proc.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;

use celers_kube_lease_bench::latency::percentile_ms;
use celers_kube_lease_bench::metrics::{etcd_metrics, sum_samples};
use celers_kube_lease_bench::procfs;
pub use celers_kube_lease_bench::Result;

/// One measured phase: the fields of the client-go peer's JSON line, and
/// what the server side spent when known.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Phase {
    #[serde(rename = "impl")]
    pub implementation: String,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub successes: u64,
    pub requests: i64,
    pub requests_per_op: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub ops_per_sec: f64,
    pub elapsed_secs: f64,
    /// The client-go peer left its Leases (`--keep-leases`): their prefix.
    #[serde(default)]
    pub kept_prefix: Option<String>,
    #[serde(skip)]
    pub mean_ms: f64,
    #[serde(skip)]
    pub usage: Option<Usage>,
}

/// Outcomes and latencies of the operations of a phase.
#[derive(Debug, Default)]
pub struct Stats {
    latencies: Vec<Duration>,
    successes: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    /// Records one operation's latency and outcome.
    pub fn record(&mut self, latency: Duration, outcome: celers_kube_lease::Result<bool>) {
        self.latencies.push(latency);
        match outcome {
            Ok(true) => self.successes += 1,
            Ok(false) => {}
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }

    /// Times `operation` and records its outcome.
    pub async fn time(&mut self, operation: impl Future<Output = celers_kube_lease::Result<bool>>) {
        let start = Instant::now();
        let outcome = operation.await;
        self.record(start.elapsed(), outcome);
    }

    pub fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.successes += other.successes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn phase(
        mut self,
        scenario: &str,
        clients: usize,
        elapsed: Duration,
        usage: Usage,
    ) -> Phase {
        if let Some(error) = &self.first_error {
            eprintln!(
                "lease-bench: {scenario}: {} errors, first: {error}",
                self.errors
            );
        }
        self.latencies.sort_unstable();
        let ops = self.latencies.len() as u64;
        let secs = elapsed.as_secs_f64();
        let total: Duration = self.latencies.iter().sum();
        let requests = usage.requests;
        Phase {
            implementation: "celers-kube-lease".to_owned(),
            clients,
            ops,
            errors: self.errors,
            successes: self.successes,
            requests,
            requests_per_op: if ops > 0 {
                round3(requests as f64 / ops as f64)
            } else {
                0.0
            },
            p50_ms: round3(percentile_ms(&self.latencies, 50.0)),
            p99_ms: round3(percentile_ms(&self.latencies, 99.0)),
            ops_per_sec: if secs > 0.0 {
                round3(ops as f64 / secs)
            } else {
                0.0
            },
            elapsed_secs: round3(secs),
            mean_ms: if ops > 0 {
                round3(total.as_secs_f64() * 1000.0 / ops as f64)
            } else {
                0.0
            },
            kept_prefix: None,
            usage: Some(usage),
        }
    }
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// What the server side and this process spent during a phase.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    /// Lease requests (`apiserver_request_total`).
    pub requests: i64,
    /// Time the API server spent on them (`apiserver_request_duration_seconds`),
    /// watches left out: their time is how long they stayed open.
    pub server_secs: f64,
    /// Time the API server waited on etcd for Leases (`etcd_request_duration_seconds`).
    pub etcd_secs: f64,
    /// etcd's WAL fsyncs and the time they took, when etcd's metrics are known.
    pub fsyncs: Option<(f64, f64)>,
    /// CPU seconds by process: the API server and etcd when their PIDs are
    /// known, then the client (`client`: this process, or the peer's).
    pub cpu_secs: Vec<(String, f64)>,
}

/// The servers' counters at one moment.
#[derive(Clone, Debug, Default)]
struct Counters {
    requests: f64,
    server_secs: f64,
    etcd_secs: f64,
    fsyncs: Option<(f64, f64)>,
}

/// Reads the API server's and etcd's metrics and the CPU time of processes.
#[derive(Clone)]
pub struct Probe {
    client: kube::Client,
    /// etcd's client address (`host:port`), for its `/metrics`.
    etcd: Option<String>,
    /// Server processes whose CPU time is read: (name, PID).
    pids: Vec<(String, u32)>,
}

impl Probe {
    pub fn new(client: kube::Client, etcd: Option<String>, pids: Vec<(String, u32)>) -> Self {
        Self { client, etcd, pids }
    }

    /// Runs `work`; returns its output and what was spent meanwhile. CPU
    /// time is read right around `work`, so that reading the metrics (costly
    /// for the API server) is not counted.
    pub async fn counted<T>(&self, work: impl Future<Output = T>) -> Result<(T, Usage)> {
        let before = self.counters().await?;
        let cpu_before = self.cpu_secs()?;
        let output = work.await;
        let cpu_after = self.cpu_secs()?;
        let after = self.counters().await?;
        let usage = Usage {
            requests: (after.requests - before.requests).round() as i64,
            server_secs: after.server_secs - before.server_secs,
            etcd_secs: after.etcd_secs - before.etcd_secs,
            fsyncs: after
                .fsyncs
                .zip(before.fsyncs)
                .map(|((count, secs), (count0, secs0))| (count - count0, secs - secs0)),
            cpu_secs: cpu_after
                .into_iter()
                .zip(cpu_before)
                .map(|((name, secs), (_, secs0))| (name, secs - secs0))
                .collect(),
        };
        Ok((output, usage))
    }

    async fn counters(&self) -> Result<Counters> {
        // The counters are bumped as a handler finishes: let the last ones
        // land (the Go peer waits as long).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = tokio::time::timeout(Duration::from_secs(10), self.client.request_text(request))
            .await??;
        let leases = |labels: &str| labels.contains(r#"resource="leases""#);
        let no_watch = |labels: &str| leases(labels) && !labels.contains(r#"verb="WATCH""#);
        let fsyncs = match &self.etcd {
            Some(address) => {
                let text = etcd_metrics(address).await?;
                let name = "etcd_disk_wal_fsync_duration_seconds";
                Some((
                    sum_samples(&text, &format!("{name}_count"), |_| true),
                    sum_samples(&text, &format!("{name}_sum"), |_| true),
                ))
            }
            None => None,
        };
        Ok(Counters {
            requests: sum_samples(&text, "apiserver_request_total", leases),
            server_secs: sum_samples(&text, "apiserver_request_duration_seconds_sum", no_watch),
            etcd_secs: sum_samples(&text, "etcd_request_duration_seconds_sum", leases),
            fsyncs,
        })
    }

    fn cpu_secs(&self) -> Result<Vec<(String, f64)>> {
        let mut cpu_secs = Vec::with_capacity(self.pids.len() + 1);
        for (name, pid) in &self.pids {
            cpu_secs.push((name.clone(), procfs::cpu_secs(&pid.to_string())?));
        }
        cpu_secs.push(("client".to_owned(), procfs::cpu_secs("self")?));
        Ok(cpu_secs)
    }
}
