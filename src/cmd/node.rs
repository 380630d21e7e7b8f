//! What node commands share: reading the node (live or `--root`) and
//! recording a run in the inventory when `--db` is given.

use std::path::Path;

use crate::exit;
use crate::hw;
use crate::inventory::{Inventory, RunId, RunRecord};
use crate::model::Node;

/// Inspects the live machine, or the capture at `root`. A root that cannot
/// be opened (missing, or a malformed NVML dump) is bad input: the error is
/// printed and `Err` carries the exit code.
pub fn inspect(root: Option<&Path>) -> Result<Node, i32> {
    match hw::open(root) {
        Ok((tree, gpus)) => Ok(hw::inspect(tree.as_ref(), gpus.as_ref())),
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
            Err(exit::BAD_INPUT)
        }
    }
}

/// Records one run in the inventory at `db`, in one transaction. A database
/// that cannot be opened or written is printed and gives `exit::DATABASE`;
/// nothing partial is left behind.
pub fn record(db: &Path, run: &RunRecord) -> Result<RunId, i32> {
    let result = Inventory::open(db).and_then(|mut inv| inv.record_run(run));
    match result {
        Ok(id) => {
            tracing::info!(db = %db.display(), run = id.0, node = %run.node.hostname, kind = run.kind.as_str(), "run recorded");
            Ok(id)
        }
        Err(e) => {
            eprintln!("kiln: error: could not record the run in {}: {:#}", db.display(), anyhow::Error::from(e));
            Err(exit::DATABASE)
        }
    }
}
