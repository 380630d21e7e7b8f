//! Which snapshot tree each lab node runs kiln against: a tree recorded from a real machine
//! (`tests/fixtures/NAME`), one of kiln's hand-built trees (written into `target/fixtures` by
//! kiln's builder at each `up`), a path, or a tiny generated one when kiln cannot be run.

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

/// A bare name is a recorded tree when `tests/fixtures/NAME` is one, else a hand-built tree in
/// `target/fixtures` (`built`); anything else is a path.
fn resolve(repo: &Path, built: &Path, entry: &Path) -> anyhow::Result<Assigned> {
    let bare = entry.components().count() == 1 && !entry.exists();
    let recorded = repo.join("tests/fixtures").join(entry);
    let path = match bare {
        true if recorded.is_dir() => recorded,
        true => built.join(entry),
        false => entry.to_path_buf(),
    };
    if !path.is_dir() {
        bail!("fixture {} is not a directory", path.display());
    }
    let path = path.canonicalize().with_context(|| format!("resolve {}", path.display()))?;
    let label = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Assigned { path, label })
}

/// Whether kiln's builder makes machine N of the tree `entry` names (`NAME@N`): the HGX trees
/// and their fault variants, not a GB200 tray, which carries its rack position in its name.
fn numbered(entry: &Path) -> bool {
    !entry.to_string_lossy().starts_with("gb200-nvl72-tray") && !entry.to_string_lossy().contains('@')
}

/// The bare names among `entries` that are no recorded tree: those kiln's builder writes.
fn hand_built<'a>(repo: &Path, entries: impl Iterator<Item = &'a Path>) -> Vec<String> {
    let mut names: Vec<String> = entries
        .filter(|e| e.components().count() == 1 && !e.exists() && !repo.join("tests/fixtures").join(e).is_dir())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Trees for every node: the configured list (last entry repeating), else `hgx-b200` with the
/// faulty variants on node03 and node05, each node machine N of its kind (`hgx-b200@N`: serials
/// of its own), written fresh by kiln's builder; when kiln cannot be
/// built and run here, a generated tree per node.
pub fn assign(cfg: &LabConfig) -> anyhow::Result<Vec<Assigned>> {
    let built = cfg.repo.join(crate::fixtures::DEFAULT_DIR);
    let mut out = Vec::with_capacity(cfg.nodes);
    if !cfg.fixtures.is_empty() {
        let names = hand_built(&cfg.repo, cfg.fixtures.iter().map(PathBuf::as_path));
        // A hand-built tree named for several nodes is written once per node as machine N of
        // its kind (`NAME@N`): a rack of one machine's copies would fail its serial checks.
        let entries: Vec<PathBuf> = (0..cfg.nodes)
            .map(|i| {
                let entry = &cfg.fixtures[i.min(cfg.fixtures.len() - 1)];
                match names.iter().any(|n| Path::new(n) == entry) && numbered(entry) {
                    true => PathBuf::from(format!("{}@{}", entry.display(), i + 1)),
                    false => entry.clone(),
                }
            })
            .collect();
        let written = hand_built(&cfg.repo, entries.iter().map(PathBuf::as_path));
        if !written.is_empty() {
            let written: Vec<&str> = written.iter().map(String::as_str).collect();
            crate::fixtures::write(&cfg.repo, &built, &written)?;
        }
        for entry in &entries {
            out.push(resolve(&cfg.repo, &built, entry)?);
        }
        return Ok(out);
    }
    let names: Vec<String> = (0..cfg.nodes)
        .map(|i| {
            let name = FAULTY.iter().find(|(at, _)| *at == i).map(|(_, name)| *name).unwrap_or(HEALTHY);
            format!("{name}@{}", i + 1)
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    match crate::fixtures::write(&cfg.repo, &built, &refs) {
        Ok(()) => {
            for name in &names {
                out.push(resolve(&cfg.repo, &built, Path::new(name))?);
            }
            return Ok(out);
        }
        Err(e) => eprintln!("lab: no hand-built fixture trees ({e:#}); the nodes get generated minimal trees"),
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
