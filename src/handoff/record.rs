//! What a node's hand-off writes into the inventory: the lifecycle move it implies (to
//! `handed_off` or `quarantined`) or, when the node does not move, a note; either way the event
//! names every action taken, refused or failed.

use super::outcome::{Action, ActionResult, Disposition};
use super::{Decision, Health};
use crate::inventory::{Inventory, InventoryError};
use crate::lifecycle::{LifecycleState, Move};

/// The actor of hand-off events.
pub const ACTOR: &str = "kiln rack handoff";

/// `scontrol update ... State=RESUME: done; uncordon: REFUSED (cordoned by someone else)`.
fn summary(actions: &[Action]) -> String {
    let parts: Vec<String> = actions
        .iter()
        .filter_map(|a| match &a.result {
            ActionResult::Done => Some(format!("{}: done", a.what)),
            ActionResult::Refused { why } => Some(format!("{}: refused ({why})", a.what)),
            ActionResult::Failed { error } => Some(format!("{}: failed ({error})", a.what)),
            ActionResult::AlreadyDone { why } => Some(format!("{}: already done ({why})", a.what)),
            ActionResult::WouldDo => None,
        })
        .collect();
    if parts.is_empty() {
        "nothing to do".into()
    } else {
        parts.join("; ")
    }
}

/// Record a node's hand-off. Returns its state afterwards and one line per
/// event written (or per problem writing one). Illegal moves are refused by
/// the lifecycle and reported, not forced.
pub fn record(
    inventory: &mut Inventory,
    cluster: &str,
    decision: &Decision,
    actions: &[Action],
    disposition: Disposition,
) -> (Option<LifecycleState>, Vec<String>) {
    let node = decision.node.as_str();
    let Some(state) = decision.state.clone() else {
        return (None, vec!["nothing: the node is not in the inventory".into()]);
    };
    let run = decision.health.run();
    let run_text = run.map(|r| format!(" (run {})", r.0)).unwrap_or_default();
    let did = summary(actions);
    let mut lines = Vec::new();
    let mut moves: Vec<(LifecycleState, String)> = Vec::new();
    match (disposition, &decision.health, &state) {
        (Disposition::HandedOff, Health::Pass { sign_off, .. }, _) => {
            if *sign_off && state == LifecycleState::BurnedIn {
                moves.push((
                    LifecycleState::Ready,
                    format!("signed off by hand-off: latest validate and burn-in passed{run_text}"),
                ));
            }
            if state != LifecycleState::HandedOff {
                moves.push((LifecycleState::HandedOff, format!("handed off to {cluster}: {did}{run_text}")));
            }
        }
        // Signed off all the same: it passed; only the cluster side waits for someone else.
        (Disposition::LeftAlone, Health::Pass { sign_off: true, .. }, LifecycleState::BurnedIn) => {
            moves.push((
                LifecycleState::Ready,
                format!("signed off by hand-off{run_text}; left out of {cluster} (someone else holds it): {did}"),
            ));
        }
        // A person's hold outranks kiln's: a quarantined node keeps its reason.
        (Disposition::Quarantined, Health::Fail { reason, .. }, s)
            if !matches!(s, LifecycleState::Quarantined { .. }) =>
        {
            moves.push((
                LifecycleState::Quarantined { reason: format!("kept out of {cluster}: {reason}") },
                format!("quarantined in {cluster}: {did}"),
            ));
        }
        _ => {}
    }
    let mut after = state.clone();
    if moves.is_empty() {
        let cause = match disposition {
            Disposition::HandedOff => format!("still in {cluster}: {did}"),
            Disposition::Quarantined => format!("kept out of {cluster}: {did}"),
            Disposition::Held => {
                format!("held out of {cluster}: {}: {did}", decision.health.reason().unwrap_or("not known healthy"))
            }
            Disposition::LeftAlone => format!("left out of {cluster} (someone else holds it): {did}"),
            Disposition::Error => format!("hand-off to {cluster} failed: {did}"),
        };
        match inventory.note(node, ACTOR, &cause, run) {
            Ok(()) => lines.push(format!("note: {cause}")),
            Err(e) => lines.push(format!("could not record: {}", crate::error::chain(&e))),
        }
        return (Some(after), lines);
    }
    for (to, cause) in moves {
        match inventory.transition(node, &to, ACTOR, &cause) {
            Ok(Move::Changed) => {
                lines.push(format!("{after} -> {to}: {cause}"));
                after = to;
            }
            Ok(Move::Unchanged) => lines.push(format!("already {to}")),
            Err(e @ InventoryError::IllegalTransition { .. }) => {
                lines.push(format!("refused by the lifecycle: {}", crate::error::chain(&e)));
                break;
            }
            Err(e) => {
                lines.push(format!("could not record: {}", crate::error::chain(&e)));
                break;
            }
        }
    }
    (Some(after), lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::tests::support::temp_db;
    use crate::inventory::RunId;

    #[test]
    fn an_illegal_move_is_refused_and_reported_not_forced() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        inv.enroll("n1", None, "test").expect("enroll");
        inv.transition("n1", &LifecycleState::Validated, "test", "validated").expect("validated");
        // A pass decided elsewhere for a node that never burned in: handed_off is not reachable.
        let decision = Decision {
            node: "n1".into(),
            state: Some(LifecycleState::Validated),
            health: Health::Pass { run: Some(RunId(1)), sign_off: false },
        };
        let actions = [Action::new("scontrol update NodeName=n1 State=RESUME", ActionResult::Done)];
        let (after, lines) = record(&mut inv, "slurm", &decision, &actions, Disposition::HandedOff);
        assert_eq!(after, Some(LifecycleState::Validated));
        assert!(lines[0].starts_with("refused by the lifecycle"), "{lines:?}");
        assert_eq!(inv.state("n1").expect("state"), LifecycleState::Validated);
    }

    #[test]
    fn a_persons_quarantine_keeps_its_reason() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        inv.enroll("n1", None, "test").expect("enroll");
        let held = LifecycleState::Quarantined { reason: "suspect tray".into() };
        inv.transition("n1", &held, "tech", "hold").expect("quarantine");
        let decision = Decision {
            node: "n1".into(),
            state: Some(held.clone()),
            health: Health::Fail { checks: vec![], run: None, reason: "quarantined (suspect tray)".into() },
        };
        let actions = [Action::new("drain", ActionResult::Done)];
        let (after, lines) = record(&mut inv, "slurm", &decision, &actions, Disposition::Quarantined);
        assert_eq!(after, Some(held.clone()));
        assert!(lines[0].starts_with("note: kept out of slurm"), "{lines:?}");
        assert_eq!(inv.state("n1").expect("state"), held);
    }
}
