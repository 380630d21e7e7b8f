//! `inspect`: reads a whole node through one `SysTree` and one `GpuSource`.

use tracing::debug;

use super::block::read_block_devices;
use super::cpu::read_cpus;
use super::gpu::GpuSource;
use super::host::{read_architecture, read_dmi, read_hostname, read_kernel, read_memory};
use super::net::read_net_ports;
use super::pci::read_pci_devices;
use super::probe::Probe;
use super::root::SysTree;
use crate::model::{Node, NODE_SCHEMA_VERSION};

/// Inspects a node. Never fails as a whole: what could not be read is in
/// `Node::problems` (and the GPUs' own problems), and everything else is
/// still filled in. Lists come out sorted, so the same tree always gives the
/// same `Node`.
pub fn inspect(tree: &dyn SysTree, gpus: &dyn GpuSource) -> Node {
    let mut probe = Probe::new(tree);
    let hostname = read_hostname(&mut probe);
    let kernel = read_kernel(&mut probe);
    let dmi = read_dmi(&mut probe);
    let architecture = read_architecture(&mut probe);
    let cpus = read_cpus(&mut probe, architecture);
    let memory = read_memory(&mut probe);
    let disks = read_block_devices(&mut probe);
    let net = read_net_ports(&mut probe);
    let pci = read_pci_devices(&mut probe);
    let gpus = gpus.inspect();
    let imex = Some(super::imex::read_imex(tree));
    let mut problems = probe.into_problems();
    problems.sort_by(|a, b| (&a.component, &a.path, &a.message).cmp(&(&b.component, &b.path, &b.message)));
    debug!(root = %tree.root().display(), pci = pci.len(), problems = problems.len(), "inspected node");
    Node {
        schema_version: NODE_SCHEMA_VERSION,
        hostname,
        kernel,
        dmi,
        cpus,
        memory,
        disks,
        net,
        pci,
        gpus,
        problems,
        imex,
    }
}
