//! What `/proc` tells of processes (CPU time, memory) and of the machine,
//! for the reports.

use std::time::SystemTime;

use crate::Result;

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

/// A `kB` field of a /proc file such as `/proc/meminfo` or
/// `/proc/<pid>/status`, in KiB.
pub fn kib_in(path: &str, field: &str) -> Result<u64> {
    std::fs::read_to_string(path)?
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in {path}").into())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The first lines of a report's environment list: when, on what machine,
/// its load, and the API server's version `kubernetes`.
pub fn machine(kubernetes: String) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim());
    let memory_kib = kib_in("/proc/meminfo", "MemTotal").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    vec![
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
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_spent_cpu() {
        assert!(cpu_secs("self").is_ok());
    }

    #[test]
    fn this_process_has_memory() {
        assert!(kib_in("/proc/self/status", "VmRSS").is_ok_and(|kib| kib > 0));
        assert!(kib_in("/proc/self/status", "NoSuchField").is_err());
    }
}
