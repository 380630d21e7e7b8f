//! Workflows around kiln, as a library so that integration tests can drive them too.

pub mod bench_firmware;
pub mod bench_firmware_tree;
pub mod bench_fleet;
pub mod bench_rack;
pub mod bench_site;
pub mod bringup_rack;
pub mod dist;
pub mod fixtures;
pub mod lab;
pub mod tidy;
pub mod vm;
