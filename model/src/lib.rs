//! A model of celers-kube-lease checked with stateright.
//!
//! The model owns the world (true time, API servers with their own clocks,
//! one Lease and a beat ledger entry, the network, clients that pause,
//! crash and restart) and its clients decide with the library's own pure
//! code, reached through `celers_kube_lease::model_seam`: the decisions,
//! the server clock's bound arithmetic, a guard's deadline and the ledger's
//! claim. [`defect`] injects deliberately broken variants of single calls
//! to show that the properties have teeth. RELIABILITY.md, "Verification",
//! describes the bounds and the results.

pub mod check;
mod client;
pub mod config;
pub mod defect;
pub mod names;
pub mod properties;
mod server;
pub mod world;
