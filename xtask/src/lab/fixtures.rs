//! Which snapshot tree each lab node runs kiln against, and a tiny generated one when the
//! repository's fixtures are absent.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::config::LabConfig;

/// The healthy platform most nodes get, and the faulty variants placed on
/// a few nodes (by index) so that a rack run has failures to find.
const HEALTHY: &str = "hgx-b200";
const FAULTY: &[(usize, &str)] = &[(2, "hgx-b200-gpu-x8"), (4, "hgx-b200-nvlink-down")];

/// One node's tree and what to call it in the manifest and state.
#[derive(Debug, Clone)]
pub struct Assigned {
    pub path: PathBuf,
    pub label: String,
}

/// A fixture name (`tests/fixtures/NAME`) or a path.
fn resolve(repo: &Path, entry: &Path) -> anyhow::Result<Assigned> {
    let path = if entry.components().count() == 1 && !entry.exists() {
        repo.join("tests/fixtures").join(entry)
    } else {
        entry.to_path_buf()
    };
    if !path.is_dir() {
        bail!("fixture {} is not a directory", path.display());
    }
    let path = path.canonicalize().with_context(|| format!("resolve {}", path.display()))?;
    let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Assigned { path, label })
}

/// Trees for every node: the configured list (last entry repeating), else
/// `hgx-b200` with the faulty variants on node03 and node05 when the
/// repository has them, else a generated tree per node.
pub fn assign(cfg: &LabConfig) -> anyhow::Result<Vec<Assigned>> {
    let mut out = Vec::with_capacity(cfg.nodes);
    if !cfg.fixtures.is_empty() {
        for i in 0..cfg.nodes {
            let entry = &cfg.fixtures[i.min(cfg.fixtures.len() - 1)];
            out.push(resolve(&cfg.repo, entry)?);
        }
        return Ok(out);
    }
    let fixtures = cfg.repo.join("tests/fixtures");
    if fixtures.join(HEALTHY).is_dir() {
        for i in 0..cfg.nodes {
            let name = FAULTY
                .iter()
                .find(|(at, name)| *at == i && fixtures.join(name).is_dir())
                .map(|(_, name)| *name)
                .unwrap_or(HEALTHY);
            out.push(resolve(&cfg.repo, Path::new(name))?);
        }
        return Ok(out);
    }
    for i in 0..cfg.nodes {
        let root = cfg.node_dir(i).join("root");
        generate(&root, i)?;
        out.push(Assigned { path: root, label: "generated".into() });
    }
    Ok(out)
}

/// A minimal node tree: hostname, kernel release, DMI identity, memory. It
/// has no PCI devices and no GPUs, which is what kiln must report for it.
fn generate(root: &Path, i: usize) -> anyhow::Result<()> {
    let name = LabConfig::node_name(i);
    let files = [
        ("proc/sys/kernel/hostname", format!("{name}\n")),
        ("proc/sys/kernel/osrelease", "6.1.0-kiln-lab\n".to_string()),
        ("proc/meminfo", "MemTotal:        2097152 kB\n".to_string()),
        ("sys/class/dmi/id/sys_vendor", "kiln lab\n".to_string()),
        ("sys/class/dmi/id/product_name", "kiln-lab-node\n".to_string()),
        ("sys/class/dmi/id/product_serial", format!("LAB{:04}\n", i + 1)),
        ("sys/class/dmi/id/bios_version", "1.0.0\n".to_string()),
    ];
    for (rel, text) in files {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    std::fs::create_dir_all(root.join("sys/bus/pci/devices")).context("create the PCI directory")?;
    Ok(())
}
