//! NVLinks of one GPU: how many it has, and each link's state, generation, far
//! end, speed and error counters.

use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Device;
use nvml_wrapper_sys::bindings::field_id::{NVML_FI_DEV_NVLINK_GET_SPEED, NVML_FI_DEV_NVLINK_LINK_COUNT};
use nvml_wrapper_sys::bindings::NVML_NVLINK_MAX_LINKS;

use super::raw::field_value;
use super::reads::Reads;
use crate::model::{NvLink, NvLinkErrors, PciAddress};

/// Reads every NVLink the GPU has. `None` when NVML reports no NVLink at all
/// (a PCIe card, a driver without NVLink support, a VM that hides links).
///
/// The link count comes from `NVML_FI_DEV_NVLINK_LINK_COUNT`. Drivers that do
/// not answer it get the links probed one by one up to `NVML_NVLINK_MAX_LINKS`;
/// a link number the GPU does not have answers `InvalidArg` or `NotSupported`
/// and is skipped.
pub fn read_nvlinks(device: &Device<'_>, reads: &mut Reads) -> Option<Vec<NvLink>> {
    let count = field_value(device, NVML_FI_DEV_NVLINK_LINK_COUNT, 0);
    let count = match reads.take("nvmlDeviceGetFieldValues(NVML_FI_DEV_NVLINK_LINK_COUNT)", count) {
        Some(value) => match value.as_u64() {
            Some(n) => Some(n),
            None => {
                reads.problem(
                    "nvmlDeviceGetFieldValues(NVML_FI_DEV_NVLINK_LINK_COUNT)",
                    format!("not a link count: {value:?}"),
                );
                None
            }
        },
        None => None,
    };
    let links: Vec<NvLink> = match count {
        // The count is trusted but clamped: a link number past the header's
        // maximum cannot be queried anyway.
        Some(n) if n > 0 => (0..n.min(u64::from(NVML_NVLINK_MAX_LINKS)) as u32)
            .filter_map(|link| read_link(device, link, reads))
            .collect(),
        _ => (0..NVML_NVLINK_MAX_LINKS).filter_map(|link| read_link(device, link, reads)).collect(),
    };
    if links.is_empty() {
        None
    } else {
        Some(links)
    }
}

/// Whether an error on a per-link call means "no such link here".
fn link_absent(error: &NvmlError) -> bool {
    matches!(error, NvmlError::InvalidArg) || super::reads::is_unsupported(error)
}

/// One link, or `None` when the GPU does not have it (or its state could not
/// be read, which is recorded: a link we cannot see is not a link that is down).
fn read_link(device: &Device<'_>, link: u32, reads: &mut Reads) -> Option<NvLink> {
    let wrapper = device.link_wrapper_for(link);
    let active = match wrapper.is_active() {
        Ok(active) => active,
        Err(error) if link_absent(&error) => return None,
        Err(error) => {
            reads.take::<()>(&format!("nvmlDeviceGetNvLinkState(link {link})"), Err(error));
            return None;
        }
    };
    let version = reads.take(&format!("nvmlDeviceGetNvLinkVersion(link {link})"), wrapper.version()).and_then(|raw| {
        match nvlink_generation(raw) {
            Some(generation) => Some(generation),
            None => {
                reads.problem(
                    &format!("nvmlDeviceGetNvLinkVersion(link {link})"),
                    format!("unknown nvlink version value {raw}"),
                );
                None
            }
        }
    });
    // A link that is down has no far end and no speed; asking would only
    // produce errors that say nothing new.
    let (remote_pci_address, speed_mbps) = if active {
        let remote = reads
            .take(&format!("nvmlDeviceGetNvLinkRemotePciInfo_v2(link {link})"), wrapper.remote_pci_info())
            .and_then(|pci| match PciAddress::parse(&pci.bus_id) {
                Ok(address) => Some(address),
                Err(_) => {
                    reads.problem(
                        &format!("nvmlDeviceGetNvLinkRemotePciInfo_v2(link {link})"),
                        format!("not a pci address: {:?}", pci.bus_id),
                    );
                    None
                }
            });
        let call = format!("nvmlDeviceGetFieldValues(NVML_FI_DEV_NVLINK_GET_SPEED, link {link})");
        let speed = reads.take(&call, field_value(device, NVML_FI_DEV_NVLINK_GET_SPEED, link)).and_then(|value| {
            let speed = value.as_u64();
            if speed.is_none() {
                reads.problem(&call, format!("not a speed: {value:?}"));
            }
            speed
        });
        (remote, speed)
    } else {
        (None, None)
    };
    let mut counter = |counter: ErrorCounter, name: &str| {
        reads.take(&format!("nvmlDeviceGetNvLinkErrorCounter({name}, link {link})"), wrapper.error_counter(counter))
    };
    let errors = NvLinkErrors {
        replay: counter(ErrorCounter::DlReplay, "NVML_NVLINK_ERROR_DL_REPLAY"),
        recovery: counter(ErrorCounter::DlRecovery, "NVML_NVLINK_ERROR_DL_RECOVERY"),
        crc_flit: counter(ErrorCounter::DlCrcFlit, "NVML_NVLINK_ERROR_DL_CRC_FLIT"),
        crc_data: counter(ErrorCounter::DlCrcData, "NVML_NVLINK_ERROR_DL_CRC_DATA"),
    };
    Some(NvLink { link, active, version, remote_pci_address, speed_mbps, errors })
}

/// `nvmlDeviceGetNvLinkVersion` answers with an `nvmlNvlinkVersion_t` value,
/// not the generation: 1 = 1.0, 2 = 2.0, 3 = 2.2, 4 = 3.0, 5 = 3.1, 6 = 4.0
/// (Hopper), 7 = 5.0 (Blackwell). The model keeps the generation (major number).
pub fn nvlink_generation(raw: u32) -> Option<u32> {
    match raw {
        1 => Some(1),
        2 | 3 => Some(2),
        4 | 5 => Some(3),
        6 => Some(4),
        7 => Some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_enum_maps_to_generation() {
        assert_eq!(nvlink_generation(6), Some(4), "Hopper is NVLink 4");
        assert_eq!(nvlink_generation(7), Some(5), "Blackwell is NVLink 5");
        assert_eq!(nvlink_generation(5), Some(3), "NVLink 3.1 (Ampere) is generation 3");
        assert_eq!(nvlink_generation(0), None, "0 is NVML_NVLINK_VERSION_INVALID");
        assert_eq!(nvlink_generation(8), None, "an unknown future value is not guessed");
    }

    #[test]
    fn absent_links_answer_invalid_arg_or_not_supported() {
        assert!(link_absent(&NvmlError::InvalidArg));
        assert!(link_absent(&NvmlError::NotSupported));
        assert!(!link_absent(&NvmlError::GpuLost));
        assert!(!link_absent(&NvmlError::Unknown));
    }
}
