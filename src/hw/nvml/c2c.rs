//! NVLink-C2C of one GPU (Grace to GPU on GB200 and GH200): the link count,
//! each link's status and bandwidth, and the error counters, all NVML field
//! values.

use nvml_wrapper::Device;
use nvml_wrapper_sys::bindings::field_id::{
    NVML_FI_DEV_C2C_LINK_COUNT, NVML_FI_DEV_C2C_LINK_ERROR_INTR, NVML_FI_DEV_C2C_LINK_ERROR_REPLAY,
    NVML_FI_DEV_C2C_LINK_ERROR_REPLAY_B2B, NVML_FI_DEV_C2C_LINK_GET_MAX_BW, NVML_FI_DEV_C2C_LINK_GET_STATUS,
};

use super::raw::field_value;
use super::reads::Reads;
use crate::model::{C2c, C2cErrors, C2cLink};

/// More C2C links than any GPU has; a larger count is not trusted as a loop bound.
const MAX_C2C_LINKS: u64 = 64;

/// One field as a count; a value that is not one is a problem, not a zero.
fn count(device: &Device<'_>, reads: &mut Reads, id: u32, name: &str, scope: u32) -> Option<u64> {
    let call = format!("nvmlDeviceGetFieldValues({name}, scope {scope})");
    let value = reads.take(&call, field_value(device, id, scope))?;
    let n = value.as_u64();
    if n.is_none() {
        reads.problem(&call, format!("not a count: {value:?}"));
    }
    n
}

/// The GPU's C2C links, or `None` when NVML reports none (a PCIe GPU, or a
/// driver that does not know the fields: "not supported" is no complaint).
pub fn read_c2c(device: &Device<'_>, reads: &mut Reads) -> Option<C2c> {
    let n = count(device, reads, NVML_FI_DEV_C2C_LINK_COUNT, "NVML_FI_DEV_C2C_LINK_COUNT", 0)?;
    if n == 0 {
        return None;
    }
    if n > MAX_C2C_LINKS {
        reads.problem(
            "nvmlDeviceGetFieldValues(NVML_FI_DEV_C2C_LINK_COUNT, scope 0)",
            format!("{n} C2C links is more than any GPU has; reading the first {MAX_C2C_LINKS}"),
        );
    }
    let links = (0..n.min(MAX_C2C_LINKS) as u32)
        .map(|link| {
            let status = count(device, reads, NVML_FI_DEV_C2C_LINK_GET_STATUS, "NVML_FI_DEV_C2C_LINK_GET_STATUS", link);
            // 1 = active, 0 = inactive; an unreadable status is not an active link.
            let active = status == Some(1);
            let bandwidth_mbps = active
                .then(|| count(device, reads, NVML_FI_DEV_C2C_LINK_GET_MAX_BW, "NVML_FI_DEV_C2C_LINK_GET_MAX_BW", link))
                .flatten();
            C2cLink { link, active, bandwidth_mbps }
        })
        .collect();
    let errors = C2cErrors {
        interrupts: count(device, reads, NVML_FI_DEV_C2C_LINK_ERROR_INTR, "NVML_FI_DEV_C2C_LINK_ERROR_INTR", 0),
        replay: count(device, reads, NVML_FI_DEV_C2C_LINK_ERROR_REPLAY, "NVML_FI_DEV_C2C_LINK_ERROR_REPLAY", 0),
        replay_b2b: count(
            device,
            reads,
            NVML_FI_DEV_C2C_LINK_ERROR_REPLAY_B2B,
            "NVML_FI_DEV_C2C_LINK_ERROR_REPLAY_B2B",
            0,
        ),
    };
    Some(C2c { links, errors })
}
