//! The bounded form of `make model`, run by `cargo test`: every
//! configuration on short paths, and every injected defect caught, in a
//! world where the same search finds nothing without it.

use celers_kube_lease_model::check::{render, run, steps, Report};
use celers_kube_lease_model::config::{self, Config};
use celers_kube_lease_model::defect::Defect;
use celers_kube_lease_model::world::World;
use stateright::Expectation;

/// Paths this long take seconds in every configuration.
const SHORT: usize = 7;
const THREADS: usize = 2;

fn failures(report: &Report) -> Vec<String> {
    report
        .properties
        .iter()
        .filter(|p| p.expectation != Expectation::Sometimes && !p.holds())
        .map(|p| {
            let path = p
                .discovery
                .as_ref()
                .map_or(String::new(), |path| render(&report.world, path));
            format!("{}: {:?} fails:\n{path}", report.world.config.name, p.name)
        })
        .collect()
}

#[test]
fn every_property_holds_on_short_paths() {
    for config in config::all() {
        let complete = config.max_steps == 0;
        let config = Config {
            max_steps: if complete { 0 } else { SHORT },
            ..config
        };
        let report = run(config, THREADS);
        assert_eq!(failures(&report), Vec::<String>::new());
        let acquired = report.property("a lock is acquired");
        assert!(
            acquired.is_some_and(|p| p.holds()),
            "{}",
            report.world.config.name
        );
        if complete {
            assert!(report.all_hold(), "{}", report.world.config.name);
        }
    }
}

#[test]
fn the_head_start_is_a_held_lock() {
    for config in config::all().into_iter().filter(|c| !c.eager) {
        let world = World::new(config);
        let state = world.head_start().expect("client 0 takes the free lock");
        assert!(world.believes(&state, 0));
        assert!(!world.believes(&world.init(), 0));
    }
}

/// The defect's counterexample, and no counterexample to the same property
/// in the same world without it, on paths as long.
fn caught(defect: Defect) {
    let report = run(Config::for_defect(defect), THREADS);
    let property = report.property(defect.breaks()).expect("checked");
    let path = property
        .discovery
        .as_ref()
        .unwrap_or_else(|| panic!("defect {} not found", defect.name()));
    let length = steps(path);
    assert_eq!(render(&report.world, path).lines().count(), length);

    let clean = Config {
        defect: None,
        max_steps: length,
        ..Config::for_defect(defect)
    };
    let clean = run(clean, THREADS);
    assert!(
        clean.property(defect.breaks()).is_some_and(|p| p.holds()),
        "without {} the world breaks {:?} too",
        defect.name(),
        defect.breaks()
    );
}

#[test]
fn no_drift_allowance_is_caught() {
    caught(Defect::NoDriftAllowance);
}

#[test]
fn no_skew_widening_is_caught() {
    caught(Defect::NoSkewWidening);
}

#[test]
fn renew_in_doubt_is_caught() {
    caught(Defect::RenewInDoubt);
}

#[test]
fn deadline_from_receipt_is_caught() {
    caught(Defect::DeadlineFromReceipt);
}

#[test]
fn unconditional_delete_is_caught() {
    caught(Defect::UnconditionalDelete);
}
