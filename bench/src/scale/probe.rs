//! Readings from outside the library: the API server's and etcd's metrics,
//! and CPU time and memory of processes from /proc.

use std::time::Duration;

use crate::Result;

/// Bound of one read of a `/metrics` endpoint.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

/// The API server's count of requests on Leases so far, all verbs and codes
/// (`apiserver_request_total{resource="leases"}`).
pub async fn lease_requests(client: &kube::Client) -> Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = tokio::time::timeout(METRICS_TIMEOUT, client.request_text(request)).await??;
    Ok(sum_samples(
        &text,
        "apiserver_request_total",
        Some(r#"resource="leases""#),
    ))
}

/// etcd's database size: (allocated, in use), in bytes.
pub async fn etcd_db_bytes(address: &str) -> Result<(f64, f64)> {
    let text = etcd_metrics(address).await?;
    Ok((
        sum_samples(&text, "etcd_mvcc_db_total_size_in_bytes", None),
        sum_samples(&text, "etcd_mvcc_db_total_size_in_use_in_bytes", None),
    ))
}

/// The sum of the samples of `name` whose labels contain `label`.
fn sum_samples(metrics: &str, name: &str, label: Option<&str>) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| match rest.strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once('}'),
            None => rest.starts_with(' ').then_some(("", rest)),
        })
        .filter(|(labels, _)| label.is_none_or(|label| labels.contains(label)))
        .filter_map(|(_, value)| value.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// etcd's `/metrics` over plain HTTP: the control plane's etcd serves its
/// client port without TLS, on the loopback only.
async fn etcd_metrics(address: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(METRICS_TIMEOUT, exchange).await??;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_owned())
        }
        _ => Err(format!("etcd at {address} did not answer /metrics").into()),
    }
}

/// User and system CPU seconds of process `pid` (`self` for this one), from
/// its stat file in USER_HZ (100 per second).
pub fn cpu_secs(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, from the state (field 3) on.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|field| field.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => Err(format!("unreadable /proc/{pid}/stat").into()),
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: &str, field: &str) -> Result<u64> {
    kib_in(&format!("/proc/{pid}/status"), field)
}

/// A `kB` field of a /proc file such as `/proc/meminfo`, in KiB.
pub fn kib_in(path: &str, field: &str) -> Result<u64> {
    std::fs::read_to_string(path)?
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in {path}").into())
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
    fn samples_are_summed_by_name_and_label() {
        let text = concat!(
            "# TYPE apiserver_request_total counter\n",
            "apiserver_request_total{code=\"201\",resource=\"leases\",verb=\"POST\"} 7\n",
            "apiserver_request_total{code=\"200\",resource=\"leases\",verb=\"GET\"} 3 1700000000\n",
            "apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"GET\"} 100\n",
            "etcd_mvcc_db_total_size_in_bytes 4.194304e+06\n",
            "etcd_mvcc_db_total_size_in_use_in_bytes 1.048576e+06\n",
        );
        let leases = Some(r#"resource="leases""#);
        assert_eq!(sum_samples(text, "apiserver_request_total", leases), 10.0);
        assert_eq!(
            sum_samples(text, "etcd_mvcc_db_total_size_in_bytes", None),
            4_194_304.0
        );
        assert_eq!(
            sum_samples(text, "etcd_mvcc_db_total_size_in_use_in_bytes", None),
            1_048_576.0
        );
    }

    #[test]
    fn this_process_can_be_read() {
        assert!(cpu_secs("self").is_ok());
        assert!(status_kib("self", "VmRSS").is_ok_and(|kib| kib > 0));
        assert!(status_kib("self", "VmHWM").is_ok_and(|kib| kib > 0));
    }
}
