//! One part, one place, across the site: after a rack validate is recorded, every serial of each
//! node's parts is compared with the newest run of every other node in the inventory (other
//! racks, nodes validated alone), as `kiln validate --db` does for one node.

use super::outcome::NodeOutcome;
use crate::checks::Finding;
use crate::inventory::{Inventory, InventoryError, NodeId, RunId};

/// The `inventory.serial_unique` findings of the nodes this rack run recorded, each naming the
/// node and part here and the place and run that also holds the serial. A GPU seen twice within
/// the rack is left to `rack.serial.gpu`, which judges the rack's own models.
pub fn site_serials(inv: &Inventory, rack: &str, outcomes: &[NodeOutcome]) -> Result<Vec<Finding>, InventoryError> {
    let mut out = Vec::new();
    for o in outcomes {
        let Some(run) = o.recorded.as_ref().and_then(|r| r.run_id) else { continue };
        let Some(row) = inv.node(&super::record::place(rack, &o.node))? else { continue };
        let node = inv.run_node(RunId(run))?;
        let place: NodeId = row.id;
        for c in inv.serials_elsewhere_than(&node, Some(place))? {
            if c.kind == "gpu" && c.other_rack.as_deref() == Some(rack) {
                continue;
            }
            out.push(c.finding(Some(&o.node)));
        }
    }
    Ok(out)
}
