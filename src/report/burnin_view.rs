//! `BurninView`: what the rack report shows of a node's latest burn-in, as plain data.
//!
//! The burn-in tables (results, telemetry) are written by `kiln burnin`, which
//! is built beside this module; `load_burnin_view` is the one place that will
//! read them. Until it does, it returns an empty view and the report says
//! "no burn-in recorded". The renderers take any `BurninView`, so they are
//! tested on synthetic data.

use serde::{Deserialize, Serialize};

use crate::checks::Verdict;
use crate::inventory::{Inventory, InventoryError, NodeRow, RunId};

/// One node's latest burn-in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BurninView {
    /// The burn-in run; `None` when the node has none.
    pub run: Option<RunId>,
    pub verdict: Option<Verdict>,
    /// Samples over time per GPU (GEMM throughput, temperature, power).
    pub gpus: Vec<GpuTelemetry>,
    /// GPU to GPU bandwidth.
    pub p2p: Option<P2pMatrix>,
    /// Host to GPU and GPU to host bandwidth per GPU.
    pub host_links: Vec<HostLink>,
    /// Scalar results, judged against thresholds; compared across the rack.
    pub figures: Vec<BurninFigure>,
}

impl BurninView {
    pub fn is_empty(&self) -> bool {
        self.run.is_none()
            && self.gpus.is_empty()
            && self.p2p.is_none()
            && self.host_links.is_empty()
            && self.figures.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuTelemetry {
    pub gpu: u32,
    pub samples: Vec<TelemetrySample>,
}

/// One sample; a value not measured at that time is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetrySample {
    /// Seconds since the burn-in started.
    pub t_s: f64,
    pub tflops: Option<f64>,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
}

/// Bandwidth from GPU `gpus[i]` (row) to GPU `gpus[j]` (column), GB/s;
/// `None` on the diagonal and for pairs not measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct P2pMatrix {
    pub gpus: Vec<u32>,
    pub gbps: Vec<Vec<Option<f64>>>,
    /// A pair below this fails.
    pub threshold_gbps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostLink {
    pub gpu: u32,
    /// `h2d` or `d2h`.
    pub direction: String,
    pub gbps: f64,
    pub threshold_gbps: Option<f64>,
}

/// A scalar burn-in result: `gemm_tflops` of GPU 3, 781.2 TFLOP/s, fail below 700.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurninFigure {
    /// Stable name, snake_case: `gemm_tflops`, `hbm_gbps`, `p2p_min_gbps`.
    pub name: String,
    pub gpu: Option<u32>,
    pub value: f64,
    pub unit: String,
    pub threshold: Option<f64>,
    /// Whether a higher value is better (bandwidth, throughput) or worse (temperature).
    pub higher_is_better: bool,
}

/// The latest burn-in of `node`. Returns an empty view until the burn-in
/// tables exist in the inventory (see the module comment).
///
/// How the burn-in schema (migration 0002) maps onto the view, for whoever
/// connects it: `run` and `verdict` from the node's newest `burnin` run;
/// `gpus[].samples` from `burnin_samples` (`t_s` = `at_unix_ms` minus the
/// run's start, `temperature_c`, `power_w`), with `tflops` from the GEMM
/// result's figure `samples` spread evenly over that result's
/// `started_unix_ms` .. `+ seconds`; `p2p` from the `p2p` test's figures,
/// row `gpu_index`, column `peer_gpu_index`, threshold `min_value`;
/// `host_links` from the `host-link` test's `h2d` and `d2h` figures;
/// `figures` from every figure, `threshold` = `min_value`.
pub fn load_burnin_view(_inventory: &Inventory, _node: &NodeRow) -> Result<BurninView, InventoryError> {
    Ok(BurninView::default())
}
