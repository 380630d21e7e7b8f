//! Reads every GPU NVML sees into the model, one query per field, never
//! stopping at a failed query: each failure is a `ReadProblem` on its GPU.

use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError, RetirementCause};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Device;
use tracing::debug;

use super::c2c::read_c2c;
use super::nvlink::read_nvlinks;
use super::raw;
use super::reads::{describe, Reads};
use super::session::NvmlSession;
use crate::model::{EccCounters, Gpu, GpuInventory, GpuPcieLink, PciAddress, ReadProblem, RetiredPages};

/// The whole inventory from an open session. A GPU that cannot even be opened
/// still appears, by index, with the reason among its problems, so a lost GPU
/// is reported rather than silently missing from the count.
pub fn inspect_session(session: &NvmlSession) -> GpuInventory {
    let nvml = session.nvml();
    let count = match session.device_count() {
        Ok(count) => count,
        Err(error) => {
            return GpuInventory::NotInspected { reason: format!("nvmlDeviceGetCount_v2 failed: {}", describe(&error)) }
        }
    };
    let mut gpus: Vec<Gpu> = (0..count).map(|index| read_gpu(session, index)).collect();

    // The driver version is system-wide, but the model has nowhere else to
    // keep a failure, so each GPU carries it.
    let driver_version = match nvml.sys_driver_version() {
        Ok(version) => version,
        Err(error) => {
            for gpu in &mut gpus {
                gpu.problems.push(ReadProblem::new("nvml", "nvmlSystemGetDriverVersion", describe(&error)));
            }
            String::new()
        }
    };
    // Optional in the model: "not read" is visible as absent.
    let nvml_version = nvml.sys_nvml_version().ok();
    let cuda_driver_version = nvml.sys_cuda_driver_version().ok().and_then(|v| u32::try_from(v).ok());
    GpuInventory::Inspected { driver_version, nvml_version, cuda_driver_version, gpus }
}

/// One GPU, every field NVML can give.
fn read_gpu(session: &NvmlSession, index: u32) -> Gpu {
    let mut reads = Reads::for_gpu(index);
    let device = match session.device_by_index(index) {
        Ok(device) => device,
        Err(error) => {
            // Even "not supported" is worth saying here: a GPU NVML counts but
            // will not open is not a GPU we inspected.
            reads.problem("nvmlDeviceGetHandleByIndex_v2", describe(&error));
            return empty_gpu(index, reads.into_problems());
        }
    };
    debug!(gpu = index, "reading gpu");
    let pci_address = read_pci_address(&device, &mut reads);
    let gpu = Gpu {
        index,
        uuid: reads.take("nvmlDeviceGetUUID", device.uuid()),
        name: reads.take("nvmlDeviceGetName", device.name()),
        serial: reads.take("nvmlDeviceGetSerial", device.serial()),
        board_part_number: reads.take("nvmlDeviceGetBoardPartNumber", device.board_part_number()),
        vbios_version: reads.take("nvmlDeviceGetVbiosVersion", device.vbios_version()),
        pci_address,
        memory_total_bytes: reads.take("nvmlDeviceGetMemoryInfo_v2", device.memory_info()).map(|m| m.total),
        pcie: read_pcie(&device, &mut reads),
        nvlinks: read_nvlinks(&device, &mut reads),
        ecc: read_ecc(&device, &mut reads),
        retired_pages: read_retired_pages(&device, &mut reads),
        remapped_rows: reads.take("nvmlDeviceGetRemappedRows", raw::remapped_rows(&device)),
        fabric: reads.take("nvmlDeviceGetGpuFabricInfoV", raw::fabric_info(&device)),
        platform: reads.take("nvmlDeviceGetPlatformInfo", raw::platform_info(&device)),
        c2c: read_c2c(&device, &mut reads),
        // The enforced limit is the one the GPU runs under (the lowest of the
        // management limit and any other active cap), in milliwatts.
        power_limit_watts: reads
            .take("nvmlDeviceGetEnforcedPowerLimit", device.enforced_power_limit())
            .map(|milliwatts| f64::from(milliwatts) / 1000.0),
        problems: Vec::new(),
    };
    Gpu { problems: reads.into_problems(), ..gpu }
}

/// A GPU NVML counts but could not open: only its index is known. There is no
/// PCI address because NVML never told us one.
fn empty_gpu(index: u32, problems: Vec<ReadProblem>) -> Gpu {
    Gpu {
        index,
        uuid: None,
        name: None,
        serial: None,
        board_part_number: None,
        vbios_version: None,
        pci_address: None,
        memory_total_bytes: None,
        pcie: None,
        nvlinks: None,
        ecc: None,
        retired_pages: None,
        remapped_rows: None,
        fabric: None,
        platform: None,
        c2c: None,
        power_limit_watts: None,
        problems,
    }
}

/// `nvmlDeviceGetPciInfo_v3`'s bus id (`00000000:1B:00.0`), parsed. `None` when
/// unreadable or not an address, with a problem saying which.
fn read_pci_address(device: &Device<'_>, reads: &mut Reads) -> Option<PciAddress> {
    let pci = reads.take("nvmlDeviceGetPciInfo_v3", device.pci_info())?;
    match PciAddress::parse(&pci.bus_id) {
        Ok(address) => Some(address),
        Err(_) => {
            reads.problem("nvmlDeviceGetPciInfo_v3", format!("not a pci address: {:?}", pci.bus_id));
            None
        }
    }
}

/// PCIe generation and width, current and maximum, and the replay counter.
/// The maximum is what this GPU and its slot can reach together.
fn read_pcie(device: &Device<'_>, reads: &mut Reads) -> Option<GpuPcieLink> {
    let link = GpuPcieLink {
        current_generation: reads.take("nvmlDeviceGetCurrPcieLinkGeneration", device.current_pcie_link_gen()),
        max_generation: reads.take("nvmlDeviceGetMaxPcieLinkGeneration", device.max_pcie_link_gen()),
        current_width: reads.take("nvmlDeviceGetCurrPcieLinkWidth", device.current_pcie_link_width()),
        max_width: reads.take("nvmlDeviceGetMaxPcieLinkWidth", device.max_pcie_link_width()),
        replay_counter: reads.take("nvmlDeviceGetPcieReplayCounter", device.pcie_replay_counter()).map(u64::from),
    };
    let empty = link.current_generation.is_none()
        && link.max_generation.is_none()
        && link.current_width.is_none()
        && link.max_width.is_none()
        && link.replay_counter.is_none();
    if empty {
        None
    } else {
        Some(link)
    }
}

/// ECC mode and the four total counters. When ECC is off the driver counts
/// nothing and answers "not supported" for the counters; they read as 0 then,
/// and `enabled: false` says why. When ECC is on, every counter must be read
/// or the whole record is absent: a partial record would look clean.
fn read_ecc(device: &Device<'_>, reads: &mut Reads) -> Option<EccCounters> {
    let enabled = reads.take("nvmlDeviceGetEccMode", device.is_ecc_enabled())?.currently_enabled;
    let mut total = |error: MemoryError, counter: EccCounter| -> Result<u64, ()> {
        match device.total_ecc_errors(error, counter) {
            Ok(count) => Ok(count),
            Err(NvmlError::NotSupported) if !enabled => Ok(0),
            Err(other) => {
                // Records the failure unless it is "not supported".
                reads.take::<u64>(&format!("nvmlDeviceGetTotalEccErrors({error:?}, {counter:?})"), Err(other));
                Err(())
            }
        }
    };
    // All four are read before any is judged, so every failure is recorded.
    let volatile_corrected = total(MemoryError::Corrected, EccCounter::Volatile);
    let volatile_uncorrected = total(MemoryError::Uncorrected, EccCounter::Volatile);
    let aggregate_corrected = total(MemoryError::Corrected, EccCounter::Aggregate);
    let aggregate_uncorrected = total(MemoryError::Uncorrected, EccCounter::Aggregate);
    Some(EccCounters {
        enabled,
        volatile_corrected: volatile_corrected.ok()?,
        volatile_uncorrected: volatile_uncorrected.ok()?,
        aggregate_corrected: aggregate_corrected.ok()?,
        aggregate_uncorrected: aggregate_uncorrected.ok()?,
    })
}

/// Dynamic page retirement (before Ampere; later GPUs remap rows instead and
/// answer "not supported" here).
fn read_retired_pages(device: &Device<'_>, reads: &mut Reads) -> Option<RetiredPages> {
    let single = reads.take(
        "nvmlDeviceGetRetiredPages_v2(NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)",
        device.retired_pages(RetirementCause::MultipleSingleBitEccErrors),
    )?;
    let double = reads.take(
        "nvmlDeviceGetRetiredPages_v2(NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)",
        device.retired_pages(RetirementCause::DoubleBitEccError),
    )?;
    let pending = reads.take("nvmlDeviceGetRetiredPagesPendingStatus", device.are_pages_pending_retired())?;
    Some(RetiredPages { single_bit: single.len() as u64, double_bit: double.len() as u64, pending })
}
