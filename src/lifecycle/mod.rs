//! Node lifecycle: the bring-up states a node moves through and which moves are legal.
//!
//! Pure data and functions; the inventory persists states and events.

mod rules;
mod run_kind;
mod state;
mod transition;

pub use rules::state_after_run;
pub use run_kind::{RunKind, UnknownRunKind};
pub use state::{LifecycleState, UnknownState};
pub use transition::{check_release, check_transition, IllegalTransition, Move};
