//! `cargo xtask fixtures [DIR] [NAME...]`: writes kiln's hand-built fixture trees (healthy HGX
//! B200, GB200 tray and HGX H100 nodes, and the HGX B200 fault variants) for `kiln --root`, the
//! lab and the benchmark. None is committed; kiln's builder (`kiln::hw::fixture::trees`) writes
//! them, run as `cargo run --example fixtures`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// Where `cargo xtask fixtures` writes by default, relative to the repository.
pub const DEFAULT_DIR: &str = "target/fixtures";

/// Writes the named trees (every one when `names` is empty) under `dir`, each as `dir/NAME`,
/// replacing what was there.
pub fn write(repo: &Path, dir: &Path, names: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(repo)
        .args(["run", "--quiet", "--package", "kiln", "--example", "fixtures", "--"])
        .arg(dir)
        .args(names)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("run {cargo} run --example fixtures"))?;
    if !status.success() {
        bail!("writing the fixture trees into {} failed ({status})", dir.display());
    }
    Ok(())
}

/// `cargo xtask fixtures [DIR] [NAME...]`.
pub fn cli(repo: &Path, args: &[String]) -> anyhow::Result<u8> {
    let (dir, names) = match args.split_first() {
        Some((dir, names)) => (PathBuf::from(dir), names),
        None => (repo.join(DEFAULT_DIR), &[][..]),
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    write(repo, &dir, &names)?;
    println!("fixture trees written under {}", dir.display());
    Ok(0)
}
