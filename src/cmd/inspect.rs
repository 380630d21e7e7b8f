//! `kiln inspect`: read this node (or a capture) and print it.

use crate::cli::InspectArgs;
use crate::cmd::{node, CmdResult, Outcome};
use crate::inventory::{now, RunRecord};
use crate::lifecycle::RunKind;
use crate::model::NodeDocument;
use crate::report::node_summary::render_node;

pub fn run(args: &InspectArgs) -> CmdResult {
    let started = now();
    let node = node::inspect(args.source.root.as_deref())?;
    if args.json {
        crate::terminal::json(&NodeDocument::new(&node))?;
    } else {
        crate::terminal::print(&render_node(&node));
    }
    if let Some(db) = &args.db.db {
        let run = RunRecord {
            started_at: started,
            finished_at: now(),
            ..RunRecord::new(RunKind::Inspect, &node, "kiln inspect")
        };
        node::record(db, &run)?;
    }
    Ok(Outcome::ok())
}
