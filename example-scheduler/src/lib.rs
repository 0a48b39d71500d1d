//! The example scheduler's log reader, shared by its checker binary
//! (`celers-beat-runs`) and its tests; the scheduler itself is `main.rs`.

pub mod runs;
