//! `BurninView`: what the rack report shows of a node's latest burn-in, as plain data.
//!
//! The burn-in tables (results, telemetry) are written by `kiln burnin` and
//! read back by `Inventory::latest_burnin`; `load_burnin_view` maps that
//! record onto the view. A node with no burn-in gets an empty view and the
//! report says "no burn-in recorded". The renderers take any `BurninView`,
//! so they are also tested on synthetic data.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::checks::Verdict;
use crate::inventory::{BurninRecord, Inventory, InventoryError, NodeRow, RunId};

/// One node's latest burn-in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BurninView {
    /// The burn-in run; `None` when the node has none.
    pub run: Option<RunId>,
    pub verdict: Option<Verdict>,
    /// A requested test did not run (no driver, no GPU, no stress-ng): the
    /// verdict covers only what ran and must not read as a full pass.
    #[serde(default)]
    pub incomplete: bool,
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
    /// The far GPU of a pairwise figure (`p2p`: from `gpu` to `peer_gpu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_gpu: Option<u32>,
    pub value: f64,
    pub unit: String,
    pub threshold: Option<f64>,
    /// Whether a higher value is better (bandwidth, throughput) or worse (temperature).
    pub higher_is_better: bool,
}

/// The latest burn-in of `node`; an empty view when it has none.
///
/// How the burn-in schema (migration 0002) maps onto the view: `run` and
/// `verdict` from the node's newest `burnin` run; `gpus[].samples` from
/// `burnin_samples` (`t_s` = `at_unix_ms` minus the run's start,
/// `temperature_c`, `power_w`), with `tflops` from the GEMM result's figure
/// `samples` spread evenly over that result's `started_unix_ms` ..
/// `+ seconds`; `p2p` from the `p2p` test's figures, row `gpu_index`, column
/// `peer_gpu_index`, threshold `min_value`; `host_links` from the
/// `host-link` test's `h2d` and `d2h` figures; `figures` from every figure,
/// `threshold` = `min_value`.
pub fn load_burnin_view(inventory: &Inventory, node: &NodeRow) -> Result<BurninView, InventoryError> {
    Ok(inventory.latest_burnin(node.id)?.map(|r| burnin_view(&r)).unwrap_or_default())
}

/// The view of one recorded burn-in run.
pub fn burnin_view(record: &BurninRecord) -> BurninView {
    BurninView {
        run: Some(record.run_id),
        verdict: Some(record.verdict),
        incomplete: record.incomplete,
        gpus: telemetry(record),
        p2p: p2p_matrix(record),
        host_links: host_links(record),
        figures: figures(record),
    }
}

/// Milliseconds since the run started, in seconds.
fn since_start(record: &BurninRecord, at_unix_ms: i64) -> f64 {
    (at_unix_ms - record.started_unix_ms) as f64 / 1000.0
}

/// Telemetry samples and GEMM throughput per GPU, by GPU, each by time.
///
/// A GEMM figure's samples are the medians of equal batches of its run, so
/// each is placed at the middle of its batch: sample `i` of `n` at
/// `start + (i + 0.5) * seconds / n`.
fn telemetry(record: &BurninRecord) -> Vec<GpuTelemetry> {
    let mut gpus: Vec<GpuTelemetry> = Vec::new();
    let mut push = |gpu: u32, sample: TelemetrySample| match gpus.iter_mut().find(|g| g.gpu == gpu) {
        Some(g) => g.samples.push(sample),
        None => gpus.push(GpuTelemetry { gpu, samples: vec![sample] }),
    };
    for s in &record.samples {
        push(
            s.gpu_index,
            TelemetrySample {
                t_s: since_start(record, s.at_unix_ms),
                tflops: None,
                temperature_c: s.temperature_c.map(|t| t as f64),
                power_w: s.power_w,
            },
        );
    }
    for r in record.results.iter().filter(|r| r.test == "gemm") {
        let Some(gpu) = r.gpu_index else { continue };
        let Some(f) = r.figures.iter().find(|f| f.name == "tflops") else { continue };
        let n = f.samples.len() as f64;
        for (i, v) in f.samples.iter().enumerate() {
            let at_ms = r.started_unix_ms as f64 + (i as f64 + 0.5) * r.seconds * 1000.0 / n;
            let t_s = (at_ms - record.started_unix_ms as f64) / 1000.0;
            push(gpu, TelemetrySample { t_s, tflops: Some(*v), ..Default::default() });
        }
    }
    gpus.sort_by_key(|g| g.gpu);
    for g in &mut gpus {
        g.samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    }
    gpus
}

/// The GPU to GPU matrix over every GPU the p2p test ran from or to;
/// `None` when it measured no pair.
fn p2p_matrix(record: &BurninRecord) -> Option<P2pMatrix> {
    let pairs: Vec<(u32, u32, f64, Option<f64>)> = record
        .results
        .iter()
        .filter(|r| r.test == "p2p")
        .filter_map(|r| r.gpu_index.map(|g| (g, r)))
        .flat_map(|(g, r)| {
            r.figures
                .iter()
                .filter(|f| f.name == "p2p")
                .filter_map(move |f| f.peer_gpu_index.map(|peer| (g, peer, f.value, f.min_value)))
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    // GPUs whose p2p test ran but measured nothing keep their (empty) row.
    let from = record.results.iter().filter(|r| r.test == "p2p").filter_map(|r| r.gpu_index);
    let gpus: Vec<u32> = from.chain(pairs.iter().map(|p| p.1)).collect::<BTreeSet<u32>>().into_iter().collect();
    let at = |g: u32| gpus.iter().position(|x| *x == g);
    let mut gbps = vec![vec![None; gpus.len()]; gpus.len()];
    for &(from, to, value, _) in &pairs {
        if let (Some(i), Some(j)) = (at(from), at(to)) {
            if i != j {
                gbps[i][j] = Some(value);
            }
        }
    }
    let threshold_gbps = pairs.iter().find_map(|p| p.3);
    Some(P2pMatrix { gpus, gbps, threshold_gbps })
}

/// Host link bars: each GPU's `h2d` then `d2h`, measured alone.
fn host_links(record: &BurninRecord) -> Vec<HostLink> {
    let mut links: Vec<HostLink> = Vec::new();
    for r in record.results.iter().filter(|r| r.test == "host-link") {
        let Some(gpu) = r.gpu_index else { continue };
        for direction in ["h2d", "d2h"] {
            if let Some(f) = r.figures.iter().find(|f| f.name == direction) {
                links.push(HostLink {
                    gpu,
                    direction: direction.to_string(),
                    gbps: f.value,
                    threshold_gbps: f.min_value,
                });
            }
        }
    }
    links.sort_by_key(|l| (l.gpu, l.direction != "h2d"));
    links
}

/// The stable name of a figure across tests: the test, then the figure
/// (`gemm_tflops`, `host_link_h2d`), or the test alone when the figure is
/// named after it (`p2p`).
pub fn figure_name(test: &str, figure: &str) -> String {
    let test = test.replace('-', "_");
    if figure == test {
        test
    } else {
        format!("{test}_{figure}")
    }
}

/// Whether a figure counts wrong values found (GEMM `mismatches`, memtest
/// `errors`): any but zero fails the burn-in's data check.
pub fn counts_wrong_data(figure: &str) -> bool {
    matches!(figure, "mismatches" | "errors")
}

/// Counts of wrong data are better low; every other figure (rates,
/// coverage, power reached) better high.
fn higher_is_better(figure: &str) -> bool {
    !counts_wrong_data(figure)
}

fn figures(record: &BurninRecord) -> Vec<BurninFigure> {
    record
        .results
        .iter()
        .flat_map(|r| {
            r.figures.iter().map(move |f| BurninFigure {
                name: figure_name(&r.test, &f.name),
                gpu: r.gpu_index,
                peer_gpu: f.peer_gpu_index,
                value: f.value,
                unit: f.unit.clone(),
                threshold: f.min_value,
                higher_is_better: higher_is_better(&f.name),
            })
        })
        .collect()
}
