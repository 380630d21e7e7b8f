//! `kiln inspect`: read this node (or a capture) and print it.

use crate::cli::InspectArgs;
use crate::exit;
use crate::hw;
use crate::report::node_summary::render_node;

pub fn run(args: &InspectArgs) -> anyhow::Result<i32> {
    let (tree, gpus) = match hw::open(args.source.root.as_deref()) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("kiln: error: {:#}", anyhow::Error::from(e));
            return Ok(exit::BAD_INPUT);
        }
    };
    let node = hw::inspect(tree.as_ref(), gpus.as_ref());
    // lead: record the inspection in the inventory when `args.db.db` is set.
    if args.json {
        println!("{}", serde_json::to_string_pretty(&node)?);
    } else {
        print!("{}", render_node(&node));
    }
    Ok(exit::OK)
}
