//! What changed between two component snapshots of a node: parts swapped, reflashed, added, removed.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ComponentRecord;

/// One difference between two snapshots, about the part of `kind` at `place`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentChange {
    pub kind: String,
    /// Slot or address (see `ComponentRecord::place`); `None` for parts a
    /// node has one of (bios, board).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// The part's place as kiln names it everywhere (`ComponentRecord::label`): from the
    /// newer snapshot, or the older one for a part removed.
    #[serde(default)]
    pub label: String,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Added {
        model: Option<String>,
        serial: Option<String>,
    },
    Removed {
        model: Option<String>,
        serial: Option<String>,
    },
    /// The serial differs: another part sits in that place.
    SerialChanged {
        from: String,
        to: String,
    },
    FirmwareChanged {
        from: String,
        to: String,
    },
    ModelChanged {
        from: String,
        to: String,
    },
}

impl fmt::Display for ComponentChange {
    /// `gpu0 slot 1 0000:1b:00.0: serial 1650924060123 -> 1650924060999 (part swapped)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.label.is_empty() {
            f.write_str(&self.kind)?;
            if let Some(place) = &self.place {
                write!(f, " {place}")?;
            }
        } else {
            f.write_str(&self.label)?;
        }
        let describe = |model: &Option<String>, serial: &Option<String>| -> String {
            let mut parts = Vec::new();
            if let Some(m) = model {
                parts.push(m.clone());
            }
            if let Some(s) = serial {
                parts.push(format!("serial {s}"));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!(" ({})", parts.join(", "))
            }
        };
        match &self.change {
            Change::Added { model, serial } => write!(f, ": added{}", describe(model, serial)),
            Change::Removed { model, serial } => write!(f, ": removed{}", describe(model, serial)),
            Change::SerialChanged { from, to } => write!(f, ": serial {from} -> {to} (part swapped)"),
            Change::FirmwareChanged { from, to } => write!(f, ": firmware {from} -> {to}"),
            Change::ModelChanged { from, to } => write!(f, ": model {from} -> {to}"),
        }
    }
}

/// Parts matched by kind and place; the n-th part with the same kind and
/// place in one snapshot (two namespaces on one NVMe controller) is matched
/// with the n-th in the other.
type Key = (String, Option<String>, usize);

/// A field compared between snapshots: its value before, after, and the change it makes.
type Field<'a> = (&'a Option<String>, &'a Option<String>, fn(String, String) -> Change);

fn keyed(snapshot: &[ComponentRecord]) -> Vec<(Key, &ComponentRecord)> {
    let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
    snapshot
        .iter()
        .map(|c| {
            let base = (c.kind.clone(), c.place().map(str::to_string));
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            ((base.0, base.1, *n), c)
        })
        .collect()
}

/// Compare two snapshots of one node, `before` then `after`.
///
/// A serial, firmware or model is compared only when both snapshots know it:
/// a value that could not be read (NVML missing on one run) is not a change.
/// Changes come in the order of `after`, then removals in the order of `before`.
pub fn diff_components(before: &[ComponentRecord], after: &[ComponentRecord]) -> Vec<ComponentChange> {
    let old: HashMap<Key, &ComponentRecord> = keyed(before).into_iter().collect();
    let new = keyed(after);
    let mut changes = Vec::new();
    let change = |key: &Key, part: &ComponentRecord, change: Change| ComponentChange {
        kind: key.0.clone(),
        place: key.1.clone(),
        label: part.label(),
        change,
    };
    for (key, now) in &new {
        let Some(was) = old.get(key) else {
            changes.push(change(key, now, Change::Added { model: now.model.clone(), serial: now.serial.clone() }));
            continue;
        };
        let fields: [Field<'_>; 3] = [
            (&was.serial, &now.serial, |from, to| Change::SerialChanged { from, to }),
            (&was.firmware, &now.firmware, |from, to| Change::FirmwareChanged { from, to }),
            (&was.model, &now.model, |from, to| Change::ModelChanged { from, to }),
        ];
        for (from, to, make) in fields {
            if let (Some(from), Some(to)) = (from, to) {
                if from != to {
                    changes.push(change(key, now, make(from.clone(), to.clone())));
                }
            }
        }
    }
    let new_keys: std::collections::HashSet<&Key> = new.iter().map(|(k, _)| k).collect();
    for (key, was) in keyed(before) {
        if !new_keys.contains(&key) {
            changes.push(change(&key, was, Change::Removed { model: was.model.clone(), serial: was.serial.clone() }));
        }
    }
    changes
}
