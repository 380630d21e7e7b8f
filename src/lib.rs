//! kiln: takes NVIDIA GPU nodes from crated hardware to nodes a cluster can trust.
//!
//! Data flows one way: `hw` reads the machine into the `model`, `checks`
//! judges it against a platform spec into `Finding`s, `inventory` records it
//! all in SQLite, `report` renders it. See ARCHITECTURE.md.

pub mod bmc;
pub mod burnin;
pub mod checks;
pub mod cli;
pub mod cmd;
pub mod deploy;
pub mod error;
pub mod exit;
pub mod firmware;
pub mod fleet;
pub mod handoff;
pub mod hw;
pub mod image;
pub mod input;
pub mod inventory;
pub mod json_error;
pub mod lifecycle;
pub mod logging;
pub mod model;
pub mod notice;
pub mod rack;
pub mod redact;
pub mod report;
pub mod secret;
pub mod terminal;
pub mod toml_error;
pub mod truncate;
