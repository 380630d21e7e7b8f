//! Picking the platform spec for a node: by name, or by its match rules.
//!
//! Detection is a convenience for a technician at a console; pipelines should
//! pin `--platform`, because a node missing the very devices a spec matches
//! on would otherwise fall back to `generic` and be judged more leniently.

use super::platform::{MatchRules, Platform};
use super::spec_load::LoadedSpec;
use crate::model::Node;

/// How the platform was chosen; reported beside the findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Named with `--platform`.
    Named,
    /// Given as a file with `--spec`.
    File,
    /// Its match rules held on this node.
    Detected,
    /// No spec matched; the generic fallback was used.
    Fallback,
}

impl Selection {
    pub fn as_str(self) -> &'static str {
        match self {
            Selection::Named => "named",
            Selection::File => "file",
            Selection::Detected => "detected",
            Selection::Fallback => "fallback",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("unknown platform {name:?}; known: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("no platform spec matched this node and none is the fallback (`fallback = true`); known: {}", known.join(", "))]
    NoFallback { known: Vec<String> },
}

/// The chosen spec, how it was chosen, and the other specs whose rules also
/// held (a tie the spec authors should resolve).
#[derive(Debug, Clone)]
pub struct Detected<'a> {
    pub spec: &'a LoadedSpec,
    pub selection: Selection,
    pub also_matched: Vec<String>,
}

/// The spec named `name`, or an error listing the known names.
pub fn by_name<'a>(specs: &'a [LoadedSpec], name: &str) -> Result<&'a LoadedSpec, DetectError> {
    specs
        .iter()
        .find(|s| s.platform.name == name)
        .ok_or_else(|| DetectError::Unknown { name: name.to_string(), known: names(specs) })
}

/// The most specific spec whose match rules all hold; the spec marked
/// `fallback = true` when none does. Specs with no match rules are never detected. Ties go to the name
/// that sorts first, and the others are listed in `also_matched`.
pub fn detect<'a>(specs: &'a [LoadedSpec], node: &Node) -> Result<Detected<'a>, DetectError> {
    let mut matching: Vec<&LoadedSpec> =
        specs.iter().filter(|s| !s.platform.detect.is_empty() && rules_hold(&s.platform.detect, node)).collect();
    matching.sort_by(|a, b| {
        b.platform
            .detect
            .specificity()
            .cmp(&a.platform.detect.specificity())
            .then_with(|| a.platform.name.cmp(&b.platform.name))
    });
    if let Some(first) = matching.first() {
        let top = first.platform.detect.specificity();
        let also_matched = matching[1..]
            .iter()
            .filter(|s| s.platform.detect.specificity() == top)
            .map(|s| s.platform.name.clone())
            .collect();
        return Ok(Detected { spec: first, selection: Selection::Detected, also_matched });
    }
    let fallback =
        specs.iter().find(|s| s.platform.fallback).ok_or_else(|| DetectError::NoFallback { known: names(specs) })?;
    Ok(Detected { spec: fallback, selection: Selection::Fallback, also_matched: Vec::new() })
}

/// Whether every rule of a spec holds on the node.
pub fn matches(platform: &Platform, node: &Node) -> bool {
    rules_hold(&platform.detect, node)
}

fn rules_hold(rules: &MatchRules, node: &Node) -> bool {
    let arch_ok = rules.architecture.as_deref().is_none_or(|a| a == node.cpus.architecture);
    let pci_ok = rules.pci.iter().all(|p| {
        let n = node.pci.iter().filter(|d| p.ids.iter().any(|id| id.matches(d))).count();
        n >= p.min_count as usize
    });
    let dmi_ok = |wanted: &[String], have: &Option<String>| {
        wanted.is_empty()
            || have.as_deref().is_some_and(|h| {
                let h = h.to_lowercase();
                wanted.iter().any(|w| h.contains(&w.to_lowercase()))
            })
    };
    arch_ok
        && pci_ok
        && dmi_ok(&rules.dmi_product_name, &node.dmi.product_name)
        && dmi_ok(&rules.dmi_board_name, &node.dmi.board_name)
}

fn names(specs: &[LoadedSpec]) -> Vec<String> {
    let mut v: Vec<String> = specs.iter().map(|s| s.platform.name.clone()).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::spec_load::load_builtin;
    use crate::checks::testnode;

    fn detected(node: &Node) -> (String, Selection) {
        let specs = load_builtin().expect("built-in specs parse");
        let d = detect(&specs, node).expect("detects");
        (d.spec.platform.name.clone(), d.selection)
    }

    #[test]
    fn detects_each_shipped_platform() {
        assert_eq!(detected(&testnode::hgx_b200()), ("hgx-b200".into(), Selection::Detected));
        assert_eq!(detected(&testnode::hgx_h100()), ("h100-sxm".into(), Selection::Detected));
        assert_eq!(detected(&testnode::gb200_tray()), ("gb200-nvl72-tray".into(), Selection::Detected));
    }

    #[test]
    fn falls_back_to_generic() {
        assert_eq!(detected(&testnode::vm()), ("generic".into(), Selection::Fallback));
        // The wrong architecture is not a B200 HGX even with B200s on the bus.
        let mut node = testnode::hgx_b200();
        node.cpus.architecture = "aarch64".into();
        assert_eq!(detected(&node).0, "generic");
    }

    #[test]
    fn the_more_specific_spec_wins_and_dmi_narrows() {
        let mut specs = load_builtin().expect("built-in specs parse");
        let mut oem = specs.iter().find(|s| s.platform.name == "hgx-b200").expect("b200").clone();
        oem.platform.name = "oem-b200".into();
        oem.platform.detect.dmi_product_name = vec!["ACME G893".into()];
        specs.push(oem);
        let mut node = testnode::hgx_b200();
        assert_eq!(detect(&specs, &node).expect("detects").spec.platform.name, "hgx-b200");
        node.dmi.product_name = Some("acme g893-sd1".into());
        assert_eq!(detect(&specs, &node).expect("detects").spec.platform.name, "oem-b200");
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let specs = load_builtin().expect("built-in specs parse");
        let err = by_name(&specs, "dgx-a100").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown platform \"dgx-a100\"; known: gb200-nvl72-tray, generic, h100-sxm, hgx-b200"
        );
    }
}
