//! Rack fan-out benchmark: `kiln rack inspect` over the lab's nodes against `pdsh` running
//! `kiln inspect --json` on the same nodes, side by side in one run; and the first run (every node
//! gets kiln pushed) against a rerun, pushing the controller's own binary and `--dist`'s packed one,
//! with the bytes that crossed each node's link and the CPU time the nodes and the controller spent.

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
    /// Bytes through each node's link (both directions) during the first run, mean over nodes.
    pub kiln_cold_wire_bytes: f64,
    /// The same run with `--dist`, when a directory was given.
    pub dist: Option<DistBench>,
}

/// `kiln rack inspect --force --dist DIR`: first runs (nodes emptied before
/// each) and reruns, and what crossed the links.
#[derive(Debug, Clone)]
pub struct DistBench {
    pub dir: PathBuf,
    /// The binary that runs on the nodes (stripped).
    pub binary_mb: f64,
    /// What the nodes were sent (the packed copy kiln prefers that they can unpack).
    pub packed: String,
    pub packed_mb: f64,
    pub cold_rounds: usize,
    pub cold_s: f64,
    pub warm_s: f64,
    pub cold_wire_bytes: f64,
    pub warm_wire_bytes: f64,
    /// CPU seconds per node (its sshd and everything it ran: the check,
    /// unpacking and hashing a push, kiln), mean over nodes, median of the
    /// runs.
    pub cold_node_cpu_s: f64,
    pub warm_node_cpu_s: f64,
    /// CPU seconds of the controller's `kiln rack inspect` (median).
    pub cold_controller_cpu_s: f64,
    pub warm_controller_cpu_s: f64,
    pub nodes_pushed: usize,
    /// Cores of the machine the lab runs on (nodes and controller share them).
    pub cores: usize,
}

impl FleetBench {
    pub fn markdown(&self) -> String {
        let mut s = format!(
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
        );
        let Some(d) = &self.dist else {
            return s;
        };
        s.push_str(&format!(
            "\nFirst run against rerun, {n} nodes (first runs: nodes' kiln removed before each; \
             wire: bytes through each node's veth, both directions, mean per node):\n\n\
             | what is pushed | first run | rerun (median of {r}) | first / rerun | wire per node, first run | wire per node, rerun |\n\
             |---|---|---|---|---|---|\n\
             | the controller's kiln, {mb:.1} MB as is (no `--dist`) | {cold:.2} s (1 run) | {warm:.2} s | {ratio:.2} | {cw:.1} MB | |\n\
             | `--dist`: {dmb:.1} MB stripped, sent as {pmb:.1} MB {enc} | {dcold:.2} s (median of {cr}) | {dwarm:.2} s | {dratio:.2} | {dcw:.2} MB | {dww:.3} MB |\n",
            n = self.nodes,
            r = self.rounds,
            mb = self.kiln_binary_mb,
            cold = self.kiln_cold_s,
            warm = self.kiln_warm_s,
            ratio = self.kiln_cold_s / self.kiln_warm_s,
            cw = self.kiln_cold_wire_bytes / 1e6,
            dmb = d.binary_mb,
            pmb = d.packed_mb,
            enc = d.packed,
            dcold = d.cold_s,
            cr = d.cold_rounds,
            dwarm = d.warm_s,
            dratio = d.cold_s / d.warm_s,
            dcw = d.cold_wire_bytes / 1e6,
            dww = d.warm_wire_bytes / 1e6,
        ));
        s.push_str(&format!(
            "\n- wire per node, first run with `--dist`: {:.2} MB (target: at most 8 MB): {}\n\
             - first run / rerun with `--dist`: {:.2} (target: within 1.5): {}\n\
             - nodes pushed in the last first run: {} / {}\n",
            d.cold_wire_bytes / 1e6,
            if d.cold_wire_bytes <= 8e6 { "met" } else { "missed" },
            d.cold_s / d.warm_s,
            if d.cold_s <= 1.5 * d.warm_s { "met" } else { "missed" },
            d.nodes_pushed,
            self.nodes,
        ));
        s.push_str(&format!(
            "\nCPU time of the same runs (median): per node, its sshd and everything it ran (the check; on a \
             first run receiving, unpacking and hashing the copy; kiln); the controller's `kiln rack inspect`. \
             The lab's {n} nodes and the controller share this machine's {c} cores, so the nodes' CPU time adds \
             up in the wall time; on a rack each node spends its own.\n\n\
             | run | CPU per node | all nodes | controller |\n|---|---|---|---|\n\
             | first run with `--dist` | {cn:.3} s | {can:.2} s | {cc:.2} s |\n\
             | rerun | {wn:.3} s | {wan:.2} s | {wc:.2} s |\n\
             | first / rerun | {rn:.2} | | {rc:.2} |\n",
            n = self.nodes,
            c = d.cores,
            cn = d.cold_node_cpu_s,
            can = d.cold_node_cpu_s * self.nodes as f64,
            cc = d.cold_controller_cpu_s,
            wn = d.warm_node_cpu_s,
            wan = d.warm_node_cpu_s * self.nodes as f64,
            wc = d.warm_controller_cpu_s,
            rn = d.cold_node_cpu_s / d.warm_node_cpu_s,
            rc = d.cold_controller_cpu_s / d.warm_controller_cpu_s,
        ));
        s
    }
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`; 100
/// on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds of process `pid` (`self` for this one): its own and its
/// waited-for children's, user and system (`/proc/PID/stat` fields 14-17).
fn cpu_s(pid: &str, ticks: f64) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis start at field 3.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (11..15).filter_map(|i| fields.get(i).and_then(|f| f.parse::<f64>().ok())).sum::<f64>() / ticks
}

/// CPU seconds of every node's sshd with all it ran and reaped (a session's
/// processes are counted once the connection ends).
fn nodes_cpu_s(lab: &lab::Lab, ticks: f64) -> f64 {
    // Time for the last sessions' processes to be reaped after kiln closed them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    lab.state.nodes.iter().map(|n| cpu_s(&n.sshd_pid.to_string(), ticks)).sum()
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
/// times both tools `rounds` times, and with `dist` (a `cargo xtask dist`
/// directory) the first run and reruns that push from it; takes the lab
/// down, returns the medians.
pub fn run(repo: &Path, nodes: usize, dist: Option<&Path>) -> anyhow::Result<FleetBench> {
    run_with(repo, &default_kiln(repo)?, dist, nodes, 5)
}

pub fn run_with(
    repo: &Path,
    kiln: &Path,
    dist: Option<&Path>,
    nodes: usize,
    rounds: usize,
) -> anyhow::Result<FleetBench> {
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
    let result = measure(&lab, kiln, dist, nodes, rounds);
    lab::down(&cfg.dir)?;
    result
}

/// Bytes through each node's veth so far (received plus sent, host side).
fn wire_counters(lab: &lab::Lab) -> Vec<u64> {
    let read = |veth: &str, what: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{veth}/statistics/{what}"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    lab.state.nodes.iter().map(|n| read(&n.veth, "rx_bytes") + read(&n.veth, "tx_bytes")).collect()
}

/// Mean bytes per node between two readings of `wire_counters`.
fn wire_mean(before: &[u64], after: &[u64]) -> f64 {
    let total: u64 = before.iter().zip(after).map(|(b, a)| a.saturating_sub(*b)).sum();
    total as f64 / before.len().max(1) as f64
}

/// Removes kiln from every node (the lab's per-node /var/lib/kiln), so the
/// next run pushes to all of them.
fn empty_nodes(lab: &lab::Lab) -> anyhow::Result<()> {
    for n in &lab.state.nodes {
        let bin = n.sshd.var_lib.join("bin");
        if bin.exists() {
            std::fs::remove_dir_all(&bin).with_context(|| format!("clear {}", bin.display()))?;
        }
    }
    Ok(())
}

fn measure(
    lab: &lab::Lab,
    kiln: &Path,
    dist: Option<&Path>,
    nodes: usize,
    rounds: usize,
) -> anyhow::Result<FleetBench> {
    // Every round does the same work: `--force` runs nodes whose inspect
    // already passed (a rerun would skip them), and each node's outcome is
    // recorded in a database of the bench's own, as `kiln rack` always does.
    let db = lab.state.dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let rack_from = |json: bool, dist: Option<&Path>| {
        let mut c = Command::new(kiln);
        c.args(["rack", "inspect", "--force", "--parallel"]).arg(nodes.to_string()).arg("--rack").arg(lab.manifest());
        c.arg("--db").arg(&db).env_remove("KILN_DIST");
        if let Some(d) = dist {
            c.arg("--dist").arg(d);
        }
        if json {
            c.arg("--json");
        }
        c.stdin(Stdio::null()).stderr(Stdio::null());
        c
    };
    let rack = |json: bool| rack_from(json, None);
    let ticks = clock_ticks();
    // Wall time, stdout, and the command's CPU time (this process's reaped
    // children's, before and after).
    let timed = |mut c: Command| -> anyhow::Result<(f64, Vec<u8>, f64)> {
        let cpu = cpu_s("self", ticks);
        let t = Instant::now();
        let out = c.output().with_context(|| format!("run {c:?}"))?;
        Ok((t.elapsed().as_secs_f64(), out.stdout, cpu_s("self", ticks) - cpu))
    };
    empty_nodes(lab)?;
    let before = wire_counters(lab);
    let (kiln_cold_s, _, _) = timed(rack(false))?;
    let kiln_cold_wire_bytes = wire_mean(&before, &wire_counters(lab));
    let addresses: Vec<&str> = lab.state.nodes.iter().map(|n| n.address.as_str()).collect();
    let pdsh = || {
        let mut c = lab.pdsh(nodes, &["inspect", "--json", "--root", "/srv/kiln/fixture"]);
        c.stdin(Stdio::null()).stderr(Stdio::piped());
        c
    };
    let (mut warm, mut pd) = (Vec::new(), Vec::new());
    let (mut kiln_answered, mut pdsh_answered, mut node_exit) = (0, 0, None);
    for _ in 0..rounds {
        let (t, out, _) = timed(rack(true))?;
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
    let dist = match dist {
        Some(d) => Some(measure_dist(lab, d, rounds, ticks, &rack_from, &timed)?),
        None => None,
    };
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
        kiln_cold_wire_bytes,
        dist,
    })
}

/// First runs from `dir` (nodes emptied before each; three, median) and
/// reruns (`rounds`, median), with the bytes each crossed the links.
fn measure_dist(
    lab: &lab::Lab,
    dir: &Path,
    rounds: usize,
    ticks: f64,
    rack_from: &dyn Fn(bool, Option<&Path>) -> Command,
    timed: &dyn Fn(Command) -> anyhow::Result<(f64, Vec<u8>, f64)>,
) -> anyhow::Result<DistBench> {
    const COLD_ROUNDS: usize = 3;
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).with_context(|| format!("read {}", dir.display()))?,
    )
    .context("parse the dist manifest")?;
    let here = std::env::consts::ARCH;
    let entry = manifest["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["arch"] == here))
        .with_context(|| format!("{}: no {here} binary", dir.display()))?;
    // The lab's nodes are this machine: they get the first of zstd, xz and
    // gzip (kiln's order) that is installed here.
    let copies = entry["compressed"].as_array().cloned().unwrap_or_default();
    let sent = ["zstd", "xz", "gzip"]
        .iter()
        .filter(|p| crate::dist::have(p))
        .find_map(|p| copies.iter().find(|c| c["encoding"] == *p))
        .cloned()
        .unwrap_or_default();
    let mb = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as f64 / 1e6;
    let per_node = lab.state.nodes.len().max(1) as f64;
    let (mut cold, mut cold_wire, mut pushed) = (Vec::new(), Vec::new(), 0);
    let (mut cold_node_cpu, mut cold_ctl_cpu) = (Vec::new(), Vec::new());
    for _ in 0..COLD_ROUNDS {
        empty_nodes(lab)?;
        let before = wire_counters(lab);
        let node_cpu = nodes_cpu_s(lab, ticks);
        let (t, out, ctl) = timed(rack_from(true, Some(dir)))?;
        cold_wire.push(wire_mean(&before, &wire_counters(lab)));
        cold_node_cpu.push((nodes_cpu_s(lab, ticks) - node_cpu) / per_node);
        cold_ctl_cpu.push(ctl);
        cold.push(t);
        let v: serde_json::Value = serde_json::from_slice(&out).context("parse kiln rack inspect --json")?;
        let list = v["nodes"].as_array().cloned().unwrap_or_default();
        pushed = list.iter().filter(|n| n["binary"] == "pushed").count();
    }
    let (mut warm, mut warm_wire) = (Vec::new(), Vec::new());
    let (mut warm_node_cpu, mut warm_ctl_cpu) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let before = wire_counters(lab);
        let node_cpu = nodes_cpu_s(lab, ticks);
        let (t, _, ctl) = timed(rack_from(false, Some(dir)))?;
        warm_wire.push(wire_mean(&before, &wire_counters(lab)));
        warm_node_cpu.push((nodes_cpu_s(lab, ticks) - node_cpu) / per_node);
        warm_ctl_cpu.push(ctl);
        warm.push(t);
    }
    Ok(DistBench {
        dir: dir.to_path_buf(),
        binary_mb: mb(&entry["binary"]["bytes"]),
        packed: sent["encoding"].as_str().unwrap_or("none").to_string(),
        packed_mb: mb(&sent["bytes"]),
        cold_rounds: COLD_ROUNDS,
        cold_s: median(cold),
        warm_s: median(warm),
        cold_wire_bytes: median(cold_wire),
        warm_wire_bytes: median(warm_wire),
        cold_node_cpu_s: median(cold_node_cpu),
        warm_node_cpu_s: median(warm_node_cpu),
        cold_controller_cpu_s: median(cold_ctl_cpu),
        warm_controller_cpu_s: median(warm_ctl_cpu),
        nodes_pushed: pushed,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}
