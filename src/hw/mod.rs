//! The only code that touches the machine. Each surface is a narrow trait with
//! a live backend and a snapshot backend that reads a captured or hand-built tree.

pub mod block;
pub mod capture;
pub mod cpu;
pub mod dimm;
pub mod fixture;
pub mod gpu;
pub mod host;
pub mod imex;
pub mod inspect;
pub mod net;
pub mod nvml;
pub mod parse;
pub mod pci;
pub mod probe;
pub mod replay;
pub mod root;
pub mod source;
pub mod telemetry;

pub use inspect::inspect;
pub use source::open;
