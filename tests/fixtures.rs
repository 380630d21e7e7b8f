//! The hand-built fixture trees of `kiln::hw::fixture::trees`: each written out reads back as
//! built and inspects from disk as it does in memory, each inspects to the node it describes,
//! and each faulty variant differs from the healthy tree by its one fault. Also the one tree
//! recorded from a real machine (`tests/fixtures/h100-vm-recorded`), which is committed.

mod fixture_support;

use std::path::Path;

use fixture_support::Trees;
use kiln::hw::fixture::trees;
use kiln::model::{FabricState, Gpu, Node, PciAddress, PciDevice};

fn at(address: &str) -> PciAddress {
    address.parse().expect("a PCI address")
}

fn inspect_dir(dir: &Path) -> Node {
    let (tree, gpus) = kiln::hw::open(Some(dir)).expect("fixture opens");
    kiln::hw::inspect(tree.as_ref(), gpus.as_ref())
}

/// A named tree inspected in memory (the first test shows that is what `--root` gives).
fn inspect_fixture(name: &str) -> Node {
    trees::build(name).expect("a named tree").inspect()
}

#[test]
fn named_trees_write_read_back_and_inspect_alike_from_disk_and_memory() {
    for name in trees::NAMES {
        let tree = trees::build(name).expect("every listed name builds");
        let dir = fixture_support::shared(name);
        let diffs = tree.differences(&dir).expect("the written tree reads back");
        assert!(diffs.is_empty(), "{name}: written tree differs from the builder: {:?}", &diffs[..diffs.len().min(10)]);
        assert_eq!(inspect_dir(&dir), tree.inspect(), "{name}: disk and memory inspect alike");
    }
    let scratch = Trees::write(&[]);
    let err = trees::write(&["hgx-b200-typo"], scratch.dir()).expect_err("no such tree");
    assert!(err.to_string().contains("\"hgx-b200-typo\"") && err.to_string().contains("gb200-nvl72-tray"), "{err}");
}

/// The edits a rack test makes to one tray: its place, one GPU's fabric health and one link.
#[test]
fn a_tray_varies_by_place_fabric_and_link() {
    use kiln::hw::fixture::{gb200_tray, Gb200Tray, Unit};
    let tray = Gb200Tray { unit: Unit::new("tray-11", 11, "1821724190111"), tray_index: 11, ..Gb200Tray::default() };
    let mut tree = gb200_tray(&tray);
    if let Some(fabric) = tree.gpu_mut(2).and_then(|g| g.fabric.as_mut()) {
        // Degraded bandwidth: the first field reads 1 (true) instead of 2.
        fabric.health_mask = 0x1a9;
    }
    let gpu1 = tree.gpu_address(1).expect("GPU 1");
    tree.train(&gpu1, "16.0", 16);
    let node = tree.inspect();
    assert_eq!(node.hostname, "tray-11");
    let gpus = node.gpus.gpus();
    assert!(gpus.iter().all(|g| g.platform.as_ref().map(|p| p.tray_index) == Some(11)));
    assert_eq!(gpus[0].platform.as_ref().and_then(|p| p.chassis_serial.as_deref()), Some("1821724190111"));
    assert_eq!(
        gpus.iter().map(|g| g.fabric.as_ref().map_or(0, |f| f.health_mask)).collect::<Vec<_>>(),
        [0x1aa, 0x1aa, 0x1a9, 0x1aa]
    );
    let link = node.pci_device(&at(&gpu1)).and_then(|d| d.link.clone()).expect("link");
    assert_eq!((link.current_speed_gts, link.max_speed_gts), (Some(16.0), Some(32.0)));
    let default = kiln::hw::fixture::sample::gb200_tray_node();
    assert_ne!(gpus[0].serial, default.gpus.gpus()[0].serial, "another unit, other serials");
}

fn gpus_in_pci(node: &Node) -> Vec<&PciDevice> {
    node.pci.iter().filter(|d| d.vendor_id == 0x10de && d.class_subclass() == 0x0302).collect()
}

#[test]
fn hgx_b200_is_a_complete_healthy_node() {
    let node = inspect_fixture("hgx-b200");
    assert_eq!(node.problems, vec![], "a healthy fixture reads without problems");
    assert_eq!(node.hostname, "hgx-b200-01");
    assert_eq!(node.cpus.architecture, "x86_64");
    assert_eq!((node.cpus.sockets, node.cpus.cores, node.cpus.threads), (2, 112, 224));
    assert_eq!(node.cpus.model.as_deref(), Some("INTEL(R) XEON(R) PLATINUM 8570"));
    assert_eq!(node.cpus.numa_nodes.len(), 2);
    assert_eq!(node.cpus.numa_nodes[0].cpulist, "0-55,112-167");
    assert_eq!(node.cpus.numa_nodes[1].cpulist, "56-111,168-223");
    assert_eq!(node.memory.total_kib, 2 * 1_056_626_828);
    assert_eq!(node.dmi.product_name.as_deref(), Some("DGXB200"));
    assert_eq!(node.dmi.product_serial.as_deref(), Some("1654225000123"));

    let gpus = gpus_in_pci(&node);
    assert_eq!(gpus.len(), 8);
    for (i, gpu) in gpus.iter().enumerate() {
        assert_eq!((gpu.device_id, gpu.driver.as_deref()), (0x2901, Some("nvidia")), "{}", gpu.address);
        assert_eq!(gpu.device_name.as_deref(), Some("GB100 [B200]"));
        assert_eq!(gpu.numa_node, Some(if i < 4 { 0 } else { 1 }), "{}", gpu.address);
        let link = gpu.link.as_ref().expect("gpu has a link");
        assert_eq!((link.current_speed_gts, link.current_width), (Some(32.0), Some(16)), "{}", gpu.address);
        assert_eq!((link.max_speed_gts, link.max_width), (Some(32.0), Some(16)), "{}", gpu.address);
        // Two switch levels: downstream, upstream, downstream, upstream, root port.
        assert_eq!(gpu.upstream.len(), 5, "{}", gpu.address);
        let root = node.pci_device(gpu.upstream.last().expect("chain")).expect("root port is a device");
        assert!(root.is_bridge() && root.upstream.is_empty(), "{} ends at a root port", gpu.address);
        for hop in &gpu.upstream[..4] {
            let bridge = node.pci_device(hop).expect("every hop is a device");
            assert_eq!((bridge.vendor_id, bridge.device_id), (0x1000, 0xc030), "{hop} is a Broadcom switch port");
        }
        assert_eq!(gpu.slot.as_deref(), Some((i + 1).to_string().as_str()));
        let aer = gpu.aer.as_ref().expect("gpu has aer");
        assert_eq!(kiln::model::AerCounters::total(&aer.fatal), 0);
    }
    let first = node.pci_device(&at("0000:1b:00.0")).expect("GPU 0");
    assert_eq!(first.upstream, ["0000:1a:00.0", "0000:19:00.0", "0000:17:02.0", "0000:16:00.0", "0000:15:01.0"]);
    let nic = node.pci_device(&at("0000:18:00.0")).expect("GPU 0's ConnectX-7");
    assert_eq!((nic.vendor_id, nic.device_id, nic.class), (0x15b3, 0x1021, 0x020700));
    assert_eq!(nic.upstream[1..], first.upstream[3..], "the NIC shares the first switch with its GPU");

    let inventory = node.gpus.gpus();
    assert_eq!(inventory.len(), 8);
    let sysfs: Vec<Option<PciAddress>> = gpus.iter().map(|d| Some(d.address)).collect();
    let nvml: Vec<Option<PciAddress>> = inventory.iter().map(|g| g.pci_address).collect();
    assert_eq!(sysfs, nvml, "NVML and sysfs agree on the GPUs");
    let cluster = inventory[0].fabric.as_ref().expect("fabric").cluster_uuid.clone();
    for g in inventory {
        let links = g.nvlinks.as_ref().expect("nvlinks");
        assert_eq!((links.len(), links.iter().filter(|l| l.active).count()), (18, 18), "gpu{}", g.index);
        let fabric = g.fabric.as_ref().expect("fabric");
        assert_eq!((fabric.state, &fabric.cluster_uuid), (FabricState::Completed, &cluster));
        assert!(g.uuid.is_some() && g.serial.is_some() && g.board_part_number.is_some() && g.vbios_version.is_some());
        assert_eq!(g.remapped_rows.as_ref().map(|r| r.pending), Some(false));
    }

    let ib: Vec<_> = node.net.iter().filter(|p| p.kind == kiln::model::PortKind::Infiniband).collect();
    assert_eq!(ib.len(), 8, "one InfiniBand port per ConnectX-7; IPoIB interfaces are not listed twice");
    for port in &ib {
        assert_eq!(port.speed_mbps, Some(400_000));
        assert_eq!(port.state.as_deref(), Some("active"));
        assert_eq!(port.firmware.as_deref(), Some("28.43.2026"));
        assert!(port.address.as_deref().is_some_and(|a| a.starts_with("a088:c203:")));
    }
    let eth: Vec<_> = node.net.iter().filter(|p| p.kind == kiln::model::PortKind::Ethernet).collect();
    assert_eq!(eth.len(), 2, "the two BlueField-3 Ethernet ports");
    for port in &eth {
        assert_eq!(port.firmware.as_deref(), Some("32.43.2026"), "firmware from the RDMA device of the same function");
        assert_eq!(port.driver.as_deref(), Some("mlx5_core"));
        let pci = node.pci_device(&port.pci_address.expect("pci")).expect("device");
        assert_eq!(pci.device_id, 0xa2dc);
    }
    assert_eq!(node.disks.len(), 4);
    assert_eq!(node.disks[0].name, "nvme0n1");
    assert_eq!(node.disks[0].model.as_deref(), Some("Micron_7450_MTFDKBG1T9TFR"));
    assert_eq!(node.disks[0].size_bytes, 1_920_383_410_176);
    assert_eq!(node.disks[0].pci_address, Some(at("0000:0c:00.0")));
    assert!(!node.disks[0].rotational);
}

#[test]
fn gb200_tray_has_four_gpus_each_in_its_own_domain() {
    let node = inspect_fixture("gb200-nvl72-tray");
    assert_eq!(node.problems, vec![]);
    assert_eq!(node.cpus.architecture, "aarch64");
    assert_eq!(node.cpus.model.as_deref(), Some("Arm Neoverse-V2"));
    assert_eq!((node.cpus.sockets, node.cpus.cores, node.cpus.threads), (2, 144, 144));
    let gpus = gpus_in_pci(&node);
    let addresses: Vec<String> = gpus.iter().map(|d| d.address.to_string()).collect();
    assert_eq!(addresses, ["0008:01:00.0", "0009:01:00.0", "0018:01:00.0", "0019:01:00.0"]);
    for (gpu, numa) in gpus.iter().zip([0, 0, 1, 1]) {
        assert_eq!(
            (gpu.device_id, gpu.subsystem_vendor_id, gpu.subsystem_device_id),
            (0x2941, Some(0x10de), Some(0x2046))
        );
        assert_eq!(gpu.numa_node, Some(numa));
        assert_eq!(gpu.upstream, [PciAddress::new(gpu.address.domain(), 0, 0, 0).expect("root port")]);
    }
    let inventory = node.gpus.gpus();
    let modules: Vec<u32> = inventory.iter().map(|g| g.platform.as_ref().expect("platform").module_id).collect();
    assert_eq!(modules, [2, 1, 4, 3]);
    for g in inventory {
        let fabric = g.fabric.as_ref().expect("fabric");
        assert_eq!((fabric.state, fabric.clique_id), (FabricState::Completed, 32766));
        assert_eq!(g.nvlinks.as_ref().map(|l| l.iter().filter(|l| l.active).count()), Some(18));
        assert_eq!(g.platform.as_ref().and_then(|p| p.chassis_serial.as_deref()), Some("1821724190042"));
    }
    let count = |device: u16| node.pci.iter().filter(|d| d.vendor_id == 0x15b3 && d.device_id == device).count();
    assert_eq!((count(0x1021), count(0xa2dc)), (4, 2));
}

#[test]
fn h100_nvlinks_lead_to_the_nvswitch_functions() {
    let node = inspect_fixture("h100-sxm");
    assert_eq!(node.problems, vec![]);
    assert_eq!(gpus_in_pci(&node).iter().filter(|d| d.device_id == 0x2330).count(), 8);
    let switches: Vec<&PciDevice> =
        node.pci.iter().filter(|d| d.vendor_id == 0x10de && d.device_id == 0x22a3).collect();
    assert_eq!(switches.len(), 4);
    assert!(switches.iter().all(|s| s.class == 0x068000 && s.driver.as_deref() == Some("nvidia-nvswitch")));
    for g in node.gpus.gpus() {
        let links = g.nvlinks.as_ref().expect("nvlinks");
        assert_eq!(links.len(), 18);
        for l in links {
            let remote = l.remote_pci_address.expect("remote");
            assert!(switches.iter().any(|s| s.address == remote), "gpu{} link {} to {remote}", g.index, l.link);
        }
        assert_eq!(g.fabric.as_ref().map(|f| f.state), Some(FabricState::NotSupported));
    }
}

/// What differs between a faulty variant and the healthy tree: PCI devices
/// changed or gone, and GPUs changed or gone (by NVML PCI address).
fn differences(healthy: &Node, faulty: &Node) -> (Vec<String>, Vec<String>) {
    let pci = healthy
        .pci
        .iter()
        .filter(|d| faulty.pci_device(&d.address) != Some(*d))
        .map(|d| d.address.to_string())
        .collect();
    let find = |node: &Node, address: &Option<PciAddress>| {
        node.gpus.gpus().iter().find(|g| g.pci_address == *address).cloned()
    };
    let gpus = healthy
        .gpus
        .gpus()
        .iter()
        .filter(|g| {
            let other: Option<Gpu> = find(faulty, &g.pci_address);
            // A GPU renumbered because another one vanished is the same GPU.
            other.map(|o| Gpu { index: g.index, ..o }) != Some((*g).clone())
        })
        .map(|g| g.address_label())
        .collect();
    (pci, gpus)
}

#[test]
fn each_faulty_variant_differs_by_its_one_fault() {
    let healthy = inspect_fixture("hgx-b200");
    let all = |node: &Node| node.gpus.gpus().iter().map(Gpu::address_label).collect::<Vec<_>>();
    let cases: [(&str, &[&str], Vec<String>); 8] = [
        ("hgx-b200-gpu-x8", &["0000:60:00.0", "0000:61:00.0"], vec!["0000:61:00.0".into()]),
        ("hgx-b200-gpu-gen4", &["0000:c2:00.0", "0000:c3:00.0"], vec!["0000:c3:00.0".into()]),
        ("hgx-b200-missing-gpu", &["0000:d0:00.0", "0000:d1:00.0"], vec!["0000:d1:00.0".into()]),
        ("hgx-b200-aer-fatal", &["0000:52:00.0"], vec![]),
        ("hgx-b200-nvlink-down", &[], vec!["0000:9d:00.0".into()]),
        ("hgx-b200-remap-pending", &[], vec!["0000:43:00.0".into()]),
        ("hgx-b200-fabric-incomplete", &[], all(&healthy)),
        ("hgx-b200-malformed", &["0000:1b:00.0"], vec![]),
    ];
    for (name, pci, gpus) in cases {
        let faulty = inspect_fixture(name);
        let (changed_pci, changed_gpus) = differences(&healthy, &faulty);
        assert_eq!(changed_pci, pci, "{name}: PCI devices that differ");
        assert_eq!(changed_gpus, gpus, "{name}: GPUs that differ");
        let expected_problems = usize::from(name == "hgx-b200-malformed");
        assert_eq!(faulty.problems.len(), expected_problems, "{name}: {:?}", faulty.problems);
    }
}

#[test]
fn faults_read_as_the_fault() {
    let x8 = inspect_fixture("hgx-b200-gpu-x8");
    let link = x8.pci_device(&at("0000:61:00.0")).and_then(|d| d.link.clone()).expect("link");
    assert_eq!((link.current_width, link.max_width), (Some(8), Some(16)));

    let gen4 = inspect_fixture("hgx-b200-gpu-gen4");
    let link = gen4.pci_device(&at("0000:c3:00.0")).and_then(|d| d.link.clone()).expect("link");
    assert_eq!((link.current_speed_gts, link.max_speed_gts), (Some(16.0), Some(32.0)));

    let missing = inspect_fixture("hgx-b200-missing-gpu");
    assert_eq!(gpus_in_pci(&missing).len(), 7);
    assert_eq!(missing.gpus.gpus().len(), 7);
    assert!(missing.pci_device(&at("0000:d1:00.0")).is_none());
    let port = missing.pci_device(&at("0000:d0:00.0")).and_then(|d| d.link.clone()).expect("port link");
    assert_eq!((port.current_speed_gts, port.current_width), (None, Some(0)), "\"Unknown\" speed is None");

    let aer = inspect_fixture("hgx-b200-aer-fatal");
    let counters = aer.pci_device(&at("0000:52:00.0")).and_then(|d| d.aer.clone()).expect("aer");
    assert_eq!(counters.fatal.get("MalfTLP"), Some(&1));
    assert_eq!(kiln::model::AerCounters::total(&counters.fatal), 1);

    let down = inspect_fixture("hgx-b200-nvlink-down");
    let links = down.gpus.gpus()[4].nvlinks.clone().expect("links");
    let inactive: Vec<u32> = links.iter().filter(|l| !l.active).map(|l| l.link).collect();
    assert_eq!(inactive, [2, 9, 15]);

    let remap = inspect_fixture("hgx-b200-remap-pending");
    assert_eq!(remap.gpus.gpus()[1].remapped_rows.as_ref().map(|r| r.pending), Some(true));

    let fabric = inspect_fixture("hgx-b200-fabric-incomplete");
    assert!(fabric.gpus.gpus().iter().all(|g| g.fabric.as_ref().map(|f| f.state) == Some(FabricState::InProgress)));
}

#[test]
fn malformed_file_is_a_problem_naming_file_and_device() {
    let node = inspect_fixture("hgx-b200-malformed");
    assert_eq!(node.problems.len(), 1);
    let problem = &node.problems[0];
    assert_eq!(problem.source, "sysfs");
    assert_eq!(problem.path, "sys/bus/pci/devices/0000:1b:00.0/current_link_width");
    assert_eq!(problem.component.as_deref(), Some("0000:1b:00.0"));
    assert!(problem.message.contains("x16?"), "{}", problem.message);
    let link = node.pci_device(&at("0000:1b:00.0")).and_then(|d| d.link.clone()).expect("the rest of the link is read");
    assert_eq!((link.current_width, link.max_width, link.current_speed_gts), (None, Some(16), Some(32.0)));
    assert_eq!(gpus_in_pci(&node).len(), 8, "one bad file does not lose the device");
}

/// A tree recorded from a real machine: a VM with one H100 passed through.
#[test]
fn recorded_h100_vm_reads_cleanly() {
    let node = inspect_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/h100-vm-recorded"));
    assert_eq!(node.problems, vec![], "real kernel output parses without problems");
    assert_eq!(node.cpus.architecture, "x86_64");
    assert_eq!(node.cpus.threads, 16);
    let gpus = gpus_in_pci(&node);
    assert_eq!(gpus.len(), 1);
    let gpu = gpus[0];
    assert_eq!((gpu.address, gpu.device_id, gpu.driver.as_deref()), (at("0000:00:06.0"), 0x2330, Some("nvidia")));
    assert_eq!(gpu.numa_node, None, "the VM gives no NUMA affinity (-1)");
    assert_eq!(gpu.aer, None, "no AER files in the VM");
    assert!(gpu.upstream.is_empty(), "on the root bus");
    let link = gpu.link.as_ref().expect("link files");
    assert_eq!((link.current_speed_gts, link.current_width), (Some(32.0), Some(16)));
    let eth: Vec<&str> = node.net.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(eth, ["eth0"], "lo and ifb are virtual");
    assert_eq!(node.disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["vda", "vdb"]);

    // The NVML side, as the real driver answered it.
    let nvml = node.gpus.gpus();
    assert_eq!(nvml.len(), 1, "{:?}", node.gpus);
    let g = &nvml[0];
    assert_eq!(g.pci_address, Some(at("0000:00:06.0")), "NVML's bus id parsed");
    assert_eq!(g.name.as_deref(), Some("NVIDIA H100 80GB HBM3"));
    assert!(g.serial.as_deref().is_some_and(|s| !s.is_empty()));
    assert_eq!(g.nvlinks, None, "a lone passed-through H100 reports no NVLink");
    assert_eq!(g.fabric.as_ref().map(|f| f.state), Some(kiln::model::FabricState::NotSupported));
    assert_eq!(g.remapped_rows.as_ref().map(|r| (r.pending, r.failure)), Some((false, false)));
    assert!(g.problems.is_empty(), "{:?}", g.problems);
}
