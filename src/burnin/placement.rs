//! Where a burn-in worker runs: its GPU's NUMA node and that node's CPUs, from the inspected
//! model, and pinning the worker thread to them.
//!
//! A worker runs on its GPU's NUMA node so that its pinned host buffers are
//! local and host-link figures measure the link, not the socket interconnect.
//! The placement comes from the same `Node` the burn-in judged (`numa_node`
//! of the GPU's PCI function, the node's `cpulist`); nothing here reads sysfs.

use crate::hw::parse;
use crate::model::{Node, PciAddress};

/// A GPU's NUMA node and the CPUs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: u32,
    pub cpus: Vec<usize>,
}

/// The placement of the GPU at `pci_address`: `Ok(None)` when the platform
/// gives no NUMA node (`-1`, a VM) or the node has no CPUs (GPU memory
/// exposed as a memory-only node); `Err` says what the model lacks.
pub fn placement(node: &Node, pci_address: &PciAddress) -> Result<Option<Placement>, String> {
    let Some(device) = node.pci_device(pci_address) else {
        return Err(format!("{pci_address} is not among the inspected PCI functions"));
    };
    let Some(id) = device.numa_node else { return Ok(None) };
    let Some(numa) = node.cpus.numa_nodes.iter().find(|n| n.id == id) else {
        return Err(format!("NUMA node {id} of {pci_address} was not inspected (no cpulist)"));
    };
    let cpus = parse::cpulist(&numa.cpulist)
        .map_err(|e| format!("NUMA node {id} cpulist {:?}: {e}", numa.cpulist))?
        .into_iter()
        .map(|c| c as usize)
        .collect::<Vec<_>>();
    if cpus.is_empty() {
        return Ok(None);
    }
    Ok(Some(Placement { node: id, cpus }))
}

/// Pins the calling thread to `cpus`. Memory the thread first touches after
/// this lands on the local node under the default first-touch policy.
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), String> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let label = || cpus.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",");
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(|e| format!("CPU {c} cannot be pinned to: {e}"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("sched_setaffinity to CPUs {}: {e}", label()))
}

/// Pins the calling thread to the GPU's NUMA node; the note to keep on the
/// result when it could not be.
pub fn pin(node: &Node, pci_address: &PciAddress) -> Option<String> {
    match placement(node, pci_address) {
        Ok(Some(p)) => match pin_current_thread(&p.cpus) {
            Ok(()) => None,
            Err(e) => Some(format!("not pinned to NUMA node {}: {e}", p.node)),
        },
        Ok(None) => Some("NUMA node unknown (numa_node is -1) or without CPUs: thread not pinned".into()),
        Err(e) => Some(format!("thread not pinned: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::fixture::sample;

    /// The healthy GB200 tray, as the fixture builder describes it.
    fn gb200() -> Node {
        sample::gb200_tray_node()
    }

    fn at(text: &str) -> PciAddress {
        text.parse().expect("test address")
    }

    #[test]
    fn placement_comes_from_the_models_numa_data() {
        let node = gb200();
        let p = placement(&node, &at("0018:01:00.0")).expect("known").expect("placed");
        assert_eq!(p.node, 1);
        let cpulist = &node.cpus.numa_nodes.iter().find(|n| n.id == 1).expect("node 1").cpulist;
        let expected: Vec<usize> = parse::cpulist(cpulist).expect("parses").into_iter().map(|c| c as usize).collect();
        assert_eq!(p.cpus, expected);
        assert!(!p.cpus.is_empty());
        assert_eq!(placement(&node, &at("0008:01:00.0")).expect("known").expect("placed").node, 0);
    }

    #[test]
    fn unknown_node_is_none_and_missing_data_is_said() {
        let mut node = gb200();
        let e = placement(&node, &at("0077:01:00.0")).expect_err("no such function");
        assert!(e.contains("0077:01:00.0"), "{e}");
        let gpu = node.pci.iter_mut().find(|d| d.address == "0019:01:00.0").expect("gpu 3");
        gpu.numa_node = None;
        assert_eq!(placement(&node, &at("0019:01:00.0")), Ok(None));
        node.cpus.numa_nodes.retain(|n| n.id != 0);
        let e = placement(&node, &at("0008:01:00.0")).expect_err("node 0 gone");
        assert!(e.contains("NUMA node 0"), "{e}");
    }

    #[test]
    fn pinning_to_an_allowed_cpu_works() {
        let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).expect("affinity");
        let first = (0..1024).find(|&c| cpu.is_set(c).unwrap_or(false)).expect("some cpu");
        std::thread::spawn(move || pin_current_thread(&[first]).expect("pin")).join().expect("thread");
    }
}
