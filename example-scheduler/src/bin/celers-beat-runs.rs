//! `celers-beat-runs`: reads the JSON logs of scheduler replicas and says,
//! per schedule entry, how many instants were fired, how many twice, how
//! many were skipped beyond the failover bound, and how long a failover
//! took. Exits 1 if an instant was fired twice, none was fired, an
//! asked-for failover did not happen, or (`--fail-on-skipped`) a gap between
//! two instants exceeded the entry's interval plus `--failover-bound`.
//!
//! ```text
//! celers-beat-runs [--failover-bound SECS] [--failover-after UNIX_MS --dead NAME] \
//!     replica-a=a.log replica-b=b.log ...
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use celers_kube_lease_scheduler::runs::{summarize, Event};
use chrono::{DateTime, Utc};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Checks the runs in the JSON logs of scheduler replicas")]
struct Args {
    /// Longest failover the gaps may include, in seconds: a gap between two
    /// instants longer than the entry's interval plus this counts as skipped.
    #[arg(long, default_value_t = 0.0)]
    failover_bound: f64,
    /// Report the first change to leader of another replica than --dead
    /// after this time (Unix milliseconds).
    #[arg(long, requires = "dead")]
    failover_after: Option<i64>,
    /// The replica killed at --failover-after.
    #[arg(long, requires = "failover_after")]
    dead: Option<String>,
    /// Also fail when an instant was skipped beyond the failover bound.
    #[arg(long)]
    fail_on_skipped: bool,
    /// Also fail when an instant was fired twice (on by default; `false`
    /// to measure a scheduler that does fire twice).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    fail_on_twice: bool,
    /// NAME=LOG for each replica.
    #[arg(required = true, value_parser = parse_log)]
    logs: Vec<(String, PathBuf)>,
}

fn parse_log(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=LOG"))?;
    Ok((name.to_owned(), PathBuf::from(path)))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut replicas = Vec::new();
    for (name, path) in &args.logs {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("error: reading {}: {error}", path.display());
                return ExitCode::from(2);
            }
        };
        let events: Vec<Event> = text.lines().filter_map(Event::parse).collect();
        replicas.push((name.as_str(), events));
    }
    if !(0.0..=86_400.0).contains(&args.failover_bound) {
        eprintln!("error: --failover-bound must be 0 to 86400 seconds");
        return ExitCode::from(2);
    }
    let summary = summarize(
        replicas
            .iter()
            .map(|(name, events)| (*name, events.as_slice())),
        (args.failover_bound * 1000.0) as i64,
    );
    print!("{}", summary.table());
    println!();
    let row = |label: &str, value: String| println!("  {label:<44} {value}");
    row("fires", summary.total(|e| e.fires).to_string());
    row(
        "instants fired twice",
        summary.total(|e| e.twice).to_string(),
    );
    row(
        &format!("instants skipped (gap > every + {}s)", args.failover_bound),
        summary.total(|e| e.skipped).to_string(),
    );
    let mut failed = Vec::new();
    if let (Some(after), Some(dead)) = (args.failover_after, &args.dead) {
        let failover = replicas
            .iter()
            .filter(|(name, _)| name != dead)
            .flat_map(|(_, events)| events)
            .filter(|event| event.new_role() == Some("leader"))
            .filter_map(|event| unix_ms(event.timestamp.as_deref()?))
            .filter(|at| *at > after)
            .min()
            .map(|at| (at - after) as f64 / 1000.0);
        match failover {
            Some(secs) => row("failover (kill to the new leader)", format!("{secs:.1}s")),
            None => {
                row("failover (kill to the new leader)", "none".to_owned());
                failed.push("no other replica became leader after the kill".to_owned());
            }
        }
    }
    println!();
    println!("  {:<40} {:>8}", "REPLICA", "FIRES");
    for (name, count) in &summary.by_replica {
        println!("  {name:<40} {count:>8}");
    }
    for (entry, counts) in &summary.entries {
        if args.fail_on_twice && counts.twice > 0 {
            failed.push(format!(
                "{entry}: {} instants were fired twice",
                counts.twice
            ));
        }
        if args.fail_on_skipped && counts.skipped > 0 {
            failed.push(format!(
                "{entry}: {} gaps beyond the failover bound",
                counts.skipped
            ));
        }
    }
    if summary.total(|e| e.fires) == 0 {
        failed.push("no instant was fired".to_owned());
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for failure in failed {
            eprintln!("FAILED: {failure}");
        }
        ExitCode::FAILURE
    }
}

fn unix_ms(timestamp: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(timestamp)
        .ok()
        .map(|at| at.with_timezone(&Utc).timestamp_millis())
}
