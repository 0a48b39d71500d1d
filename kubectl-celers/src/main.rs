//! `kubectl celers`: the locks of celers-kube-lease, for the people on call.
//!
//! A kubectl plugin: with this binary on `PATH`, `kubectl celers locks`
//! lists the locks of a namespace, `describe KEY` shows one, `release KEY`
//! frees one (as its holder with `--owner`, or whoever holds it with
//! `--force`) and `sweep` deletes the Leases of locks expired for longer than
//! a grace. It takes kubectl's `--kubeconfig`, `--context`, `-n`, `-A` and
//! `-o`. Exit codes: 0 done, 1 failed (an API error, a missing lock, a
//! foreign Lease, a lock not held by the owner), 2 a usage error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{ArgGroup, CommandFactory, Parser, Subcommand, ValueEnum};

mod commands;
mod output;

use commands::{Connection, Failure, Printed, Printer, Scope, Settings};

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

    /// Output format: `wide` (more columns), `json` or `yaml`. For `locks`,
    /// `describe` and `sweep --dry-run`.
    #[arg(
        short = 'o',
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        value_name = "FORMAT"
    )]
    output: Option<OutputFormat>,

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Wide,
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the locks (whose keys start with KEY-PREFIX), sorted by key.
    Locks {
        /// Only locks whose key starts with this.
        #[arg(value_name = "KEY-PREFIX", default_value = "")]
        prefix: String,
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

/// Exits with a usage error (code 2), as clap does.
fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(ErrorKind::ArgumentConflict, message)
        .exit()
}

fn printer(output: Option<OutputFormat>) -> Printer {
    match output {
        None => Printer::Table,
        Some(OutputFormat::Wide) => Printer::Wide,
        Some(OutputFormat::Json) => Printer::Serialized(output::Format::Json),
        Some(OutputFormat::Yaml) => Printer::Serialized(output::Format::Yaml),
    }
}

fn check_usage(cli: &Cli) {
    let locks = matches!(cli.command, Command::Locks { .. });
    if cli.all_namespaces && !locks {
        usage_error("-A/--all-namespaces is only for `locks`; give -n NAMESPACE instead");
    }
    let formatted = matches!(
        cli.output,
        Some(OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Wide)
    );
    let prints_locks = match &cli.command {
        Command::Locks { .. } | Command::Describe { .. } => true,
        Command::Sweep { dry_run, .. } => *dry_run,
        Command::Release { .. } => false,
    };
    if formatted && !prints_locks {
        usage_error("-o/--output is for `locks`, `describe` and `sweep --dry-run`");
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
    let printer = printer(cli.output);
    match cli.command {
        Command::Locks { prefix } => {
            let scope = if cli.all_namespaces {
                Scope::AllNamespaces
            } else {
                Scope::Namespace(namespace)
            };
            commands::locks(&client, &scope, &settings, &prefix, printer).await
        }
        Command::Describe { key } => {
            commands::describe(&client, &namespace, &settings, &key, printer).await
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
            commands::sweep(&client, &namespace, &settings, grace, dry_run, printer).await
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
