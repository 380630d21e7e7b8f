//! Site scale: `kiln rack validate --site` over a lab of many nodes split into NVL72 racks of 18
//! trays (no BMCs), beside `pdsh` running the node command `kiln validate --json` on the same
//! nodes, in one run: wall time and CPU time per node, the controller's peak RSS (GNU time), the
//! same for one rack alone (what the site adds per node), and an extrapolation to 4,500 trays.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::lab::{self, LabConfig};

/// The trays of one NVL72 rack.
pub const RACK_TRAYS: usize = 18;
/// What the extrapolation is for: a site of about 250 NVL72 racks.
pub const SITE_TRAYS: usize = 4500;

/// One tool's run: wall seconds, peak RSS (MB), CPU seconds (user + system).
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub wall_s: f64,
    pub rss_mb: f64,
    pub cpu_s: f64,
}

#[derive(Debug, Clone)]
pub struct SiteBench {
    pub nodes: usize,
    pub racks: usize,
    pub parallel: usize,
    pub rounds: usize,
    pub kiln: Measured,
    pub pdsh: Measured,
    /// `kiln rack validate --rack r01.toml` alone, at the same bounds.
    pub one_rack: Measured,
    /// The first half of the racks as a site of their own (`half_nodes` nodes).
    pub half: Measured,
    pub half_nodes: usize,
    pub kiln_nodes_answered: usize,
    pub pdsh_nodes_answered: usize,
    pub rack_failures: usize,
    pub exit_code: i32,
    pub peak_sessions: usize,
    pub lab_up_s: f64,
}

impl SiteBench {
    /// Controller memory per node between the half site and the whole one, both past the racks
    /// a run holds at once: what each further node costs to hold.
    fn rss_per_node_mb(&self) -> f64 {
        let extra = self.nodes.saturating_sub(self.half_nodes).max(1) as f64;
        (self.kiln.rss_mb - self.half.rss_mb) / extra
    }

    pub fn markdown(&self) -> String {
        let n = self.nodes as f64;
        let per = |m: &Measured| (m.wall_s / n * 1000.0, m.cpu_s / n * 1000.0);
        let (kw, kc) = per(&self.kiln);
        let (pw, pc) = per(&self.pdsh);
        let rss_per_node = self.rss_per_node_mb();
        let site_rss = self.kiln.rss_mb + rss_per_node.max(0.0) * (SITE_TRAYS - self.nodes.min(SITE_TRAYS)) as f64;
        let cpu = self.kiln.cpu_s / n * SITE_TRAYS as f64;
        format!(
            "{nodes} nodes in {racks} racks of up to {t} trays, `--parallel {p} --per-rack {t}`, median of {r} rounds; lab up in {up:.0} s.\n\n\
             | tool | what it does | wall | wall per node | controller CPU per node | controller peak RSS | nodes answered |\n|---|---|---|---|---|---|---|\n\
             | `kiln rack validate --site --force` | SSH, checksum, validate, record each node, rack checks and gate per rack | {kwall:.1} s | {kw:.0} ms | {kc:.1} ms | {krss:.1} MB | {ka} / {nodes} |\n\
             | `pdsh -R ssh -f {p}` | SSH, `kiln validate --json` on each node | {pwall:.1} s | {pw:.0} ms | {pc:.1} ms | {prss:.1} MB | {pa} / {nodes} |\n\
             | the same, first {hn} nodes as a site (1 run) | | {hwall:.1} s | {hw:.0} ms | {hc:.1} ms | {hrss:.1} MB | |\n\
             | `kiln rack validate --rack r01.toml --force` (one rack, 1 run) | the same for {t} trays | {owall:.1} s | {ow:.0} ms | {oc:.1} ms | {orss:.1} MB | |\n\n\
             Site exit code {code}; rack findings failed: {f}; most SSH sessions open at once: {peak} (bound {p}).\n\n\
             Extrapolation to {site} trays (about 250 racks), **an estimate from the per-node costs above, not a measurement**:\n\
             - controller memory: {krss:.1} MB at {nodes} nodes, {hrss:.1} MB at {hn}, {orss:.1} MB for one rack: {rpn:.3} MB per further node \
             (node reports are dropped once their rack is recorded and judged; the racks in flight hold theirs); at {site} trays about {srss:.0} MB;\n\
             - controller CPU: {kc:.1} ms per node (SSH, checksum check, recording, rack checks), about {cpu:.0} s of CPU for {site} trays, \
             {cpum:.1} minutes on one core;\n\
             - wall time: in the lab the nodes and the controller share this machine's cores, so the lab's {kw:.0} ms per node is mostly the nodes' own work \
             ({pw:.0} ms per node with pdsh, which does nothing else) and does not carry over; on a site each tray runs its node command on its own CPUs, and \
             the controller's {kc:.1} ms of CPU per node bounds it to about {thr:.0} nodes a second per core.\n",
            nodes = self.nodes,
            racks = self.racks,
            t = RACK_TRAYS,
            p = self.parallel,
            r = self.rounds,
            up = self.lab_up_s,
            kwall = self.kiln.wall_s,
            krss = self.kiln.rss_mb,
            ka = self.kiln_nodes_answered,
            pwall = self.pdsh.wall_s,
            prss = self.pdsh.rss_mb,
            pa = self.pdsh_nodes_answered,
            hn = self.half_nodes,
            hwall = self.half.wall_s,
            hw = self.half.wall_s / self.half_nodes.max(1) as f64 * 1000.0,
            hc = self.half.cpu_s / self.half_nodes.max(1) as f64 * 1000.0,
            hrss = self.half.rss_mb,
            owall = self.one_rack.wall_s,
            ow = self.one_rack.wall_s / RACK_TRAYS as f64 * 1000.0,
            oc = self.one_rack.cpu_s / RACK_TRAYS as f64 * 1000.0,
            orss = self.one_rack.rss_mb,
            code = self.exit_code,
            f = self.rack_failures,
            peak = self.peak_sessions,
            site = SITE_TRAYS,
            rpn = rss_per_node,
            srss = site_rss,
            cpum = cpu / 60.0,
            thr = if kc > 0.0 { 1000.0 / kc } else { f64::NAN },
        )
    }
}

fn median(mut v: Vec<Measured>) -> Measured {
    v.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Runs `c` under GNU time: what it cost and its stdout.
fn measured(c: &Command, out_file: &Path) -> anyhow::Result<(Measured, Vec<u8>)> {
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-f").arg("%M %U %S").arg("-o").arg(out_file).arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            timed.env(k, v);
        }
    }
    timed.stdin(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let out = timed.output().with_context(|| format!("run {c:?}"))?;
    let wall_s = t.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(out_file).context("read GNU time's output")?;
    let fields: Vec<f64> =
        text.lines().last().unwrap_or("").split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let [kib, user, sys] = fields[..] else { bail!("GNU time wrote {text:?}") };
    Ok((Measured { wall_s, rss_mb: kib / 1024.0, cpu_s: user + sys }, out.stdout))
}

/// Brings up a lab of `nodes` nodes (no BMCs) as racks of 18 trays of one healthy NVL72 rack
/// each, measures both tools `rounds` times, takes the lab down.
pub fn run(repo: &Path, kiln: &Path, nodes: usize, parallel: usize, rounds: usize) -> anyhow::Result<SiteBench> {
    for (tool, package) in [("/usr/bin/pdsh", "pdsh"), ("/usr/bin/time", "time")] {
        if !Path::new(tool).exists() {
            crate::lab::install_packages(&[package])?;
        }
    }
    let mut cfg = LabConfig::standard(repo, nodes);
    cfg.dir = repo.join("target/lab-bench-site");
    cfg.manifest = cfg.dir.join("lab.toml");
    cfg.prefix = "kz".into();
    cfg.subnet = 8;
    cfg.bmc = false;
    // Each rack is trays 1 to 18 of one healthy rack, as kiln's fixture builder writes them;
    // the racks share the 18 trees (their serials repeat across racks, which no rack check
    // compares).
    let fixtures = cfg.dir.join("fixtures");
    let names: Vec<String> = (1..=RACK_TRAYS).map(|i| format!("gb200-nvl72-tray-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    crate::fixtures::write(repo, &fixtures, &refs)?;
    cfg.fixtures = (0..nodes).map(|i| fixtures.join(&names[i % RACK_TRAYS])).collect();
    std::fs::create_dir_all(&cfg.dir).context("create the lab directory")?;
    // One copy of kiln for the controller and, hard-linked, every node.
    let binary = cfg.dir.join("kiln");
    let _ = std::fs::remove_file(&binary);
    std::fs::copy(kiln, &binary).with_context(|| format!("copy {}", kiln.display()))?;
    let t = Instant::now();
    let lab = lab::up(&cfg)?;
    let lab_up_s = t.elapsed().as_secs_f64();
    let result = lab::preinstall(&lab.state, &binary)
        .and_then(|()| lab::write_site(&lab.state, RACK_TRAYS, true, &cfg.dir.join("site")))
        .and_then(|site| measure(&lab, &binary, &site, parallel, rounds));
    lab::down(&cfg.dir)?;
    // The lab's copy of kiln, its fixtures and the nodes' directories: nothing to keep.
    if let Err(e) = std::fs::remove_dir_all(&cfg.dir) {
        eprintln!("could not remove the lab directory {}: {e}", cfg.dir.display());
    }
    let mut bench = result?;
    bench.lab_up_s = lab_up_s;
    Ok(bench)
}

fn measure(lab: &lab::Lab, kiln: &Path, site: &Path, parallel: usize, rounds: usize) -> anyhow::Result<SiteBench> {
    let dir = &lab.state.dir;
    let db = dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let time_file = dir.join("time.txt");
    let nodes = lab.state.nodes.len();
    let racks = nodes.div_ceil(RACK_TRAYS);
    let validate = |what: &[&std::ffi::OsStr]| {
        let mut c = Command::new(kiln);
        c.args(["rack", "validate", "--force", "--json", "--parallel"]).arg(parallel.to_string());
        c.args(["--per-rack"]).arg(RACK_TRAYS.to_string());
        c.args(what).arg("--db").arg(&db);
        c
    };
    let whole = validate(&["--site".as_ref(), site.as_os_str()]);
    let first_rack = site.with_file_name("r01.toml");
    // The first half of the racks, as a site of its own.
    let half_racks = racks.div_ceil(2);
    let half_nodes = (half_racks * RACK_TRAYS).min(nodes);
    let half_site = site.with_file_name("half.toml");
    let listed: String = (1..=half_racks).map(|r| format!("\n[[racks]]\nmanifest = \"r{r:02}.toml\"\n")).collect();
    std::fs::write(&half_site, format!("[site]\nid = \"lab-half\"\n{listed}")).context("write the half site")?;
    let half = validate(&["--site".as_ref(), half_site.as_os_str()]);
    let one = validate(&["--rack".as_ref(), first_rack.as_os_str()]);
    let pdsh = lab.pdsh(parallel, &["validate", "--json", "--root", "/srv/kiln/fixture"]);

    // A first run warms the page cache and the nodes' kiln; it is not what is compared.
    measured(&whole, &time_file)?;
    let (mut k, mut p) = (Vec::new(), Vec::new());
    let (mut answered, mut failures, mut code, mut peak, mut pdsh_answered) = (0, 0, -1, 0, 0);
    for _ in 0..rounds {
        let (m, out) = measured(&whole, &time_file)?;
        k.push(m);
        let v: serde_json::Value = serde_json::from_slice(&out).context("parse kiln rack validate --site --json")?;
        let all: Vec<&serde_json::Value> = v["racks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["nodes"].as_array().into_iter().flatten())
            .collect();
        answered = all.iter().filter(|n| n.get("remote_exit").is_some()).count();
        failures = v["racks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["rack_findings"].as_array().into_iter().flatten())
            .filter(|f| f["outcome"] == "fail")
            .count();
        code = v["exit_code"].as_i64().unwrap_or(-1) as i32;
        peak = v["peak_sessions"].as_u64().unwrap_or(0) as usize;
        let (m, out) = measured(&pdsh, &time_file)?;
        p.push(m);
        let text = String::from_utf8_lossy(&out);
        let hosts: BTreeSet<&str> =
            text.lines().filter(|l| l.contains("\"schema_version\"")).filter_map(|l| l.split(':').next()).collect();
        pdsh_answered = hosts.len();
    }
    let half = measured(&half, &time_file)?.0;
    let one_rack = measured(&one, &time_file)?.0;
    if answered == 0 {
        bail!("kiln reached no node; is the lab up?");
    }
    Ok(SiteBench {
        nodes,
        racks,
        parallel,
        rounds,
        kiln: median(k),
        pdsh: median(p),
        one_rack,
        half,
        half_nodes,
        kiln_nodes_answered: answered,
        pdsh_nodes_answered: pdsh_answered,
        rack_failures: failures,
        exit_code: code,
        peak_sessions: peak,
        lab_up_s: 0.0,
    })
}
