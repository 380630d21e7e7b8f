//! Compliance against the recorded GH200 and BlueField inventories (the members read from the
//! fixture trees as the Redfish backend reads them) and against inspected nodes.

use std::path::Path;

use super::compliance::{judge, Compliance, Observed, Status};
use super::findings::check_id;
use super::recipe::Recipe;
use super::recipe_load::load_builtin;
use crate::bmc::{BmcVersions, FirmwareItem, InventoryRead};
use crate::checks::testnode;
use crate::checks::{Outcome, Verdict};
use crate::model::{GpuInventory, NetPort};

fn recipe(name: &str) -> Recipe {
    load_builtin().expect("built-in recipes").into_iter().find(|r| r.recipe.name == name).expect("recipe").recipe
}

/// The firmware members of a recorded tree: `Id`, trimmed `Version`, `Updateable`, first
/// `RelatedItem`, as `RedfishBmc::firmware_inventory` reads them.
fn recorded(tree: &str) -> Vec<FirmwareItem> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/redfish")
        .join(tree)
        .join("redfish/v1/UpdateService/FirmwareInventory");
    let mut items: Vec<FirmwareItem> = std::fs::read_dir(&dir)
        .expect("inventory dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let text = std::fs::read_to_string(e.path().join("index.json")).expect("member");
            let v: serde_json::Value = serde_json::from_str(&text).expect("json");
            let s = |k: &str| v[k].as_str().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
            FirmwareItem {
                id: s("Id").expect("Id"),
                name: s("Name").unwrap_or_default(),
                version: s("Version"),
                updateable: v["Updateable"].as_bool(),
                related: v["RelatedItem"][0]["@odata.id"].as_str().map(str::to_string),
                serial: None,
                problem: None,
                path: v["@odata.id"].as_str().map(str::to_string),
            }
        })
        .collect();
    items.sort_by(|a, b| a.id.cmp(&b.id));
    items
}

fn versions(items: Vec<FirmwareItem>) -> BmcVersions {
    BmcVersions {
        bmc: "http://127.0.0.1:1 (node01)".into(),
        inventory: InventoryRead::Listed { items },
        system: Some("/redfish/v1/Systems/System_0".into()),
        bios_version: Ok(None),
        manager: Some("/redfish/v1/Managers/BMC_0".into()),
        manager_firmware: Ok(Some("GH200-24.05-2".into())),
    }
}

fn bmc_only(recipe: &Recipe, v: &BmcVersions) -> Compliance {
    judge(recipe, Observed { bmc: Ok(v), node: Err("not inspected in this test") })
}

fn status_of(c: &Compliance, place: &str) -> Status {
    c.entries.iter().find(|e| e.place == place).map(|e| e.status).unwrap_or_else(|| panic!("no entry for {place}"))
}

#[test]
fn recorded_gh200_lists_every_member_once_and_the_unknown_as_not_in_the_recipe() {
    let items = recorded("gh200");
    assert_eq!(items.len(), 19);
    let c = bmc_only(&recipe("gh200-recorded"), &versions(items.clone()));
    for item in &items {
        let n = c.entries.iter().filter(|e| e.place == item.id).count();
        assert_eq!(n, 1, "{} is listed {n} times", item.id);
    }
    let unknown: Vec<&str> =
        c.entries.iter().filter(|e| e.status == Status::NotInRecipe).map(|e| e.place.as_str()).collect();
    assert_eq!(unknown, ["FW_CPLD_0", "HGX_FW_CPLD_0", "HGX_InfoROM_GPU_0", "HGX_InfoROM_GPU_1"]);
    assert!(c.entries.iter().all(|e| e.status == Status::UpToDate || e.status == Status::NotInRecipe), "{c:#?}");
    assert!(c.is_compliant());
    // Padded GPU versions ("96.00.A6.00.01  ") are the pinned version.
    assert_eq!(status_of(&c, "HGX_FW_GPU_1"), Status::UpToDate);
    let findings = c.findings();
    assert_eq!(Verdict::of(&findings), Verdict::Pass);
    let skipped: Vec<&str> =
        findings.iter().filter(|f| f.outcome == Outcome::Skipped).map(|f| f.check.as_str()).collect();
    assert_eq!(skipped, ["firmware.not_in_recipe"; 4]);
    let info_rom = findings.iter().find(|f| f.component.name.as_deref() == Some("HGX_InfoROM_GPU_0")).expect("listed");
    assert!(info_rom.message.contains("\"G530.0225.00.02\" is not in recipe gh200-recorded"), "{}", info_rom.message);
}

#[test]
fn recorded_bluefield_lists_golden_images_as_not_in_the_recipe() {
    let items = recorded("nvidia_dpu");
    assert_eq!(items.len(), 13);
    let c = bmc_only(&recipe("bluefield3-recorded"), &versions(items.clone()));
    for item in &items {
        assert_eq!(c.entries.iter().filter(|e| e.place == item.id).count(), 1, "{}", item.id);
    }
    let mut unknown: Vec<&str> =
        c.entries.iter().filter(|e| e.status == Status::NotInRecipe).map(|e| e.place.as_str()).collect();
    unknown.sort();
    assert_eq!(unknown, ["DPU_BOARD", "DPU_NODE", "DPU_SYS_IMAGE", "golden_image_arm", "golden_image_nic"]);
    let golden = c.entries.iter().find(|e| e.place == "golden_image_arm").expect("listed");
    assert_eq!(golden.reported.as_deref(), Some("no valid golden_image_arm!!!!"));
    assert!(c.is_compliant(), "{c:#?}");
}

#[test]
fn older_newer_and_different_versions_fail_their_component() {
    let mut items = recorded("gh200");
    let set = |items: &mut Vec<FirmwareItem>, id: &str, v: &str| {
        items.iter_mut().find(|i| i.id == id).expect(id).version = Some(v.into());
    };
    set(&mut items, "HGX_FW_GPU_1", "96.00.5E.00.01");
    set(&mut items, "FW_BMC_0", "GH200-24.09-1");
    set(&mut items, "UEFI", "buildbrain-gcid-1");
    set(&mut items, "HGX_FW_ERoT_GPU_0", "01.03.0136.0000_n00");
    let c = bmc_only(&recipe("gh200-recorded"), &versions(items));
    assert_eq!(status_of(&c, "HGX_FW_GPU_1"), Status::Older);
    assert_eq!(status_of(&c, "HGX_FW_GPU_0"), Status::UpToDate);
    assert_eq!(status_of(&c, "FW_BMC_0"), Status::Newer);
    assert_eq!(status_of(&c, "UEFI"), Status::Differs);
    assert_eq!(status_of(&c, "HGX_FW_ERoT_GPU_0"), Status::Older);
    assert!(!c.is_compliant());
    assert_eq!(c.non_compliant_components(), ["bmc", "gpu", "erot", "uefi"]);
    let findings = c.findings();
    let gpu = findings.iter().find(|f| f.component.name.as_deref() == Some("HGX_FW_GPU_1")).expect("gpu1");
    assert_eq!((gpu.check.as_str(), gpu.outcome), ("firmware.gpu", Outcome::Fail));
    assert_eq!((gpu.expected.as_deref(), gpu.actual.as_deref()), (Some("96.00.A6.00.01"), Some("96.00.5E.00.01")));
    assert_eq!(gpu.component.address.as_deref(), Some("/redfish/v1/Chassis/HGX_GPU_1"));
    assert!(gpu.message.contains("is older than the pinned 96.00.A6.00.01"), "{}", gpu.message);
    assert!(gpu.message.contains("example in the recipe"), "{}", gpu.message);
    let bmc = findings.iter().find(|f| f.component.name.as_deref() == Some("FW_BMC_0")).expect("bmc");
    assert!(bmc.action.as_deref().is_some_and(|a| a.starts_with("downgrade")), "{bmc:?}");
}

#[test]
fn a_version_the_recipe_cannot_parse_is_unreadable_never_compliant() {
    let mut items = recorded("gh200");
    let gpu0 = items.iter_mut().find(|i| i.id == "HGX_FW_GPU_0").expect("gpu0");
    gpu0.version = Some("N/A".into());
    let fpga = items.iter_mut().find(|i| i.id == "HGX_FW_FPGA_0").expect("fpga");
    fpga.version = None;
    fpga.problem = Some("GET answered 500".into());
    let c = bmc_only(&recipe("gh200-recorded"), &versions(items));
    assert_eq!(status_of(&c, "HGX_FW_GPU_0"), Status::Unreadable);
    assert_eq!(status_of(&c, "HGX_FW_FPGA_0"), Status::Unreadable);
    let fpga = c.entries.iter().find(|e| e.place == "HGX_FW_FPGA_0").expect("fpga");
    assert_eq!(fpga.detail.as_deref(), Some("GET answered 500"));
    let findings = c.findings();
    assert_eq!(Verdict::of(&findings), Verdict::Error);
    let gpu = findings.iter().find(|f| f.component.name.as_deref() == Some("HGX_FW_GPU_0")).expect("gpu0");
    assert_eq!(gpu.outcome, Outcome::Error);
    assert!(gpu.message.contains("\"N/A\" is not a dotted hex version"), "{}", gpu.message);
}

#[test]
fn a_pinned_component_the_node_lacks_is_missing() {
    let items: Vec<FirmwareItem> = recorded("gh200").into_iter().filter(|i| i.id != "HGX_FW_GPU_1").collect();
    let c = bmc_only(&recipe("gh200-recorded"), &versions(items.clone()));
    let missing: Vec<_> = c.of("gpu").filter(|e| e.status == Status::Missing).collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].detail.as_deref(), Some("1 of 2 reported by FirmwareInventory HGX_FW_GPU_*"));
    assert_eq!(Verdict::of(&c.findings()), Verdict::Fail);
    // A component matching nothing at all is missing as well.
    let none: Vec<FirmwareItem> = items.into_iter().filter(|i| i.id != "UEFI").collect();
    let c = bmc_only(&recipe("gh200-recorded"), &versions(none));
    assert_eq!(c.of("uefi").map(|e| e.status).collect::<Vec<_>>(), [Status::Missing]);
}

#[test]
fn an_unreadable_inventory_makes_every_inventory_component_unreadable() {
    let v = BmcVersions {
        inventory: InventoryRead::Failed { why: "GET /redfish/v1/UpdateService answered 500 after 4 tries".into() },
        ..versions(Vec::new())
    };
    let r = recipe("gh200-recorded");
    let c = bmc_only(&r, &v);
    assert_eq!(c.entries.len(), r.components.len());
    assert!(c.entries.iter().all(|e| e.status == Status::Unreadable), "{c:#?}");
    assert!(c.entries[0].detail.as_deref().is_some_and(|d| d.contains("answered 500")));
    // And a BMC that could not be reached at all says so for every component.
    let c = judge(&r, Observed { bmc: Err("connection refused"), node: Err("not inspected") });
    assert!(c.entries.iter().all(|e| e.detail.as_deref() == Some("BMC not read: connection refused")));
}

#[test]
fn inband_versions_come_from_the_node_model() {
    let mut node = testnode::hgx_b200();
    // The sample node's ConnectX-7 ports (one per function), one of them a release behind.
    let cx7: Vec<_> = node.pci.iter().filter(|d| d.device_id == 0x1021).map(|d| d.address).collect();
    let mut ports: Vec<&mut NetPort> =
        node.net.iter_mut().filter(|p| p.pci_address.is_some_and(|a| cx7.contains(&a))).collect();
    ports.sort_by_key(|p| p.pci_address);
    ports.dedup_by_key(|p| p.pci_address);
    assert_eq!(ports.len(), 8, "the sample HGX B200 has 8 ConnectX-7 functions with a port each");
    for (i, port) in ports.into_iter().enumerate() {
        port.firmware = Some(if i == 3 { "28.39.1002 (MT_0000000838)" } else { "28.43.1014 (MT_0000000838)" }.into());
    }
    node.dmi.bios_version = Some("1.2.0".into());
    // A driver a release behind, and every GPU's VBIOS one behind but GPU 5's.
    if let GpuInventory::Inspected { driver_version, gpus, .. } = &mut node.gpus {
        *driver_version = "570.124.06".into();
        for g in gpus {
            g.vbios_version = Some("97.00.0B.00.01".into());
        }
    }
    testnode::gpu_mut(&mut node, 5).vbios_version = Some("97.00.A5.00.01".into());
    let r = recipe("hgx-b200");
    let v = BmcVersions { manager_firmware: Ok(Some("25.06.01".into())), ..versions(Vec::new()) };
    let c = judge(&r, Observed { bmc: Ok(&v), node: Ok(&node) });
    // The other GPUs' 97.00.0B.00.01 is older than the pinned 97.00.A5.
    let vbios: Vec<Status> = c.of("vbios").map(|e| e.status).collect();
    assert_eq!(vbios.len(), 8);
    assert_eq!(vbios.iter().filter(|s| **s == Status::UpToDate).count(), 1);
    let nic: Vec<(&str, Status)> = c.of("nic").map(|e| (e.place.as_str(), e.status)).collect();
    assert_eq!(nic.len(), 8, "{nic:?}");
    assert_eq!(nic.iter().filter(|(_, s)| *s == Status::Older).count(), 1, "{nic:?}");
    assert_eq!(c.of("bios").map(|e| e.status).collect::<Vec<_>>(), [Status::UpToDate]);
    assert_eq!(c.of("bmc").map(|e| e.status).collect::<Vec<_>>(), [Status::UpToDate]);
    // 570.124.06 is older than the pinned 570.133.20; newer would be accepted.
    assert_eq!(c.of("driver").map(|e| e.status).collect::<Vec<_>>(), [Status::Older]);
    let gpu5 = c.findings().into_iter().find(|f| f.check == "firmware.vbios" && f.component.gpu_index == Some(5));
    assert_eq!(gpu5.map(|f| f.outcome), Some(Outcome::Pass));
    // The empty inventory of this test BMC is listed and no component needs it: nothing else.
    assert!(c.entries.iter().all(|e| e.component.is_some()), "{c:#?}");
}

#[test]
fn a_node_without_a_driver_leaves_gpu_components_unreadable() {
    let node = testnode::vm();
    let c = judge(&recipe("hgx-b200"), Observed { bmc: Err("no BMC in the manifest"), node: Ok(&node) });
    let vbios: Vec<_> = c.of("vbios").collect();
    assert_eq!(vbios.len(), 1);
    assert_eq!(vbios[0].status, Status::Unreadable);
    assert!(vbios[0].detail.as_deref().is_some_and(|d| d.starts_with("GPUs not inspected")), "{:?}", vbios[0]);
}

#[test]
fn advisory_components_are_shown_but_do_not_fail_the_node() {
    let mut items = recorded("nvidia_dpu");
    items.iter_mut().find(|i| i.id == "DPU_OFED").expect("ofed").version = Some("MLNX_OFED_LINUX-5.8-1.0.1".into());
    let c = bmc_only(&recipe("bluefield3-recorded"), &versions(items));
    assert_eq!(status_of(&c, "DPU_OFED"), Status::Older);
    assert!(c.is_compliant());
    let findings = c.findings();
    let ofed = findings.iter().find(|f| f.check == "firmware.ofed").expect("ofed");
    assert_eq!(ofed.outcome, Outcome::Pass);
    assert!(ofed.message.starts_with("advisory: "), "{}", ofed.message);
    assert_eq!(Verdict::of(&findings), Verdict::Pass);
}

#[test]
fn an_absent_inventory_that_no_component_needs_is_noted_not_failed() {
    let r = recipe("hgx-b200");
    let v = BmcVersions {
        inventory: InventoryRead::Absent { why: "GET .../FirmwareInventory answered 404".into() },
        ..versions(Vec::new())
    };
    let c = judge(&r, Observed { bmc: Ok(&v), node: Err("not inspected") });
    let note = c.entries.iter().find(|e| e.component.is_none()).expect("a note");
    assert_eq!((note.status, check_id(note).as_str()), (Status::NoInventory, "firmware.inventory"));
    let f = c.findings();
    assert_eq!(f.iter().find(|f| f.check == "firmware.inventory").map(|f| f.outcome), Some(Outcome::Skipped));
}
