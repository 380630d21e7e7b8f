//! Burn-in: GPU stress and bandwidth tests with telemetry, host stress, verdicts as findings, over
//! the node `hw` inspected and the telemetry of the same source.

pub mod collective;
pub mod cuda;
pub mod gemm;
pub mod hbm;
pub mod host;
pub mod host_link;
pub mod judge;
pub mod lock;
pub mod memtest;
pub mod nccl;
pub mod options;
pub mod p2p;
pub mod pattern;
pub mod phases;
pub mod placement;
pub mod rank_telemetry;
pub mod render;
pub mod report;
pub mod run;
pub mod sampling;
pub mod stress_ng;
pub mod thresholds;
pub mod xid;
