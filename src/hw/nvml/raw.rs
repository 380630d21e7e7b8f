//! NVML calls that nvml-wrapper 0.13 does not wrap, made through the library
//! the wrapper loaded and with the wrapper's device handle: row remapping,
//! fabric info, platform info, and scoped field values.
//!
//! Each function returns the same `NvmlError` the wrapper would, so callers
//! sort the answers one way. A symbol missing from an older driver's library
//! comes back as `FailedToLoadSymbol`, which callers treat as "not supported".

use std::mem;

use nvml_wrapper::error::{nvml_sym, nvml_try, NvmlError};
use nvml_wrapper::Device;
use nvml_wrapper_sys::bindings::{
    nvmlFieldValue_t, nvmlGpuFabricInfoV_t, nvmlGpuFabricInfo_t, nvmlGpuFabricInfo_v2_t, nvmlGpuFabricInfo_v3_t,
    nvmlPlatformInfo_t, nvmlPlatformInfo_v1_t, nvmlPlatformInfo_v2_t, nvmlReturn_enum_NVML_SUCCESS as NVML_SUCCESS,
    nvmlReturn_t, nvmlValueType_enum_NVML_VALUE_TYPE_DOUBLE as VALUE_DOUBLE,
    nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_INT as VALUE_SIGNED_INT,
    nvmlValueType_enum_NVML_VALUE_TYPE_SIGNED_LONG_LONG as VALUE_SIGNED_LONG_LONG,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT as VALUE_UNSIGNED_INT,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG as VALUE_UNSIGNED_LONG,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG as VALUE_UNSIGNED_LONG_LONG,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_SHORT as VALUE_UNSIGNED_SHORT,
};

use super::format::{fixed_text, struct_version, uuid_from_bytes};
use super::reads::ARGUMENT_VERSION_MISMATCH;
use crate::model::{FabricInfo, FabricState, PlatformInfo, RemappedRows};

/// `nvmlGpuFabricInfo_v2`, computed from the struct as the header does.
pub const FABRIC_INFO_V2: u32 = struct_version(mem::size_of::<nvmlGpuFabricInfo_v2_t>(), 2);
/// `nvmlGpuFabricInfo_v3`, computed from the struct as the header does.
pub const FABRIC_INFO_V3: u32 = struct_version(mem::size_of::<nvmlGpuFabricInfo_v3_t>(), 3);
/// `nvmlPlatformInfo_v1`.
pub const PLATFORM_INFO_V1: u32 = struct_version(mem::size_of::<nvmlPlatformInfo_v1_t>(), 1);
/// `nvmlPlatformInfo_v2`.
pub const PLATFORM_INFO_V2: u32 = struct_version(mem::size_of::<nvmlPlatformInfo_v2_t>(), 2);

// The header's own values (nvml.h from CUDA 12.x/13.x). If the bindings' struct
// layouts ever drift from the header, the build stops here instead of the
// driver rejecting every call at run time.
const _: () = assert!(FABRIC_INFO_V2 == 0x0200_0024);
const _: () = assert!(FABRIC_INFO_V3 == 0x0300_0028);
const _: () = assert!(PLATFORM_INFO_V1 == 0x0100_002c);
const _: () = assert!(PLATFORM_INFO_V2 == 0x0200_002c);

/// The raw device handle. Valid for as long as `device` (and so NVML) lives.
fn handle(device: &Device<'_>) -> nvml_wrapper_sys::bindings::nvmlDevice_t {
    // SAFETY: reading the handle is harmless; it is only passed back to NVML
    // while `device` borrows the initialized library.
    unsafe { device.handle() }
}

/// `nvmlDeviceGetRemappedRows` (Ampere and later; `NotSupported` before).
pub fn remapped_rows(device: &Device<'_>) -> Result<RemappedRows, NvmlError> {
    let call = nvml_sym(device.nvml().lib().nvmlDeviceGetRemappedRows.as_ref())?;
    let (mut corr, mut unc, mut pending, mut failure) = (0u32, 0u32, 0u32, 0u32);
    // SAFETY: a live handle and four valid out-pointers, as the header asks.
    nvml_try(unsafe { call(handle(device), &mut corr, &mut unc, &mut pending, &mut failure) })?;
    Ok(RemappedRows {
        correctable: u64::from(corr),
        uncorrectable: u64::from(unc),
        pending: pending != 0,
        failure: failure != 0,
    })
}

/// Fabric registration: `nvmlDeviceGetGpuFabricInfoV` with the v3 struct; with
/// v2 when the driver rejects v3 (drivers before v3 existed); and the
/// unversioned `nvmlDeviceGetGpuFabricInfo` when the library has no `V` entry.
/// v1 has no health mask, so it reads as 0 (every health field "not supported").
pub fn fabric_info(device: &Device<'_>) -> Result<FabricInfo, NvmlError> {
    let lib = device.nvml().lib();
    if let Ok(call) = lib.nvmlDeviceGetGpuFabricInfoV.as_ref() {
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut v3: nvmlGpuFabricInfo_v3_t = unsafe { mem::zeroed() };
        v3.version = FABRIC_INFO_V3;
        // SAFETY: a live handle and a v3 struct whose version word says so.
        let code = unsafe { call(handle(device), &mut v3 as *mut nvmlGpuFabricInfoV_t) };
        if code != ARGUMENT_VERSION_MISMATCH {
            nvml_try(code)?;
            return Ok(fabric(v3.clusterUuid, v3.status, v3.cliqueId, v3.state, v3.healthMask));
        }
        // SAFETY: as above.
        let mut v2: nvmlGpuFabricInfo_v2_t = unsafe { mem::zeroed() };
        v2.version = FABRIC_INFO_V2;
        // SAFETY: the driver reads the version word first and writes no more
        // than the v2 size it names, so a v2 struct behind the pointer is enough.
        let code = unsafe { call(handle(device), (&mut v2 as *mut nvmlGpuFabricInfo_v2_t).cast()) };
        nvml_try(code)?;
        return Ok(fabric(v2.clusterUuid, v2.status, v2.cliqueId, v2.state, v2.healthMask));
    }
    let call = nvml_sym(lib.nvmlDeviceGetGpuFabricInfo.as_ref())?;
    // SAFETY: as above.
    let mut v1: nvmlGpuFabricInfo_t = unsafe { mem::zeroed() };
    // SAFETY: a live handle and the unversioned struct this entry point takes.
    nvml_try(unsafe { call(handle(device), &mut v1) })?;
    Ok(fabric(v1.clusterUuid, v1.status, v1.cliqueId, v1.state, 0))
}

fn fabric(uuid: [u8; 16], status: nvmlReturn_t, clique_id: u32, state: u8, health_mask: u32) -> FabricInfo {
    FabricInfo {
        state: FabricState::from_raw(state),
        status,
        cluster_uuid: uuid_from_bytes(&uuid),
        clique_id,
        health_mask,
    }
}

/// `nvmlDeviceGetPlatformInfo` (Blackwell and later): v2 (chassis serial), or
/// v1 when the driver predates v2. v1 has a rack GUID where v2 has the chassis
/// serial; the other fields are the same bytes under older names.
pub fn platform_info(device: &Device<'_>) -> Result<PlatformInfo, NvmlError> {
    let call = nvml_sym(device.nvml().lib().nvmlDeviceGetPlatformInfo.as_ref())?;
    // SAFETY: all-zero is a valid value of these plain C structs.
    let mut v2: nvmlPlatformInfo_v2_t = unsafe { mem::zeroed() };
    v2.version = PLATFORM_INFO_V2;
    // SAFETY: a live handle and a v2 struct whose version word says so.
    let code = unsafe { call(handle(device), &mut v2 as *mut nvmlPlatformInfo_t) };
    if code != ARGUMENT_VERSION_MISMATCH {
        nvml_try(code)?;
        return Ok(PlatformInfo {
            chassis_serial: fixed_text(&v2.chassisSerialNumber),
            slot_number: u32::from(v2.slotNumber),
            tray_index: u32::from(v2.trayIndex),
            host_id: u32::from(v2.hostId),
            peer_type: u32::from(v2.peerType),
            module_id: u32::from(v2.moduleId),
        });
    }
    // SAFETY: as above.
    let mut v1: nvmlPlatformInfo_v1_t = unsafe { mem::zeroed() };
    v1.version = PLATFORM_INFO_V1;
    // SAFETY: v1 and v2 have the same size (checked above), so the driver
    // writes within the struct either way.
    nvml_try(unsafe { call(handle(device), (&mut v1 as *mut nvmlPlatformInfo_v1_t).cast()) })?;
    Ok(PlatformInfo {
        chassis_serial: None,
        slot_number: u32::from(v1.chassisPhysicalSlotNumber),
        tray_index: u32::from(v1.computeSlotIndex),
        host_id: u32::from(v1.nodeIndex),
        peer_type: u32::from(v1.peerType),
        module_id: u32::from(v1.moduleId),
    })
}

/// A field value as NVML typed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue {
    Unsigned(u64),
    Signed(i64),
    Double(f64),
}

impl FieldValue {
    /// The value as a count, when it is a non-negative whole number.
    pub fn as_u64(self) -> Option<u64> {
        match self {
            FieldValue::Unsigned(v) => Some(v),
            FieldValue::Signed(v) => u64::try_from(v).ok(),
            FieldValue::Double(v) if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 => Some(v as u64),
            FieldValue::Double(_) => None,
        }
    }
}

/// One `nvmlDeviceGetFieldValues` entry with a scope (the link number for
/// per-link fields). The wrapper's `field_values_for` cannot set the scope.
/// Field ids 251-273 changed meaning in driver 580.82; the ids used here
/// are outside that range, so they need no translation.
pub fn field_value(device: &Device<'_>, field_id: u32, scope_id: u32) -> Result<FieldValue, NvmlError> {
    let call = nvml_sym(device.nvml().lib().nvmlDeviceGetFieldValues.as_ref())?;
    // SAFETY: all-zero is a valid value of this plain C struct (the union included).
    let mut value: nvmlFieldValue_t = unsafe { mem::zeroed() };
    value.fieldId = field_id;
    value.scopeId = scope_id;
    // SAFETY: a live handle and an array of exactly one entry.
    nvml_try(unsafe { call(handle(device), 1, &mut value) })?;
    if value.nvmlReturn != NVML_SUCCESS {
        return Err(NvmlError::from(value.nvmlReturn));
    }
    // SAFETY: `valueType` says which union member NVML wrote.
    let decoded = unsafe {
        match value.valueType {
            VALUE_DOUBLE => FieldValue::Double(value.value.dVal),
            VALUE_UNSIGNED_INT => FieldValue::Unsigned(u64::from(value.value.uiVal)),
            #[allow(clippy::unnecessary_cast)] // c_ulong is u32 on some targets.
            VALUE_UNSIGNED_LONG => FieldValue::Unsigned(value.value.ulVal as u64),
            VALUE_UNSIGNED_LONG_LONG => FieldValue::Unsigned(value.value.ullVal),
            VALUE_SIGNED_LONG_LONG => FieldValue::Signed(value.value.sllVal),
            VALUE_SIGNED_INT => FieldValue::Signed(i64::from(value.value.siVal)),
            VALUE_UNSIGNED_SHORT => FieldValue::Unsigned(u64::from(value.value.usVal)),
            other => return Err(NvmlError::UnexpectedVariant(other)),
        }
    };
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_versions_are_the_header_values() {
        assert_eq!(FABRIC_INFO_V3, 0x0300_0028);
        assert_eq!(FABRIC_INFO_V2, 0x0200_0024);
        assert_eq!(PLATFORM_INFO_V2, 0x0200_002c);
    }

    #[test]
    fn field_values_convert_to_counts_only_when_whole_and_non_negative() {
        assert_eq!(FieldValue::Unsigned(18).as_u64(), Some(18));
        assert_eq!(FieldValue::Signed(18).as_u64(), Some(18));
        assert_eq!(FieldValue::Signed(-1).as_u64(), None);
        assert_eq!(FieldValue::Double(26562.0).as_u64(), Some(26562));
        assert_eq!(FieldValue::Double(1.5).as_u64(), None);
        assert_eq!(FieldValue::Double(f64::NAN).as_u64(), None);
    }

    #[test]
    fn fabric_fields_map_to_the_model() {
        let mut uuid = [0u8; 16];
        uuid[0] = 0xab;
        uuid[15] = 0x01;
        let info = fabric(uuid, 0, 32766, 3, 0x0000_0155);
        assert_eq!(info.state, FabricState::Completed);
        assert_eq!(info.cluster_uuid, "ab000000-0000-0000-0000-000000000001");
        assert_eq!(info.clique_id, 32766);
        assert_eq!(info.health_mask, 0x155);
        assert_eq!(fabric([0; 16], 0, 0, 2, 0).state, FabricState::InProgress);
        assert_eq!(fabric([0; 16], 0, 0, 9, 0).state, FabricState::Unknown);
    }
}
