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
