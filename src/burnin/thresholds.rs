//! The thresholds a burn-in is judged against: the `[burnin]` section of the platform spec
//! chosen for the inspected node, by the same selection `kiln validate` uses.

use super::options::GemmDtype;
use crate::checks::burnin_spec::{BurninSpec, GemmLimits, Limit};
use crate::checks::select::{self, SelectError, Selected, SpecChoice};
use crate::model::Node;

#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(
        "{}: platform {:?} has no [burnin] section, so a burn-in has nothing to judge against; add one \
         (see docs/platform-specs.md) or name another platform",
        origin,
        platform
    )]
    NoSection { platform: String, origin: String },
}

/// The chosen platform and its burn-in thresholds.
#[derive(Debug, Clone)]
pub struct Thresholds {
    pub selected: Selected,
    pub burnin: BurninSpec,
}

impl Thresholds {
    /// Chooses the spec for `node` and takes its `[burnin]` section.
    pub fn select(node: &Node, choice: &SpecChoice<'_>) -> Result<Self, ThresholdError> {
        let selected = select::select(node, choice)?;
        match selected.spec.platform.burnin.clone() {
            Some(burnin) => Ok(Thresholds { selected, burnin }),
            None => Err(ThresholdError::NoSection {
                platform: selected.spec.platform.name.clone(),
                origin: selected.spec.origin.display().to_string(),
            }),
        }
    }

    /// The platform's name, as findings and the report give it.
    pub fn platform(&self) -> &str {
        &self.selected.spec.platform.name
    }
}

/// The GEMM limit for one element type.
pub fn gemm_limit(g: &GemmLimits, d: GemmDtype) -> Option<&Limit> {
    match d {
        GemmDtype::Bf16 => g.bf16.as_ref(),
        GemmDtype::Fp32 => g.fp32.as_ref(),
        GemmDtype::Fp64 => g.fp64.as_ref(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::spec_load::load_builtin;
    use crate::checks::testnode;

    #[test]
    fn every_builtin_platform_has_burnin_thresholds() {
        for s in load_builtin().expect("built-in specs parse") {
            assert!(s.platform.burnin.is_some(), "{} has no [burnin]", s.platform.name);
        }
    }

    #[test]
    fn the_h100_spec_carries_the_published_figures() {
        let t = Thresholds::select(&testnode::hgx_h100(), &SpecChoice::default()).expect("selects");
        assert_eq!(t.platform(), "h100-sxm");
        let bf16 = gemm_limit(&t.burnin.gemm, GemmDtype::Bf16).expect("bf16 limit");
        assert_eq!(bf16.expected, Some(795.0));
        assert!(bf16.reason.contains("795"));
        assert_eq!(t.burnin.host_link.h2d.as_ref().and_then(|l| l.min), Some(48.0));
        assert_eq!(t.burnin.p2p.pair.as_ref().and_then(|l| l.min), Some(335.0));
        assert_eq!(t.burnin.gemm.outlier_fraction, 0.9);
    }

    #[test]
    fn thresholds_follow_detection_and_the_fallback() {
        let pick = |node: &Node| Thresholds::select(node, &SpecChoice::default()).expect("selects");
        assert_eq!(pick(&testnode::hgx_b200()).platform(), "hgx-b200");
        assert_eq!(pick(&testnode::gb200_tray()).platform(), "gb200-nvl72-tray");
        let vm = pick(&testnode::vm());
        assert_eq!((vm.platform(), vm.selected.selection.as_str()), ("generic", "fallback"));
        let named =
            Thresholds::select(&testnode::vm(), &SpecChoice { platform: Some("hgx-b200"), ..Default::default() });
        assert_eq!(named.expect("named").platform(), "hgx-b200");
    }

    #[test]
    fn a_spec_without_a_burnin_section_is_refused_with_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("site.toml");
        std::fs::write(&file, "name = \"site\"\ndescription = \"validation only\"\n[aer]\n").expect("write");
        let e = Thresholds::select(&testnode::vm(), &SpecChoice { spec_file: Some(&file), ..Default::default() })
            .expect_err("no [burnin]");
        let shown = e.to_string();
        assert!(shown.contains("site.toml") && shown.contains("[burnin]"), "{shown}");
    }
}
