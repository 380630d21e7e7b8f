//! NVLink-domain rack benchmark: `kiln rack validate` over a lab of compute trays of one healthy
//! rack (each node's tree built by kiln's fixture builder, its own serials and tray index),
//! beside `pdsh` running the node command `kiln validate --json` on the same trays, in one run:
//! wall time and the controller's peak RSS (GNU time's maximum resident set size).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::lab::{self, LabConfig};
use anyhow::{bail, Context};

#[derive(Debug, Clone)]
pub struct RackBench {
    pub trays: usize,
    pub rounds: usize,
    pub kiln_s: f64,
    pub kiln_peak_rss_mb: f64,
    pub pdsh_s: f64,
    pub pdsh_peak_rss_mb: f64,
    /// Trays whose node command ran to an exit code in kiln's last round.
    pub kiln_nodes_answered: usize,
    /// Rack findings that failed in kiln's last round (0 on the healthy rack).
    pub rack_failures: usize,
}

impl RackBench {
    pub fn markdown(&self) -> String {
        format!(
            "| tool | what it does | time (median of {r}) | controller peak RSS | trays answered |\n|---|---|---|---|---|\n\
             | `kiln rack validate --force` | SSH, checksum, validate each tray, record, rack checks (domain, placement, serials, fabric), gate | {k:.2} s | {krss:.1} MB | {ka} / {n} |\n\
             | `pdsh -R ssh -f {n}` | SSH, `kiln validate --json` on each tray | {p:.2} s | {prss:.1} MB | |\n\n\
             Rack findings failed on the healthy rack: {f}.\n",
            r = self.rounds,
            k = self.kiln_s,
            krss = self.kiln_peak_rss_mb,
            ka = self.kiln_nodes_answered,
            n = self.trays,
            p = self.pdsh_s,
            prss = self.pdsh_peak_rss_mb,
            f = self.rack_failures,
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs `c` under GNU time: (seconds, peak RSS in MB, stdout).
fn measured(mut c: Command, rss_file: &Path) -> anyhow::Result<(f64, f64, Vec<u8>)> {
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M").arg("-o").arg(rss_file).arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    timed.stdin(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let out = timed.output().with_context(|| format!("run {c:?}"))?;
    let secs = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(rss_file).context("read GNU time's output")?;
    let kib: f64 = text.lines().last().unwrap_or("").trim().parse().context("GNU time's maximum RSS")?;
    c.stdin(Stdio::null());
    Ok((secs, kib / 1024.0, out.stdout))
}

/// Brings up a lab of `trays` trays (no BMCs), times both tools `rounds` times, takes the lab
/// down, returns the medians.
pub fn run(repo: &Path, kiln: &Path, trays: usize, rounds: usize) -> anyhow::Result<RackBench> {
    if !Path::new("/usr/bin/pdsh").exists() {
        crate::lab::install_packages(&["pdsh"])?;
    }
    if !Path::new("/usr/bin/time").exists() {
        crate::lab::install_packages(&["time"])?;
    }
    let mut cfg = LabConfig::standard(repo, trays);
    cfg.dir = repo.join("target/lab-bench-rack");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kr".into();
    cfg.subnet = 7;
    cfg.bmc = false;
    // Tray NN of one healthy rack, written by kiln's fixture builder (`gb200-nvl72-tray-NN`).
    let fixtures = cfg.dir.join("fixtures");
    let names: Vec<String> = (1..=trays).map(|i| format!("gb200-nvl72-tray-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    crate::fixtures::write(repo, &fixtures, &refs)?;
    cfg.fixtures = names.iter().map(|n| fixtures.join(n)).collect();
    let lab = lab::up(&cfg)?;
    let result = measure(&lab, kiln, trays, rounds);
    lab::down(&cfg.dir)?;
    result
}

fn measure(lab: &lab::Lab, kiln: &Path, trays: usize, rounds: usize) -> anyhow::Result<RackBench> {
    let db = lab.state.dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let rss = lab.state.dir.join("rss.txt");
    let rack = || {
        let mut c = Command::new(kiln);
        c.args(["rack", "validate", "--force", "--json", "--parallel"]).arg(trays.to_string());
        c.arg("--rack").arg(lab.manifest()).arg("--db").arg(&db);
        c
    };
    // The first run pushes the binary; it is not what is compared.
    measured(rack(), &rss)?;
    let pdsh = || lab.pdsh(trays, &["validate", "--json", "--root", "/srv/kiln/fixture"]);
    let (mut k, mut krss, mut p, mut prss) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut answered, mut failures) = (0, 0);
    for _ in 0..rounds {
        let (t, mb, out) = measured(rack(), &rss)?;
        k.push(t);
        krss.push(mb);
        let v: serde_json::Value = serde_json::from_slice(&out).context("parse kiln rack validate --json")?;
        answered = v["nodes"].as_array().map_or(0, |a| a.iter().filter(|n| n.get("remote_exit").is_some()).count());
        failures = v["rack_findings"].as_array().map_or(0, |a| a.iter().filter(|f| f["outcome"] == "fail").count());
        let (t, mb, _) = measured(pdsh(), &rss)?;
        p.push(t);
        prss.push(mb);
    }
    if answered == 0 {
        bail!("kiln reached no tray; is the lab up?");
    }
    Ok(RackBench {
        trays,
        rounds,
        kiln_s: median(k),
        kiln_peak_rss_mb: median(krss),
        pdsh_s: median(p),
        pdsh_peak_rss_mb: median(prss),
        kiln_nodes_answered: answered,
        rack_failures: failures,
    })
}
