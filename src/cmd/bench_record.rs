//! `kiln bench-record` (hidden): records N inventories of one node into a
//! database, the figure `cargo xtask bench` reports for the inventory.

use crate::checks::validate;
use crate::cli::BenchRecordArgs;
use crate::cmd::{node, CmdResult, Outcome};
use crate::inventory::{record_inventories, Inventory};

pub fn run(args: &BenchRecordArgs) -> CmdResult {
    let node = node::inspect(Some(&args.root))?;
    let specs = crate::checks::spec_load::load_set(None)?;
    let spec = crate::checks::detect::detect(&specs, &node)?;
    let findings = validate(&node, &spec.spec.platform);
    if let Some(racks) = args.site_racks {
        return site(args, &node, &findings, &spec.spec.platform.name, racks);
    }
    let mut inv = Inventory::open(&args.db)?;
    let stats = record_inventories(&mut inv, &node, &findings, args.count, args.count)?;
    crate::terminal::println(format_args!(
        "recorded {} runs ({} components, {} findings) in {:.3} s: {:.0} runs/s",
        stats.runs,
        stats.components,
        stats.findings,
        stats.elapsed.as_secs_f64(),
        stats.runs_per_second()
    ));
    Ok(Outcome::ok())
}

/// The median of `n` timings of `f`, in milliseconds.
fn median_ms(n: usize, mut f: impl FnMut() -> Result<(), crate::inventory::InventoryError>) -> CmdResult<f64> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = std::time::Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A synthetic site recorded, then asked `where` and `--at`; the figures as one JSON line.
fn site(
    args: &BenchRecordArgs,
    node: &crate::model::Node,
    findings: &[crate::checks::Finding],
    platform: &str,
    racks: usize,
) -> CmdResult {
    let stats = {
        let mut inv = Inventory::open(&args.db)?;
        crate::inventory::record_site(&mut inv, node, findings, platform, racks, args.days)?
    };
    let size = |suffix: &str| {
        let mut p = args.db.as_os_str().to_owned();
        p.push(suffix);
        std::fs::metadata(std::path::PathBuf::from(p)).map_or(0, |m| m.len())
    };
    let db_bytes = size("") + size("-wal");
    let inv = Inventory::open_read_only(&args.db)?;
    let serial = stats.swapped_serial.clone().unwrap_or_default();
    let mut stays = 0;
    let where_ms = median_ms(21, || {
        stays = inv.part_history(&serial)?.len();
        Ok(())
    })?;
    let tray = format!("rack000/{}", stats.first_tray);
    let at = crate::inventory::now() - time::Duration::days((args.days / 2).max(1) as i64) + time::Duration::hours(12);
    let at_ms = median_ms(21, || {
        crate::report::build_report_as_of(&inv, Some(&tray), crate::inventory::now(), Some(at)).map(|_| ())
    })?;
    let days: Vec<f64> = stats.day_elapsed.iter().map(|d| d.as_secs_f64()).collect();
    let doc = serde_json::json!({
        "racks": stats.racks,
        "trays": stats.trays,
        "gpus": stats.gpus,
        "days": stats.days,
        "runs": stats.runs,
        "day_seconds": days,
        "db_bytes": db_bytes,
        "where_ms": where_ms,
        "where_stays": stays,
        "at_ms": at_ms,
    });
    println!("{doc}");
    Ok(Outcome::ok())
}
