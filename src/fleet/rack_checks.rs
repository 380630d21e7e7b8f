//! Checks that only show across nodes: nodes of one platform that differ in firmware versions or
//! component counts; GPU or system serials seen twice in the rack; and the trays of a multi-node
//! NVLink domain (a spec's `[nvlink_domain]`, GB200 NVL72), judged as one machine: all of its trays
//! there, each where the manifest says (NVML's tray index), and every GPU in one domain.

use std::collections::BTreeMap;

use super::outcome::{NodeOutcome, Step};
use crate::checks::detect;
use crate::checks::platform::NvlinkDomain;
use crate::checks::spec_load::LoadedSpec;
use crate::checks::{Component, Finding, Outcome, Severity};
use crate::model::{FabricState, Node};

/// One node's collected model, with the platform it was judged against.
#[derive(Debug, Clone, Copy)]
pub struct RackMember<'a> {
    pub name: &'a str,
    /// Platform spec name; nodes without one are grouped by DMI product name.
    pub platform: Option<&'a str>,
    pub node: &'a Node,
    /// The manifest's tray number for the node (NVML's tray index), when it gives one.
    pub tray: Option<u32>,
}

/// The node models carried by `inspect` outcomes (the report is a `Node`)
/// and `validate` outcomes (the report's `inspected`), with the platform the
/// validate report names, else `rack_platform`. Reports that do not parse
/// as a `Node` are left out: their node already has its own outcome.
pub fn nodes_from_outcomes(
    outcomes: &[NodeOutcome],
    rack_platform: Option<&str>,
) -> Vec<(String, Option<String>, Node)> {
    outcomes
        .iter()
        .filter_map(|o| {
            let report = o.report.as_ref()?;
            let (value, platform) = match o.step {
                Step::Inspect => (report.clone(), None),
                Step::Validate => (
                    report.get("inspected")?.clone(),
                    report.get("platform").and_then(|p| {
                        p.as_str().map(str::to_string).or_else(|| p.get("name")?.as_str().map(str::to_string))
                    }),
                ),
                _ => return None,
            };
            let node: Node = serde_json::from_value(value).ok()?;
            Some((o.node.clone(), platform.or_else(|| rack_platform.map(str::to_string)), node))
        })
        .collect()
}

/// Every rack-wide finding for `members`: consistency within each platform
/// group, then the NVLink domain of members whose platform spec (from
/// `specs`: by the name the member was judged against, else detected from
/// its model as `kiln validate` detects it) has an `[nvlink_domain]`.
pub fn rack_findings(members: &[RackMember<'_>], specs: &[LoadedSpec]) -> Vec<Finding> {
    rack_findings_scoped(members, specs, true)
}

/// `rack_findings`, saying whether `members` is the whole rack: a domain's
/// completeness (`rack.domain.trays`) is only judged over the whole rack, since
/// a run over some of its nodes is short by design.
pub fn rack_findings_scoped(members: &[RackMember<'_>], specs: &[LoadedSpec], whole_rack: bool) -> Vec<Finding> {
    let mut groups: BTreeMap<String, Vec<RackMember<'_>>> = BTreeMap::new();
    for m in members {
        groups.entry(group_of(m)).or_default().push(*m);
    }
    let mut findings = Vec::new();
    for (platform, group) in &groups {
        for attr in ATTRIBUTES {
            findings.extend(consistency(platform, group, attr));
        }
    }
    findings.extend(super::rack_domain::serials(members));
    let mut domains: BTreeMap<&str, (&NvlinkDomain, Vec<RackMember<'_>>)> = BTreeMap::new();
    for m in members {
        if let Some(spec) = spec_of(m, specs) {
            if let Some(domain) = &spec.platform.nvlink_domain {
                domains.entry(spec.platform.name.as_str()).or_insert_with(|| (domain, Vec::new())).1.push(*m);
            }
        }
    }
    for (platform, (domain, trays)) in &domains {
        findings.extend(super::rack_domain::completeness(platform, domain, trays, whole_rack));
        findings.extend(super::rack_domain::placement(domain, trays));
        findings.extend(fabric_domain(trays));
        let imex: Vec<(&str, &Node)> = trays.iter().map(|m| (m.name, m.node)).collect();
        findings.extend(crate::checks::rules::imex::same_config(&imex));
    }
    findings
}

/// The nodes failing rack findings hold, each with the distinct ids of those
/// checks in finding order. A finding names a node by its component (`node`,
/// or `<node> gpuN`); a finding about a whole multi-node NVLink domain (a
/// short rack: its component is the rack, named by the domain's platform)
/// holds every node of that domain.
pub fn gated(findings: &[Finding], members: &[RackMember<'_>], specs: &[LoadedSpec]) -> BTreeMap<String, Vec<String>> {
    let mut domains: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in members {
        if let Some(spec) = spec_of(m, specs).filter(|s| s.platform.nvlink_domain.is_some()) {
            domains.entry(spec.platform.name.as_str()).or_default().push(m.name);
        }
    }
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.outcome == Outcome::Fail) {
        let named = f.component.name.as_deref().unwrap_or_default();
        // Node names hold no space (the manifest allows letters, digits, - _ .).
        let first = named.split(' ').next().unwrap_or_default();
        let nodes: Vec<&str> = if f.component.kind != "rack" && members.iter().any(|m| m.name == first) {
            vec![first]
        } else if f.component.kind == "rack" {
            domains.get(named).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        for node in nodes {
            let checks = out.entry(node.to_string()).or_default();
            if !checks.contains(&f.check) {
                checks.push(f.check.clone());
            }
        }
    }
    out
}

/// The spec a member was judged against: its platform by name, else the one
/// detection picks for its model.
fn spec_of<'s>(m: &RackMember<'_>, specs: &'s [LoadedSpec]) -> Option<&'s LoadedSpec> {
    if let Some(spec) = m.platform.and_then(|name| detect::by_name(specs, name).ok()) {
        return Some(spec);
    }
    detect::detect(specs, m.node).ok().map(|d| d.spec)
}

fn group_of(m: &RackMember<'_>) -> String {
    m.platform
        .map(str::to_string)
        .or_else(|| m.node.dmi.product_name.clone())
        .unwrap_or_else(|| "unknown platform".into())
}

/// A value every node of a platform should share.
struct Attribute {
    check: &'static str,
    what: &'static str,
    action: &'static str,
    read: fn(&Node) -> Option<String>,
}

const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        check: "rack.firmware.bios",
        what: "BIOS version",
        action:
            "update the BIOS to the version the rest of the rack runs (or confirm the newer one and update the others)",
        read: |n| n.dmi.bios_version.clone(),
    },
    Attribute {
        check: "rack.firmware.vbios",
        what: "GPU VBIOS versions",
        action: "flash the GPU VBIOS to the version the rest of the rack runs",
        read: |n| distinct(n.gpus.gpus().iter().filter_map(|g| g.vbios_version.clone())),
    },
    Attribute {
        check: "rack.firmware.nic",
        what: "NIC firmware versions",
        action: "update the NIC firmware (mlxfwmanager) to the version the rest of the rack runs",
        read: |n| distinct(n.net.iter().filter_map(|p| p.firmware.clone())),
    },
    Attribute {
        check: "rack.count.gpu",
        what: "GPU count (NVML)",
        action: "reseat or replace the missing GPU, or check the driver sees every GPU",
        read: |n| n.gpus.not_inspected_reason().is_none().then(|| n.gpus.gpus().len().to_string()),
    },
    Attribute {
        check: "rack.count.gpu_pci",
        what: "NVIDIA GPU functions on PCI",
        action: "reseat the GPU baseboard or the missing GPU; check its PCIe link",
        read: |n| {
            let count = n.pci.iter().filter(|d| d.vendor_id == 0x10de && d.base_class() == 0x03).count();
            (!n.pci.is_empty()).then(|| count.to_string())
        },
    },
    Attribute {
        check: "rack.count.nic",
        what: "network port count",
        action: "reseat or replace the missing NIC, or check its driver and firmware",
        read: |n| Some(n.net.len().to_string()),
    },
    Attribute {
        check: "rack.count.disk",
        what: "disk count",
        action: "reseat or replace the missing drive",
        read: |n| Some(n.disks.len().to_string()),
    },
    Attribute {
        check: "rack.count.cpu_socket",
        what: "CPU socket count",
        action: "check the CPU population of the node against the rest of the rack",
        read: |n| (n.cpus.sockets > 0).then(|| n.cpus.sockets.to_string()),
    },
];

/// The sorted distinct values, comma-separated; `None` when there are none.
fn distinct(values: impl Iterator<Item = String>) -> Option<String> {
    let mut v: Vec<String> = values.collect();
    v.sort();
    v.dedup();
    (!v.is_empty()).then(|| v.join(", "))
}

/// The value most nodes share, when one value is held by strictly more
/// nodes than any other.
fn majority<'v>(values: &[(&str, &'v str)]) -> Option<(&'v str, usize)> {
    let mut counts: BTreeMap<&'v str, usize> = BTreeMap::new();
    for (_, v) in values {
        *counts.entry(*v).or_default() += 1;
    }
    let mut sorted: Vec<(&'v str, usize)> = counts.into_iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.1));
    match sorted.as_slice() {
        [(v, n)] => Some((*v, *n)),
        [(v, n), (_, m), ..] if n > m => Some((*v, *n)),
        _ => None,
    }
}

pub(super) fn node_component(name: &str) -> Component {
    Component { kind: "node".into(), name: Some(name.to_string()), ..Default::default() }
}

fn consistency(platform: &str, group: &[RackMember<'_>], attr: &Attribute) -> Vec<Finding> {
    let read: Vec<(&str, Option<String>)> = group.iter().map(|m| (m.name, (attr.read)(m.node))).collect();
    let known: Vec<(&str, &str)> = read.iter().filter_map(|(n, v)| v.as_deref().map(|v| (*n, v))).collect();
    let component = Component { kind: "rack".into(), name: Some(platform.to_string()), ..Default::default() };
    if known.len() < 2 {
        return vec![Finding::new(
            attr.check,
            Outcome::Skipped,
            Severity::Info,
            component,
            format!("{} known on {} of {} {platform} nodes: nothing to compare", attr.what, known.len(), group.len()),
        )];
    }
    match majority(&known) {
        Some((common, n)) if n == known.len() => vec![Finding::new(
            attr.check,
            Outcome::Pass,
            Severity::Info,
            component,
            format!("all {n} {platform} nodes with a known {} have {common}", attr.what),
        )
        .actual(common)],
        Some((common, n)) => known
            .iter()
            .filter(|(_, v)| *v != common)
            .map(|(name, v)| {
                Finding::new(
                    attr.check,
                    Outcome::Fail,
                    Severity::Warning,
                    node_component(name),
                    format!("{name}: {} {v} differs from the {n} other {platform} nodes ({common})", attr.what),
                )
                .expected(common)
                .actual(*v)
                .action(attr.action)
            })
            .collect(),
        None => {
            let spread: Vec<String> = known.iter().map(|(n, v)| format!("{n}={v}")).collect();
            vec![Finding::new(
                attr.check,
                Outcome::Fail,
                Severity::Warning,
                component,
                format!("{platform} nodes disagree on {} with no majority: {}", attr.what, spread.join("; ")),
            )
            .action(attr.action)]
        }
    }
}

/// Every GPU of the trays of one multi-node NVLink domain must have
/// completed fabric registration and report the same cluster UUID and clique.
fn fabric_domain(members: &[RackMember<'_>]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut registered: Vec<(String, &str, u32, Component)> = Vec::new();
    let zero_uuid = |u: &str| u.chars().all(|c| c == '0' || c == '-');
    for m in members {
        if let Some(reason) = m.node.gpus.not_inspected_reason() {
            findings.push(
                Finding::new(
                    "rack.fabric.state",
                    Outcome::Error,
                    Severity::Critical,
                    node_component(m.name),
                    format!("{}: GPUs not inspected ({reason}); NVLink domain membership unknown", m.name),
                )
                .action("install or load the NVIDIA driver on the node and run inspect again"),
            );
            continue;
        }
        for g in m.node.gpus.gpus() {
            let component = Component {
                kind: "gpu".into(),
                address: g.pci_address.map(|a| a.to_string()),
                gpu_index: Some(g.index),
                serial: g.serial.clone(),
                name: Some(format!("{} gpu{}", m.name, g.index)),
                ..Default::default()
            };
            match &g.fabric {
                None => findings.push(
                    Finding::new(
                        "rack.fabric.state",
                        Outcome::Error,
                        Severity::Critical,
                        component,
                        format!("{} gpu{}: fabric info not read", m.name, g.index),
                    )
                    .action("check the driver supports fabric info (r550+) and nvidia-imex/fabric manager run"),
                ),
                Some(f) if f.state != FabricState::Completed || f.status != 0 || zero_uuid(&f.cluster_uuid) => findings
                    .push(
                        Finding::new(
                            "rack.fabric.state",
                            Outcome::Fail,
                            Severity::Critical,
                            component,
                            format!(
                                "{} gpu{}: not registered in an NVLink domain (state {:?}, status {}, cluster {})",
                                m.name, g.index, f.state, f.status, f.cluster_uuid
                            ),
                        )
                        .expected("state completed, status 0, a cluster uuid")
                        .actual(format!("{:?}/{}", f.state, f.status))
                        .action("check the NVLink switch trays and fabric manager, then reset the GPU"),
                    ),
                Some(f) => registered.push((m.name.to_string(), f.cluster_uuid.as_str(), f.clique_id, component)),
            }
        }
    }
    let uuids: Vec<(&str, &str)> = registered.iter().map(|(n, u, _, _)| (n.as_str(), *u)).collect();
    let cliques: Vec<String> = registered.iter().map(|(_, _, c, _)| c.to_string()).collect();
    let clique_pairs: Vec<(&str, &str)> =
        registered.iter().zip(&cliques).map(|((n, _, _, _), c)| (n.as_str(), c.as_str())).collect();
    for (check, what, values) in
        [("rack.fabric.cluster", "cluster uuid", &uuids), ("rack.fabric.clique", "clique id", &clique_pairs)]
    {
        if values.is_empty() {
            continue;
        }
        let common = majority(values).map(|(v, _)| v);
        let mut deviating = 0;
        for (i, (_, v)) in values.iter().enumerate() {
            if Some(*v) != common {
                deviating += 1;
                let component = registered[i].3.clone();
                let label = component.name.clone().unwrap_or_default();
                let mut f = Finding::new(
                    check,
                    Outcome::Fail,
                    Severity::Critical,
                    component,
                    format!("{label}: {what} {v} differs from the rest of the rack"),
                )
                .actual(*v)
                .action(
                    "check the tray's NVLink cabling and switch trays; every GPU of the rack's NVLink domain must be in it",
                );
                if let Some(c) = common {
                    f = f.expected(c);
                }
                findings.push(f);
            }
        }
        if deviating == 0 {
            findings.push(
                Finding::new(
                    check,
                    Outcome::Pass,
                    Severity::Info,
                    Component { kind: "rack".into(), ..Default::default() },
                    format!("all {} registered GPUs share {what} {}", values.len(), common.unwrap_or_default()),
                )
                .actual(common.unwrap_or_default()),
            );
        }
    }
    findings
}
