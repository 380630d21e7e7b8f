//! Exit codes: stable, documented in `docs/exit-codes.md`. Pipelines depend on them.

/// Everything checked passed.
pub const OK: i32 = 0;
/// The command ran and at least one check failed: the node is not healthy.
pub const CHECK_FAILED: i32 = 1;
/// Usage error: bad flags or arguments (clap's own code).
pub const USAGE: i32 = 2;
/// Nothing failed, but at least one check could not be run (an `error` finding).
pub const CHECK_ERROR: i32 = 3;
/// Bad input: a malformed spec, manifest, capture or recipe.
pub const BAD_INPUT: i32 = 4;
/// The inventory database could not be opened, migrated or written.
pub const DATABASE: i32 = 5;
/// A peer could not be reached or answered wrong (SSH, BMC, cluster).
pub const PEER: i32 = 6;
/// The command's main work was skipped: no NVIDIA driver or no GPU, so a GPU
/// command did nothing. Not a pass: a pipeline must not treat it as healthy.
pub const SKIPPED: i32 = 7;
/// Writing an image failed at the target (I/O error, or it read back
/// wrong); the target was wiped unless `--preserve-on-error`.
pub const TARGET_FAILED: i32 = 8;
/// `kiln burnin` did not start: another burn-in, or what is left of a killed
/// one, is running on the node (it holds the burn-in lock); or another
/// controller follows those nodes' Slurm burn-in jobs (`kiln rack burnin --via slurm`).
pub const BUSY: i32 = 9;
/// Any other failure of kiln itself (I/O on its own files, a bug).
pub const INTERNAL: i32 = 10;
