//! Latency percentiles, computed as the Go peer computes them.

use std::time::Duration;

/// Nearest-rank percentile `p` (0 to 100) of sorted latencies, in ms; 0
/// when there are none.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).saturating_sub(1);
    sorted
        .get(rank)
        .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&sorted, 50.0), 50.0);
        assert_eq!(percentile_ms(&sorted, 99.0), 99.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }
}
