//! The example scheduler's log reader and replica spawner, shared by its
//! checker binary (`celers-beat-runs`), its tests and the reliability runs;
//! the scheduler itself is `main.rs`.

pub mod replicas;
pub mod runs;
