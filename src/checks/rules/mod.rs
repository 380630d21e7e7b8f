//! The rules that judge a `Node` against a `Platform`, one file per area.

pub mod aer;
pub mod c2c;
pub mod common;
pub mod counts;
pub mod fabric;
pub mod fabric_health;
pub mod firmware;
pub mod imex;
pub mod memory_health;
pub mod numa;
pub mod nvlink;
pub mod pcie_link;
pub mod problems;
