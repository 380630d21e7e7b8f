//! The `[burnin]` section of a platform spec: the thresholds `kiln burnin` judges against.
//!
//! Every number carries the reason it is what it is (its source). A missing
//! limit is never a silent pass: the figure is reported and its rate check is
//! `skipped` with "no threshold" in the findings.

use serde::{Deserialize, Serialize};

use super::spec_error::FieldPath;

/// One judged quantity: what a healthy part does, the lowest passing value,
/// and where both come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemmLimits {
    /// A GPU under this fraction of the node's best is an outlier.
    pub outlier_fraction: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp32: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp64: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemtestLimits {
    /// Fraction of free device memory the patterns must cover.
    pub min_coverage: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbmLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_kernel: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_engine: Option<Limit>,
}

impl HbmLimits {
    fn is_empty(&self) -> bool {
        self.copy_kernel.is_none() && self.copy_engine.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostLinkLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2d: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d2h: Option<Limit>,
    /// Per-GPU rate while every GPU copies at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2d_together: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d2h_together: Option<Limit>,
}

impl HostLinkLimits {
    fn is_empty(&self) -> bool {
        self.h2d.is_none() && self.d2h.is_none() && self.h2d_together.is_none() && self.d2h_together.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pLimits {
    /// One ordered GPU pair copying alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<Limit>,
}

impl P2pLimits {
    fn is_empty(&self) -> bool {
        self.pair.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerLimits {
    /// Board power a GPU should reach under the GEMM stress, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_w: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PowerLimits {
    fn is_empty(&self) -> bool {
        self.target_w.is_none() && self.reason.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryLimits {
    /// NVLink error counter increments (replay, recovery, CRC) allowed per
    /// GPU over the run.
    pub nvlink_error_budget: u64,
    /// PCIe replays allowed per minute of run time per GPU.
    pub pcie_replays_per_minute: f64,
    pub reason: String,
}

/// The collective burn-in (`[burnin.collective]`): NCCL all-reduce and all-gather across every
/// GPU of an NVLink domain, or of one node; the message sizes and what the largest must reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectiveLimits {
    /// Message sizes, MiB (nccl-tests' size: the all-reduce buffer, the all-gather output).
    pub sizes_mib: Vec<u64>,
    /// Timed iterations per size, after `warmup` untimed ones.
    pub iterations: u32,
    pub warmup: u32,
    /// A tray whose own bus bandwidth is under this fraction of the trays' median is an outlier.
    pub outlier_fraction: f64,
    /// Bus bandwidth, GB/s, at the largest size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_reduce: Option<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_gather: Option<Limit>,
}

impl CollectiveLimits {
    pub fn limit(&self, op: crate::burnin::collective::Op) -> Option<&Limit> {
        match op {
            crate::burnin::collective::Op::AllReduce => self.all_reduce.as_ref(),
            crate::burnin::collective::Op::AllGather => self.all_gather.as_ref(),
        }
    }

    /// The sizes in bytes.
    pub fn sizes(&self) -> Vec<u64> {
        self.sizes_mib.iter().map(|m| m.saturating_mul(1 << 20)).collect()
    }
}

/// A platform's burn-in thresholds (`[burnin]` of its spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurninSpec {
    pub gemm: GemmLimits,
    pub memtest: MemtestLimits,
    #[serde(default, skip_serializing_if = "HbmLimits::is_empty")]
    pub hbm: HbmLimits,
    #[serde(default, skip_serializing_if = "HostLinkLimits::is_empty")]
    pub host_link: HostLinkLimits,
    #[serde(default, skip_serializing_if = "P2pLimits::is_empty")]
    pub p2p: P2pLimits,
    #[serde(default, skip_serializing_if = "PowerLimits::is_empty")]
    pub power: PowerLimits,
    pub telemetry: TelemetryLimits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<CollectiveLimits>,
}

impl BurninSpec {
    /// Every rate limit, by its field path under `[burnin]`.
    fn limits(&self) -> [(&'static [&'static str], Option<&Limit>); 12] {
        [
            (&["gemm", "bf16"], self.gemm.bf16.as_ref()),
            (&["gemm", "fp32"], self.gemm.fp32.as_ref()),
            (&["gemm", "fp64"], self.gemm.fp64.as_ref()),
            (&["hbm", "copy_kernel"], self.hbm.copy_kernel.as_ref()),
            (&["hbm", "copy_engine"], self.hbm.copy_engine.as_ref()),
            (&["host_link", "h2d"], self.host_link.h2d.as_ref()),
            (&["host_link", "d2h"], self.host_link.d2h.as_ref()),
            (&["host_link", "h2d_together"], self.host_link.h2d_together.as_ref()),
            (&["host_link", "d2h_together"], self.host_link.d2h_together.as_ref()),
            (&["p2p", "pair"], self.p2p.pair.as_ref()),
            (&["collective", "all_reduce"], self.collective.as_ref().and_then(|c| c.all_reduce.as_ref())),
            (&["collective", "all_gather"], self.collective.as_ref().and_then(|c| c.all_gather.as_ref())),
        ]
    }
}

/// What serde cannot check, each problem with the field it is about
/// (`path` is the section's own path, `burnin`).
pub fn check(spec: &BurninSpec, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    let fraction = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
    if !fraction(spec.gemm.outlier_fraction) {
        out.push((path.key("gemm").key("outlier_fraction"), "must be between 0 and 1".into()));
    }
    if !fraction(spec.memtest.min_coverage) {
        out.push((path.key("memtest").key("min_coverage"), "must be between 0 and 1".into()));
    }
    for (keys, limit) in spec.limits() {
        let Some(l) = limit else { continue };
        let at = keys.iter().fold(path.clone(), |p, k| p.key(k));
        for (key, value) in [("expected", l.expected), ("min", l.min)] {
            if let Some(v) = value {
                if !v.is_finite() || v <= 0.0 {
                    out.push((at.key(key), format!("{v} is not a positive number")));
                }
            }
        }
        if let (Some(e), Some(m)) = (l.expected, l.min) {
            if m > e {
                out.push((at.key("min"), format!("min {m} is above expected {e}")));
            }
        }
        if l.reason.trim().is_empty() {
            out.push((at.key("reason"), "every limit needs a reason".into()));
        }
    }
    if let Some(w) = spec.power.target_w {
        if !w.is_finite() || w <= 0.0 {
            out.push((path.key("power").key("target_w"), format!("{w} is not a positive number")));
        }
    }
    if let Some(c) = &spec.collective {
        let at = path.key("collective");
        if c.sizes_mib.is_empty() || c.sizes_mib.iter().any(|m| *m == 0 || *m > 64 * 1024) {
            out.push((at.key("sizes_mib"), "needs at least one size, each 1 to 65536 MiB".into()));
        }
        if c.iterations == 0 || c.iterations > 10_000 {
            out.push((at.key("iterations"), "must be 1 to 10000".into()));
        }
        if c.warmup > 1000 {
            out.push((at.key("warmup"), "must be 0 to 1000".into()));
        }
        if !fraction(c.outlier_fraction) {
            out.push((at.key("outlier_fraction"), "must be between 0 and 1".into()));
        }
    }
    let t = &spec.telemetry;
    if !t.pcie_replays_per_minute.is_finite() || t.pcie_replays_per_minute < 0.0 {
        out.push((path.key("telemetry").key("pcie_replays_per_minute"), "must be 0 or more".into()));
    }
    if t.reason.trim().is_empty() {
        out.push((path.key("telemetry").key("reason"), "the budgets need a reason".into()));
    }
}
