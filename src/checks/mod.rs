//! Platform specs and the rules that judge a `Node` against them.

pub mod bom;
pub mod builtin;
pub mod burnin_spec;
pub mod collective_op;
pub mod derive;
pub mod detect;
pub mod finding;
pub mod pci_id;
pub mod platform;
pub mod rules;
pub mod select;
pub mod spec_error;
pub mod spec_load;
pub mod spec_validate;
#[cfg(test)]
pub mod testnode;
pub mod validate;
pub mod version;

pub use finding::{place_label, Component, Finding, Outcome, Severity, Verdict};
pub use platform::Platform;
pub use spec_error::SpecError;
pub use validate::validate;
