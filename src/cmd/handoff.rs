//! `kiln rack handoff`: hand a rack's nodes to Slurm or Kubernetes as the inventory judges them.

use anyhow::Context;

use crate::cli::{HandoffArgs, HandoffTarget};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::handoff::{hand_off_rack, render_text, Cluster, KubeApi, Scontrol};
use crate::inventory::{db_path, Inventory};

pub fn run(args: &HandoffArgs) -> CmdResult {
    let manifest = super::rack::load(&args.rack, &args.nodes)?;
    // `load` checked every name.
    let nodes = manifest.select(&args.nodes).map_err(CmdError::RackNodes)?;
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let path = db_path(args.db.db.as_deref());
    let mut inventory = Inventory::open_existing(&path)?;
    let scontrol;
    let kube;
    let cluster = match args.to {
        HandoffTarget::Slurm => {
            scontrol = Scontrol::new(&args.scontrol);
            Cluster::Slurm(&scontrol)
        }
        HandoffTarget::Kubernetes => {
            let (Some(url), Some(token)) = (&args.kube_api, &args.kube_token_file) else {
                return Err(CmdError::Usage("--to kubernetes needs --kube-api and --kube-token-file".into()).into());
            };
            kube = KubeApi::new(url, token, args.kube_ca.as_deref())?;
            Cluster::Kubernetes(&kube)
        }
    };
    let outcome = hand_off_rack(&mut inventory, &manifest.rack.id, &names, &cluster, args.dry_run)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome).context("serialize the hand-off outcome")?);
    } else {
        crate::terminal::print(&render_text(&outcome));
    }
    Ok(Outcome::exit(outcome.exit_code))
}
