//! `kiln inventory where|diff|export`: questions to the inventory, read-only.

use std::io::Write;

use crate::cli::{ExportFormat, InventoryCommand, InventoryDiffArgs, InventoryExportArgs, InventoryWhereArgs};
use crate::cmd::{CmdResult, Outcome};
use crate::inventory::{db_path, diff_components, format_timestamp, now, Inventory, InventoryError, RunId};
use crate::report::questions::{InventoryDiff, InventoryExport, PartHistory};

pub fn run(command: &InventoryCommand) -> CmdResult {
    let text = match command {
        InventoryCommand::Where(args) => where_is(args)?,
        InventoryCommand::Diff(args) => diff(args)?,
        InventoryCommand::Export(args) => export(args)?,
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Outcome::ok()),
        // A reader that stops early (`kiln inventory export | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::ok()),
        Err(e) => Err(e.into()),
    }
}

/// A serial never recorded is a mistake in the invocation (exit 2), as an unknown node is.
fn where_is(args: &InventoryWhereArgs) -> CmdResult<String> {
    let inventory = Inventory::open_read_only(db_path(args.db.db.as_deref()))?;
    let stays = inventory.part_history(&args.serial)?;
    if stays.is_empty() {
        return Err(InventoryError::UnknownSerial { serial: args.serial.clone() }.into());
    }
    let doc = PartHistory::new(&args.serial, stays);
    Ok(if args.json { serde_json::to_string_pretty(&doc)? + "\n" } else { doc.render_text() })
}

fn diff(args: &InventoryDiffArgs) -> CmdResult<String> {
    let inventory = Inventory::open_read_only(db_path(args.db.db.as_deref()))?;
    let node =
        inventory.node(&args.node)?.ok_or_else(|| InventoryError::UnknownNode { hostname: args.node.clone() })?;
    let run_of_node = |id: i64| -> Result<crate::inventory::RunRow, InventoryError> {
        let run = inventory
            .run(RunId(id))?
            .ok_or_else(|| InventoryError::UnknownRun { run: id, why: "no such run in the inventory".into() })?;
        if run.node_id != node.id {
            return Err(InventoryError::UnknownRun { run: id, why: format!("not a run of node {}", node.name) });
        }
        if run.kind == crate::inventory::BMC_FIRMWARE_RUN {
            return Err(InventoryError::UnknownRun {
                run: id,
                why: "a BMC firmware reading, not a run that read the node's parts".into(),
            });
        }
        if run.kind == crate::inventory::COLLECTIVE_RUN {
            return Err(InventoryError::UnknownRun {
                run: id,
                why: "a rank of a rack collective, not a run that read the node's parts".into(),
            });
        }
        Ok(run)
    };
    let a = run_of_node(args.run_a)?;
    let b = run_of_node(args.run_b)?;
    let changes = diff_components(&inventory.run_components(a.id)?, &inventory.run_components(b.id)?);
    let doc = InventoryDiff::new(&node.name, &a, &b, changes);
    Ok(if args.json { serde_json::to_string_pretty(&doc)? + "\n" } else { doc.render_text() })
}

fn export(args: &InventoryExportArgs) -> CmdResult<String> {
    let inventory = Inventory::open_read_only(db_path(args.db.db.as_deref()))?;
    let doc = InventoryExport::new(format_timestamp(now()), inventory.export()?);
    Ok(match args.format {
        ExportFormat::Json => serde_json::to_string_pretty(&doc)? + "\n",
        ExportFormat::Csv => doc.render_csv(),
    })
}
