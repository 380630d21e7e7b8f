//! The lab: an emulated rack on this machine with real peers. Each node is a network namespace on
//! a bridge running OpenSSH's sshd against a snapshot tree; each BMC a sushy-tools Redfish emulator.

mod bmc;
mod cli;
mod config;
mod deps;
mod fixtures;
mod lifecycle;
mod manifest;
mod net;
mod process;
mod site;
mod sshd;
mod state;

pub use bmc::BMC_USER;
pub use cli::cli;
pub use config::{repo_root, LabConfig};
pub use deps::{install_packages, is_root, REDFISH_UTILITIES};
pub use lifecycle::{down, status, up, Lab, NodeHealth, Teardown};
pub use site::{preinstall, write_site};
pub use state::{LabNode, LabState};
