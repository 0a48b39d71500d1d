//! Running the checker on a configuration, and printing what it found.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use stateright::{Checker, Expectation, HasDiscoveries, Model, Path};

use crate::config::Config;
use crate::world::{Action, Op, State, World};

/// One property's result.
pub struct PropertyResult {
    /// Its name.
    pub name: &'static str,
    /// always, sometimes or eventually.
    pub expectation: Expectation,
    /// The counterexample (always, eventually) or example (sometimes).
    pub discovery: Option<Path<State, Action>>,
}

impl PropertyResult {
    /// Whether the property holds: no counterexample, or an example.
    pub fn holds(&self) -> bool {
        match self.expectation {
            Expectation::Sometimes => self.discovery.is_some(),
            Expectation::Always | Expectation::Eventually => self.discovery.is_none(),
        }
    }
}

/// What one run found.
pub struct Report {
    /// The model run.
    pub world: World,
    /// States generated.
    pub states: usize,
    /// Unique states.
    pub unique: usize,
    /// The longest path looked at, in steps.
    pub max_steps: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Each property.
    pub properties: Vec<PropertyResult>,
}

impl Report {
    /// The result of the property `name`.
    pub fn property(&self, name: &str) -> Option<&PropertyResult> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// Whether every property holds.
    pub fn all_hold(&self) -> bool {
        self.properties.iter().all(PropertyResult::holds)
    }
}

/// Checks `config` breadth first on `threads` threads (shortest
/// counterexamples). A run with a defect stops at its first counterexample
/// of the property the defect breaks.
pub fn run(config: Config, threads: usize) -> Report {
    let world = World::new(config);
    let mut builder = world.clone().checker().threads(threads.max(1));
    if world.config.max_steps > 0 {
        // The checker counts an initial state as depth 1 and does not look
        // at states of the target depth.
        builder = builder.target_max_depth(world.config.max_steps + 2);
    }
    if let Some(defect) = world.config.defect {
        builder = builder.finish_when(HasDiscoveries::AnyOf([defect.breaks()].into()));
    }
    let start = Instant::now();
    let checker = builder.spawn_bfs().join();
    let elapsed = start.elapsed();
    let properties = world
        .properties()
        .into_iter()
        .map(|property| PropertyResult {
            name: property.name,
            expectation: property.expectation,
            discovery: checker.discovery(property.name),
        })
        .collect();
    Report {
        states: checker.state_count(),
        unique: checker.unique_state_count(),
        max_steps: match world.config.max_steps {
            0 => checker.max_depth().saturating_sub(1),
            bound => checker.max_depth().saturating_sub(1).min(bound),
        },
        elapsed,
        properties,
        world,
    }
}

/// The figures of a run, and each property's result, as printed.
pub fn summary(report: &Report) -> String {
    let config = &report.world.config;
    let mut out = String::new();
    let _ = match config.defect {
        None => writeln!(out, "== {}: {}", config.name, config.about),
        Some(defect) => writeln!(
            out,
            "== defect {} in the {} world",
            defect.name(),
            config.name
        ),
    };
    let _ = writeln!(out, "   bounds: {}", config.bounds());
    let _ = writeln!(
        out,
        "   states explored {}, unique {}, longest path {} steps, time {:.1} s",
        report.states,
        report.unique,
        report.max_steps,
        report.elapsed.as_secs_f64()
    );
    // A run with a defect stops at its counterexample: only the property
    // it breaks is judged.
    let judged = report
        .properties
        .iter()
        .filter(|p| config.defect.is_none_or(|defect| p.name == defect.breaks()));
    for property in judged {
        let kind = match property.expectation {
            Expectation::Always => "always",
            Expectation::Sometimes => "sometimes",
            Expectation::Eventually => "eventually",
        };
        let verdict = match (property.holds(), &property.discovery) {
            (true, Some(_)) => "holds (reached)".to_owned(),
            (true, None) => "holds".to_owned(),
            (false, Some(path)) => format!("FAILS (counterexample of {} steps)", steps(path)),
            (false, None) => "FAILS (never reached)".to_owned(),
        };
        let _ = writeln!(out, "   {kind:<10} {:<75} {verdict}", property.name);
    }
    out
}

/// The number of steps of a path.
pub fn steps(path: &Path<State, Action>) -> usize {
    path.clone().into_actions().len()
}

/// A path, one line per step: true time, the step, and what it left.
pub fn render(world: &World, path: &Path<State, Action>) -> String {
    let mut out = String::new();
    for (i, (state, action)) in path.clone().into_vec().into_iter().enumerate() {
        let Some(action) = action else {
            continue;
        };
        let Some(next) = world.next_state(&state, action) else {
            continue;
        };
        let _ = writeln!(
            out,
            "   {:>3}. t={:>11.3}s  {:<70} | {}",
            i + 1,
            state.t as f64 / 1_000.0,
            describe(world, &state, action),
            situation(world, &next)
        );
    }
    out
}

fn describe(world: &World, state: &State, action: Action) -> String {
    match action {
        Action::Tick(by) => format!("time +{:.3}s", by as f64 / 1_000.0),
        Action::Send {
            client,
            server,
            act,
        } => {
            let local = world.local(usize::from(client), state.t);
            format!(
                "c{client} sends {act:?} to s{server} at local {:.6}s",
                local as f64 / 1e6
            )
        }
        Action::Serve(i) => state.requests.get(i).map_or(String::new(), |request| {
            format!(
                "s{} serves c{}: {}",
                request.server,
                request.client,
                op(&request.op)
            )
        }),
        Action::Deliver(i) => state.responses.get(i).map_or(String::new(), |response| {
            format!(
                "c{} receives {:?}, Date {}s",
                response.request.client,
                response.outcome,
                response.date / 1_000_000
            )
        }),
        Action::LoseRequest(i) => format!("request {i} lost"),
        Action::LoseResponse(i) => format!("response {i} lost"),
        Action::Crash(client) => format!("c{client} crashes"),
        Action::StepServer => "a server's clock steps".to_owned(),
    }
}

fn op(op: &Op) -> String {
    match op {
        Op::Write { write, intent, .. } => format!("{intent:?} {write:?}"),
        other => format!("{other:?}"),
    }
}

fn situation(world: &World, state: &State) -> String {
    let lease = state.lease.map_or("no Lease".to_owned(), |lease| {
        format!(
            "Lease c{} rv{} expires {:.6}s",
            lease.holder,
            lease.rv,
            lease.expiry() as f64 / 1e6
        )
    });
    let holders: Vec<String> = (0..state.clients.len())
        .filter(|&c| world.believes(state, c))
        .map(|c| format!("c{c}"))
        .collect();
    format!("{lease}; believe held: [{}]", holders.join(","))
}

/// How stateright sees the world: its steps, and the properties of its
/// configuration.
impl stateright::Model for World {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut states = vec![self.init()];
        if !self.config.eager {
            states.extend(self.head_start());
        }
        states
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.actions_of(state, actions);
    }

    fn next_state(&self, state: &State, action: Action) -> Option<State> {
        self.step(state, action)
    }

    fn properties(&self) -> Vec<stateright::Property<Self>> {
        crate::properties::all(&self.config)
    }
}
