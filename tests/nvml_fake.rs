//! The live NVML source against a fake `libnvidia-ml.so` built from
//! `tests/fixtures/fake-nvml/fake_nvml.c`: the real loading, symbol lookup,
//! struct versions and error sorting, on a machine without a GPU.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::hw::gpu::GpuSource;
use kiln::hw::nvml::{read_dump, write_dump, NvmlSource, SnapshotGpuSource};
use kiln::model::{FabricState, Gpu, GpuInventory};

/// Compiles the fake library into `dir`. `None` (and a loud SKIPPED) when this
/// machine has no C compiler.
fn build_fake(dir: &Path) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-nvml/fake_nvml.c");
    let library = dir.join("libnvidia-ml.so.1");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O0", "-Wall", "-Werror", "-o"])
        .arg(&library)
        .arg(&source)
        .status();
    match status {
        Ok(status) if status.success() => Some(library),
        Ok(status) => panic!("fake nvml failed to compile: {status}"),
        Err(error) => {
            println!("SKIPPED: no C compiler to build the fake NVML library ({error})");
            None
        }
    }
}

fn inspect_fake() -> Option<GpuInventory> {
    let dir = tempfile::tempdir().expect("tempdir");
    let library = build_fake(dir.path())?;
    Some(NvmlSource::with_library(library).inspect())
}

fn gpus(inventory: &GpuInventory) -> &[Gpu] {
    let GpuInventory::Inspected { gpus, .. } = inventory else {
        panic!("fake driver not inspected: {inventory:?}");
    };
    gpus
}

fn problem_paths(gpu: &Gpu) -> Vec<&str> {
    gpu.problems.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn system_fields_and_every_enumerated_gpu_are_reported() {
    let Some(inventory) = inspect_fake() else { return };
    let GpuInventory::Inspected { driver_version, nvml_version, cuda_driver_version, gpus } = &inventory else {
        panic!("not inspected: {inventory:?}");
    };
    assert_eq!(driver_version, "580.82.07");
    assert_eq!(nvml_version.as_deref(), Some("13.580.82.07"));
    assert_eq!(*cuda_driver_version, Some(13000));
    assert_eq!(gpus.iter().map(|g| g.index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn a_healthy_gpu_is_read_in_full() {
    let Some(inventory) = inspect_fake() else { return };
    let gpu = &gpus(&inventory)[0];
    assert!(gpu.problems.is_empty(), "{:?}", gpu.problems);
    assert_eq!(gpu.uuid.as_deref(), Some("GPU-11111111-2222-3333-4444-555555555555"));
    assert_eq!(gpu.name.as_deref(), Some("NVIDIA B200"));
    assert_eq!(gpu.serial.as_deref(), Some("1654925000001"));
    assert_eq!(gpu.board_part_number.as_deref(), Some("692-2G525-0200-000"));
    assert_eq!(gpu.vbios_version.as_deref(), Some("97.00.82.00.2F"));
    assert!(gpu.pci_address.is_some_and(|a| a == "0000:1b:00.0"), "{:?}", gpu.pci_address);
    assert_eq!(gpu.memory_total_bytes, Some(192_265_846_784));
    let pcie = gpu.pcie.as_ref().expect("pcie");
    assert_eq!((pcie.current_generation, pcie.max_generation), (Some(5), Some(5)));
    assert_eq!((pcie.current_width, pcie.max_width, pcie.replay_counter), (Some(16), Some(16), Some(7)));
    assert_eq!(gpu.power_limit_watts, Some(1000.0));

    let ecc = gpu.ecc.as_ref().expect("ecc");
    assert!(ecc.enabled);
    assert_eq!(
        (ecc.volatile_corrected, ecc.volatile_uncorrected, ecc.aggregate_corrected, ecc.aggregate_uncorrected),
        (2, 0, 5, 1)
    );
    // The fake library does not export the retired-pages calls: an older
    // driver, so "not supported", silently.
    assert_eq!(gpu.retired_pages, None);
    let rows = gpu.remapped_rows.as_ref().expect("remapped rows");
    assert_eq!((rows.correctable, rows.uncorrectable, rows.pending, rows.failure), (1, 0, false, true));

    let fabric = gpu.fabric.as_ref().expect("fabric");
    assert_eq!(fabric.state, FabricState::Completed);
    assert_eq!(fabric.cluster_uuid, "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf");
    assert_eq!((fabric.status, fabric.clique_id, fabric.health_mask), (0, 32766, 0x155));

    // NVLink-C2C from field values 170-172 (per link) and 231-233.
    let c2c = gpu.c2c.as_ref().expect("c2c");
    let links: Vec<_> = c2c.links.iter().map(|l| (l.link, l.active, l.bandwidth_mbps)).collect();
    assert_eq!(links, [(0, true, Some(45000)), (1, false, None)]);
    assert_eq!((c2c.errors.interrupts, c2c.errors.replay, c2c.errors.replay_b2b), (Some(1), Some(2), Some(3)));

    let platform = gpu.platform.as_ref().expect("platform");
    assert_eq!(platform.chassis_serial.as_deref(), Some("1821724000123"));
    assert_eq!(
        (platform.slot_number, platform.tray_index, platform.host_id, platform.peer_type, platform.module_id),
        (3, 2, 1, 2, 4)
    );
}

#[test]
fn nvlinks_follow_the_link_count_and_skip_far_ends_of_down_links() {
    let Some(inventory) = inspect_fake() else { return };
    let links = gpus(&inventory)[0].nvlinks.as_ref().expect("nvlinks");
    assert_eq!(links.iter().map(|l| l.link).collect::<Vec<_>>(), (0..18).collect::<Vec<_>>());
    let up = &links[5];
    assert!(up.active);
    assert_eq!(up.version, Some(5), "nvmlNvlinkVersion_t 7 is NVLink 5");
    assert!(up.remote_pci_address.is_some_and(|a| a == "0000:06:00.0"), "{:?}", up.remote_pci_address);
    assert_eq!(up.speed_mbps, Some(53125));
    assert_eq!(
        (up.errors.replay, up.errors.recovery, up.errors.crc_flit, up.errors.crc_data),
        (Some(5), Some(0), None, Some(1))
    );
    let down = &links[3];
    assert!(!down.active);
    assert_eq!((down.remote_pci_address, down.speed_mbps), (None, None));
    assert_eq!(down.errors.replay, Some(3), "counters are still read on a down link");
}

#[test]
fn an_older_driver_and_failing_queries_are_told_apart() {
    let Some(inventory) = inspect_fake() else { return };
    let gpu = &gpus(&inventory)[1];
    assert!(gpu.pci_address.is_some_and(|a| a == "0000:3d:00.0"), "{:?}", gpu.pci_address);

    // Failures other than "not supported" are problems naming the call and GPU.
    let paths = problem_paths(gpu);
    assert!(paths.contains(&"nvmlDeviceGetSerial"), "{paths:?}");
    assert!(paths.contains(&"nvmlDeviceGetRemappedRows"), "{paths:?}");
    assert!(paths.contains(&"nvmlDeviceGetNvLinkState(link 2)"), "{paths:?}");
    assert_eq!(paths.len(), 3, "{:?}", gpu.problems);
    assert!(gpu.problems.iter().all(|p| p.source == "nvml" && p.component.as_deref() == Some("gpu1")));
    let lost = gpu.problems.iter().find(|p| p.path == "nvmlDeviceGetRemappedRows").expect("remap problem");
    assert!(lost.message.contains("fell off the bus"), "{}", lost.message);
    assert_eq!(gpu.serial, None);
    assert_eq!(gpu.remapped_rows, None);

    // "Not supported" is an absent field and no problem.
    assert_eq!(gpu.pcie, None);
    assert_eq!(gpu.power_limit_watts, None);

    // No link-count field: links are probed until the GPU says "no such link";
    // link 2, whose state failed, is left out rather than shown as down.
    let links = gpu.nvlinks.as_ref().expect("probed nvlinks");
    assert_eq!(links.iter().map(|l| l.link).collect::<Vec<_>>(), [0, 1, 3]);
    assert!(links.iter().all(|l| l.active && l.version == Some(4)));

    // ECC off: the driver counts nothing, and the record says why.
    let ecc = gpu.ecc.as_ref().expect("ecc");
    assert!(!ecc.enabled);
    assert_eq!(ecc.volatile_uncorrected, 0);

    // Fabric v3 rejected, v2 accepted.
    let fabric = gpu.fabric.as_ref().expect("fabric from struct v2");
    assert_eq!(fabric.state, FabricState::InProgress);
    assert_eq!(fabric.health_mask, 0);

    // Platform v2 rejected, v1 accepted: no chassis serial, fields from v1's names.
    let platform = gpu.platform.as_ref().expect("platform from struct v1");
    assert_eq!(platform.chassis_serial, None);
    assert_eq!((platform.slot_number, platform.tray_index, platform.module_id), (7, 6, 1));
}

#[test]
fn a_gpu_that_cannot_be_opened_is_listed_with_why() {
    let Some(inventory) = inspect_fake() else { return };
    let gpu = &gpus(&inventory)[2];
    assert_eq!(gpu.pci_address, None);
    assert_eq!(gpu.uuid, None);
    assert_eq!(problem_paths(gpu), ["nvmlDeviceGetHandleByIndex_v2"]);
    assert!(gpu.problems[0].message.contains("fell off the bus"), "{}", gpu.problems[0].message);
}

#[test]
fn a_dump_of_the_live_answer_replays_identically() {
    let Some(inventory) = inspect_fake() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    write_dump(dir.path(), &inventory).expect("dump writes");
    assert_eq!(read_dump(dir.path()).expect("dump reads"), inventory);
    assert_eq!(SnapshotGpuSource::new(dir.path()).inspect(), inventory);
}
