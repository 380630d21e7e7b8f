//! NVML queries nvml-wrapper 0.13 does not wrap: fabric state and remapped rows, through the raw library.

use nvml_wrapper::Device;
use nvml_wrapper::Nvml;
use nvml_wrapper_sys::bindings::{nvmlGpuFabricInfo_v3_t, nvmlReturn_t};

use crate::model::{FabricInfo, FabricState};

/// `nvmlGpuFabricInfo_v3_t` version word: struct size (40) | (3 << 24).
const FABRIC_INFO_V3: u32 = (std::mem::size_of::<nvmlGpuFabricInfo_v3_t>() as u32) | (3 << 24);
const NVML_SUCCESS: nvmlReturn_t = 0;
const NVML_ERROR_NOT_SUPPORTED: nvmlReturn_t = 3;
const NVML_ERROR_FUNCTION_NOT_FOUND: nvmlReturn_t = 13;

/// What a raw query returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<T> {
    Value(T),
    /// The GPU or driver does not have this (older GPU, older driver).
    NotSupported,
    /// The call failed with this NVML return code.
    Failed(u32),
}

/// The GPU's NVLink fabric registration (`nvmlDeviceGetGpuFabricInfoV`).
pub fn fabric_info(nvml: &Nvml, dev: &Device) -> Raw<FabricInfo> {
    let Ok(f) = nvml.lib().nvmlDeviceGetGpuFabricInfoV.as_ref() else {
        return Raw::NotSupported;
    };
    // SAFETY: a zeroed plain-C struct with its version word set, and a valid
    // device handle from the same library instance.
    let (ret, info) = unsafe {
        let mut info: nvmlGpuFabricInfo_v3_t = std::mem::zeroed();
        info.version = FABRIC_INFO_V3;
        (f(dev.handle(), &mut info), info)
    };
    match ret {
        NVML_SUCCESS => {
            let u = info.clusterUuid;
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                hex::encode(&u[0..4]),
                hex::encode(&u[4..6]),
                hex::encode(&u[6..8]),
                hex::encode(&u[8..10]),
                hex::encode(&u[10..16])
            );
            Raw::Value(FabricInfo {
                state: FabricState::from_raw(info.state),
                status: info.status,
                cluster_uuid: uuid,
                clique_id: info.cliqueId,
                health_mask: info.healthMask,
            })
        }
        NVML_ERROR_NOT_SUPPORTED | NVML_ERROR_FUNCTION_NOT_FOUND => Raw::NotSupported,
        other => Raw::Failed(other),
    }
}

/// Remapped rows: (correctable, uncorrectable, pending, failure).
pub fn remapped_rows(nvml: &Nvml, dev: &Device) -> Raw<(u32, u32, bool, bool)> {
    let Ok(f) = nvml.lib().nvmlDeviceGetRemappedRows.as_ref() else {
        return Raw::NotSupported;
    };
    let (mut corr, mut unc, mut pending, mut failure) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: four out-parameters and a valid device handle.
    let ret = unsafe { f(dev.handle(), &mut corr, &mut unc, &mut pending, &mut failure) };
    match ret {
        NVML_SUCCESS => Raw::Value((corr, unc, pending != 0, failure != 0)),
        NVML_ERROR_NOT_SUPPORTED | NVML_ERROR_FUNCTION_NOT_FOUND => Raw::NotSupported,
        other => Raw::Failed(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fabric_struct_version_matches_nvml_headers() {
        // nvml.h: nvmlGpuFabricInfo_v3 = NVML_STRUCT_VERSION(GpuFabricInfo, 3) = sizeof | 3 << 24.
        assert_eq!(FABRIC_INFO_V3, 0x0300_0028);
    }
}
