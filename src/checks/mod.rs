//! Platform specs and the rules that judge a `Node` against them.

pub mod finding;

pub use finding::{Component, Finding, Outcome, Severity, Verdict};
