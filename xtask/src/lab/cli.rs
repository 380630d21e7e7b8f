//! `cargo xtask lab up [--nodes N] [--fixtures A,B] [--no-bmc] [--no-trust] [--rack-size N] | down | status`.

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::config::{repo_root, LabConfig};
use super::lifecycle::{down, status, up};

pub fn cli(args: &[String]) -> anyhow::Result<()> {
    let repo = repo_root()?;
    let mut cfg = LabConfig::standard(&repo, 4);
    match args.first().map(String::as_str) {
        Some("up") => {
            let mut rack_size = None;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--nodes" => cfg.nodes = it.next().context("--nodes needs a number")?.parse().context("--nodes")?,
                    "--fixtures" => {
                        cfg.fixtures =
                            it.next().context("--fixtures needs a list")?.split(',').map(PathBuf::from).collect()
                    }
                    "--no-bmc" => cfg.bmc = false,
                    "--no-trust" => cfg.pretrust = false,
                    "--rack-size" => {
                        rack_size =
                            Some(it.next().context("--rack-size needs a number")?.parse::<usize>().context("--rack-size")?)
                    }
                    other => bail!("lab up: unknown argument {other}"),
                }
            }
            let lab = up(&cfg)?;
            if let Some(size) = rack_size {
                let site = super::site::write_site(&lab.state, size, false, &repo.join("inventory/sites/lab"))?;
                println!("site manifest: {}", site.display());
            }
            for n in &lab.state.nodes {
                println!(
                    "{}  {}  ssh root@{}  bmc {}  fixture {}",
                    n.name,
                    n.netns,
                    n.address,
                    n.bmc_url.as_deref().unwrap_or("-"),
                    n.fixture
                );
            }
            Ok(())
        }
        Some("down") => {
            down(&cfg.dir)?;
            println!("lab: down");
            Ok(())
        }
        Some("status") => {
            let mut all_up = true;
            println!("{:<8} {:<12} {:<6} {:<6} FIXTURE", "NODE", "ADDRESS", "SSHD", "BMC");
            for h in status(&cfg.dir)? {
                let bmc = match h.bmc {
                    Some(true) => "up",
                    Some(false) => "down",
                    None => "-",
                };
                all_up &= h.sshd && h.bmc != Some(false);
                println!(
                    "{:<8} {:<12} {:<6} {:<6} {}",
                    h.name,
                    h.address,
                    if h.sshd { "up" } else { "down" },
                    bmc,
                    h.fixture
                );
            }
            if !all_up {
                bail!("some lab nodes are down");
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask lab up [--nodes N] [--fixtures A,B,..] [--no-bmc] [--no-trust] [--rack-size N] | down | status"),
    }
}
