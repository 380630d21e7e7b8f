//! `kiln report`: show what the inventory holds, per node (table, JSON, CSV) or per rack (also
//! HTML, Prometheus and the RMA parts list).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::cli::{ReportArgs, ReportFormat};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::inventory::{db_path, parse_time, Inventory, TIME_FORMS};
use crate::rack::RackManifest;
use crate::report::{
    build_rack_report, build_report_as_of, load_burnin_view, render_csv, render_html, render_json, render_parts_csv,
    render_prometheus, render_rack_csv, render_rack_table, render_table,
};

/// Print the report on stdout (or write it to `--out`). A missing or
/// unreadable database exits with `exit::DATABASE`, a node the inventory
/// does not know or a flag that does not fit the format with `exit::USAGE`,
/// a bad manifest with `exit::BAD_INPUT`.
pub fn run(args: &ReportArgs) -> CmdResult {
    let rack_view = args.rack.is_some() || matches!(args.format, ReportFormat::Html | ReportFormat::Prometheus);
    if args.format == ReportFormat::Html && args.rack.is_none() {
        return Err(CmdError::Usage(
            "--format html needs --rack FILE (the rack drawing comes from the manifest)".into(),
        )
        .into());
    }
    if args.parts && args.format != ReportFormat::Csv {
        return Err(CmdError::Usage("--parts is a CSV list: use it with --format csv".into()).into());
    }
    let manifest = match &args.rack {
        Some(path) => Some(RackManifest::load(path)?),
        None => None,
    };
    let path = db_path(args.db.db.as_deref());
    let inventory = Inventory::open_read_only(&path)?;
    let now = time::OffsetDateTime::now_utc();
    let text = if rack_view {
        let report = build_rack_report(&inventory, manifest.as_ref(), now, &load_burnin_view)?;
        match args.format {
            ReportFormat::Table => crate::terminal::text(&render_rack_table(&report)).into_owned(),
            ReportFormat::Json => serde_json::to_string_pretty(&report).context("serialize the rack report")? + "\n",
            ReportFormat::Csv if args.parts => render_parts_csv(&report.parts),
            ReportFormat::Csv => render_rack_csv(&report),
            ReportFormat::Html => render_html(&report),
            ReportFormat::Prometheus => render_prometheus(&report),
        }
    } else {
        // A node the inventory does not know is a usage error (`CmdError::Inventory`).
        let as_of = match &args.at {
            Some(given) => Some(
                parse_time(given).ok_or_else(|| CmdError::BadTime { given: given.clone(), accepted: TIME_FORMS })?,
            ),
            None => None,
        };
        let report = build_report_as_of(&inventory, args.node.as_deref(), now, as_of)?;
        match args.format {
            ReportFormat::Json => render_json(&report)?,
            ReportFormat::Csv => render_csv(&report),
            _ => crate::terminal::text(&render_table(&report)).into_owned(),
        }
    };
    if let Some(out) = &args.out {
        write_atomically(out, &text)?;
        return Ok(Outcome::ok());
    }
    let mut stdout = crate::terminal::stdout();
    // A reader that stops early (`kiln report | head`) is not an error (`terminal::stdout`).
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("write the report to stdout")?;
    Ok(Outcome::ok())
}

/// Write beside the target and rename over it, so a reader (node_exporter's
/// textfile collector, a web server) never sees half a file.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
}
