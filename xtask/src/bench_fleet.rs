//! Rack fan-out benchmark: `kiln rack inspect` over the lab's nodes against `pdsh` running
//! `kiln inspect --json` on the same nodes, side by side in one run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::lab::{self, LabConfig};

/// Timings of one benchmark run, in seconds (median of `rounds`).
#[derive(Debug, Clone)]
pub struct FleetBench {
    pub nodes: usize,
    pub rounds: usize,
    pub kiln_binary: PathBuf,
    pub kiln_binary_mb: f64,
    /// First `kiln rack inspect`: every node gets the binary pushed.
    pub kiln_cold_s: f64,
    /// `kiln rack inspect` with the binary already current (checksum only).
    pub kiln_warm_s: f64,
    pub pdsh_s: f64,
    /// Nodes whose node command ran to an exit code, per tool (last round).
    pub kiln_nodes_answered: usize,
    pub pdsh_nodes_answered: usize,
    /// The node command's exit code on the first node (both tools run the same).
    pub node_exit: Option<i64>,
}

impl FleetBench {
    pub fn markdown(&self) -> String {
        format!(
            "| tool | what it does | time (median of {r}) | nodes answered |\n|---|---|---|---|\n\
             | `kiln rack inspect --force` (first run) | SSH, checksum, push {mb:.0} MB binary, run, record | {cold:.2} s | {ka} / {n} |\n\
             | `kiln rack inspect --force` | SSH, checksum (current), run, record | {warm:.2} s | {ka} / {n} |\n\
             | `pdsh -R ssh -f {n}` | SSH, run | {pdsh:.2} s | {pa} / {n} |\n",
            r = self.rounds,
            mb = self.kiln_binary_mb,
            cold = self.kiln_cold_s,
            warm = self.kiln_warm_s,
            pdsh = self.pdsh_s,
            ka = self.kiln_nodes_answered,
            pa = self.pdsh_nodes_answered,
            n = self.nodes,
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The kiln to benchmark: the release build when there is one, else debug.
pub fn default_kiln(repo: &Path) -> anyhow::Result<PathBuf> {
    ["target/release/kiln", "target/debug/kiln"]
        .iter()
        .map(|p| repo.join(p))
        .find(|p| p.exists())
        .context("no kiln binary: run `cargo build` first")
}

/// Brings up a lab of `nodes` nodes (its own names and subnet, no BMCs),
/// times both tools `rounds` times, takes the lab down, returns the medians.
pub fn run(repo: &Path, nodes: usize) -> anyhow::Result<FleetBench> {
    run_with(repo, &default_kiln(repo)?, nodes, 5)
}

pub fn run_with(repo: &Path, kiln: &Path, nodes: usize, rounds: usize) -> anyhow::Result<FleetBench> {
    if !Path::new("/usr/bin/pdsh").exists() {
        crate::lab::install_packages(&["pdsh"])?;
    }
    let mut cfg = LabConfig::standard(repo, nodes);
    cfg.dir = repo.join("target/lab-bench");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kb".into();
    cfg.subnet = 2;
    cfg.bmc = false;
    let lab = lab::up(&cfg)?;
    let result = measure(&lab, kiln, nodes, rounds);
    lab::down(&cfg.dir)?;
    result
}

fn measure(lab: &lab::Lab, kiln: &Path, nodes: usize, rounds: usize) -> anyhow::Result<FleetBench> {
    // Every round does the same work: `--force` runs nodes whose inspect
    // already passed (a rerun would skip them), and each node's outcome is
    // recorded in a database of the bench's own, as `kiln rack` always does.
    let db = lab.state.dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let rack = |json: bool| {
        let mut c = Command::new(kiln);
        c.args(["rack", "inspect", "--force", "--parallel"]).arg(nodes.to_string()).arg("--rack").arg(lab.manifest());
        c.arg("--db").arg(&db);
        if json {
            c.arg("--json");
        }
        c.stdin(Stdio::null()).stderr(Stdio::null());
        c
    };
    let timed = |mut c: Command| -> anyhow::Result<(f64, Vec<u8>)> {
        let t = Instant::now();
        let out = c.output().with_context(|| format!("run {c:?}"))?;
        Ok((t.elapsed().as_secs_f64(), out.stdout))
    };
    let (kiln_cold_s, _) = timed(rack(false))?;
    let addresses: Vec<&str> = lab.state.nodes.iter().map(|n| n.address.as_str()).collect();
    let ssh_args = format!(
        "-i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -l%u %h",
        lab.client_key().display(),
        lab.known_hosts().display()
    );
    let pdsh = || {
        let mut c = Command::new("pdsh");
        c.args(["-R", "ssh", "-l", "root", "-f"]).arg(nodes.to_string()).arg("-w").arg(addresses.join(","));
        c.args(["/var/lib/kiln/bin/kiln", "inspect", "--json", "--root", "/srv/kiln/fixture"]);
        c.env("PDSH_SSH_ARGS", &ssh_args).stdin(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let (mut warm, mut pd) = (Vec::new(), Vec::new());
    let (mut kiln_answered, mut pdsh_answered, mut node_exit) = (0, 0, None);
    for _ in 0..rounds {
        let (t, out) = timed(rack(true))?;
        warm.push(t);
        let v: serde_json::Value = serde_json::from_slice(&out).context("parse kiln rack inspect --json")?;
        let list = v["nodes"].as_array().cloned().unwrap_or_default();
        kiln_answered = list.iter().filter(|n| n.get("remote_exit").is_some()).count();
        node_exit = list.first().and_then(|n| n["remote_exit"].as_i64());

        let t = Instant::now();
        let out = pdsh().output().context("run pdsh")?;
        pd.push(t.elapsed().as_secs_f64());
        // pdsh prefixes every line with "host: "; a host that printed
        // anything (stdout or stderr) ran the command.
        let mut hosts = BTreeSet::new();
        for line in String::from_utf8_lossy(&out.stdout).lines().chain(String::from_utf8_lossy(&out.stderr).lines()) {
            if let Some((host, _)) = line.split_once(": ") {
                if addresses.contains(&host) {
                    hosts.insert(host.to_string());
                }
            }
        }
        pdsh_answered = hosts.len();
    }
    if kiln_answered == 0 && pdsh_answered == 0 {
        bail!("neither tool reached a node; is the lab up?");
    }
    Ok(FleetBench {
        nodes,
        rounds,
        kiln_binary: kiln.to_path_buf(),
        kiln_binary_mb: std::fs::metadata(kiln).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0),
        kiln_cold_s,
        kiln_warm_s: median(warm),
        pdsh_s: median(pd),
        kiln_nodes_answered: kiln_answered,
        pdsh_nodes_answered: pdsh_answered,
        node_exit,
    })
}
