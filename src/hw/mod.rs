//! The only code that touches the machine. Each surface is a narrow trait with
//! a live backend and a snapshot backend that reads a captured or hand-built tree.

pub mod gpu;
pub mod nvml;
pub mod root;
