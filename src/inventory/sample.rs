//! A synthetic 8-GPU HGX B200 node, built in code, for tests and the inventory benchmark.
//!
//! Shaped after the public description of an HGX B200 (FACTS.md): eight CPU
//! root ports, each with a Broadcom Gen5 switch holding one GPU and one
//! ConnectX-7, two BlueField-3, two NVMe drives, and the usual board devices.
//! Serials and versions are made up but shaped like real ones.

use crate::model::Node;
use crate::model::{
    BlockDevice, Cpus, Dmi, Gpu, GpuInventory, GpuPcieLink, LinkState, Memory, NetPort, NumaNode, PciDevice, PortKind,
    NODE_SCHEMA_VERSION,
};

/// Bus of GPU `i`'s root port; the switch and endpoints take the next buses.
fn root_bus(i: u8) -> u8 {
    0x18 + 0x18 * i
}

/// PCI address of GPU `i` (0..8): `0000:1b:00.0` for GPU 0.
pub fn gpu_address(i: u8) -> String {
    format!("0000:{:02x}:00.0", root_bus(i) + 3)
}

/// PCI address of the ConnectX-7 beside GPU `i`.
pub fn nic_address(i: u8) -> String {
    format!("0000:{:02x}:00.0", root_bus(i) + 4)
}

/// A number from the hostname (FNV-1a), so that each sample node's parts
/// have their own serials, as real nodes do.
fn host_number(hostname: &str) -> u32 {
    let hash = hostname.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % 1_000_000
}

/// Serial of GPU `i` on the node `hgx_b200_node(hostname)` builds: 13 digits.
pub fn gpu_serial(hostname: &str, i: u8) -> String {
    format!("1650{:06}{:03}", host_number(hostname), 120 + u32::from(i))
}

fn pci(address: &str, class: u32, vendor: u16, device: u16, names: (&str, &str)) -> PciDevice {
    PciDevice {
        address: address.to_string(),
        class,
        vendor_id: vendor,
        device_id: device,
        subsystem_vendor_id: None,
        subsystem_device_id: None,
        vendor_name: Some(names.0.to_string()),
        device_name: Some(names.1.to_string()),
        class_name: None,
        driver: None,
        numa_node: None,
        link: None,
        upstream: Vec::new(),
        aer: None,
        slot: None,
    }
}

fn gen5_x16() -> Option<LinkState> {
    Some(LinkState {
        current_speed_gts: Some(32.0),
        max_speed_gts: Some(32.0),
        current_width: Some(16),
        max_width: Some(16),
    })
}

/// An HGX B200 node named `hostname`, with every part present and healthy.
pub fn hgx_b200_node(hostname: &str) -> Node {
    const BRIDGE: u32 = 0x060400;
    let host = host_number(hostname);
    let mut pci_devices = vec![
        pci("0000:00:00.0", 0x060000, 0x8086, 0x09a2, ("Intel Corporation", "Ice Lake Memory Map/VT-d")),
        pci("0000:00:14.0", 0x0c0330, 0x8086, 0x1bcd, ("Intel Corporation", "USB 3.0 xHCI Controller")),
        pci("0000:00:17.0", 0x010601, 0x8086, 0x1ba2, ("Intel Corporation", "SATA Controller [AHCI mode]")),
        pci("0000:02:00.0", 0x030000, 0x1a03, 0x2000, ("ASPEED Technology, Inc.", "ASPEED Graphics Family")),
    ];
    let mut gpus = Vec::new();
    let mut net = Vec::new();
    for i in 0..8u8 {
        let b = root_bus(i);
        let root = format!("0000:{b:02x}:01.0");
        let up = format!("0000:{:02x}:00.0", b + 1);
        let down_gpu = format!("0000:{:02x}:00.0", b + 2);
        let down_nic = format!("0000:{:02x}:01.0", b + 2);
        let numa = Some(u32::from(i / 4));
        let mut root_port = pci(&root, BRIDGE, 0x8086, 0x352a, ("Intel Corporation", "PCIe Root Port"));
        root_port.link = gen5_x16();
        let mut switch_up = pci(&up, BRIDGE, 0x1000, 0xc030, ("Broadcom / LSI", "PEX890xx PCIe Gen 5 Switch"));
        switch_up.upstream = vec![root.clone()];
        let mut ports = Vec::new();
        for port in [&down_gpu, &down_nic] {
            let mut p = pci(port, BRIDGE, 0x1000, 0xc030, ("Broadcom / LSI", "PEX890xx PCIe Gen 5 Switch"));
            p.upstream = vec![up.clone(), root.clone()];
            p.link = gen5_x16();
            ports.push(p);
        }
        let mut gpu = pci(&gpu_address(i), 0x030200, 0x10de, 0x2901, ("NVIDIA Corporation", "GB100 [B200]"));
        gpu.upstream = vec![down_gpu.clone(), up.clone(), root.clone()];
        gpu.driver = Some("nvidia".into());
        gpu.numa_node = numa;
        gpu.link = gen5_x16();
        let mut nic =
            pci(&nic_address(i), 0x020700, 0x15b3, 0x1021, ("Mellanox Technologies", "MT2910 Family [ConnectX-7]"));
        nic.upstream = vec![down_nic.clone(), up.clone(), root.clone()];
        nic.driver = Some("mlx5_core".into());
        nic.numa_node = numa;
        nic.link = gen5_x16();
        pci_devices.extend([root_port, switch_up, gpu, nic]);
        pci_devices.extend(ports);

        gpus.push(Gpu {
            index: u32::from(i),
            uuid: Some(format!("GPU-5a1f0c3e-7b2d-4e8a-9c61-0000000000{i:02}")),
            name: Some("NVIDIA B200".into()),
            serial: Some(gpu_serial(hostname, i)),
            board_part_number: Some("692-2G525-0200-000".into()),
            vbios_version: Some("97.00.6A.00.01".into()),
            pci_address: gpu_address(i),
            memory_total_bytes: Some(191_507_349_504),
            pcie: Some(GpuPcieLink {
                current_generation: Some(5),
                max_generation: Some(5),
                current_width: Some(16),
                max_width: Some(16),
                replay_counter: Some(0),
            }),
            nvlinks: None,
            ecc: None,
            retired_pages: None,
            remapped_rows: None,
            fabric: None,
            platform: None,
            power_limit_watts: Some(1000.0),
            problems: Vec::new(),
        });
        net.push(NetPort {
            name: format!("mlx5_{i}/1"),
            kind: PortKind::Infiniband,
            address: Some(format!("a088:c203:{:04x}:{i:02x}5a", host & 0xffff)),
            driver: Some("mlx5_core".into()),
            firmware: Some("28.43.1014".into()),
            pci_address: Some(nic_address(i)),
            speed_mbps: Some(400_000),
            state: Some("ACTIVE".into()),
        });
    }
    for bus in [0xe1u8, 0xe2] {
        let mut nvme = pci(
            &format!("0000:{bus:02x}:00.0"),
            0x010802,
            0x144d,
            0xa80c,
            ("Samsung Electronics Co Ltd", "NVMe SSD Controller PM9A3"),
        );
        nvme.driver = Some("nvme".into());
        pci_devices.push(nvme);
    }
    for (n, bus) in [(0u8, 0xf1u8), (1, 0xf2)] {
        let address = format!("0000:{bus:02x}:00.0");
        let mut dpu = pci(&address, 0x020000, 0x15b3, 0xa2dc, ("Mellanox Technologies", "MT43244 BlueField-3"));
        dpu.driver = Some("mlx5_core".into());
        pci_devices.push(dpu);
        net.push(NetPort {
            name: format!("ens{}f0np0", 6 + n),
            kind: PortKind::Ethernet,
            address: Some(format!("58:a2:e1:{:02x}:{:02x}:{:02x}", (host >> 8) & 0xff, host & 0xff, 0x10 + n)),
            driver: Some("mlx5_core".into()),
            firmware: Some("32.43.1014".into()),
            pci_address: Some(address),
            speed_mbps: Some(200_000),
            state: Some("up".into()),
        });
    }
    pci_devices.sort_by(|a, b| a.address.cmp(&b.address));
    let disks = (0..2u8)
        .map(|n| BlockDevice {
            name: format!("nvme{n}n1"),
            model: Some("SAMSUNG MZQL23T8HCLS-00A07".into()),
            serial: Some(format!("S64HNE0T{host:06}{n}")),
            firmware: Some("GDC5902Q".into()),
            size_bytes: 3_840_755_982_336,
            rotational: false,
            pci_address: Some(format!("0000:{:02x}:00.0", 0xe1 + n)),
        })
        .collect();
    Node {
        schema_version: NODE_SCHEMA_VERSION,
        hostname: hostname.to_string(),
        kernel: Some("6.8.0-60-generic".into()),
        dmi: Dmi {
            system_vendor: Some("NVIDIA".into()),
            product_name: Some("DGXB200".into()),
            product_serial: Some(format!("1662{host:09}")),
            product_uuid: None,
            board_vendor: Some("NVIDIA".into()),
            board_name: Some("DGXB200".into()),
            board_serial: Some(format!("1661{host:09}")),
            chassis_serial: None,
            bios_vendor: Some("American Megatrends International, LLC.".into()),
            bios_version: Some("1.4.4".into()),
            bios_date: Some("03/04/2025".into()),
        },
        cpus: Cpus {
            architecture: "x86_64".into(),
            model: Some("INTEL(R) XEON(R) PLATINUM 8570".into()),
            sockets: 2,
            cores: 112,
            threads: 224,
            numa_nodes: vec![
                NumaNode { id: 0, cpulist: "0-55,112-167".into(), memory_kib: Some(1_056_000_000) },
                NumaNode { id: 1, cpulist: "56-111,168-223".into(), memory_kib: Some(1_056_000_000) },
            ],
        },
        memory: Memory { total_kib: 2_112_000_000, dimms: Vec::new() },
        disks,
        net,
        pci: pci_devices,
        gpus: GpuInventory::Inspected {
            driver_version: "570.133.20".into(),
            nvml_version: Some("12.570.133.20".into()),
            cuda_driver_version: Some(12080),
            gpus,
        },
        problems: Vec::new(),
    }
}
