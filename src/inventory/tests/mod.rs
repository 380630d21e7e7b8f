//! Tests of the inventory against real database files in temporary directories.

mod bench;
mod busy;
mod collective;
mod components;
mod crash;
mod diff;
mod lifecycle;
mod open;
mod rack;
mod record;
pub(crate) mod support;
