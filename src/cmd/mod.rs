//! One free function per command; `main` matches on the CLI and calls these.
//! Each returns the process exit code (see `crate::exit`).
pub mod agent;
pub mod bench_record;
pub mod bmc;
pub mod burnin;
pub mod capture;
pub mod handoff;
pub mod healthcheck;
pub mod image;
pub mod image_boot;
pub mod inspect;
pub mod node;
pub mod node_state;
pub mod rack;
pub mod rack_image;
pub mod report;
pub mod spec;
pub mod validate;
