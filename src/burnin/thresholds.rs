//! Burn-in thresholds per platform: `checks/burnin/<platform>.toml`, built into kiln.
//!
//! Every number carries the reason it is what it is (its source). A missing
//! limit is never a silent pass: the figure is reported and its rate check is
//! `skipped` with "no threshold" in the findings.

use serde::Deserialize;

use super::options::GemmDtype;

/// The tables kiln ships, by file name (without `.toml`).
pub const BUILTIN: &[(&str, &str)] = &[
    ("generic", include_str!("../../checks/burnin/generic.toml")),
    ("h100-sxm", include_str!("../../checks/burnin/h100-sxm.toml")),
    ("hgx-b200", include_str!("../../checks/burnin/hgx-b200.toml")),
    ("gb200-nvl72-tray", include_str!("../../checks/burnin/gb200-nvl72-tray.toml")),
];

/// The table used when no platform is named and none matches the GPUs.
pub const FALLBACK: &str = "generic";

#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    #[error("no burn-in threshold table named {name:?} (known: {known})")]
    Unknown { name: String, known: String },
    #[error("parsing burn-in thresholds {file}")]
    Parse {
        file: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("burn-in thresholds {file}: {field}: {problem}")]
    Invalid { file: String, field: String, problem: String },
}

/// One judged quantity: what a healthy part does, the lowest passing value,
/// and where both come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default)]
    pub expected: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GemmLimits {
    /// A GPU under this fraction of the node's best is an outlier.
    pub outlier_fraction: f64,
    #[serde(default)]
    pub bf16: Option<Limit>,
    #[serde(default)]
    pub fp32: Option<Limit>,
    #[serde(default)]
    pub fp64: Option<Limit>,
}

impl GemmLimits {
    pub fn for_dtype(&self, d: GemmDtype) -> Option<&Limit> {
        match d {
            GemmDtype::Bf16 => self.bf16.as_ref(),
            GemmDtype::Fp32 => self.fp32.as_ref(),
            GemmDtype::Fp64 => self.fp64.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemtestLimits {
    /// Fraction of free device memory the patterns must cover.
    pub min_coverage: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HbmLimits {
    #[serde(default)]
    pub copy_kernel: Option<Limit>,
    #[serde(default)]
    pub copy_engine: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostLinkLimits {
    #[serde(default)]
    pub h2d: Option<Limit>,
    #[serde(default)]
    pub d2h: Option<Limit>,
    /// Per-GPU rate while every GPU copies at once.
    #[serde(default)]
    pub h2d_together: Option<Limit>,
    #[serde(default)]
    pub d2h_together: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pLimits {
    /// One ordered GPU pair copying alone.
    #[serde(default)]
    pub pair: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerLimits {
    /// Board power a GPU should reach under the GEMM stress, watts.
    #[serde(default)]
    pub target_w: Option<f64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryLimits {
    /// NVLink error counter increments (replay, recovery, CRC) allowed per
    /// GPU over the run.
    pub nvlink_error_budget: u64,
    /// PCIe replays allowed per minute of run time per GPU.
    pub pcie_replays_per_minute: f64,
    pub reason: String,
}

/// One platform's burn-in table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurninThresholds {
    pub name: String,
    pub description: String,
    /// `vendor:device` PCI ids that select this table when no platform is named.
    #[serde(default)]
    pub pci_ids: Vec<String>,
    pub gemm: GemmLimits,
    pub memtest: MemtestLimits,
    #[serde(default)]
    pub hbm: HbmLimits,
    #[serde(default)]
    pub host_link: HostLinkLimits,
    #[serde(default)]
    pub p2p: P2pLimits,
    #[serde(default)]
    pub power: PowerLimits,
    pub telemetry: TelemetryLimits,
}

impl BurninThresholds {
    /// Parses and checks one table; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ThresholdError> {
        let t: BurninThresholds =
            toml::from_str(text).map_err(|e| ThresholdError::Parse { file: file.to_string(), source: Box::new(e) })?;
        t.validate(file)?;
        Ok(t)
    }

    fn validate(&self, file: &str) -> Result<(), ThresholdError> {
        let invalid = |field: &str, problem: &str| ThresholdError::Invalid {
            file: file.to_string(),
            field: field.to_string(),
            problem: problem.to_string(),
        };
        if !(0.0..=1.0).contains(&self.gemm.outlier_fraction) {
            return Err(invalid("gemm.outlier_fraction", "must be between 0 and 1"));
        }
        if !(0.0..=1.0).contains(&self.memtest.min_coverage) {
            return Err(invalid("memtest.min_coverage", "must be between 0 and 1"));
        }
        let limits: [(&str, Option<&Limit>); 10] = [
            ("gemm.bf16", self.gemm.bf16.as_ref()),
            ("gemm.fp32", self.gemm.fp32.as_ref()),
            ("gemm.fp64", self.gemm.fp64.as_ref()),
            ("hbm.copy_kernel", self.hbm.copy_kernel.as_ref()),
            ("hbm.copy_engine", self.hbm.copy_engine.as_ref()),
            ("host_link.h2d", self.host_link.h2d.as_ref()),
            ("host_link.d2h", self.host_link.d2h.as_ref()),
            ("host_link.h2d_together", self.host_link.h2d_together.as_ref()),
            ("host_link.d2h_together", self.host_link.d2h_together.as_ref()),
            ("p2p.pair", self.p2p.pair.as_ref()),
        ];
        for (field, limit) in limits {
            let Some(l) = limit else { continue };
            for v in [l.expected, l.min].into_iter().flatten() {
                if !v.is_finite() || v <= 0.0 {
                    return Err(invalid(field, "numbers must be positive"));
                }
            }
            if let (Some(e), Some(m)) = (l.expected, l.min) {
                if m > e {
                    return Err(invalid(field, "min is above expected"));
                }
            }
            if l.reason.trim().is_empty() {
                return Err(invalid(field, "every limit needs a reason"));
            }
        }
        Ok(())
    }

    /// The built-in table `name`.
    pub fn builtin(name: &str) -> Result<Self, ThresholdError> {
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => BurninThresholds::parse(&format!("checks/burnin/{n}.toml"), text),
            None => Err(ThresholdError::Unknown {
                name: name.to_string(),
                known: BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The built-in table whose `pci_ids` contain every GPU's id, if one does.
    pub fn detect(pci_ids: &[String]) -> Result<Option<Self>, ThresholdError> {
        if pci_ids.is_empty() {
            return Ok(None);
        }
        for (name, _) in BUILTIN {
            let t = BurninThresholds::builtin(name)?;
            if pci_ids.iter().all(|id| t.pci_ids.iter().any(|p| p.eq_ignore_ascii_case(id))) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_table_parses_and_names_itself() {
        for (name, _) in BUILTIN {
            let t = BurninThresholds::builtin(name).expect("builtin table parses");
            assert_eq!(&t.name, name, "table {name} must carry its own name");
        }
    }

    #[test]
    fn h100_table_carries_the_published_figures() {
        let t = BurninThresholds::builtin("h100-sxm").expect("h100");
        let bf16 = t.gemm.bf16.expect("bf16 limit");
        assert_eq!(bf16.expected, Some(795.0));
        assert!(bf16.reason.contains("795"));
        assert_eq!(t.host_link.h2d.expect("h2d").min, Some(48.0));
        assert_eq!(t.p2p.pair.expect("p2p").min, Some(335.0));
        assert_eq!(t.gemm.outlier_fraction, 0.9);
    }

    #[test]
    fn detection_matches_pci_ids_and_falls_back_to_none() {
        let t = BurninThresholds::detect(&["10de:2330".into(), "10de:2330".into()]).expect("detect");
        assert_eq!(t.map(|t| t.name), Some("h100-sxm".to_string()));
        let mixed = BurninThresholds::detect(&["10de:2330".into(), "10de:2901".into()]).expect("detect");
        assert!(mixed.is_none(), "a node of mixed GPUs matches no single table");
        assert!(BurninThresholds::detect(&[]).expect("detect").is_none());
    }

    #[test]
    fn unknown_names_and_bad_tables_are_clear_errors() {
        let e = BurninThresholds::builtin("h999").expect_err("unknown");
        assert!(e.to_string().contains("h100-sxm"), "{e}");
        let base = BUILTIN.iter().find(|(n, _)| *n == "generic").expect("generic").1;
        let typo = base.replace("outlier_fraction", "outlier_fractoin");
        let e = BurninThresholds::parse("x.toml", &typo).expect_err("typo");
        assert!(matches!(e, ThresholdError::Parse { .. }), "{e}");
        let high = base.replace("outlier_fraction = 0.9", "outlier_fraction = 9.0");
        let e = BurninThresholds::parse("x.toml", &high).expect_err("range");
        assert!(e.to_string().contains("gemm.outlier_fraction"), "{e}");
        let t = BUILTIN.iter().find(|(n, _)| *n == "h100-sxm").expect("h100").1;
        let inverted = t.replacen("min = 596.0", "min = 900.0", 1);
        let e = BurninThresholds::parse("x.toml", &inverted).expect_err("min above expected");
        assert!(e.to_string().contains("gemm.bf16"), "{e}");
    }
}
