//! `kiln node history|quarantine|release`: read and change one node's
//! lifecycle from the command line (docs/lifecycle.md).
//!
//! Every change goes through `Inventory::transition` or `Inventory::release`,
//! so it is judged by the lifecycle rules and appended to the node's history
//! in the same transaction. The database must exist: a mistyped `--db` must
//! not create an empty inventory in which every node is "unknown".

use serde::Serialize;

use crate::cli::{NodeCommand, NodeHistoryArgs, NodeQuarantineArgs, NodeReleaseArgs};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::inventory::{db_path, Inventory, InventoryError, LifecycleEvent, MachineEvent};
use crate::lifecycle::{LifecycleState, Move};

/// `schema_version` of the `kiln.node-history` document; bumped on any
/// change a consumer could notice.
pub const NODE_HISTORY_SCHEMA_VERSION: u32 = 1;

/// `kiln node history --json`: the node's state now and every event, oldest first.
#[derive(Debug, Serialize)]
pub struct NodeHistory<'a> {
    pub schema_version: u32,
    pub kind: &'static str,
    pub node: &'a str,
    pub state: &'a LifecycleState,
    pub events: &'a [LifecycleEvent],
    /// Which machine stood in the node's place, oldest first (docs/inventory.md).
    pub machine_events: &'a [MachineEvent],
    /// Its ranks in rack collectives, oldest first (docs/burnin.md, "Collective").
    pub collectives: &'a [CollectiveEntry],
}

/// One rank of the node in a rack collective, as its history lists it.
#[derive(Debug, Serialize)]
pub struct CollectiveEntry {
    pub started_at: String,
    pub rack: Option<String>,
    pub rack_run_id: i64,
    pub run_id: i64,
    pub rank: u32,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The tray's own verdict; absent for a rank skipped or stopped because another failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::checks::Verdict>,
}

impl CollectiveEntry {
    fn of(t: &crate::inventory::CollectiveTrayRow) -> CollectiveEntry {
        CollectiveEntry {
            started_at: t.started_at.clone(),
            rack: t.rack.clone(),
            rack_run_id: t.rack_run_id.0,
            run_id: t.run_id.0,
            rank: t.rank,
            status: t.status.clone(),
            reason: t.reason.clone(),
            verdict: t.verdict,
        }
    }
}

/// Runs one `kiln node` command. Exit codes: 0 done (or nothing to do),
/// 1 the lifecycle refused the move (nothing recorded), 2 a node the
/// inventory does not know, 5 a missing or unusable database.
pub fn run(command: &NodeCommand) -> CmdResult {
    match command {
        NodeCommand::History(args) => history(args),
        NodeCommand::Quarantine(args) => quarantine(args),
        NodeCommand::Release(args) => release(args),
    }
}

fn history(args: &NodeHistoryArgs) -> CmdResult {
    let path = db_path(args.db.db.as_deref());
    let what = format!("read the history of node {} in {}", args.node, path.display());
    let inventory = Inventory::open_read_only(&path).map_err(|e| fail(&what, e))?;
    let (state, events) = inventory
        .state(&args.node)
        .and_then(|s| Ok((s, inventory.history(&args.node)?)))
        .map_err(|e| fail(&what, e))?;
    let (machines, collectives) = match inventory.node(&args.node).map_err(|e| fail(&what, e))? {
        Some(row) => (
            inventory.machine_events(row.id).map_err(|e| fail(&what, e))?,
            inventory.collective_runs(row.id).map_err(|e| fail(&what, e))?.iter().map(CollectiveEntry::of).collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    if args.json {
        let doc = NodeHistory {
            schema_version: NODE_HISTORY_SCHEMA_VERSION,
            kind: "kiln.node-history",
            node: &args.node,
            state: &state,
            events: &events,
            machine_events: &machines,
            collectives: &collectives,
        };
        crate::terminal::json(&doc)?;
    } else {
        let mut text = render_history(&args.node, &state, &events);
        // The first machine seen is in the JSON; the text shows the place's machines once
        // another has stood there.
        if machines.iter().any(|m| m.previous.is_some() || m.other_node.is_some()) {
            text.push_str("machines in this place:\n");
            for m in &machines {
                let run = m.run_id.map(|r| format!(" [run {}]", r.0)).unwrap_or_default();
                text.push_str(&format!("{}  {}{run}\n", m.at, m.message));
            }
        }
        if !collectives.is_empty() {
            text.push_str("collectives:\n");
            for c in &collectives {
                let rack = c.rack.as_deref().map(|r| format!("rack {r} ")).unwrap_or_default();
                let why = c.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
                text.push_str(&format!(
                    "{}  {rack}rank {}: {}{why} [rack run {}, run {}]\n",
                    c.started_at, c.rank, c.status, c.rack_run_id, c.run_id
                ));
            }
        }
        crate::terminal::print(&text);
    }
    Ok(Outcome::ok())
}

fn quarantine(args: &NodeQuarantineArgs) -> CmdResult {
    let path = db_path(args.db.db.as_deref());
    let what = format!("quarantine node {} in {}", args.node, path.display());
    let mut inventory = Inventory::open_existing(&path).map_err(|e| fail(&what, e))?;
    // Read only to say what changed; the transition itself re-reads and
    // judges the state inside its own transaction.
    let before = inventory.state(&args.node).map_err(|e| fail(&what, e))?;
    let to = LifecycleState::Quarantined { reason: args.reason.clone() };
    let actor = actor("quarantine", args.by.as_deref());
    let cause = format!("quarantined: {}", args.reason);
    match inventory.transition(&args.node, &to, &actor, &cause).map_err(|e| fail(&what, e))? {
        Move::Changed => crate::terminal::println(format_args!("{}: {before} -> {to}", args.node)),
        Move::Unchanged => crate::terminal::println(format_args!("{}: already {to}; nothing recorded", args.node)),
    }
    Ok(Outcome::ok())
}

fn release(args: &NodeReleaseArgs) -> CmdResult {
    let path = db_path(args.db.db.as_deref());
    let what = format!("release node {} in {}", args.node, path.display());
    let mut inventory = Inventory::open_existing(&path).map_err(|e| fail(&what, e))?;
    let actor = actor("release", args.by.as_deref());
    let cause = match &args.reason {
        Some(reason) => format!("released from quarantine: {reason}"),
        None => "released from quarantine".to_string(),
    };
    let from = inventory.release(&args.node, &actor, &cause).map_err(|e| fail(&what, e))?;
    crate::terminal::println(format_args!("{}: {from} -> {}", args.node, LifecycleState::Enrolled));
    crate::terminal::println(format_args!(
        "next: validate and burn in the node again; the next hand-off then puts it in service"
    ));
    Ok(Outcome::ok())
}

/// Who made the change, as recorded in the history: the command, and the
/// person when known (`--by`, else the user who ran sudo, else the user).
fn actor(verb: &str, by: Option<&str>) -> String {
    let person = by.map(str::to_string).or_else(|| {
        ["SUDO_USER", "USER"].iter().find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
    });
    match person {
        Some(name) => format!("kiln node {verb} by {name}"),
        None => format!("kiln node {verb}"),
    }
}

/// The error with what was being done (node and database). Its exit code: a node the
/// inventory does not know is a mistake in the invocation (2, as `kiln report --node`), a move
/// the lifecycle refuses is 1 (and says that nothing was recorded), the rest 5.
fn fail(what: &str, source: InventoryError) -> CmdError {
    CmdError::InventoryDoing { doing: what.to_string(), source }
}

/// The text form: the state now, then one line per event, oldest first.
pub fn render_history(node: &str, state: &LifecycleState, events: &[LifecycleEvent]) -> String {
    let mut out = format!("{node}: {state}\n");
    for e in events {
        let change = match &e.from {
            None => format!("new -> {}", e.to),
            Some(from) if *from == e.to => format!("{from} (no change)"),
            Some(from) => format!("{from} -> {}", e.to),
        };
        let run = e.run_id.map(|r| format!(", run {}", r.0)).unwrap_or_default();
        out.push_str(&format!("{}  {change}: {} [{}{run}]\n", e.at, e.cause, e.actor));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::RunId;

    fn event(
        id: i64,
        from: Option<LifecycleState>,
        to: LifecycleState,
        cause: &str,
        run: Option<i64>,
    ) -> LifecycleEvent {
        LifecycleEvent {
            id,
            at: format!("2025-01-0{id}T00:00:00.000Z"),
            from,
            to,
            actor: "kiln validate".into(),
            cause: cause.into(),
            run_id: run.map(RunId),
        }
    }

    #[test]
    fn history_text_leads_with_the_state_and_marks_notes() {
        let held = LifecycleState::Quarantined { reason: "suspect tray".into() };
        let events = [
            event(1, None, LifecycleState::Enrolled, "enrolled", Some(1)),
            event(2, Some(LifecycleState::Enrolled), held.clone(), "quarantined: suspect tray", None),
            event(3, Some(held.clone()), held.clone(), "kept out of slurm: done", None),
        ];
        let text = render_history("n1", &held, &events);
        assert_eq!(
            text,
            "n1: quarantined (suspect tray)\n\
             2025-01-01T00:00:00.000Z  new -> enrolled: enrolled [kiln validate, run 1]\n\
             2025-01-02T00:00:00.000Z  enrolled -> quarantined (suspect tray): quarantined: suspect tray [kiln validate]\n\
             2025-01-03T00:00:00.000Z  quarantined (suspect tray) (no change): kept out of slurm: done [kiln validate]\n"
        );
    }

    #[test]
    fn the_actor_names_the_command_and_the_person() {
        assert_eq!(actor("release", Some("lead-bo")), "kiln node release by lead-bo");
    }
}
