//! `kiln report`: show what the inventory holds, as a table, JSON or CSV.

use std::io::Write;

use crate::cli::{ReportArgs, ReportFormat};
use crate::exit;
use crate::inventory::{db_path, Inventory, InventoryError};
use crate::report::{build_report, render_csv, render_json, render_table};

/// Print the report on stdout. A missing or unreadable database exits with
/// `exit::DATABASE`, a node the inventory does not know with `exit::USAGE`.
pub fn run(args: &ReportArgs) -> anyhow::Result<i32> {
    let path = db_path(args.db.db.as_deref());
    let inventory = match Inventory::open_existing(&path) {
        Ok(inventory) => inventory,
        Err(e) => return Ok(fail(e, exit::DATABASE)),
    };
    let report = match build_report(&inventory, args.node.as_deref(), time::OffsetDateTime::now_utc()) {
        Ok(report) => report,
        Err(e @ InventoryError::UnknownNode { .. }) => return Ok(fail(e, exit::USAGE)),
        Err(e) => return Ok(fail(e, exit::DATABASE)),
    };
    let text = match args.format {
        ReportFormat::Table => render_table(&report),
        ReportFormat::Json => render_json(&report)?,
        ReportFormat::Csv => render_csv(&report),
        ReportFormat::Html | ReportFormat::Prometheus => anyhow::bail!("not yet"),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(exit::OK),
        // A reader that stops early (`kiln report | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => Err(anyhow::Error::new(e).context("write the report to stdout")),
    }
}

fn fail(error: InventoryError, code: i32) -> i32 {
    eprintln!("kiln: error: {:#}", anyhow::Error::new(error));
    code
}
