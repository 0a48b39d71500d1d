//! What the two benchmark binaries, `lease-bench` and `lease-bench-scale`,
//! share: flags, latency percentiles, reading the servers' metrics and `/proc`, and
//! writing tables into a Markdown file between markers.

pub mod cli;
pub mod latency;
pub mod markdown;
pub mod metrics;
pub mod procfs;

/// The binaries' error type: every failure ends the run with its message.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
