//! What a lab is made of: how many nodes, their names and addresses, where its files go.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Everything `up` needs to know. Names and addresses derive from `prefix`
/// and `subnet`, so two labs (a developer's and a test's) can run side by side.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Lab files: keys, configs, logs, state (`target/lab`).
    pub dir: PathBuf,
    /// The sushy-tools venv, shared between labs (`target/lab/venv`).
    pub venv: PathBuf,
    /// Where the rack manifest is written (`inventory/racks/lab.toml`).
    pub manifest: PathBuf,
    pub nodes: usize,
    /// Names: bridge `<prefix>br0`, namespaces `<prefix>-nodeNN`, veths `<prefix>-vNN`.
    pub prefix: String,
    /// Addresses are 10.77.<subnet>.x: the host is .1, node i is .(10+i).
    pub subnet: u8,
    /// BMC i listens on the host address, port `bmc_port_base + i`.
    pub bmc_port_base: u16,
    pub bmc: bool,
    /// Snapshot trees for the nodes, in node order; the last one repeats.
    /// Empty: the default assignment (see `fixtures.rs`).
    pub fixtures: Vec<PathBuf>,
    /// Write the nodes' host keys into known_hosts (the lab made them itself).
    pub pretrust: bool,
    /// The repository, for `tests/fixtures` (recorded trees) and `target/fixtures` (hand-built ones).
    pub repo: PathBuf,
}

impl LabConfig {
    /// The developer's lab: `target/lab`, `inventory/racks/lab.toml`, 10.77.0.0/24.
    pub fn standard(repo: &Path, nodes: usize) -> LabConfig {
        LabConfig {
            dir: repo.join("target/lab"),
            venv: repo.join("target/lab/venv"),
            manifest: repo.join("inventory/racks/lab.toml"),
            nodes,
            prefix: "kiln".into(),
            subnet: 0,
            bmc_port_base: 8100,
            bmc: true,
            fixtures: Vec::new(),
            pretrust: true,
            repo: repo.to_path_buf(),
        }
    }

    pub fn bridge(&self) -> String {
        format!("{}br0", self.prefix)
    }

    pub fn host_address(&self) -> String {
        format!("10.77.{}.1", self.subnet)
    }

    pub fn node_name(i: usize) -> String {
        format!("node{:02}", i + 1)
    }

    pub fn netns(&self, i: usize) -> String {
        format!("{}-{}", self.prefix, Self::node_name(i))
    }

    pub fn veth(&self, i: usize) -> String {
        format!("{}-v{:02}", self.prefix, i + 1)
    }

    pub fn node_address(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, 11 + i)
    }

    pub fn node_mac(&self, i: usize) -> String {
        format!("02:00:00:4c:{:02x}:{:02x}", self.subnet, 11 + i)
    }

    pub fn bmc_port(&self, i: usize) -> u16 {
        self.bmc_port_base + 1 + i as u16
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join("nodes").join(Self::node_name(i))
    }

    pub fn state_file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }
}

/// The repository root: the parent of the xtask crate.
pub fn repo_root() -> anyhow::Result<PathBuf> {
    let xtask = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}
