//! Compliance: what a node's BMC and its own inspection report, against a recipe, per
//! component and instance. Pure: the reads happen before (`RedfishBmc::firmware_versions`,
//! `kiln inspect`), the findings after (`findings.rs`).
//!
//! Every firmware inventory member ends up in exactly one entry: judged by the first component
//! (in recipe order) whose pattern matches it, or listed as not in the recipe. Nothing the BMC
//! lists is silently dropped, and nothing the recipe pins is silently absent.

use std::cmp::Ordering;

use serde::Serialize;

use super::inband;
use super::recipe::{Component as Pinned, Recipe};
use super::version;
use crate::bmc::{BmcVersions, FirmwareItem, InventoryRead, PropertyRead};
use crate::checks::Component;
use crate::model::Node;

/// Where one reported version stands against the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    UpToDate,
    /// Older than pinned: update it.
    Older,
    /// Newer than pinned (and the component does not accept newer).
    Newer,
    /// Not the pinned version, and the scheme cannot order them (`exact`).
    Differs,
    /// The recipe pins it but the node does not report it (or fewer instances than `count`).
    Missing,
    /// The version could not be read, or is not a version of the component's scheme.
    Unreadable,
    /// A firmware inventory member no component of the recipe matches.
    NotInRecipe,
    /// The BMC has no firmware inventory at all, and no component needs one.
    NoInventory,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::UpToDate => "up-to-date",
            Status::Older => "older",
            Status::Newer => "newer",
            Status::Differs => "differs",
            Status::Missing => "missing",
            Status::Unreadable => "unreadable",
            Status::NotInRecipe => "not-in-recipe",
            Status::NoInventory => "no-inventory",
        }
    }

    /// Whether this status keeps a non-advisory component compliant.
    pub fn is_compliant(self) -> bool {
        matches!(self, Status::UpToDate | Status::NotInRecipe | Status::NoInventory)
    }
}

/// One judged instance (or one missing or unreadable component).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The recipe component's id; `None` for what the recipe does not know.
    pub component: Option<String>,
    /// The component's name, or the inventory member's `Id`.
    pub name: String,
    /// Where the version was read: `HGX_FW_GPU_0`, `gpu3 0000:9d:00.0`, `ComputerSystem.BiosVersion`.
    pub place: String,
    /// `redfish-inventory`, `redfish-property` or `inband`.
    pub source: &'static str,
    /// The Redfish URI an update of it targets (the inventory member, the system); `None`
    /// in-band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub reported: Option<String>,
    pub pinned: Option<String>,
    pub status: Status,
    /// Why it is unreadable or missing; what else a technician should know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub advisory: bool,
    /// The pinned version is an example in the recipe.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub example: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub accept_newer: bool,
    /// The part, for findings and reports.
    pub part: Component,
}

impl Entry {
    /// Compliant: up to date, or not pinned, or advisory.
    pub fn is_compliant(&self) -> bool {
        self.advisory || self.status.is_compliant()
    }
}

/// A node's compliance with one recipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compliance {
    pub recipe: String,
    pub entries: Vec<Entry>,
}

impl Compliance {
    /// Every entry compliant: the node runs the pinned set.
    pub fn is_compliant(&self) -> bool {
        self.entries.iter().all(Entry::is_compliant)
    }

    /// The entries of one recipe component.
    pub fn of<'a>(&'a self, component: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.component.as_deref() == Some(component))
    }

    /// The recipe components with at least one non-compliant entry, in recipe order.
    pub fn non_compliant_components(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for e in self.entries.iter().filter(|e| !e.is_compliant()) {
            if let Some(c) = e.component.as_deref() {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// What was read from a node, each half with why it could not be read.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub bmc: Result<&'a BmcVersions, &'a str>,
    pub node: Result<&'a Node, &'a str>,
}

/// One place a version was read, before it is judged.
struct Reading {
    place: String,
    target: Option<String>,
    reported: Option<String>,
    /// Why `reported` is `None`.
    why: Option<String>,
    part: Component,
}

/// Judge what was observed against `recipe`.
pub fn judge(recipe: &Recipe, observed: Observed<'_>) -> Compliance {
    let items: Option<&[FirmwareItem]> = match observed.bmc {
        Ok(BmcVersions { inventory: InventoryRead::Listed { items }, .. }) => Some(items),
        _ => None,
    };
    let mut claimed = vec![false; items.map_or(0, <[_]>::len)];
    let mut entries = Vec::new();
    let mut inventory_used = false;
    for c in &recipe.components {
        let (source, read) = if !c.matcher.redfish.is_empty() {
            inventory_used = true;
            ("redfish-inventory", from_inventory(c, observed.bmc, &mut claimed))
        } else if let Some(prop) = c.matcher.redfish_property {
            let read = observed.bmc.map_err(|why| format!("BMC not read: {why}")).and_then(|v| {
                let (value, place, target): (&PropertyRead, String, Option<String>) = match prop {
                    super::recipe::RedfishProperty::BiosVersion => (
                        &v.bios_version,
                        format!("{} BiosVersion", v.system.as_deref().unwrap_or("ComputerSystem")),
                        v.system.clone(),
                    ),
                    super::recipe::RedfishProperty::ManagerFirmwareVersion => (
                        &v.manager_firmware,
                        format!("{} FirmwareVersion", v.manager.as_deref().unwrap_or("Manager")),
                        v.manager.clone(),
                    ),
                };
                match value {
                    Ok(Some(version)) => Ok(vec![Reading {
                        place,
                        target,
                        reported: Some(version.clone()),
                        why: None,
                        part: Component {
                            kind: "firmware".into(),
                            name: Some(prop.as_str().into()),
                            ..Component::node()
                        },
                    }]),
                    Ok(None) => Ok(Vec::new()),
                    Err(why) => Err(why.clone()),
                }
            });
            ("redfish-property", read)
        } else if let Some(what) = c.matcher.inband {
            let read = observed.node.map_err(|why| format!("node not inspected: {why}")).and_then(|node| {
                inband::instances(node, what, &c.matcher.pci_ids).map(|list| {
                    list.into_iter()
                        .map(|i| Reading {
                            target: None,
                            why: i.reported.is_none().then(|| "inspection read no version".to_string()),
                            place: i.place,
                            reported: i.reported,
                            part: i.part,
                        })
                        .collect()
                })
            });
            ("inband", read)
        } else {
            // The loader refuses a component without a source; judged as unreadable if one
            // was built in code anyway.
            ("none", Err("the recipe gives no source for it".to_string()))
        };
        let base = |status, place: String, target, reported, detail, part| Entry {
            component: Some(c.id.clone()),
            name: c.name.clone(),
            place,
            source,
            target,
            reported,
            pinned: Some(c.version.clone()),
            status,
            detail,
            advisory: c.advisory,
            example: c.example,
            accept_newer: c.accept_newer,
            part,
        };
        match read {
            Err(why) => entries.push(base(Status::Unreadable, where_read(c), None, None, Some(why), fallback_part(c))),
            Ok(readings) => {
                let n = readings.len();
                for r in readings {
                    let (status, detail) = match &r.reported {
                        None => (Status::Unreadable, r.why.clone()),
                        Some(v) => judge_version(c, v),
                    };
                    entries.push(base(status, r.place, r.target, r.reported, detail, r.part));
                }
                let want = c.count.map_or(1, |n| n as usize);
                if n < want {
                    let detail = match c.count {
                        Some(count) => format!("{n} of {count} reported by {}", where_read(c)),
                        None => format!("not reported by {}", where_read(c)),
                    };
                    entries.push(base(Status::Missing, where_read(c), None, None, Some(detail), fallback_part(c)));
                }
            }
        }
    }
    if let Some(items) = items {
        for (item, _) in items.iter().zip(&claimed).filter(|(_, c)| !**c) {
            entries.push(Entry {
                component: None,
                name: item.id.clone(),
                place: item.id.clone(),
                source: "redfish-inventory",
                target: item.path.clone(),
                reported: item.version.clone(),
                pinned: None,
                status: Status::NotInRecipe,
                detail: item.problem.clone(),
                advisory: false,
                example: false,
                accept_newer: false,
                part: item.component(),
            });
        }
    } else if let (Ok(v), false) = (observed.bmc, inventory_used) {
        // An inventory no component needed: its absence is noted, its failure is an error.
        let (status, why) = match &v.inventory {
            InventoryRead::Absent { why } => (Status::NoInventory, Some(why)),
            InventoryRead::Failed { why } => (Status::Unreadable, Some(why)),
            InventoryRead::Listed { .. } => (Status::NoInventory, None),
        };
        if let Some(why) = why {
            entries.push(Entry {
                component: None,
                name: "firmware inventory".into(),
                place: "UpdateService/FirmwareInventory".into(),
                source: "redfish-inventory",
                target: None,
                reported: None,
                pinned: None,
                status,
                detail: Some(why.clone()),
                advisory: false,
                example: false,
                accept_newer: false,
                part: Component { kind: "firmware".into(), ..Component::node() },
            });
        }
    }
    Compliance { recipe: recipe.name.clone(), entries }
}

/// The inventory members a component's patterns match, claimed for it.
fn from_inventory(c: &Pinned, bmc: Result<&BmcVersions, &str>, claimed: &mut [bool]) -> Result<Vec<Reading>, String> {
    let v = bmc.map_err(|why| format!("BMC not read: {why}"))?;
    let items = match &v.inventory {
        InventoryRead::Listed { items } => items,
        InventoryRead::Absent { why } | InventoryRead::Failed { why } => {
            return Err(format!("firmware inventory not read: {why}"))
        }
    };
    let patterns: Vec<glob::Pattern> = c.matcher.redfish.iter().filter_map(|p| glob::Pattern::new(p).ok()).collect();
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if claimed.get(i).copied().unwrap_or(true) || !patterns.iter().any(|p| p.matches(&item.id)) {
            continue;
        }
        if let Some(slot) = claimed.get_mut(i) {
            *slot = true;
        }
        let why = match (&item.version, &item.problem) {
            (Some(_), _) => None,
            (None, Some(problem)) => Some(problem.clone()),
            (None, None) => Some("the BMC reports no Version".to_string()),
        };
        out.push(Reading {
            place: item.id.clone(),
            target: item.path.clone(),
            reported: item.version.clone(),
            why,
            part: item.component(),
        });
    }
    Ok(out)
}

fn judge_version(c: &Pinned, reported: &str) -> (Status, Option<String>) {
    let Ok(pinned) = version::parse(c.scheme, c.prefix.as_deref(), &c.version) else {
        return (Status::Unreadable, Some(format!("the pinned version {:?} is not a {} version", c.version, c.scheme)));
    };
    let have = match version::parse(c.scheme, c.prefix.as_deref(), reported) {
        Ok(v) => v,
        Err(why) => return (Status::Unreadable, Some(why)),
    };
    match version::compare(&have, &pinned) {
        Some(Ordering::Equal) => (Status::UpToDate, None),
        Some(Ordering::Less) => (Status::Older, None),
        Some(Ordering::Greater) if c.accept_newer => (Status::UpToDate, Some("newer than pinned (accepted)".into())),
        Some(Ordering::Greater) => (Status::Newer, None),
        None => (Status::Differs, Some(format!("{} versions are equal or not; these are not", c.scheme))),
    }
}

/// Where a component is read, for a missing or unreadable entry.
fn where_read(c: &Pinned) -> String {
    if !c.matcher.redfish.is_empty() {
        format!("FirmwareInventory {}", c.matcher.redfish.join(", "))
    } else if let Some(p) = c.matcher.redfish_property {
        format!("Redfish {}", p.as_str())
    } else if let Some(i) = c.matcher.inband {
        format!("inspection ({})", i.as_str())
    } else {
        "nowhere".into()
    }
}

fn fallback_part(c: &Pinned) -> Component {
    Component { kind: "firmware".into(), name: Some(c.name.clone()), ..Component::node() }
}
