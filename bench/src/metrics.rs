//! The servers' Prometheus metrics, as text.

use std::time::Duration;

use crate::Result;

/// Bound of one read of etcd's `/metrics`.
const ETCD_TIMEOUT: Duration = Duration::from_secs(10);

/// The sum of the samples of `name` whose labels pass `labels`.
pub fn sum_samples(metrics: &str, name: &str, labels: impl Fn(&str) -> bool) -> f64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| match rest.strip_prefix('{') {
            Some(labelled) => labelled.rsplit_once('}'),
            None => rest.starts_with(' ').then_some(("", rest)),
        })
        .filter(|(sample, _)| labels(sample))
        .filter_map(|(_, value)| value.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// etcd's `/metrics` over plain HTTP: the control plane's etcd serves its
/// client port without TLS, on the loopback only.
pub async fn etcd_metrics(address: &str) -> Result<String> {
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
    let response = tokio::time::timeout(ETCD_TIMEOUT, exchange).await??;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.to_owned())
        }
        _ => Err(format!("etcd at {address} did not answer /metrics").into()),
    }
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
            "apiserver_request_total_other{resource=\"leases\"} 50\n",
            "etcd_mvcc_db_total_size_in_bytes 4.194304e+06\n",
        );
        let leases = |labels: &str| labels.contains(r#"resource="leases""#);
        assert_eq!(sum_samples(text, "apiserver_request_total", leases), 10.0);
        let posts = |labels: &str| leases(labels) && labels.contains(r#"verb="POST""#);
        assert_eq!(sum_samples(text, "apiserver_request_total", posts), 7.0);
        assert_eq!(
            sum_samples(text, "etcd_mvcc_db_total_size_in_bytes", |_| true),
            4_194_304.0
        );
    }
}
