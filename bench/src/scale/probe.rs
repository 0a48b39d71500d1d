//! Readings from outside the library: the API server's and etcd's metrics,
//! and CPU time and memory of processes from /proc.

use std::time::Duration;

use celers_kube_lease_bench::metrics::{etcd_metrics, sum_samples};
pub use celers_kube_lease_bench::procfs::cpu_secs;
use celers_kube_lease_bench::procfs::kib_in;

use crate::Result;

/// Bound of one read of a `/metrics` endpoint.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

/// The API server's count of requests on Leases so far, all verbs and codes
/// (`apiserver_request_total{resource="leases"}`).
pub async fn lease_requests(client: &kube::Client) -> Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = tokio::time::timeout(METRICS_TIMEOUT, client.request_text(request)).await??;
    let leases = |labels: &str| labels.contains(r#"resource="leases""#);
    Ok(sum_samples(&text, "apiserver_request_total", leases))
}

/// etcd's database size: (allocated, in use), in bytes.
pub async fn etcd_db_bytes(address: &str) -> Result<(f64, f64)> {
    let text = etcd_metrics(address).await?;
    Ok((
        sum_samples(&text, "etcd_mvcc_db_total_size_in_bytes", |_| true),
        sum_samples(&text, "etcd_mvcc_db_total_size_in_use_in_bytes", |_| true),
    ))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: &str, field: &str) -> Result<u64> {
    kib_in(&format!("/proc/{pid}/status"), field)
}

/// Resets this process's `VmHWM` to its current RSS (Linux 4.0 and later),
/// so that the high-water mark read later is that of what ran since. False
/// when the kernel refused: the mark then also covers the start-up.
pub fn reset_high_water() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_read() {
        assert!(status_kib("self", "VmRSS").is_ok_and(|kib| kib > 0));
        assert!(status_kib("self", "VmHWM").is_ok_and(|kib| kib > 0));
    }
}
