//! The figures of the long form, as a Markdown table.

use std::fmt;
use std::time::Duration;

use crate::bad_input::Case;
use crate::checker::Figures;
use crate::foreign::Foreign;
use crate::outcome::Outcome;
use crate::takeover::{self, Trial};

/// Everything the long form found.
#[derive(Clone, Debug)]
pub struct Report {
    /// How long the contention ran.
    pub duration: Duration,
    /// Who contended, e.g. `3 in-process, 2 processes`.
    pub contenders: String,
    /// The contention run with faults and skewed clocks.
    pub contention: Outcome,
    /// Killed holders taken over by skewed contenders.
    pub takeovers: Vec<Trial>,
    /// The bad-input table.
    pub bad_input: Vec<Case>,
    /// Foreign objects.
    pub foreign: Foreign,
}

impl Report {
    /// Every check passed.
    pub fn clean(&self) -> bool {
        self.contention.clean()
            && self.takeovers.iter().all(Trial::clean)
            && self.bad_input.iter().all(|c| c.ok)
            && self.foreign.clean()
    }
}

/// `try_acquire 10, renew 5` style breakdown.
pub fn per_op(figures: &Figures) -> String {
    figures
        .by_op
        .iter()
        .map(|(op, c)| format!("{} {}", op, c.calls))
        .collect::<Vec<_>>()
        .join(", ")
}

fn error_kinds(figures: &Figures) -> String {
    if figures.error_kinds.is_empty() {
        return "none".to_owned();
    }
    figures
        .error_kinds
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows shared by the long form and the short form's printout.
pub fn contention_rows(outcome: &Outcome) -> Vec<(String, String)> {
    let f = &outcome.figures;
    let mut rows = vec![
        ("contenders".to_owned(), f.contenders.to_string()),
        ("keys".to_owned(), f.keys.to_string()),
        (
            "operations".to_owned(),
            format!("{} ({})", f.ops(), per_op(f)),
        ),
        ("Ok(true)".to_owned(), f.ok_true().to_string()),
        (
            "Ok(false) (conflicts, refusals)".to_owned(),
            f.ok_false().to_string(),
        ),
        (
            "errors".to_owned(),
            format!("{} ({})", f.errors(), error_kinds(f)),
        ),
        (
            "holding intervals / changes of holder".to_owned(),
            format!("{} / {}", f.claims, f.handovers),
        ),
    ];
    let faults = if outcome.faults.is_empty() {
        "none".to_owned()
    } else {
        outcome
            .faults
            .iter()
            .map(|(kind, n)| {
                let longest = outcome.longest_outage_ms.get(kind).copied().unwrap_or(0);
                format!("{kind}: {n} (longest {:.1} s)", longest as f64 / 1e3)
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    rows.push(("faults injected".to_owned(), faults));
    if !outcome.faults.is_empty() {
        rows.push((
            "Ok(true) after the last fault (locks work again)".to_owned(),
            outcome.ok_true_after_faults.to_string(),
        ));
    }
    let skews = if outcome.skews.is_empty() {
        "none".to_owned()
    } else {
        outcome
            .skews
            .iter()
            .map(|s| {
                format!(
                    "{} (measured {:+.1} s)",
                    s.asked,
                    s.measured_ms as f64 / 1e3
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    rows.push(("skewed wall clocks".to_owned(), skews));
    rows.push((
        "violations (overlapping holders)".to_owned(),
        f.violations.len().to_string(),
    ));
    rows.push(("locks lost".to_owned(), f.lost.len().to_string()));
    rows.push((
        "owner() naming someone else during a claim".to_owned(),
        f.read_mismatches.len().to_string(),
    ));
    rows.push((
        "claims that ran out while their holder could not reach the API server (expected under faults)".to_owned(),
        f.ran_out_unreachable.to_string(),
    ));
    rows.extend(linearizability_row(outcome));
    rows.push((
        "Leases left after the final release_all".to_owned(),
        outcome.leftover.len().to_string(),
    ));
    rows.push((
        "other problems".to_owned(),
        outcome.problems.len().to_string(),
    ));
    rows
}

/// The linearizability figures, when the run recorded its history.
pub fn linearizability_row(outcome: &Outcome) -> Option<(String, String)> {
    outcome.linearizability.as_ref().map(|report| {
        (
            "linearizability against the TTL lock specification".to_owned(),
            report.summary(),
        )
    })
}

/// Renders rows as a two-column Markdown table.
pub fn markdown(rows: &[(String, String)]) -> String {
    let mut out = String::from("| figure | value |\n| --- | --- |\n");
    for (name, value) in rows {
        out.push_str(&format!("| {name} | {value} |\n"));
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![(
            "contention run".to_owned(),
            format!("{} s", self.duration.as_secs()),
        )];
        rows.extend(contention_rows(&self.contention));
        if let Some(row) = rows.iter_mut().find(|(name, _)| name == "contenders") {
            row.1 = format!("{} ({})", row.1, self.contenders);
        }
        let slowest = self
            .takeovers
            .iter()
            .map(|t| t.after_kill)
            .max()
            .unwrap_or_default();
        let trials = takeover::figures(&self.takeovers);
        rows.push((
            "killed holders taken over by skewed contenders".to_owned(),
            format!(
                "{}/{} within TTL {} s + 2 s of the SIGKILL and not sooner than the TTL after \
                 the last renewal (slowest {:.2} s after SIGKILL; {}); violations {}",
                self.takeovers.iter().filter(|t| t.clean()).count(),
                self.takeovers.len(),
                takeover::TTL_SECS,
                slowest.as_secs_f64(),
                self.takeovers
                    .iter()
                    .map(|t| format!(
                        "{} {:.2} s / {:.2} s",
                        t.label(),
                        t.after_kill.as_secs_f64(),
                        t.after_last_renewal.as_secs_f64()
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                trials.violations.len()
            ),
        ));
        let checks: Vec<&Case> = self.bad_input.iter().filter(|c| !c.setup).collect();
        rows.push((
            "bad inputs tried (checks)".to_owned(),
            format!(
                "{} ({} as documented)",
                checks.len(),
                checks.iter().filter(|c| c.ok).count()
            ),
        ));
        rows.push((
            "foreign Leases watched".to_owned(),
            format!(
                "{} over {} calls; changed: {}",
                self.foreign.leases,
                self.foreign.calls,
                self.foreign.changed.len()
            ),
        ));
        write!(f, "{}", markdown(&rows))?;
        let mut details: Vec<String> = Vec::new();
        details.extend(self.contention.figures.violations.iter().cloned());
        details.extend(self.contention.figures.lost.iter().cloned());
        details.extend(self.contention.figures.read_mismatches.iter().cloned());
        details.extend(self.contention.problems.iter().cloned());
        if let Some(report) = &self.contention.linearizability {
            details.extend(report.violations());
            details.extend(
                report
                    .undecided()
                    .iter()
                    .map(|k| format!("linearizability of key {k:?} undecided (step budget)")),
            );
        }
        details.extend(
            self.contention
                .leftover
                .iter()
                .map(|l| format!("left behind: {l}")),
        );
        for t in self.takeovers.iter().filter(|t| !t.clean()) {
            details.push(format!("takeover {} failed: {:?}", t.label(), t.outcome));
        }
        details.extend(
            self.bad_input
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.to_string()),
        );
        details.extend(self.foreign.changed.iter().cloned());
        if !details.is_empty() {
            writeln!(f, "\nfailures:")?;
            for d in details {
                writeln!(f, "- {d}")?;
            }
        }
        Ok(())
    }
}
