//! Burn-in: GPU stress and bandwidth tests with NVML telemetry, host stress, verdicts as findings.

pub mod cuda;
pub mod host;
pub mod numa;
pub mod options;
pub mod pattern;
pub mod report;
pub mod stress_ng;
pub mod thresholds;
pub mod xid;
