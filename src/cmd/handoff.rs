//! `kiln rack handoff`: hand a rack's nodes to Slurm or Kubernetes as the inventory judges them.

use anyhow::Context;

use crate::cli::{HandoffArgs, HandoffTarget};
use crate::exit;
use crate::handoff::{hand_off_rack, render_text, Cluster, KubeApi, Scontrol};
use crate::inventory::{db_path, Inventory};

pub fn run(args: &HandoffArgs) -> anyhow::Result<i32> {
    let manifest = match super::rack::load(&args.rack, &args.nodes) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    // `load` checked every name.
    let nodes = manifest.select(&args.nodes)?;
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let path = db_path(args.db.db.as_deref());
    let mut inventory = match Inventory::open_existing(&path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::new(e));
            return Ok(exit::DATABASE);
        }
    };
    let scontrol;
    let kube;
    let cluster = match args.to {
        HandoffTarget::Slurm => {
            scontrol = Scontrol::new(&args.scontrol);
            Cluster::Slurm(&scontrol)
        }
        HandoffTarget::Kubernetes => {
            let (Some(url), Some(token)) = (&args.kube_api, &args.kube_token_file) else {
                eprintln!("kiln: error: --to kubernetes needs --kube-api and --kube-token-file");
                return Ok(exit::USAGE);
            };
            kube = match KubeApi::new(url, token, args.kube_ca.as_deref()) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("kiln: error: {:#}", anyhow::Error::new(e));
                    return Ok(exit::BAD_INPUT);
                }
            };
            Cluster::Kubernetes(&kube)
        }
    };
    let outcome = match hand_off_rack(&mut inventory, &manifest.rack.id, &names, &cluster, args.dry_run) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::new(e));
            return Ok(exit::DATABASE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome).context("serialize the hand-off outcome")?);
    } else {
        print!("{}", render_text(&outcome));
    }
    Ok(outcome.exit_code)
}
