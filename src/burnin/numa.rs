//! NUMA placement: which CPUs sit next to a GPU (from sysfs), and pinning a thread to them.
//!
//! A burn-in worker runs on its GPU's NUMA node so that its pinned host
//! buffers are local and host-link figures measure the link, not the socket
//! interconnect.

use std::path::{Path, PathBuf};

use crate::hw::root::SysTree;

#[derive(Debug, thiserror::Error)]
pub enum NumaError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot parse {value:?} as {what}")]
    Parse { path: PathBuf, value: String, what: &'static str },
    #[error("pinning the thread to CPUs {cpus}")]
    Pin {
        cpus: String,
        #[source]
        source: nix::Error,
    },
}

/// The CPUs of the NUMA node a PCI device is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumaPlacement {
    pub node: u32,
    pub cpus: Vec<usize>,
}

/// Reads `sys/bus/pci/devices/<addr>/numa_node` and that node's cpulist.
/// `Ok(None)` when the kernel does not know the node (`-1`, single-node
/// machines and many VMs): then there is nothing to pin to.
pub fn placement_of(tree: &dyn SysTree, pci_address: &str) -> Result<Option<NumaPlacement>, NumaError> {
    let node_path = PathBuf::from(format!("sys/bus/pci/devices/{pci_address}/numa_node"));
    let raw = read(tree, &node_path)?;
    let node: i64 = raw.trim().parse().map_err(|_| NumaError::Parse {
        path: node_path.clone(),
        value: raw.trim().to_string(),
        what: "a NUMA node",
    })?;
    if node < 0 {
        return Ok(None);
    }
    let node = u32::try_from(node).map_err(|_| NumaError::Parse {
        path: node_path,
        value: raw.trim().to_string(),
        what: "a NUMA node",
    })?;
    let list_path = PathBuf::from(format!("sys/devices/system/node/node{node}/cpulist"));
    let list = read(tree, &list_path)?;
    let cpus = parse_cpulist(&list).ok_or_else(|| NumaError::Parse {
        path: list_path.clone(),
        value: list.trim().to_string(),
        what: "a CPU list",
    })?;
    if cpus.is_empty() {
        // A memory-only node (GPU memory exposed as NUMA on GB200 with older
        // drivers) has no CPUs: nothing to pin to.
        return Ok(None);
    }
    Ok(Some(NumaPlacement { node, cpus }))
}

fn read(tree: &dyn SysTree, path: &Path) -> Result<String, NumaError> {
    tree.read(path).map_err(|source| NumaError::Read { path: path.to_path_buf(), source })
}

/// Parses a kernel CPU list: `0-3,8-11,16`. An empty list is valid (no CPUs).
pub fn parse_cpulist(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// Pins the calling thread to `cpus`. Memory the thread first touches after
/// this lands on the local node under the default first-touch policy.
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), NumaError> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let label = cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(|source| NumaError::Pin { cpus: label.clone(), source })?;
    }
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|source| NumaError::Pin { cpus: label, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::root::FsTree;

    #[test]
    fn cpulists_parse_ranges_and_reject_garbage() {
        assert_eq!(parse_cpulist("0-3,8-9,16\n"), Some(vec![0, 1, 2, 3, 8, 9, 16]));
        assert_eq!(parse_cpulist(""), Some(vec![]));
        assert_eq!(parse_cpulist("3-1"), None);
        assert_eq!(parse_cpulist("a-b"), None);
        assert_eq!(parse_cpulist("1,,2"), Some(vec![1, 2]));
    }

    fn tree_with(numa_node: &str, cpulist: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let dev = dir.path().join("sys/bus/pci/devices/0000:1b:00.0");
        std::fs::create_dir_all(&dev).expect("mkdir");
        std::fs::write(dev.join("numa_node"), numa_node).expect("write");
        if let Some(list) = cpulist {
            let node = dir.path().join(format!("sys/devices/system/node/node{}", numa_node.trim()));
            std::fs::create_dir_all(&node).expect("mkdir");
            std::fs::write(node.join("cpulist"), list).expect("write");
        }
        dir
    }

    #[test]
    fn placement_reads_the_gpus_node_and_its_cpus() {
        let dir = tree_with("1\n", Some("56-111,168-223\n"));
        let p = placement_of(&FsTree::at(dir.path()), "0000:1b:00.0").expect("read").expect("placed");
        assert_eq!(p.node, 1);
        assert_eq!(p.cpus.len(), 112);
        assert_eq!(p.cpus[0], 56);
    }

    #[test]
    fn unknown_node_is_none_and_garbage_is_an_error_naming_the_file() {
        let dir = tree_with("-1\n", None);
        assert_eq!(placement_of(&FsTree::at(dir.path()), "0000:1b:00.0").expect("read"), None);
        let dir = tree_with("zero\n", None);
        let e = placement_of(&FsTree::at(dir.path()), "0000:1b:00.0").expect_err("garbage");
        assert!(e.to_string().contains("numa_node"), "{e}");
        let dir = tree_with("0\n", None);
        let e = placement_of(&FsTree::at(dir.path()), "0000:1b:00.0").expect_err("no cpulist");
        assert!(e.to_string().contains("node0/cpulist"), "{e}");
    }

    #[test]
    fn pinning_to_an_allowed_cpu_works() {
        let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("affinity");
        let first = (0..1024).find(|&c| cpu.is_set(c).unwrap_or(false)).expect("some cpu");
        std::thread::spawn(move || pin_current_thread(&[first]).expect("pin")).join().expect("thread");
    }
}
