//! The node model: what a node is made of, as plain serializable data.
//!
//! The same JSON crosses SSH from a node to the controller, is stored in the
//! inventory, and is what `checks` judges. Nothing here touches the machine.

mod gpu;
mod host;
mod identity;
mod imex;
mod node;
mod pci;
mod pci_address;
mod problem;
mod telemetry;

pub use gpu::*;
pub use host::*;
pub use identity::*;
pub use imex::{Imex, ImexDaemon, ImexPeer};
pub use node::*;
pub use pci::*;
pub use pci_address::{empty_when_none, PciAddress, PciAddressError};
pub use problem::*;
pub use telemetry::*;
