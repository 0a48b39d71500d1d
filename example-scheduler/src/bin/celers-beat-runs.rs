//! `celers-beat-runs`: reads the JSON logs of scheduler replicas and says
//! which runs were executed, whether any was executed twice or missed, and
//! how long a failover took. Exits 1 if a run was executed twice, none was
//! executed, an asked-for failover did not happen, or (`--fail-on-missed`)
//! a run was missed.
//!
//! ```text
//! celers-beat-runs --tasks 3 --interval 2 [--failover-after UNIX_MS --dead NAME] \
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
    /// Number of tasks the replicas ran.
    #[arg(long)]
    tasks: u64,
    /// Seconds between two runs of a task.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Report the first change to leader of another replica than --dead
    /// after this time (Unix milliseconds).
    #[arg(long, requires = "dead")]
    failover_after: Option<i64>,
    /// The replica killed at --failover-after.
    #[arg(long, requires = "failover_after")]
    dead: Option<String>,
    /// Also fail when a run due between the first and the last executed
    /// one was executed by nobody.
    #[arg(long)]
    fail_on_missed: bool,
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
    let summary = summarize(
        replicas
            .iter()
            .map(|(name, events)| (*name, events.as_slice())),
        args.tasks,
        args.interval,
    );
    let row = |label: &str, value: String| println!("  {label:<44} {value}");
    row(
        &format!("runs scheduled ({} tasks, first to last run)", args.tasks),
        summary.scheduled.to_string(),
    );
    row("runs executed", summary.executed.to_string());
    row("runs executed twice", summary.twice.len().to_string());
    row("runs missed", summary.missed.to_string());
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
    println!("  {:<40} {:>8}", "REPLICA", "EXECUTED");
    for (name, count) in &summary.by_replica {
        println!("  {name:<40} {count:>8}");
    }
    for (task, run, times) in &summary.twice {
        failed.push(format!("{task} run {run} was executed {times} times"));
    }
    if summary.executed == 0 {
        failed.push("no run was executed".to_owned());
    }
    if args.fail_on_missed && summary.missed > 0 {
        failed.push(format!("{} runs were executed by nobody", summary.missed));
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
