//! Firmware check benchmark: `kiln rack firmware check` against DMTF's
//! `rf_firmware_inventory.py` (PyPI `redfish-utilities`) on the same BMCs, the script one BMC
//! after the other (what a loop over a rack does) and all at once, in one run: over the lab's
//! emulated BMCs (sushy-tools, one per node, HTTPS), and over copies of the recorded GH200 BMC
//! tree, which has the firmware inventory and session service the emulator lacks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::lab::{self, LabConfig};

/// Medians of one benchmark run, in seconds.
#[derive(Debug, Clone)]
pub struct FirmwareBench {
    /// What the BMCs were: `8 emulated BMCs (lab)`.
    pub bmcs: String,
    pub nodes: usize,
    pub rounds: usize,
    pub recipe: String,
    pub kiln_s: f64,
    pub rf_sequential_s: f64,
    pub rf_parallel_s: f64,
    /// BMCs each tool got an answer from (last round): kiln read them, the script exited 0.
    pub kiln_answered: usize,
    pub rf_answered: usize,
}

impl FirmwareBench {
    pub fn markdown(&self) -> String {
        let ratio = |x: f64| self.kiln_s / x;
        format!(
            "{bmcs}:\n\n\
             | tool | time (median of {r}) | BMCs answered | ratio kiln/tool |\n|---|---|---|---|\n\
             | `kiln rack firmware check --recipe {recipe} --parallel {n}` (judged and recorded) | {k:.2} s | {ka} / {n} | 1.00 |\n\
             | `rf_firmware_inventory.py`, one BMC after the other | {s:.2} s | {ra} / {n} | {rs:.2} |\n\
             | `rf_firmware_inventory.py`, all {n} at once | {p:.2} s | {ra} / {n} | {rp:.2} |\n",
            bmcs = self.bmcs,
            recipe = self.recipe,
            r = self.rounds,
            n = self.nodes,
            k = self.kiln_s,
            s = self.rf_sequential_s,
            p = self.rf_parallel_s,
            ka = self.kiln_answered,
            ra = self.rf_answered,
            rs = ratio(self.rf_sequential_s),
            rp = ratio(self.rf_parallel_s),
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `rf_firmware_inventory.py` in `venv`, installed there when missing.
fn rf_firmware_inventory(venv: &Path) -> anyhow::Result<PathBuf> {
    let script = venv.join("bin/rf_firmware_inventory.py");
    if !script.exists() {
        let pip = venv.join("bin/pip");
        let st = Command::new(&pip)
            .args(["install", "--quiet", "--disable-pip-version-check", crate::lab::REDFISH_UTILITIES])
            .status()
            .with_context(|| format!("run {}", pip.display()))?;
        if !st.success() || !script.exists() {
            bail!("pip install {} did not give {}", crate::lab::REDFISH_UTILITIES, script.display());
        }
    }
    Ok(script)
}

/// Brings up a lab of `nodes` nodes with BMCs (its own names and subnet), times both tools
/// `rounds` times, takes the lab down, returns the medians.
pub fn run_lab(repo: &Path, kiln: &Path, nodes: usize, rounds: usize) -> anyhow::Result<FirmwareBench> {
    let mut cfg = LabConfig::standard(repo, nodes);
    cfg.dir = repo.join("target/lab-bench-fw");
    cfg.manifest = cfg.dir.join("rack.toml");
    cfg.prefix = "kw".into();
    cfg.subnet = 4;
    cfg.bmc_port_base = 8400;
    cfg.bmc = true;
    // The lab puts sushy-tools into its venv; the DMTF script goes beside it.
    let lab = lab::up(&cfg)?;
    let result = rf_firmware_inventory(&cfg.venv).and_then(|script| {
        let password_file = lab.state.dir.join("bmc-password");
        let password = std::fs::read_to_string(&password_file)
            .with_context(|| format!("read {}", password_file.display()))?
            .trim()
            .to_string();
        let urls: Vec<String> = lab.state.nodes.iter().filter_map(|n| n.bmc_url.clone()).collect();
        let target = Targets {
            bmcs: format!(
                "{nodes} emulated BMCs of the lab (sushy-tools 2.2, HTTPS; kiln verifies the lab CA, the script does not \
                 verify): they have no FirmwareInventory and no SessionService, so the script stops at its session login \
                 and kiln finds no inventory to judge"
            ),
            manifest: lab.manifest().to_path_buf(),
            db: lab.state.dir.join("kiln.db"),
            urls,
            password,
            recipe: "hgx-b200",
            python: cfg.venv.join("bin/python3"),
            script,
        };
        measure(kiln, &target, rounds)
    });
    lab::down(&cfg.dir)?;
    result
}

/// The recorded GH200 tree on `nodes` ports of 127.0.0.1 (`bench_firmware_tree`), both tools
/// `rounds` times. Needs no root.
pub fn run_recorded(repo: &Path, kiln: &Path, nodes: usize, rounds: usize) -> anyhow::Result<FirmwareBench> {
    let venv = repo.join("target/venv");
    if !venv.join("bin/pip").exists() {
        bail!("no venv at {} (cargo xtask test installs it)", venv.display());
    }
    let script = rf_firmware_inventory(&venv)?;
    let tree = repo.join("tests/fixtures/redfish/gh200");
    let servers =
        (0..nodes).map(|_| crate::bench_firmware_tree::TreeServer::start(&tree)).collect::<anyhow::Result<Vec<_>>>()?;
    let dir = repo.join("target/bench-firmware");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut manifest = String::from(
        "[rack]\nid = \"bench-fw\"\n\n[credentials]\nbmc_user = \"admin\"\nbmc_password_env = \"KILN_BENCH_BMC_PW\"\n",
    );
    for (i, s) in servers.iter().enumerate() {
        manifest
            .push_str(&format!("\n[[nodes]]\nname = \"gh-{i:02}\"\naddress = \"127.0.0.1\"\nbmc = \"{}\"\n", s.url()));
    }
    let manifest_path = dir.join("rack.toml");
    std::fs::write(&manifest_path, manifest).context("write the bench manifest")?;
    let db = dir.join("kiln.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let target = Targets {
        bmcs: format!(
            "{nodes} copies of the recorded GH200 BMC tree (19 firmware inventory members) over plain HTTP on 127.0.0.1"
        ),
        manifest: manifest_path,
        db,
        urls: servers.iter().map(|s| s.url()).collect(),
        password: "bench-pw".into(),
        recipe: "gh200-recorded",
        python: venv.join("bin/python3"),
        script,
    };
    measure(kiln, &target, rounds)
}

/// What both tools are pointed at.
struct Targets {
    bmcs: String,
    manifest: PathBuf,
    db: PathBuf,
    urls: Vec<String>,
    password: String,
    recipe: &'static str,
    python: PathBuf,
    script: PathBuf,
}

fn measure(kiln: &Path, t: &Targets, rounds: usize) -> anyhow::Result<FirmwareBench> {
    let nodes = t.urls.len();
    let kiln_run = || -> anyhow::Result<(f64, usize)> {
        let start = Instant::now();
        let out = Command::new(kiln)
            .args(["rack", "firmware", "check", "--recipe", t.recipe, "--json", "--parallel"])
            .arg(nodes.to_string())
            .arg("--rack")
            .arg(&t.manifest)
            .arg("--db")
            .arg(&t.db)
            .env("KILN_BENCH_BMC_PW", &t.password)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .context("run kiln rack firmware check")?;
        let took = start.elapsed().as_secs_f64();
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parse kiln rack firmware check --json")?;
        let answered = v["nodes"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|n| !["unreachable", "not-checked"].contains(&n["status"].as_str().unwrap_or("")))
                    .count()
            })
            .unwrap_or(0);
        Ok((took, answered))
    };
    let rf = |url: &str| -> Command {
        let mut c = Command::new(&t.python);
        c.arg(&t.script).args(["-u", lab::BMC_USER, "-p", &t.password, "-r", url]);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    let (mut k, mut seq, mut par) = (Vec::new(), Vec::new(), Vec::new());
    let (mut kiln_answered, mut rf_answered) = (0, 0);
    for _ in 0..rounds {
        let (took, answered) = kiln_run()?;
        k.push(took);
        kiln_answered = answered;

        let start = Instant::now();
        let mut ok = 0;
        for url in &t.urls {
            if rf(url).status().context("run rf_firmware_inventory.py")?.success() {
                ok += 1;
            }
        }
        seq.push(start.elapsed().as_secs_f64());
        rf_answered = ok;

        let start = Instant::now();
        let children: Vec<Child> =
            t.urls.iter().map(|u| rf(u).spawn().context("start rf_firmware_inventory.py")).collect::<Result<_, _>>()?;
        for mut c in children {
            c.wait().context("wait for rf_firmware_inventory.py")?;
        }
        par.push(start.elapsed().as_secs_f64());
    }
    if kiln_answered == 0 && rf_answered == 0 {
        bail!("neither tool got an answer from a BMC");
    }
    Ok(FirmwareBench {
        bmcs: t.bmcs.clone(),
        nodes,
        rounds,
        recipe: t.recipe.to_string(),
        kiln_s: median(k),
        rf_sequential_s: median(seq),
        rf_parallel_s: median(par),
        kiln_answered,
        rf_answered,
    })
}
