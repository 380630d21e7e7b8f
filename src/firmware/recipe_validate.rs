//! Semantic checks of a parsed recipe: what TOML and serde cannot catch.

use std::collections::BTreeMap;

use super::recipe::{Component, InBand, Package, Recipe};
use super::version;
use crate::toml_error::FieldPath;

/// `@Redfish.OperationApplyTime` values (Redfish Settings schema, OperationApplyTime).
const APPLY_TIMES: [&str; 6] = [
    "Immediate",
    "OnReset",
    "AtMaintenanceWindowStart",
    "InMaintenanceWindowOnReset",
    "OnStartUpdateRequest",
    "OnTargetReset",
];

/// Every problem found, each with the field it is about. Empty when the recipe is sound.
pub fn check(recipe: &Recipe) -> Vec<(FieldPath, String)> {
    let mut out = Vec::new();
    let root = FieldPath::root();
    if !valid_name(&recipe.name) {
        out.push((root.key("name"), format!("{:?}: use lowercase letters, digits and '-'", recipe.name)));
    }
    for (key, value) in [("description", &recipe.description), ("source", &recipe.source)] {
        if value.trim().is_empty() {
            out.push((root.key(key), "must not be empty".into()));
        }
    }
    if let Some(p) = &recipe.platform {
        if !valid_name(p) {
            out.push((root.key("platform"), format!("{p:?} is not a platform spec name")));
        }
    }
    if recipe.components.is_empty() {
        out.push((root.key("components"), "a recipe pins at least one component".into()));
    }
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, c) in recipe.components.iter().enumerate() {
        let path = root.key("components").index(i);
        if let Some(first) = ids.insert(&c.id, i) {
            out.push((path.key("id"), format!("{:?} is already components[{first}]", c.id)));
        }
        check_component(recipe, c, &path, &mut out);
    }
    let mut package_ids: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in recipe.packages.iter().enumerate() {
        let path = root.key("packages").index(i);
        if let Some(first) = package_ids.insert(&p.id, i) {
            out.push((path.key("id"), format!("{:?} is already packages[{first}]", p.id)));
        }
        check_package(recipe, p, &path, &mut out);
    }
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && id.starts_with(|c: char| c.is_ascii_lowercase())
}

fn check_component(recipe: &Recipe, c: &Component, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    if !valid_id(&c.id) {
        out.push((
            path.key("id"),
            format!("{:?}: use lowercase letters, digits and '_', starting with a letter", c.id),
        ));
    }
    for (key, value) in [("name", &c.name), ("source", &c.source)] {
        if value.trim().is_empty() {
            out.push((path.key(key), "must not be empty".into()));
        }
    }
    if let Err(why) = version::parse(c.scheme, c.prefix.as_deref(), &c.version) {
        out.push((path.key("version"), format!("{why} (scheme {})", c.scheme)));
    }
    if c.prefix.as_deref().is_some_and(|p| p.trim().is_empty()) {
        out.push((path.key("prefix"), "must not be empty".into()));
    }
    if c.count == Some(0) {
        out.push((path.key("count"), "must be at least 1".into()));
    }
    let m = &c.matcher;
    let mpath = path.key("match");
    let sources = usize::from(!m.redfish.is_empty())
        + usize::from(m.redfish_property.is_some())
        + usize::from(m.inband.is_some());
    if sources != 1 {
        out.push((mpath.clone(), "give exactly one of redfish, redfish_property and inband".into()));
    }
    for (j, pattern) in m.redfish.iter().enumerate() {
        if pattern.trim().is_empty() {
            out.push((mpath.key("redfish").index(j), "must not be empty".into()));
        } else if let Err(e) = glob::Pattern::new(pattern) {
            out.push((mpath.key("redfish").index(j), format!("{pattern:?} is not a pattern: {e}")));
        }
    }
    if !m.pci_ids.is_empty() && !matches!(m.inband, Some(InBand::Nic | InBand::Dpu | InBand::Nvme)) {
        out.push((mpath.key("pci_ids"), "only for inband nic, dpu and nvme".into()));
    }
    if let Some(id) = &c.package {
        match recipe.package(id) {
            None => {
                let known: Vec<&str> = recipe.packages.iter().map(|p| p.id.as_str()).collect();
                let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                out.push((path.key("package"), format!("no package {id:?} in this recipe (packages: {known})")));
            }
            Some(p) if m.inband.is_some() && p.targets.is_none() => out.push((
                path.key("package"),
                format!("package {id:?} needs explicit targets: an in-band component has no Redfish URI"),
            )),
            Some(_) => {}
        }
    }
}

fn check_package(recipe: &Recipe, p: &Package, path: &FieldPath, out: &mut Vec<(FieldPath, String)>) {
    if !valid_id(&p.id) {
        out.push((
            path.key("id"),
            format!("{:?}: use lowercase letters, digits and '_', starting with a letter", p.id),
        ));
    }
    if p.file.as_os_str().is_empty() {
        out.push((path.key("file"), "must not be empty".into()));
    }
    if p.sha256.len() != 64 || !p.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        out.push((path.key("sha256"), format!("{:?} is not 64 hex digits", p.sha256)));
    }
    if let Some(t) = &p.apply_time {
        if !APPLY_TIMES.contains(&t.as_str()) {
            out.push((path.key("apply_time"), format!("{t:?}: expected one of {}", APPLY_TIMES.join(", "))));
        }
    }
    if let Some(targets) = &p.targets {
        for (j, t) in targets.iter().enumerate() {
            if !t.starts_with("/redfish/v1/") {
                out.push((path.key("targets").index(j), format!("{t:?} is not a Redfish URI (/redfish/v1/...)")));
            }
        }
    }
    if p.task_timeout_s == 0 {
        out.push((path.key("task_timeout_s"), "must be at least 1".into()));
    }
    if !recipe.components.iter().any(|c| c.package.as_deref() == Some(p.id.as_str())) {
        out.push((path.key("id"), format!("no component names package {:?}", p.id)));
    }
}
