//! `state.json`: what a running lab is made of (namespaces, links, pids), so `down` removes all of it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::sshd::SshdLaunch;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub prefix: String,
    pub bridge: String,
    pub host_address: String,
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub nodes: Vec<LabNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabNode {
    pub name: String,
    pub netns: String,
    pub veth: String,
    pub address: String,
    pub mac: String,
    /// The snapshot tree's name (`hgx-b200`, `generated`).
    pub fixture: String,
    pub sshd_pid: u32,
    pub sshd: SshdLaunch,
    pub bmc_pid: Option<u32>,
    /// `https://10.77.0.1:8101`
    pub bmc_url: Option<String>,
}

impl LabState {
    pub fn load(dir: &Path) -> anyhow::Result<Option<LabState>> {
        let path = dir.join("state.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    pub fn save(&self) -> anyhow::Result<()> {
        let path = self.dir.join("state.json");
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("write {}", path.display()))
    }

    pub fn node(&self, name: &str) -> anyhow::Result<&LabNode> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| format!("the lab has no node {name}"))
    }
}
