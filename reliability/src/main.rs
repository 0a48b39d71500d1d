//! `celers-kube-lease-reliability contender ...`: one contender process,
//! logging JSON lines on stdout (spawned by the checks).
//!
//! `celers-kube-lease-reliability long [--duration 600s]`: the long form on
//! a control plane of its own; prints the figures as a table.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use celers_kube_lease_reliability::cluster::{self, Connect};
use celers_kube_lease_reliability::contender::{self, Plan};
use celers_kube_lease_reliability::{scenario, Result};

const USAGE: &str = "usage:
  celers-kube-lease-reliability long [--duration 600s] [--seed N]
  celers-kube-lease-reliability contender --kubeconfig PATH --namespace NS --owner ID --keys a,b
      [--ttl 1-3] [--pause-ms 20-100] [--duration-ms N] [--seed N] [--mode mix|hold|take]
      [--request-timeout-ms N] [--server-port N] [--ignore-cert-validity-period]";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(e) => exit_with(&e),
    };
    let outcome = match command.as_str() {
        "contender" => run_contender(&options).await,
        "long" => run_long(&options).await,
        _ => Err(format!("unknown command {command:?}").into()),
    };
    if let Err(e) = outcome {
        exit_with(&e.to_string());
    }
}

fn exit_with(message: &str) -> ! {
    eprintln!("error: {message}\n{USAGE}");
    std::process::exit(2)
}

async fn run_contender(options: &Options) -> Result<()> {
    let kubeconfig = PathBuf::from(options.required("kubeconfig")?);
    let connect = Connect {
        server_port: options.parsed("server-port")?,
        ignore_cert_validity_period: options.flag("ignore-cert-validity-period"),
    };
    let timeout = Duration::from_millis(options.parsed("request-timeout-ms")?.unwrap_or(2_000));
    let client = cluster::client(&kubeconfig, &connect).await?;
    let backend = cluster::contender_backend(client, options.required("namespace")?, timeout)?;
    let plan = Plan {
        owner: options.required("owner")?.to_owned(),
        keys: options
            .required("keys")?
            .split(',')
            .map(str::to_owned)
            .collect(),
        ttl_secs: options.range("ttl")?.unwrap_or((1, 3)),
        duration: Duration::from_millis(options.parsed("duration-ms")?.unwrap_or(10_000)),
        pause_ms: options.range("pause-ms")?.unwrap_or((20, 100)),
        seed: options.parsed("seed")?.unwrap_or(1),
        mode: options.parsed("mode")?.unwrap_or(contender::Mode::Mix),
    };
    let mut emit = |line| {
        if let Ok(text) = serde_json::to_string(&line) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    };
    contender::run(&backend, &plan, &mut emit).await;
    Ok(())
}

async fn run_long(options: &Options) -> Result<()> {
    let duration = match options.get("duration") {
        Some(text) => parse_duration(text)?,
        None => Duration::from_secs(600),
    };
    let seed = options.parsed("seed")?.unwrap_or(1);
    let exe = std::env::current_exe()?;
    let report = scenario::long_form(&exe, duration, seed).await?;
    println!("{report}");
    if report.clean() {
        Ok(())
    } else {
        Err("the long form found violations (see above)".into())
    }
}

/// `600s`, `10m`, `1h` or plain seconds.
fn parse_duration(text: &str) -> Result<Duration> {
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad duration unit in {text:?} (s, m, h)").into()),
    };
    Ok(Duration::from_secs(secs))
}

/// `--name value` pairs and `--flag`s.
struct Options(HashMap<String, Option<String>>);

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}"))?;
            let value = match args.peek() {
                Some(next) if !next.starts_with("--") => args.next(),
                _ => None,
            };
            map.insert(name.to_owned(), value);
        }
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.as_deref())
    }

    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn required(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("bad value {v:?} for --{name}").into())
            })
            .transpose()
    }

    /// `low-high`.
    fn range(&self, name: &str) -> Result<Option<(u64, u64)>> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let bad = || format!("bad range {text:?} for --{name} (LOW-HIGH)");
        let (low, high) = text.split_once('-').ok_or_else(bad)?;
        let low: u64 = low.parse().map_err(|_| bad())?;
        let high: u64 = high.parse().map_err(|_| bad())?;
        if low > high {
            return Err(bad().into());
        }
        Ok(Some((low, high)))
    }
}
