//! Nodes built in code for rule tests: a healthy HGX B200, an HGX H100, a
//! GB200 tray and a plain VM, shaped like what inspection reports, plus
//! helpers to break them one fault at a time.

use std::collections::BTreeMap;

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
        address: address.to_string(),
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
        upstream: upstream.iter().map(|s| s.to_string()).collect(),
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
        pci_address: address.to_string(),
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
            health_mask: 0,
        }),
        platform: None,
        power_limit_watts: Some(1000.0),
        problems: Vec::new(),
    }
}

fn base(hostname: &str, arch: &str, pci: Vec<PciDevice>, gpus: GpuInventory) -> Node {
    let mut pci = pci;
    pci.sort_by(|a, b| a.address.cmp(&b.address));
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
    }
}

/// GPU address of slot `i` (0..8) in the HGX trees built below.
pub fn hgx_gpu_address(i: usize) -> String {
    format!("0000:{:02x}:00.0", hgx_bus(i) + 3)
}

/// NIC address of slot `i` in the HGX trees built below.
pub fn hgx_nic_address(i: usize) -> String {
    format!("0000:{:02x}:00.0", hgx_bus(i) + 4)
}

/// Switch downstream port above GPU `i`.
pub fn hgx_gpu_port(i: usize) -> String {
    format!("0000:{:02x}:00.0", hgx_bus(i) + 2)
}

fn hgx_bus(i: usize) -> usize {
    // Four trees per socket, as on HGX boards: buses 0x10.. on socket 0,
    // 0x90.. on socket 1.
    if i < 4 {
        0x10 + 0x10 * i
    } else {
        0x90 + 0x10 * (i - 4)
    }
}

/// Eight trees: CPU root port, PCIe switch upstream port, two downstream
/// ports, a GPU below one and a ConnectX-7 below the other. GPUs idle at 2.5 GT/s.
fn hgx_trees(gpu_id: u16) -> Vec<PciDevice> {
    let mut pci = Vec::new();
    for i in 0..8 {
        let b = hgx_bus(i);
        let numa = Some(if i < 4 { 0 } else { 1 });
        let root = format!("0000:{b:02x}:01.0");
        let up = format!("0000:{:02x}:00.0", b + 1);
        let gport = hgx_gpu_port(i);
        let nport = format!("0000:{:02x}:01.0", b + 2);
        pci.push(device(&root, 0x8086, 0x352a, 0x060400, &[], numa));
        pci.push(device(&up, 0x1000, 0xc030, 0x060400, &[&root], numa));
        pci.push(device(&gport, 0x1000, 0xc030, 0x060400, &[&up, &root], numa));
        pci.push(device(&nport, 0x1000, 0xc030, 0x060400, &[&up, &root], numa));
        let mut g = device(&hgx_gpu_address(i), 0x10de, gpu_id, 0x030200, &[&gport, &up, &root], numa);
        // Idle GPUs downtrain their link speed; the width stays.
        g.link = Some(link(2.5, 32.0, 16, 16));
        pci.push(g);
        pci.push(device(&hgx_nic_address(i), 0x15b3, 0x1021, 0x020700, &[&nport, &up, &root], numa));
    }
    pci
}

/// A healthy HGX B200: 8 B200, 8 ConnectX-7, 2 BlueField-3 functions,
/// 18 NVLinks per GPU, fabric registered.
pub fn hgx_b200() -> Node {
    let mut pci = hgx_trees(0x2901);
    pci.push(device("0000:d0:01.0", 0x8086, 0x352a, 0x060400, &[], Some(1)));
    pci.push(device("0000:d1:00.0", 0x15b3, 0xa2dc, 0x020000, &["0000:d0:01.0"], Some(1)));
    pci.push(device("0000:d1:00.1", 0x15b3, 0xa2dc, 0x020000, &["0000:d0:01.0"], Some(1)));
    let gpus = (0..8).map(|i| gpu(i as u32, &hgx_gpu_address(i), "NVIDIA B200", 18, true)).collect();
    let inv = GpuInventory::Inspected {
        driver_version: "570.124.06".into(),
        nvml_version: None,
        cuda_driver_version: None,
        gpus,
    };
    base("b200-node-01", "x86_64", pci, inv)
}

/// A healthy HGX H100 8-GPU: 8 H100 SXM5, 4 NVSwitch functions, 18 NVLinks per GPU.
pub fn hgx_h100() -> Node {
    let mut pci = hgx_trees(0x2330);
    pci.push(device("0000:e0:01.0", 0x8086, 0x352a, 0x060400, &[], Some(1)));
    for f in 0..4 {
        let mut s = device(&format!("0000:e1:00.{f}"), 0x10de, 0x22a3, 0x068000, &["0000:e0:01.0"], Some(1));
        s.link = Some(link(8.0, 8.0, 2, 2));
        pci.push(s);
    }
    let gpus = (0..8).map(|i| gpu(i as u32, &hgx_gpu_address(i), "NVIDIA H100 80GB HBM3", 18, false)).collect();
    let inv = GpuInventory::Inspected {
        driver_version: "550.90.07".into(),
        nvml_version: None,
        cuda_driver_version: None,
        gpus,
    };
    base("h100-node-01", "x86_64", pci, inv)
}

/// A healthy GB200 compute tray: 4 GPUs each alone in its PCI domain.
pub fn gb200_tray() -> Node {
    let addrs = ["0008:01:00.0", "0009:01:00.0", "0018:01:00.0", "0019:01:00.0"];
    let mut pci = Vec::new();
    let mut gpus = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let numa = Some(if i < 2 { 0 } else { 1 });
        let root = format!("{}:00:00.0", &a[..4]);
        pci.push(device(&root, 0x10de, 0x22b1, 0x060400, &[], numa));
        let mut d = device(a, 0x10de, 0x2941, 0x030200, &[&root], numa);
        // C2C, not PCIe: sysfs shows a narrow link that must not be judged.
        d.link = Some(link(16.0, 16.0, 1, 1));
        pci.push(d);
        let mut g = gpu(i as u32, a, "NVIDIA GB200", 18, true);
        g.platform = Some(PlatformInfo {
            chassis_serial: Some("1821000000000".into()),
            slot_number: 7,
            tray_index: 3,
            host_id: 1,
            peer_type: 0,
            module_id: [2, 1, 4, 3][i],
        });
        gpus.push(g);
    }
    for (i, a) in ["0000:01:00.0", "0002:01:00.0", "0010:01:00.0", "0012:01:00.0"].iter().enumerate() {
        pci.push(device(a, 0x15b3, 0x1021, 0x020700, &[], Some(if i < 2 { 0 } else { 1 })));
    }
    pci.push(device("0006:01:00.0", 0x15b3, 0xa2dc, 0x020000, &[], Some(0)));
    pci.push(device("0016:01:00.0", 0x15b3, 0xa2dc, 0x020000, &[], Some(1)));
    let inv = GpuInventory::Inspected {
        driver_version: "580.65.06".into(),
        nvml_version: None,
        cuda_driver_version: None,
        gpus,
    };
    base("gb200-tray-03", "aarch64", pci, inv)
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
        gpus.retain(|g| g.pci_address != address);
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

/// The nodes written to `tests/fixtures/nodes/` for the CLI tests.
pub fn fixtures() -> Vec<(&'static str, Node)> {
    let mut x8 = hgx_b200();
    pci_mut(&mut x8, &hgx_gpu_address(2)).link.as_mut().expect("link").current_width = Some(8);
    let mut no_driver = hgx_b200();
    no_driver.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
    vec![("hgx-b200-healthy", hgx_b200()), ("hgx-b200-gpu2-x8", x8), ("hgx-b200-no-driver", no_driver), ("vm", vm())]
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
