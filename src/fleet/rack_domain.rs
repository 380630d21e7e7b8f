//! A multi-node NVLink domain judged as one machine: every tray the spec's
//! `[nvlink_domain]` counts is there (`rack.domain.trays`, `rack.domain.gpus`),
//! each tray is where the manifest says (`rack.placement.tray`: NVML's tray
//! index, slot and chassis serial agree on the tray and with the manifest),
//! and no GPU or system serial is seen twice in the rack (`rack.serial.*`).

use std::collections::{BTreeMap, BTreeSet};

use super::rack_checks::{node_component, RackMember};
use crate::checks::platform::NvlinkDomain;
use crate::checks::{Component, Finding, Outcome, Severity};
use crate::model::Gpu;

pub const TRAYS: &str = "rack.domain.trays";
pub const GPUS: &str = "rack.domain.gpus";
pub const PLACEMENT: &str = "rack.placement.tray";
pub const GPU_SERIAL: &str = "rack.serial.gpu";
pub const SYSTEM_SERIAL: &str = "rack.serial.system";

fn rack_component(platform: &str) -> Component {
    Component { kind: "rack".into(), name: Some(platform.to_string()), ..Default::default() }
}

fn gpu_component(node: &str, g: &Gpu) -> Component {
    Component {
        kind: "gpu".into(),
        address: g.pci_address.map(|a| a.to_string()),
        gpu_index: Some(g.index),
        serial: g.serial.clone(),
        slot: g
            .platform
            .as_ref()
            .map(|p| format!("tray {} slot {} module {}", p.tray_index, p.slot_number, p.module_id)),
        name: Some(format!("{node} gpu{}", g.index)),
    }
}

fn fail(check: &str, component: Component, message: String, action: &str) -> Finding {
    Finding::new(check, Outcome::Fail, Severity::Critical, component, message).action(action)
}

/// The domain has as many trays and GPUs as its spec says. A short (or
/// overfull) rack names no single node: the finding is the rack's.
pub fn completeness(platform: &str, domain: &NvlinkDomain, trays: &[RackMember<'_>], whole_rack: bool) -> Vec<Finding> {
    if !whole_rack {
        return vec![Finding::new(
            TRAYS,
            Outcome::Skipped,
            Severity::Info,
            rack_component(platform),
            format!(
                "{} of the rack's nodes in this run: the domain's {} trays are counted over the whole rack",
                trays.len(),
                domain.trays
            ),
        )];
    }
    let mut out = Vec::new();
    let have = trays.len() as u32;
    let mut positions: Vec<u32> = trays.iter().filter_map(|m| m.tray).collect();
    positions.sort_unstable();
    if have != domain.trays {
        let missing: Vec<String> =
            (1..=domain.trays).filter(|t| !positions.contains(t)).map(|t| t.to_string()).collect();
        let missing_note = if have < domain.trays && !positions.is_empty() && !missing.is_empty() {
            format!("; no tray judged at manifest position {}", missing.join(", "))
        } else {
            String::new()
        };
        out.push(
            fail(
                TRAYS,
                rack_component(platform),
                format!(
                    "{platform}: {have} of the {} compute trays of one NVLink domain were judged{missing_note}",
                    domain.trays
                ),
                if have < domain.trays {
                    "the NVLink domain is one machine: install, cable and power every compute tray (or list it in \
                     the manifest and make it reachable), then re-run the rack validate; until then no tray of the \
                     domain is handed off"
                } else {
                    "more trays than one domain holds are judged as one: split the manifest by rack, or check the \
                     platform of the extra trays"
                },
            )
            .expected(domain.trays)
            .actual(have),
        );
    } else {
        out.push(
            Finding::new(
                TRAYS,
                Outcome::Pass,
                Severity::Info,
                rack_component(platform),
                format!("{platform}: all {have} compute trays of the NVLink domain judged"),
            )
            .expected(domain.trays)
            .actual(have),
        );
    }
    let per_tray = domain.gpus_per_tray() as usize;
    let mut short = Vec::new();
    let mut total = 0;
    for m in trays.iter().filter(|m| m.node.gpus.not_inspected_reason().is_none()) {
        let n = m.node.gpus.gpus().len();
        total += n;
        if n < per_tray {
            short.push(
                fail(
                    GPUS,
                    node_component(m.name),
                    format!("{}: {n} of its {per_tray} GPUs in the NVLink domain", m.name),
                    "a missing GPU leaves the domain short: reseat or replace it (see the node's gpu.count), then re-run",
                )
                .expected(per_tray)
                .actual(n),
            );
        }
    }
    if short.is_empty() && total as u32 == domain.gpus {
        out.push(
            Finding::new(
                GPUS,
                Outcome::Pass,
                Severity::Info,
                rack_component(platform),
                format!("{platform}: {total} GPUs in the NVLink domain"),
            )
            .expected(domain.gpus)
            .actual(total),
        );
    }
    out.extend(short);
    out
}

/// What one tray's GPUs say about where the tray is.
struct Reported {
    trays: BTreeSet<u32>,
    slots: BTreeSet<u32>,
    chassis: BTreeSet<String>,
}

fn reported(m: &RackMember<'_>) -> Option<Reported> {
    let infos: Vec<_> = m.node.gpus.gpus().iter().filter_map(|g| g.platform.as_ref()).collect();
    if infos.is_empty() {
        return None;
    }
    Some(Reported {
        trays: infos.iter().map(|p| p.tray_index).collect(),
        slots: infos.iter().map(|p| p.slot_number).collect(),
        chassis: infos.iter().filter_map(|p| p.chassis_serial.clone()).collect(),
    })
}

fn join<T: ToString>(values: &BTreeSet<T>) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Each tray is where the manifest says: its GPUs agree on one tray index,
/// slot and chassis serial, that tray index is the manifest's `tray`, and no
/// two trays claim the same index.
pub fn placement(domain: &NvlinkDomain, trays: &[RackMember<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut claimed: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    let mut judged = 0;
    let mut unreported = Vec::new();
    for m in trays {
        let Some(r) = reported(m) else {
            if m.node.gpus.not_inspected_reason().is_none() {
                unreported.push(m.name);
            }
            continue;
        };
        judged += 1;
        let disagree = r.trays.len() > 1 || r.slots.len() > 1 || r.chassis.len() > 1;
        if disagree {
            out.push(
                fail(
                    PLACEMENT,
                    node_component(m.name),
                    format!(
                        "{}: its GPUs disagree on where the tray is (tray index {}; slot {}; chassis serial {})",
                        m.name,
                        join(&r.trays),
                        join(&r.slots),
                        join(&r.chassis)
                    ),
                    "a GPU reports another tray's position: check the tray's NVLink cable cartridges and its \
                     management cabling, then reset the GPUs and re-run",
                )
                .actual(format!("tray {}", join(&r.trays))),
            );
        }
        let Some(&tray) = r.trays.iter().next().filter(|_| r.trays.len() == 1) else { continue };
        claimed.entry(tray).or_default().push(m.name);
        if let Some(want) = m.tray {
            if want != tray {
                out.push(
                    fail(
                        PLACEMENT,
                        node_component(m.name),
                        format!(
                            "{}: NVML reports tray {tray} (slot {}, chassis serial {}), the manifest puts this node at \
                             tray {want}",
                            m.name,
                            join(&r.slots),
                            join(&r.chassis)
                        ),
                        "the tray is not where the manifest says: a swapped cable or a tray in the wrong slot; \
                         check the tray's position in the rack and its network cabling against the manifest, fix \
                         whichever is wrong, then re-run",
                    )
                    .expected(format!("tray {want}"))
                    .actual(format!("tray {tray}")),
                );
            }
        }
        if tray < 1 || tray > domain.trays {
            out.push(
                fail(
                    PLACEMENT,
                    node_component(m.name),
                    format!("{}: NVML reports tray {tray}, outside the domain's trays 1-{}", m.name, domain.trays),
                    "check the tray's position and that it belongs to this rack's NVLink domain",
                )
                .expected(format!("1-{}", domain.trays))
                .actual(tray),
            );
        }
    }
    for (tray, names) in claimed.iter().filter(|(_, n)| n.len() > 1) {
        for name in names {
            let others: Vec<&str> = names.iter().copied().filter(|n| n != name).collect();
            out.push(
                fail(
                    PLACEMENT,
                    node_component(name),
                    format!("{name}: reports tray {tray}, as {} does", others.join(", ")),
                    "two trays claim one position: check which is in the wrong slot or cabled to the wrong port",
                )
                .actual(format!("tray {tray}")),
            );
        }
    }
    if !unreported.is_empty() {
        out.push(Finding::new(
            PLACEMENT,
            Outcome::Skipped,
            Severity::Info,
            Component { kind: "rack".into(), ..Default::default() },
            format!("NVML gave no platform info (tray index) on {}", unreported.join(", ")),
        ));
    }
    if out.is_empty() && judged > 0 {
        out.push(Finding::new(
            PLACEMENT,
            Outcome::Pass,
            Severity::Info,
            Component { kind: "rack".into(), ..Default::default() },
            format!("{judged} trays each report one tray index, slot and chassis serial, as the manifest places them"),
        ));
    }
    out
}

/// No GPU serial and no system serial (DMI product serial) appears twice in
/// the rack: a duplicate is a copied record, a swapped part or a board
/// programmed wrongly, and either way the inventory cannot tell the two apart.
pub fn serials(members: &[RackMember<'_>]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut gpus: BTreeMap<&str, Vec<(&str, &Gpu)>> = BTreeMap::new();
    let mut systems: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in members {
        for g in m.node.gpus.gpus() {
            if let Some(serial) = g.serial.as_deref().filter(|s| !s.trim().is_empty()) {
                gpus.entry(serial).or_default().push((m.name, g));
            }
        }
        if let Some(serial) = m.node.dmi.product_serial.as_deref().filter(|s| !s.trim().is_empty()) {
            systems.entry(serial).or_default().push(m.name);
        }
    }
    let mut seen_gpus = false;
    for (serial, holders) in &gpus {
        seen_gpus = true;
        if holders.len() < 2 {
            continue;
        }
        let all: Vec<String> = holders.iter().map(|(n, g)| format!("{n} gpu{}", g.index)).collect();
        for (name, g) in holders {
            out.push(
                fail(
                    GPU_SERIAL,
                    gpu_component(name, g),
                    format!("GPU serial {serial} is reported by {}", all.join(", ")),
                    "one serial on two GPUs: read the serial on each board (nvidia-smi -q) against its label; a \
                     mismatch is a part to replace or reprogram",
                )
                .actual(*serial),
            );
        }
    }
    for (serial, names) in systems.iter().filter(|(_, n)| n.len() > 1) {
        for name in names {
            out.push(
                fail(
                    SYSTEM_SERIAL,
                    node_component(name),
                    format!("system serial {serial} is reported by {}", names.join(", ")),
                    "two trays with one serial: check the serial on each tray's label against its DMI record and \
                     have the wrong one reprogrammed",
                )
                .actual(*serial),
            );
        }
    }
    if seen_gpus && !out.iter().any(|f| f.check == GPU_SERIAL) {
        out.push(Finding::new(
            GPU_SERIAL,
            Outcome::Pass,
            Severity::Info,
            Component { kind: "rack".into(), ..Default::default() },
            format!("{} GPU serials, each seen once", gpus.len()),
        ));
    }
    out
}
