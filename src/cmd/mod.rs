//! One free function per command; `main` matches on the CLI and calls these.
//! Each returns a [`CmdResult`]: how it ended and, when it failed, the one error `main` prints
//! (`outcome.rs`, `error.rs`). What a command says on stderr that is not its error goes through
//! `crate::notice`.
pub mod agent;
pub mod bench_record;
pub mod bmc;
pub mod burnin;
pub mod capture;
pub mod error;
pub mod firmware;
pub mod firmware_update;
pub mod handoff;
pub mod healthcheck;
pub mod image;
pub mod image_boot;
pub mod inspect;
pub mod inventory;
pub mod nccl_rank;
pub mod node;
pub mod node_state;
pub mod outcome;
pub mod rack;
pub mod rack_burnin_slurm;
pub mod rack_collective;
pub mod rack_image;
pub mod rack_imex;
pub mod rack_site;
pub mod rack_topology;
pub mod report;
pub mod spec;
pub mod validate;

pub use error::CmdError;
pub use outcome::{CmdResult, Failure, Outcome};
