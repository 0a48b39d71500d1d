//! `celers-kube-lease-model check [--config NAME] [--defect NAME]`: runs the
//! model's configurations (all by default) and the injected defects, prints
//! the figures, each property's result and each counterexample, and exits
//! non-zero when a property fails or a defect goes unnoticed.

use std::process::ExitCode;

use celers_kube_lease_model::check::{render, run, steps, summary};
use celers_kube_lease_model::config::{self, Config};
use celers_kube_lease_model::defect::Defect;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "A stateright model of celers-kube-lease")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check configurations and defects.
    Check {
        /// Only this configuration (trait-skew, drift, guards,
        /// release-sweep, liveness); with --defect, the world to inject it in.
        #[arg(long)]
        config: Option<String>,
        /// Only this defect (no-drift-allowance, no-skew-widening,
        /// renew-in-doubt, deadline-from-receipt, unconditional-delete).
        #[arg(long)]
        defect: Option<String>,
        /// Skip the configurations without defects.
        #[arg(long)]
        defects_only: bool,
        /// Skip the defects.
        #[arg(long)]
        no_defects: bool,
        /// Checker threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Bound the search to paths of this many steps (0: the
        /// configuration's own bound).
        #[arg(long, default_value_t = 0)]
        max_steps: usize,
        /// Print the example path of each `sometimes` property too.
        #[arg(long)]
        examples: bool,
    },
}

fn main() -> ExitCode {
    let Command::Check {
        config,
        defect,
        defects_only,
        no_defects,
        threads,
        examples,
        max_steps,
    } = Cli::parse().command;
    let bounded = |mut config: Config| {
        if max_steps > 0 {
            config.max_steps = max_steps;
        }
        config
    };
    let chosen = match config.as_deref().map(|name| (name, config::named(name))) {
        Some((name, None)) => {
            eprintln!("unknown configuration {name:?}; known: trait-skew, drift, guards, release-sweep, liveness");
            return ExitCode::FAILURE;
        }
        Some((_, Some(config))) => Some(config),
        None => None,
    };
    let defects = match defect.as_deref().map(|name| (name, Defect::named(name))) {
        Some((name, None)) => {
            eprintln!(
                "unknown defect {name:?}; known: {}",
                Defect::ALL.map(Defect::name).join(", ")
            );
            return ExitCode::FAILURE;
        }
        Some((_, Some(defect))) => vec![defect],
        None if no_defects => Vec::new(),
        None => Defect::ALL.to_vec(),
    };
    let mut ok = true;
    if !defects_only && defect.is_none() {
        let configs = chosen
            .clone()
            .map_or_else(config::all, |config| vec![config]);
        for config in configs {
            let report = run(bounded(config), threads);
            print!("{}", summary(&report));
            for property in &report.properties {
                let show = !property.holds() || examples;
                if let (true, Some(path)) = (show, &property.discovery) {
                    println!("   path for {:?}:", property.name);
                    print!("{}", render(&report.world, path));
                }
            }
            ok &= report.all_hold();
        }
    }
    for defect in defects {
        let config = chosen.clone().map_or_else(
            || Config::for_defect(defect),
            |config| config.with_defect(defect),
        );
        let report = run(bounded(config), threads);
        print!("{}", summary(&report));
        match report
            .property(defect.breaks())
            .and_then(|p| p.discovery.as_ref())
        {
            Some(path) => {
                println!(
                    "   defect {} found: counterexample to {:?}, {} steps:",
                    defect.name(),
                    defect.breaks(),
                    steps(path)
                );
                print!("{}", render(&report.world, path));
            }
            None => {
                println!("   defect {} NOT found", defect.name());
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
