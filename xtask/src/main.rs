//! `cargo xtask`: workflows around kiln (bringup, lab, test, bench).

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("lab") => xtask::lab::cli(&args[1..]),
        Some("bench-fleet") => {
            let nodes = args.get(1).map(|n| n.parse::<usize>()).transpose().context("node count")?.unwrap_or(32);
            let report = xtask::bench_fleet::run(&xtask::lab::repo_root()?, nodes)?;
            println!("{}", report.markdown());
            Ok(())
        }
        _ => bail!("usage: cargo xtask lab up [--nodes N] [--fixtures A,B,..] [--no-bmc] [--no-trust] | lab down | lab status\n       cargo xtask bench-fleet [NODES]"),
    }
}
