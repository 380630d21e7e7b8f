//! Burn-in: GPU stress and bandwidth tests with NVML telemetry, host stress, verdicts as findings.

pub mod cuda;
pub mod gemm;
pub mod hbm;
pub mod host;
pub mod host_link;
pub mod judge;
pub mod lock;
pub mod memtest;
pub mod numa;
pub mod nvml_raw;
pub mod options;
pub mod p2p;
pub mod pattern;
pub mod render;
pub mod report;
pub mod run;
pub mod stress_ng;
pub mod telemetry;
pub mod thresholds;
pub mod xid;
