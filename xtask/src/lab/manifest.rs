//! Writes the lab's rack manifest and its known_hosts file.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use super::bmc::BMC_USER;
use super::sshd::{known_hosts_line, NODE_ROOT};
use super::state::LabState;

/// `to` relative to the directory `from` (both absolute).
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to_c: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// known_hosts with every node's key when `pretrust` (the lab made the
/// keys, so it can vouch for them); else an empty file for `kiln rack trust`.
pub fn write_known_hosts(state: &LabState, pretrust: bool) -> anyhow::Result<PathBuf> {
    let path = state.dir.join("known_hosts");
    let mut text = String::new();
    if pretrust {
        for n in &state.nodes {
            text.push_str(&known_hosts_line(&state.dir.join("nodes").join(&n.name), &n.address, &n.name)?);
            text.push('\n');
        }
    }
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

pub fn write_manifest(state: &LabState, rack_id: &str, platform: Option<&str>, bmc: bool) -> anyhow::Result<()> {
    let dir = state.manifest.parent().context("the manifest path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("resolve {}", dir.display()))?;
    let lab = state.dir.canonicalize().with_context(|| format!("resolve {}", state.dir.display()))?;
    let rel = |name: &str| relative(&dir, &lab.join(name)).display().to_string();
    let mut t = String::new();
    t.push_str("# The lab rack, written by `cargo xtask lab up` (rewritten on each up; see docs/lab.md).\n");
    t.push_str(&format!("[rack]\nid = \"{rack_id}\"\nsite = \"lab\"\nrow = \"A\"\nposition = 1\n"));
    if let Some(p) = platform {
        t.push_str(&format!("platform = \"{p}\"\n"));
    }
    t.push_str("\n[credentials]\nssh_user = \"root\"\n");
    t.push_str(&format!("ssh_key = \"{}\"\nknown_hosts = \"{}\"\n", rel("client_key"), rel("known_hosts")));
    if bmc {
        t.push_str(&format!(
            "bmc_user = \"{BMC_USER}\"\nbmc_password_file = \"{}\"\nbmc_ca_file = \"{}\"\n",
            rel("bmc-password"),
            rel("bmc-ca.pem")
        ));
    }
    for (i, n) in state.nodes.iter().enumerate() {
        t.push_str(&format!(
            "\n[[nodes]]\n# fixture: {}\nname = \"{}\"\naddress = \"{}\"\nssh_port = 22\n",
            n.fixture, n.name, n.address
        ));
        if let Some(url) = &n.bmc_url {
            t.push_str(&format!("bmc = \"{url}\"\nbmc_system = \"/redfish/v1/Systems/{}\"\n", node_uuid(i)));
        }
        t.push_str(&format!("macs = [\"{}\"]\nslot = \"U{:02}\"\nkiln_root = \"{NODE_ROOT}\"\n", n.mac, 2 * i + 1));
    }
    std::fs::write(&state.manifest, t).with_context(|| format!("write {}", state.manifest.display()))
}

/// The Redfish system id of node `i` (the fake driver's uuid).
pub fn node_uuid(i: usize) -> String {
    format!("6b696c6e-6c61-4200-8000-{:012x}", i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/r/inventory/racks"), Path::new("/r/target/lab/k")),
            PathBuf::from("../../target/lab/k")
        );
        assert_eq!(relative(Path::new("/r/target/lab"), Path::new("/r/target/lab/k")), PathBuf::from("k"));
    }
}
