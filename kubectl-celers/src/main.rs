//! `kubectl celers`: the locks of celers-kube-lease, for the people on call.
//!
//! A kubectl plugin: with this binary on `PATH`, `kubectl celers locks`
//! lists the locks of a namespace, `describe KEY` shows one, `release KEY`
//! frees one (as its holder with `--owner`, or whoever holds it with
//! `--force`) and `sweep` deletes the Leases of locks expired for longer than
//! a grace. It takes kubectl's `--kubeconfig`, `--context`, `-n`, `-A`,
//! `-o wide|json|yaml|name|jsonpath=...`, `-l`, `--no-headers` and `-w`,
//! spelled and behaving as `kubectl get` has them. Exit codes: 0 done, 1
//! failed (an API error, a missing lock, a foreign Lease, a lock not held by
//! the owner), 2 a usage error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgGroup, CommandFactory, Parser, Subcommand};

mod commands;
#[cfg(test)]
mod fixtures;
mod jsonpath;
mod output;

use commands::{
    Connection, Failure, Print, Printed, Printer, Query, Scope, Settings, Watch, WatchStop,
};

/// The locks of celers-kube-lease: who holds which, for how long, and ways to
/// free stuck ones.
#[derive(Debug, Parser)]
#[command(name = "kubectl-celers", bin_name = "kubectl celers", version)]
struct Cli {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config,
    /// or the pod's service account inside a cluster).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAME"
    )]
    context: Option<String>,

    /// The namespace of the Leases (default: the context's namespace).
    #[arg(
        short = 'n',
        long,
        global = true,
        help_heading = "Global options",
        value_name = "NAMESPACE"
    )]
    namespace: Option<String>,

    /// `locks` only: list the locks of every namespace that holds Leases of
    /// celers-kube-lease (needs permission to list Leases cluster-wide).
    #[arg(short = 'A', long, global = true, help_heading = "Global options")]
    all_namespaces: bool,

    /// Output format: `wide` (more columns), `json`, `yaml`, `name`
    /// (`lease.coordination.k8s.io/NAME`) or `jsonpath=TEMPLATE` (kubectl's
    /// JSONPath over the JSON form). For `locks`, `describe` and
    /// `sweep --dry-run`.
    #[arg(
        short = 'o',
        long,
        global = true,
        help_heading = "Global options",
        value_parser = output_arg,
        value_name = "FORMAT"
    )]
    output: Option<OutputFormat>,

    /// `locks` and `sweep --dry-run`: print tables without their header.
    #[arg(long, global = true, help_heading = "Global options")]
    no_headers: bool,

    /// `locks` only: a label selector the Leases must match too, as
    /// kubectl's (`-l celers.io/lock-owner=scheduler-0`, `-l 'team in (a,b)'`).
    #[arg(
        short = 'l',
        long,
        global = true,
        help_heading = "Global options",
        value_name = "SELECTOR"
    )]
    selector: Option<String>,

    /// The label prefix the schedulers' backends use (their builder's
    /// `label_prefix`).
    #[arg(
        long,
        global = true, help_heading = "Global options",
        value_name = "PREFIX",
        default_value = celers_kube_lease::DEFAULT_LABEL_PREFIX
    )]
    label_prefix: String,

    /// Bound of each API request, such as `10s` (default: the library's,
    /// 10 s).
    #[arg(long, global = true, help_heading = "Global options", value_name = "DURATION", value_parser = duration_arg)]
    request_timeout: Option<Duration>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Debug, PartialEq)]
enum OutputFormat {
    Wide,
    Json,
    Yaml,
    Name,
    JsonPath(jsonpath::Template),
}

/// `-o`: kubectl's names of the formats this plugin prints.
fn output_arg(text: &str) -> Result<OutputFormat, String> {
    match text {
        "wide" => Ok(OutputFormat::Wide),
        "json" => Ok(OutputFormat::Json),
        "yaml" => Ok(OutputFormat::Yaml),
        "name" => Ok(OutputFormat::Name),
        _ => match text.split_once('=') {
            Some(("jsonpath", template)) => {
                jsonpath::Template::parse(template).map(OutputFormat::JsonPath)
            }
            _ => Err(format!(
                "unable to match a printer suitable for the output format {text:?}, allowed \
                 formats are: json, jsonpath, name, wide, yaml"
            )),
        },
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the locks (whose keys start with KEY-PREFIX), sorted by key.
    Locks {
        /// Only locks whose key starts with this.
        #[arg(value_name = "KEY-PREFIX", default_value = "")]
        prefix: String,
        /// After listing, print every change (a new lock, a renewal, a
        /// takeover, an expiry, a release) until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
        /// Print only the changes, without listing first.
        #[arg(long)]
        watch_only: bool,
        /// With --watch: say ADDED, MODIFIED or DELETED (an EVENT column,
        /// or `{"type", "object"}` for JSON and YAML).
        #[arg(long)]
        output_watch_events: bool,
        /// With --watch: how often the locks are listed again (a lock
        /// expires without any write, so a watch of the Leases would not
        /// see it).
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = watch_interval_arg)]
        watch_interval: Duration,
    },
    /// Show everything about one lock.
    Describe {
        /// The lock's key.
        key: String,
    },
    /// Free a lock: as its holder (--owner), or whoever holds it (--force).
    #[command(group(ArgGroup::new("how").required(true).args(["owner", "force"])))]
    Release {
        /// The lock's key.
        key: String,
        /// Release as this owner (the holder's own release): refused unless
        /// OWNER holds the lock.
        #[arg(long, value_name = "OWNER")]
        owner: Option<String>,
        /// Delete the lock's Lease whoever holds it (a conditional delete;
        /// Leases not made by celers-kube-lease are refused). A holder still
        /// at work is not told; a guard notices at its next renewal.
        #[arg(long)]
        force: bool,
    },
    /// Delete the Leases of locks expired for longer than the grace (and
    /// Leases without a holder).
    Sweep {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// How long a lock must have been expired, such as `60s`, `5m` or
        /// `0s`.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration_arg)]
        grace: Duration,
    },
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    output::parse_duration(text)
}

fn watch_interval_arg(text: &str) -> Result<Duration, String> {
    let interval = output::parse_duration(text)?;
    if interval < Duration::from_millis(100) {
        return Err("the watch interval must be at least 100ms".to_owned());
    }
    Ok(interval)
}

/// Exits with a usage error (code 2), as clap does.
fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(ErrorKind::ArgumentConflict, message)
        .exit()
}

fn printer(output: Option<&OutputFormat>) -> Printer {
    match output {
        None => Printer::Table { wide: false },
        Some(OutputFormat::Wide) => Printer::Table { wide: true },
        Some(OutputFormat::Json) => Printer::Serialized(output::Format::Json),
        Some(OutputFormat::Yaml) => Printer::Serialized(output::Format::Yaml),
        Some(OutputFormat::Name) => Printer::Name,
        Some(OutputFormat::JsonPath(template)) => Printer::JsonPath(template.clone()),
    }
}

fn check_usage(cli: &Cli) {
    let locks = matches!(cli.command, Command::Locks { .. });
    if cli.all_namespaces && !locks {
        usage_error("-A/--all-namespaces is only for `locks`; give -n NAMESPACE instead");
    }
    if cli.selector.is_some() && !locks {
        usage_error("-l/--selector is only for `locks`");
    }
    let prints_locks = match &cli.command {
        Command::Locks { .. } | Command::Describe { .. } => true,
        Command::Sweep { dry_run, .. } => *dry_run,
        Command::Release { .. } => false,
    };
    if cli.output.is_some() && !prints_locks {
        usage_error("-o/--output is for `locks`, `describe` and `sweep --dry-run`");
    }
    let tables = match &cli.command {
        Command::Locks { .. } => true,
        Command::Sweep { dry_run, .. } => *dry_run,
        Command::Describe { .. } | Command::Release { .. } => false,
    };
    if cli.no_headers && !tables {
        usage_error("--no-headers is for `locks` and `sweep --dry-run`");
    }
}

fn print(printed: &Printed) {
    print!("{}", printed.stdout);
    eprint!("{}", printed.stderr);
}

async fn run(cli: Cli) -> Result<Printed, Failure> {
    let connection = Connection {
        kubeconfig: cli.kubeconfig.clone(),
        context: cli.context.clone(),
    };
    let client = commands::connect(&connection).await?;
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let settings = Settings {
        label_prefix: cli.label_prefix.clone(),
        request_timeout: cli.request_timeout,
    };
    let print = Print {
        printer: printer(cli.output.as_ref()),
        headers: !cli.no_headers,
    };
    match cli.command {
        Command::Locks {
            prefix,
            watch,
            watch_only,
            output_watch_events,
            watch_interval,
        } => {
            let query = Query {
                scope: if cli.all_namespaces {
                    Scope::AllNamespaces
                } else {
                    Scope::Namespace(namespace)
                },
                prefix,
                selector: cli.selector.clone(),
            };
            if !(watch || watch_only) {
                return commands::locks(&client, &query, &settings, &print).await;
            }
            let watch = Watch {
                only: watch_only,
                events: output_watch_events,
                interval: watch_interval,
            };
            let mut stdout = std::io::stdout();
            match commands::watch_locks(&client, &query, &settings, &print, watch, &mut stdout)
                .await
            {
                // Its reader went away (`| head`): done, as kubectl is.
                Err(WatchStop::Closed) => Ok(Printed::default()),
                Err(WatchStop::Failed(failure)) => Err(failure),
                Ok(never) => match never {},
            }
        }
        Command::Describe { key } => {
            commands::describe(&client, &namespace, &settings, &key, &print.printer).await
        }
        Command::Release {
            key,
            owner: Some(owner),
            ..
        } => commands::release(&client, &namespace, &settings, &key, &owner).await,
        Command::Release { key, .. } => {
            let mut notice = |text: &str| {
                println!("{text}");
                let _ = std::io::stdout().flush();
            };
            commands::force_release(&client, &namespace, &settings, &key, &mut notice).await
        }
        Command::Sweep { dry_run, grace } => {
            commands::sweep(&client, &namespace, &settings, grace, dry_run, &print).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    check_usage(&cli);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(printed) => {
            print(&printed);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::from(1)
        }
    }
}
