//! What node commands share: reading the node (live or `--root`) and
//! recording a run in the inventory when `--db` is given.

use std::path::Path;

use crate::cmd::{CmdError, CmdResult};
use crate::hw;
use crate::inventory::{Inventory, RunId, RunRecord};
use crate::model::Node;

/// Inspects the live machine, or the capture at `root`. A root that cannot
/// be opened (missing, or a malformed NVML dump) is bad input.
pub fn inspect(root: Option<&Path>) -> CmdResult<Node> {
    let (tree, gpus) = hw::open(root)?;
    Ok(hw::inspect(tree.as_ref(), gpus.as_ref()))
}

/// Records one run in the inventory at `db`, in one transaction. A database
/// that cannot be opened or written gives `exit::DATABASE`; nothing partial
/// is left behind.
pub fn record(db: &Path, run: &RunRecord) -> CmdResult<RunId> {
    let id = Inventory::open(db).and_then(|mut inv| inv.record_run(run)).map_err(|source| {
        CmdError::InventoryDoing { doing: format!("could not record the run in {}", db.display()), source }
    })?;
    tracing::info!(db = %db.display(), run = id.0, node = %run.node.hostname, kind = run.kind.as_str(), "run recorded");
    Ok(id)
}
