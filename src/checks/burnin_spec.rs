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

/// One bus-bandwidth limit of a collective, for a communicator of `gpus` GPUs (absent: any
/// size). Written `[[burnin.collective.all_reduce]]`, one entry per size, or as one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizedLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    pub reason: String,
}

impl SizedLimit {
    /// How findings name the figure: `the 72-GPU figure`, or `the figure for any GPU count`.
    pub fn figure(&self) -> String {
        match self.gpus {
            Some(n) => format!("the {n}-GPU figure"),
            None => "the figure for any GPU count".into(),
        }
    }
}

/// Which of an op's limits judges a communicator of some number of GPUs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Chosen<'a> {
    Limit(&'a SizedLimit),
    /// Every limit is for more GPUs than the communicator has; the smallest of them.
    TooFew {
        smallest: u32,
    },
    /// The spec has no limit for the op.
    NoLimit,
}

/// The entry with the largest `gpus` not above `gpus`; an entry without `gpus` when none is.
pub fn choose(entries: &[SizedLimit], gpus: u32) -> Chosen<'_> {
    let sized = entries.iter().filter(|e| e.gpus.is_some_and(|g| g <= gpus)).max_by_key(|e| e.gpus);
    if let Some(e) = sized.or_else(|| entries.iter().find(|e| e.gpus.is_none())) {
        return Chosen::Limit(e);
    }
    match entries.iter().filter_map(|e| e.gpus).min() {
        Some(smallest) => Chosen::TooFew { smallest },
        None => Chosen::NoLimit,
    }
}

/// An op's limits as written: one table (`[burnin.collective.all_reduce]`, the form specs had
/// first) or an array of tables, one per communicator size. Each form is read by serde's own
/// code for it, so a mistake in an entry is reported as serde reports it, with its field.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SizedLimit>, D::Error> {
    use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};

    struct OneOrMany;
    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<SizedLimit>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table (one limit) or an array of tables (one limit per GPU count)")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            SizedLimit::deserialize(MapAccessDeserializer::new(map)).map(|l| vec![l])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::<SizedLimit>::deserialize(SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(OneOrMany)
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
    /// Bus bandwidth, GB/s, at the largest size, by the GPUs in the communicator.
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub all_reduce: Vec<SizedLimit>,
    #[serde(default, deserialize_with = "one_or_many", skip_serializing_if = "Vec::is_empty")]
    pub all_gather: Vec<SizedLimit>,
}

impl CollectiveLimits {
    /// Every limit of `op`, as written.
    pub fn limits(&self, op: super::collective_op::Op) -> &[SizedLimit] {
        match op {
            super::collective_op::Op::AllReduce => &self.all_reduce,
            super::collective_op::Op::AllGather => &self.all_gather,
        }
    }

    /// The limit of `op` that judges a communicator of `gpus` GPUs (`choose`).
    pub fn limit(&self, op: super::collective_op::Op, gpus: u32) -> Chosen<'_> {
        choose(self.limits(op), gpus)
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
    fn limits(&self) -> [(&'static [&'static str], Option<&Limit>); 10] {
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
        check_limit(l.expected, l.min, &l.reason, &at, out);
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
        for (op, entries) in [("all_reduce", &c.all_reduce), ("all_gather", &c.all_gather)] {
            for (i, l) in entries.iter().enumerate() {
                let at = at.key(op).index(i);
                if l.gpus == Some(0) {
                    out.push((at.key("gpus"), "must be 1 or more".into()));
                }
                if entries[..i].iter().any(|e| e.gpus == l.gpus) {
                    let which = l.gpus.map(|g| format!("gpus = {g}")).unwrap_or_else(|| "no gpus".into());
                    out.push((at.key("gpus"), format!("a second entry with {which}: one limit per GPU count")));
                }
                check_limit(l.expected, l.min, &l.reason, &at, out);
            }
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

/// The checks every limit gets: positive numbers, `min` not above `expected`, a reason.
fn check_limit(
    expected: Option<f64>,
    min: Option<f64>,
    reason: &str,
    at: &FieldPath,
    out: &mut Vec<(FieldPath, String)>,
) {
    for (key, value) in [("expected", expected), ("min", min)] {
        if let Some(v) = value {
            if !v.is_finite() || v <= 0.0 {
                out.push((at.key(key), format!("{v} is not a positive number")));
            }
        }
    }
    if let (Some(e), Some(m)) = (expected, min) {
        if m > e {
            out.push((at.key("min"), format!("min {m} is above expected {e}")));
        }
    }
    if reason.trim().is_empty() {
        out.push((at.key("reason"), "every limit needs a reason".into()));
    }
}
