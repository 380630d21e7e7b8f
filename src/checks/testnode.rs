//! Nodes for rule tests: the representative HGX B200, HGX H100 and GB200 tray
//! (`hw::fixture::sample`, the fixture builder's trees inspected), a plain VM
//! built here (no fixture tree describes one), and helpers to break a node one
//! fault at a time.

use std::collections::BTreeMap;

use crate::hw::fixture::sample;
use crate::model::*;

fn aer_clean() -> AerCounters {
    let zero = |names: &[&str]| names.iter().map(|n| (n.to_string(), 0)).collect::<BTreeMap<_, _>>();
    AerCounters {
        correctable: zero(&["RxErr", "BadTLP", "TOTAL_ERR_COR"]),
        nonfatal: zero(&["Undefined", "CmpltTO", "TOTAL_ERR_NONFATAL"]),
        fatal: zero(&["DLP", "SDES", "TOTAL_ERR_FATAL"]),
    }
}

fn link(cur_speed: f64, max_speed: f64, cur_width: u32, max_width: u32) -> LinkState {
    LinkState {
        current_speed_gts: Some(cur_speed),
        max_speed_gts: Some(max_speed),
        current_width: Some(cur_width),
        max_width: Some(max_width),
    }
}

/// A PCI function with the given place in the tree.
pub fn device(address: &str, vendor: u16, dev: u16, class: u32, upstream: &[&str], numa: Option<u32>) -> PciDevice {
    PciDevice {
        address: address.parse().expect("test address"),
        class,
        vendor_id: vendor,
        device_id: dev,
        subsystem_vendor_id: None,
        subsystem_device_id: None,
        vendor_name: None,
        device_name: None,
        class_name: None,
        driver: None,
        numa_node: numa,
        link: Some(link(32.0, 32.0, 16, 16)),
        upstream: upstream.iter().map(|s| s.parse().expect("test address")).collect(),
        aer: Some(aer_clean()),
        slot: None,
    }
}

fn nvlinks(n: u32) -> Vec<NvLink> {
    (0..n)
        .map(|i| NvLink {
            link: i,
            active: true,
            version: Some(5),
            remote_pci_address: None,
            speed_mbps: Some(53125),
            errors: NvLinkErrors { replay: Some(0), recovery: Some(0), crc_flit: Some(0), crc_data: Some(0) },
        })
        .collect()
}

/// A healthy NVML GPU at `address`.
pub fn gpu(index: u32, address: &str, name: &str, links: u32, fabric: bool) -> Gpu {
    Gpu {
        index,
        uuid: Some(format!("GPU-0000000{index}-aaaa-bbbb-cccc-dddddddddddd")),
        name: Some(name.to_string()),
        serial: Some(format!("165232400000{index}")),
        board_part_number: None,
        vbios_version: Some("97.00.0B.00.01".into()),
        pci_address: Some(address.parse().expect("test address")),
        memory_total_bytes: Some(80 << 30),
        pcie: None,
        nvlinks: if links > 0 { Some(nvlinks(links)) } else { None },
        ecc: Some(EccCounters { enabled: true, ..Default::default() }),
        retired_pages: None,
        remapped_rows: Some(RemappedRows::default()),
        fabric: fabric.then(|| FabricInfo {
            state: FabricState::Completed,
            status: 0,
            cluster_uuid: "11111111-2222-3333-4444-555555555555".into(),
            clique_id: 1,
            health_mask: 0x1aa,
        }),
        platform: None,
        c2c: None,
        power_limit_watts: Some(1000.0),
        problems: Vec::new(),
    }
}

fn base(hostname: &str, arch: &str, pci: Vec<PciDevice>, gpus: GpuInventory) -> Node {
    let mut pci = pci;
    pci.sort_by_key(|d| d.address);
    Node {
        schema_version: NODE_SCHEMA_VERSION,
        hostname: hostname.to_string(),
        kernel: Some("6.8.0".into()),
        dmi: Dmi::default(),
        cpus: Cpus {
            architecture: arch.to_string(),
            model: None,
            sockets: 2,
            cores: 112,
            threads: 224,
            numa_nodes: vec![
                NumaNode { id: 0, cpulist: "0-55".into(), memory_kib: None },
                NumaNode { id: 1, cpulist: "56-111".into(), memory_kib: None },
            ],
        },
        memory: Memory { total_kib: 2 << 30, dimms: Vec::new() },
        disks: Vec::new(),
        net: Vec::new(),
        pci,
        gpus,
        problems: Vec::new(),
        imex: None,
    }
}

/// GPU address of slot `i` (0..8) of the HGX nodes.
pub fn hgx_gpu_address(i: usize) -> String {
    sample::gpu_address(i as u8)
}

/// NIC address of slot `i` of the HGX nodes.
pub fn hgx_nic_address(i: usize) -> String {
    sample::nic_address(i as u8)
}

/// Switch downstream port above GPU `i`.
pub fn hgx_gpu_port(i: usize) -> String {
    sample::gpu_port(i as u8)
}

/// The healthy HGX B200 every rule test starts from: the representative node.
pub fn hgx_b200() -> Node {
    sample::representative()
}

/// The healthy HGX H100 8-GPU: 8 H100 SXM5, 4 NVSwitch functions, 18 NVLinks per GPU.
pub fn hgx_h100() -> Node {
    sample::h100_sxm_node()
}

/// The healthy GB200 compute tray: 4 GPUs each alone in its PCI domain.
pub fn gb200_tray() -> Node {
    sample::gb200_tray_node()
}

/// An ordinary cloud VM: a few virtual devices without AER and with odd
/// links, no NVIDIA driver, unreadable DMI serial.
pub fn vm() -> Node {
    let mut host = device("0000:00:00.0", 0x8086, 0x1237, 0x060000, &[], None);
    host.aer = None;
    host.link = None;
    let mut rp = device("0000:00:02.0", 0x1b36, 0x000c, 0x060400, &[], None);
    rp.aer = None;
    // QEMU root ports advertise links no real device trains to.
    rp.link = Some(LinkState {
        current_speed_gts: Some(2.5),
        max_speed_gts: Some(16.0),
        current_width: Some(1),
        max_width: Some(32),
    });
    let mut net = device("0000:01:00.0", 0x1af4, 0x1041, 0x020000, &["0000:00:02.0"], None);
    net.aer = None;
    net.link = Some(LinkState { current_speed_gts: None, max_speed_gts: None, current_width: None, max_width: None });
    let mut blk = device("0000:00:04.0", 0x1af4, 0x1001, 0x010000, &[], None);
    blk.aer = None;
    blk.link = None;
    let mut node = base(
        "vm-1",
        "x86_64",
        vec![host, rp, net, blk],
        GpuInventory::NotInspected { reason: "no NVIDIA driver".into() },
    );
    node.problems.push(ReadProblem::new("sysfs", "sys/class/dmi/id/product_serial", "permission denied"));
    node
}

pub fn pci_mut<'a>(node: &'a mut Node, address: &str) -> &'a mut PciDevice {
    node.pci.iter_mut().find(|d| d.address == address).expect("test node has this address")
}

pub fn gpu_mut(node: &mut Node, index: u32) -> &mut Gpu {
    match &mut node.gpus {
        GpuInventory::Inspected { gpus, .. } => {
            gpus.iter_mut().find(|g| g.index == index).expect("test node has this GPU")
        }
        GpuInventory::NotInspected { .. } => panic!("test node has no NVML inventory"),
    }
}

/// Takes a PCI function off the bus (and out of NVML when it is a GPU).
pub fn remove_pci(node: &mut Node, address: &str) {
    node.pci.retain(|d| d.address != address);
    if let GpuInventory::Inspected { gpus, .. } = &mut node.gpus {
        gpus.retain(|g| g.pci_address.is_none_or(|a| a != address));
    }
}

/// A built-in spec by name.
pub fn spec(name: &str) -> crate::checks::Platform {
    crate::checks::spec_load::load_builtin()
        .expect("built-in specs parse")
        .into_iter()
        .find(|s| s.platform.name == name)
        .expect("built-in spec exists")
        .platform
}

/// The findings of one check.
pub fn of<'a>(findings: &'a [crate::checks::Finding], check: &str) -> Vec<&'a crate::checks::Finding> {
    findings.iter().filter(|f| f.check == check).collect()
}

/// The findings with one outcome.
pub fn with(findings: &[crate::checks::Finding], outcome: crate::checks::Outcome) -> Vec<&crate::checks::Finding> {
    findings.iter().filter(|f| f.outcome == outcome).collect()
}

/// The nodes written to `tests/fixtures/nodes/` for the CLI tests: the VM, which no fixture
/// tree describes (the CLI tests write the HGX nodes from `hw::fixture::sample` themselves).
pub fn fixtures() -> Vec<(&'static str, Node)> {
    vec![("vm", vm())]
}

#[cfg(test)]
mod fixture_tests {
    use std::path::Path;

    /// The JSON fixtures must be what the builders make; run with
    /// `KILN_UPDATE_FIXTURES=1` to rewrite them after changing a builder.
    #[test]
    fn node_fixtures_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nodes");
        let update = std::env::var_os("KILN_UPDATE_FIXTURES").is_some();
        for (name, node) in super::fixtures() {
            let path = dir.join(format!("{name}.json"));
            let json = serde_json::to_string_pretty(&node).expect("serializes") + "\n";
            if update {
                std::fs::create_dir_all(&dir).expect("mkdir");
                std::fs::write(&path, &json).expect("write fixture");
            }
            let on_disk = std::fs::read_to_string(&path).expect("fixture exists (KILN_UPDATE_FIXTURES=1 writes it)");
            assert!(on_disk == json, "{} is stale; rerun with KILN_UPDATE_FIXTURES=1", path.display());
        }
    }
}
