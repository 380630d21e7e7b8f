//! One free function per command; `main` matches on the CLI and calls these.
//! Each returns the process exit code (see `crate::exit`).
pub mod burnin;
