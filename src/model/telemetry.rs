//! Telemetry readings of one GPU during a burn-in: health counters, periodic samples, Xid events.
//!
//! Plain data, as the live NVML reader and a capture's recorded telemetry
//! (`kiln/telemetry.json`) both give it. An `Option` that is `None` means
//! "not read / not supported", never "healthy".

use serde::{Deserialize, Serialize};

/// NVML counters read once before and once after the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthCounters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_volatile_uncorrected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_volatile_corrected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap_pending: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remap_failure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_replay: Option<u64>,
    /// Sum over links of replay, recovery and CRC error counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_errors: Option<u64>,
    /// Links that counted (active links whose counters could be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_links: Option<u32>,
}

/// One telemetry sample of one GPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_clock_mhz: Option<u32>,
    /// NVML clocks-event (throttle) reason bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_reasons: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_volatile_corrected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecc_volatile_uncorrected: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie_replay: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvlink_errors: Option<u64>,
}

/// An Xid the driver reported during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XidEvent {
    pub at_unix_ms: i64,
    pub xid: u64,
}

/// Whether Xid events were watched during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Watch {
    Watched,
    NotSupported { reason: String },
    Failed { reason: String },
}
