//! Changes between runs: swapped parts, new firmware, parts added and removed.

use super::support::{record, temp_db};
use crate::hw::fixture::sample::{gpu_address, gpu_serial, hgx_b200_node};
use crate::inventory::{diff_components, Change, ComponentChange, ComponentRecord, Inventory};
use crate::lifecycle::RunKind;
use crate::model::{GpuInventory, Node};

fn gpus_mut(node: &mut Node) -> &mut Vec<crate::model::Gpu> {
    match &mut node.gpus {
        GpuInventory::Inspected { gpus, .. } => gpus,
        GpuInventory::NotInspected { .. } => panic!("the sample node has GPUs"),
    }
}

#[test]
fn a_swapped_gpu_and_a_reflashed_vbios_are_reported() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let before = hgx_b200_node("gpu-a01");
    let mut after = before.clone();
    gpus_mut(&mut after)[0].serial = Some("1650924060999".into());
    gpus_mut(&mut after)[5].vbios_version = Some("97.00.6B.00.02".into());
    // A drive pulled from its bay leaves both the block layer and the PCI bus.
    let pulled = after.disks.pop().expect("a disk");
    after.pci.retain(|d| Some(&d.address) != pulled.pci_address.as_ref());
    let first = record(&mut inv, RunKind::Inspect, &before, &[], 0);
    let second = record(&mut inv, RunKind::Inspect, &after, &[], 60);
    let id = inv.node("gpu-a01").expect("query").expect("node").id;

    let changes = inv.changes_since_previous_run(id).expect("diff").expect("two runs");
    assert_eq!((changes.previous_run, changes.run), (first, second));
    let lines: Vec<String> = changes.changes.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            // GPUs by NVML index, physical slot (1-8) and address; drives by their PCI address.
            format!(
                "gpu0 slot 1 {}: serial {} -> 1650924060999 (part swapped)",
                gpu_address(0),
                gpu_serial("gpu-a01", 0)
            ),
            format!("gpu5 slot 6 {}: firmware 97.00.9C.00.1D -> 97.00.6B.00.02", gpu_address(5)),
            format!(
                "nvme 0000:b5:00.0: removed (SAMSUNG MZWLJ3T8HBLS-00007, serial {})",
                pulled.serial.expect("serial")
            ),
        ]
    );
}

#[test]
fn one_run_has_no_changes_and_an_identical_rerun_has_none() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    record(&mut inv, RunKind::Inspect, &node, &[], 0);
    let id = inv.node("gpu-a01").expect("query").expect("node").id;
    assert_eq!(inv.changes_since_previous_run(id).expect("diff"), None);
    record(&mut inv, RunKind::Inspect, &node, &[], 60);
    assert_eq!(inv.changes_since_previous_run(id).expect("diff").expect("two runs").changes, vec![]);
}

fn part(kind: &str, address: Option<&str>, serial: Option<&str>, firmware: Option<&str>) -> ComponentRecord {
    ComponentRecord {
        kind: kind.into(),
        slot: None,
        address: address.map(Into::into),
        vendor: None,
        model: Some("m".into()),
        serial: serial.map(Into::into),
        firmware: firmware.map(Into::into),
        extra: Default::default(),
    }
}

#[test]
fn unknown_values_are_not_changes_and_added_parts_are() {
    let before = [part("gpu", Some("a"), Some("s1"), Some("f1")), part("bios", None, None, Some("1.0"))];
    let after = [
        part("gpu", Some("a"), None, Some("f1")),
        part("bios", None, None, Some("1.1")),
        part("gpu", Some("b"), Some("s2"), None),
    ];
    let changes = diff_components(&before, &after);
    assert_eq!(
        changes,
        vec![
            ComponentChange {
                kind: "bios".into(),
                place: None,
                label: "bios".into(),
                change: Change::FirmwareChanged { from: "1.0".into(), to: "1.1".into() }
            },
            ComponentChange {
                kind: "gpu".into(),
                place: Some("b".into()),
                label: "gpu b".into(),
                change: Change::Added { model: Some("m".into()), serial: Some("s2".into()) }
            },
        ]
    );
}

#[test]
fn parts_sharing_a_place_are_matched_in_order() {
    let before = [part("nvme", Some("x"), Some("n1"), None), part("nvme", Some("x"), Some("n2"), None)];
    let after = [part("nvme", Some("x"), Some("n1"), None)];
    let lines: Vec<String> = diff_components(&before, &after).iter().map(ToString::to_string).collect();
    assert_eq!(lines, vec!["nvme x: removed (m, serial n2)"]);
}

#[test]
fn slot_wins_over_address_as_the_place() {
    let mut a = part("gpu", Some("0000:1b:00.0"), Some("s1"), None);
    a.slot = Some("SXM3".into());
    let mut b = part("gpu", Some("0000:9d:00.0"), Some("s2"), None);
    b.slot = Some("SXM3".into());
    let lines: Vec<String> = diff_components(&[a], &[b]).iter().map(ToString::to_string).collect();
    assert_eq!(lines, vec!["gpu slot SXM3 0000:9d:00.0: serial s1 -> s2 (part swapped)"]);
}
