//! `build_rack_report`: gather a rack report from the inventory and the rack manifest.

use time::OffsetDateTime;

use super::burnin_view::BurninView;
use super::consistency::{outliers, rack_consistency};
use super::firmware_matrix::FirmwareMatrix;
use super::parts::parts_of;
use super::rack_model::{RackNodeReport, RackReport, RACK_REPORT_KIND, RACK_REPORT_SCHEMA_VERSION};
use super::{build_report, NodeReport};
use crate::inventory::{format_timestamp, Inventory, InventoryError, NodeRow};
use crate::model::Node;
use crate::rack::RackManifest;

/// How many lifecycle events per node the report shows.
const EVENTS_SHOWN: usize = 6;

/// Reads a node's latest burn-in; `report::load_burnin_view` in production,
/// synthetic views in tests.
pub type BurninLoader<'a> = dyn Fn(&Inventory, &NodeRow) -> Result<BurninView, InventoryError> + 'a;

/// A report on the nodes of `manifest` (in its order; a node the inventory
/// does not know is listed as such), or on every node of the inventory when
/// there is no manifest.
pub fn build_rack_report(
    inventory: &Inventory,
    manifest: Option<&RackManifest>,
    generated_at: OffsetDateTime,
    burnin: &BurninLoader<'_>,
) -> Result<RackReport, InventoryError> {
    let all = build_report(inventory, None, generated_at)?;
    // A node by its place: its rack and name (manifest names repeat across racks).
    let mut by_place: std::collections::HashMap<(Option<String>, String), NodeReport> =
        all.nodes.into_iter().map(|n| ((n.rack.clone(), n.hostname.clone()), n)).collect();
    // Rack, name, slot, tray, locate command.
    type Place = (Option<String>, String, Option<String>, Option<u32>, Option<String>);
    let places: Vec<Place> = match manifest {
        Some(m) => m
            .nodes
            .iter()
            .map(|n| {
                let locate = n.bmc.as_ref().map(|_| locate_command(m, &n.name));
                (Some(m.rack.id.clone()), n.name.clone(), n.slot.clone(), n.tray, locate)
            })
            .collect(),
        None => {
            let mut keys: Vec<(Option<String>, String)> = by_place.keys().cloned().collect();
            keys.sort();
            keys.into_iter().map(|(rack, n)| (rack, n, None, None, None)).collect()
        }
    };
    let mut nodes = Vec::with_capacity(places.len());
    let mut models: Vec<(String, Option<String>, Node)> = Vec::new();
    for (in_rack, name, slot, tray, locate) in places {
        // A manifest's node recorded before it was placed in a rack is the rack's node.
        let record = by_place
            .remove(&(in_rack.clone(), name.clone()))
            .or_else(|| in_rack.as_ref().and_then(|_| by_place.remove(&(None, name.clone()))));
        let key = match &in_rack {
            Some(rack) => format!("{rack}/{name}"),
            None => name.clone(),
        };
        let (events, view) = match (&record, inventory.node(&key)?) {
            (Some(_), Some(row)) => {
                let history = inventory.history(&key)?;
                let skip = history.len().saturating_sub(EVENTS_SHOWN);
                (history.into_iter().skip(skip).collect(), burnin(inventory, &row)?)
            }
            _ => (Vec::new(), BurninView::default()),
        };
        if let Some(run) = record.as_ref().and_then(|r| r.last_run.as_ref()) {
            models.push((name.clone(), run.platform.clone(), inventory.run_node(run.id)?));
        }
        let rack = manifest.map(|m| m.rack.id.clone()).or_else(|| record.as_ref().and_then(|r| r.rack.clone()));
        nodes.push(RackNodeReport { name, rack, slot, tray, record, events, burnin: view, locate });
    }
    let consistency = rack_consistency(&models, manifest.and_then(|m| m.rack.platform.as_deref()));
    let outliers = outliers(&nodes);
    let parts = nodes.iter().flat_map(parts_of).collect();
    let trays: Vec<(String, String, String)> = nodes
        .iter()
        .map(|n| {
            let key = n.rack.as_ref().map_or_else(|| n.name.clone(), |r| format!("{r}/{}", n.name));
            (n.name.clone(), n.position(), key)
        })
        .collect();
    let firmware = FirmwareMatrix::build(inventory, &trays)?;
    Ok(RackReport {
        schema_version: RACK_REPORT_SCHEMA_VERSION,
        kind: RACK_REPORT_KIND.into(),
        generated_at: format_timestamp(generated_at),
        rack: manifest.map(|m| m.rack.clone()),
        nodes,
        consistency,
        outliers,
        parts,
        firmware,
    })
}

/// `kiln bmc locate on --rack FILE --node N` for a node of `manifest`, the path quoted for a
/// shell when it needs it.
pub fn locate_command(manifest: &RackManifest, node: &str) -> String {
    format!("kiln bmc locate on --rack {} --node {}", shell_word(&manifest.path.to_string_lossy()), shell_word(node))
}

fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn a_path_a_shell_would_split_is_quoted() {
        assert_eq!(shell_word("inventory/racks/a07.toml"), "inventory/racks/a07.toml");
        assert_eq!(shell_word("my racks/a07.toml"), "'my racks/a07.toml'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
