//! `components_of` on the sample node and on nodes missing parts of their inventory.

use std::collections::BTreeMap;

use crate::hw::fixture::sample::{gpu_address, gpu_serial, hgx_b200_node, nic_address};
use crate::inventory::components_of;
use crate::model::GpuInventory;

fn kinds(node: &crate::model::Node) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in components_of(node) {
        *out.entry(c.kind).or_insert(0) += 1;
    }
    out
}

#[test]
fn the_sample_node_has_every_part_once() {
    let node = hgx_b200_node("gpu-a01");
    let expected: BTreeMap<String, usize> = [
        ("bios", 1),
        ("board", 1),
        ("chassis", 1),
        ("cpu", 1),
        // 32 populated SMBIOS memory devices, one per DIMM slot.
        ("dimm", 32),
        ("dpu", 2),
        ("gpu", 8),
        ("memory", 1),
        ("nic", 8),
        ("nvme", 4),
        // The BMC's ASPEED display: not a GPU, not a bridge.
        ("pci", 1),
        ("system", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds(&node), expected);
}

#[test]
fn gpus_join_nvml_and_pci() {
    let node = hgx_b200_node("gpu-a01");
    let parts = components_of(&node);
    let gpu = parts.iter().find(|c| c.kind == "gpu").expect("a gpu");
    assert_eq!(gpu.address.as_deref(), Some(gpu_address(0).as_str()));
    assert_eq!(gpu.serial.as_deref(), Some(gpu_serial("gpu-a01", 0).as_str()));
    assert_eq!(gpu.firmware.as_deref(), Some("97.00.9C.00.1D"));
    assert_eq!(gpu.model.as_deref(), Some("NVIDIA B200"));
    assert_eq!(gpu.vendor.as_deref(), Some("NVIDIA Corporation"));
    assert!(gpu.extra["uuid"].as_str().is_some_and(|u| u.starts_with("GPU-b2000000-")), "{}", gpu.extra["uuid"]);
    assert_eq!(gpu.extra["pci_id"], "10de:2901");
    let nic = parts.iter().find(|c| c.address.as_deref() == Some(nic_address(2).as_str())).expect("nic 2");
    let guid = nic.serial.clone().expect("nic serial");
    assert_eq!(nic.kind, "nic");
    assert!(guid.starts_with("a088:c203:") && guid.ends_with(":0003"), "port GUID of mlx5_3/1: {guid}");
    assert_eq!(nic.firmware.as_deref(), Some("28.43.2026"));
    let dpu = parts.iter().find(|c| c.kind == "dpu").expect("dpu");
    let mac = dpu.serial.clone().expect("dpu serial");
    assert!(mac.starts_with("94:6d:ae:") && mac.ends_with(":01"), "MAC of its first port: {mac}");
}

#[test]
fn nvml_style_addresses_still_match_their_pci_function() {
    // A node JSON that spells a GPU's address the way NVML does reads as the same address.
    let mut json = serde_json::to_value(hgx_b200_node("gpu-a01")).expect("node JSON");
    json["gpus"]["gpus"][0]["pci_address"] = "00000000:1B:00.0".into();
    let node: crate::model::Node = serde_json::from_value(json).expect("node reads");
    assert_eq!(kinds(&node)["gpu"], 8, "no GPU counted twice");
    let parts = components_of(&node);
    let gpu = parts.iter().find(|c| c.kind == "gpu").expect("gpu");
    assert_eq!(
        (gpu.address.as_deref(), gpu.serial.as_deref()),
        (Some("0000:1b:00.0"), Some(gpu_serial("gpu-a01", 0).as_str()))
    );
}

#[test]
fn gpus_without_nvml_are_still_recorded() {
    let mut node = hgx_b200_node("gpu-a01");
    node.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
    let parts = components_of(&node);
    let gpus: Vec<_> = parts.iter().filter(|c| c.kind == "gpu").collect();
    assert_eq!(gpus.len(), 8);
    assert!(gpus.iter().all(|g| g.serial.is_none() && g.extra["seen_by_nvml"] == false));
    assert_eq!(gpus[0].model.as_deref(), Some("GB100 [B200]"));
}
