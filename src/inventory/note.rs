//! `Inventory::note`: a lifecycle event that records an action which did not move the node.
//!
//! Hand-off acts on a cluster and must leave a trace of every action and
//! every refusal ("not resuming: drained by someone else"), also when the
//! node's state stays what it was. Such an event has the same state on both
//! sides; the state machine is not consulted because nothing moves.

use rusqlite::TransactionBehavior;

use super::lifecycle::{append_event, node_id, read_state, EventRow};
use super::record::RunId;
use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};

impl Inventory {
    /// Append an event to a node's history without changing its state: its
    /// `from` and `to` are the node's current state. `run` names the run the
    /// action was based on, when one was.
    pub fn note(&mut self, hostname: &str, actor: &str, cause: &str, run: Option<RunId>) -> Result<(), InventoryError> {
        let failed = |source| InventoryError::Transition { hostname: hostname.to_string(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let id = node_id(&tx, hostname)
            .map_err(|e| e.into_inventory(failed))?
            .ok_or_else(|| InventoryError::UnknownNode { hostname: hostname.to_string() })?;
        let state = read_state(&tx, id).map_err(failed)?;
        let at = format_timestamp(now());
        let event =
            EventRow { node_id: id, at: &at, from: Some(&state), to: &state, actor, cause, run_id: run.map(|r| r.0) };
        append_event(&tx, &event).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::tests::support::temp_db;
    use crate::inventory::{Inventory, InventoryError, RunId};
    use crate::lifecycle::LifecycleState;

    #[test]
    fn a_note_keeps_the_state_and_is_appended() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        inv.enroll("n1", None, "test").expect("enroll");
        inv.note("n1", "kiln rack handoff", "not resuming: drained by someone else", None).expect("note");
        let history = inv.history("n1").expect("history");
        assert_eq!(history.len(), 2);
        let last = &history[1];
        assert_eq!((last.from.as_ref(), &last.to), (Some(&LifecycleState::Enrolled), &LifecycleState::Enrolled));
        assert_eq!(last.cause, "not resuming: drained by someone else");
        assert_eq!(inv.state("n1").expect("state"), LifecycleState::Enrolled);
        let err = inv.note("zz", "t", "c", Some(RunId(1))).expect_err("unknown node");
        assert!(matches!(err, InventoryError::UnknownNode { .. }), "{err:?}");
    }

    #[test]
    fn a_url_password_never_reaches_the_history_whoever_writes_it() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        inv.enroll("n1", None, "test").expect("enroll");
        inv.note("n1", "t", "inserted http://u:hunter2@h/x.iso", None).expect("note");
        let failed = LifecycleState::Failed { reason: "GET https://u:hunter2@h/x answered 500".into() };
        inv.transition("n1", &failed, "t", "fetch https://u:hunter2@h/x failed").expect("fail");
        let history = inv.history("n1").expect("history");
        assert_eq!(history[1].cause, "inserted http://***@h/x.iso");
        assert_eq!(history[2].cause, "fetch https://***@h/x failed");
        assert_eq!(inv.state("n1").expect("state").reason(), Some("GET https://***@h/x answered 500"));
        drop(inv);
        let bytes = std::fs::read(&path).expect("db");
        assert!(!bytes.windows(7).any(|w| w == b"hunter2"), "in the database file");
    }
}
