//! Lifecycle persistence: a node's state and its append-only event log.

use rusqlite::{params, Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::lifecycle::{check_release, check_transition, IllegalTransition, LifecycleState, Move};

use super::record::{NodeId, RunId};
use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};
use crate::redact;

/// One entry of a node's lifecycle history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    pub id: i64,
    pub at: String,
    /// `None` for the event that enrolled the node.
    pub from: Option<LifecycleState>,
    pub to: LifecycleState,
    pub actor: String,
    pub cause: String,
    /// The run that caused the change, when a run did.
    pub run_id: Option<RunId>,
}

/// An event about to be appended.
pub(crate) struct EventRow<'a> {
    pub node_id: i64,
    pub at: &'a str,
    pub from: Option<&'a LifecycleState>,
    pub to: &'a LifecycleState,
    pub actor: &'a str,
    pub cause: &'a str,
    pub run_id: Option<i64>,
}

/// Appends an event. Nothing appended can be taken back, so the user and password of any URL in
/// its cause or reasons are hidden here, whoever wrote them.
pub(crate) fn append_event(conn: &Connection, e: &EventRow<'_>) -> rusqlite::Result<()> {
    let hide = |t: Option<&str>| t.map(|t| redact::userinfo(t).into_owned());
    conn.prepare_cached(
        "INSERT INTO lifecycle_events (node_id, at, from_state, from_reason, to_state, to_reason, actor, cause, run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.node_id,
        e.at,
        e.from.map(LifecycleState::name),
        hide(e.from.and_then(LifecycleState::reason)),
        e.to.name(),
        hide(e.to.reason()),
        e.actor,
        redact::userinfo(e.cause),
        e.run_id,
    ])?;
    Ok(())
}

/// A stored state name kiln does not know is reported as a conversion
/// failure of that column, so the error names where the bad value sits.
fn state_from_row(name: String, reason: Option<String>, column: usize) -> rusqlite::Result<LifecycleState> {
    LifecycleState::from_parts(&name, reason)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

pub(crate) fn read_state(conn: &Connection, node_id: i64) -> rusqlite::Result<LifecycleState> {
    conn.prepare_cached("SELECT state, state_reason FROM nodes WHERE id = ?1")?
        .query_row([node_id], |row| state_from_row(row.get(0)?, row.get(1)?, 0))
}

pub(crate) fn set_state(conn: &Connection, node_id: i64, state: &LifecycleState) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE nodes SET state = ?2, state_reason = ?3 WHERE id = ?1")?.execute(params![
        node_id,
        state.name(),
        state.reason().map(redact::userinfo)
    ])?;
    Ok(())
}

pub(crate) use super::machine::node_named as node_id;

/// Why a lifecycle write stopped.
enum Abort {
    Sql(rusqlite::Error),
    Inventory(InventoryError),
}

impl From<rusqlite::Error> for Abort {
    fn from(e: rusqlite::Error) -> Self {
        Abort::Sql(e)
    }
}

impl From<super::machine::NameError> for Abort {
    fn from(e: super::machine::NameError) -> Self {
        match e {
            super::machine::NameError::Sql(e) => Abort::Sql(e),
            super::machine::NameError::Ambiguous(e) => Abort::Inventory(e),
        }
    }
}

impl Inventory {
    /// Make a node known to the inventory before any run (from a rack
    /// manifest, say): it starts enrolled. A node already known keeps its
    /// state; its rack is updated when one is given.
    pub fn enroll(&mut self, hostname: &str, rack: Option<&str>, actor: &str) -> Result<NodeId, InventoryError> {
        let failed = |source| InventoryError::Transition { hostname: hostname.to_string(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let at = format_timestamp(now());
        let found = match rack {
            Some(_) => super::machine::node_in_rack(&tx, hostname, rack).map_err(failed)?,
            None => node_id(&tx, hostname).map_err(|e| e.into_inventory(failed))?,
        };
        let id = match found {
            Some(id) => {
                tx.execute("UPDATE nodes SET rack = coalesce(?2, rack) WHERE id = ?1", params![id, rack])
                    .map_err(failed)?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO nodes (name, first_seen, last_seen, rack, state) VALUES (?1, ?2, ?2, ?3, 'enrolled')",
                    params![hostname, at, rack],
                )
                .map_err(failed)?;
                let id = tx.last_insert_rowid();
                let event = EventRow {
                    node_id: id,
                    at: &at,
                    from: None,
                    to: &LifecycleState::Enrolled,
                    actor,
                    cause: "enrolled",
                    run_id: None,
                };
                append_event(&tx, &event).map_err(failed)?;
                tracing::info!(node = hostname, "node enrolled");
                id
            }
        };
        tx.commit().map_err(failed)?;
        Ok(NodeId(id))
    }

    /// Move a node to `to`, appending an event and updating its state in one
    /// transaction. An illegal move is refused and changes nothing; a move to
    /// the state the node is already in records nothing and returns
    /// `Move::Unchanged`.
    pub fn transition(
        &mut self,
        hostname: &str,
        to: &LifecycleState,
        actor: &str,
        cause: &str,
    ) -> Result<Move, InventoryError> {
        self.move_node(hostname, to, actor, cause, |from| check_transition(from, to)).map(|(step, _)| step)
    }

    /// Release a quarantined node to enrolled, the one way out of quarantine.
    /// A node in any other state is refused (`check_release`) and nothing is
    /// recorded; the state is read and changed in the same transaction, so a
    /// node quarantined or moved by someone else meanwhile is judged as it is
    /// now. Answers the state the node was released from, with its reason.
    pub fn release(&mut self, hostname: &str, actor: &str, cause: &str) -> Result<LifecycleState, InventoryError> {
        self.move_node(hostname, &LifecycleState::Enrolled, actor, cause, check_release).map(|(_, from)| from)
    }

    /// The body of `transition` and `release`: `check` judges the move from
    /// the state read inside the transaction.
    fn move_node(
        &mut self,
        hostname: &str,
        to: &LifecycleState,
        actor: &str,
        cause: &str,
        check: impl FnOnce(&LifecycleState) -> Result<Move, IllegalTransition>,
    ) -> Result<(Move, LifecycleState), InventoryError> {
        let failed = |source| InventoryError::Transition { hostname: hostname.to_string(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let result = (|| -> Result<(Move, LifecycleState), Abort> {
            let id = node_id(&tx, hostname)?
                .ok_or_else(|| Abort::Inventory(InventoryError::UnknownNode { hostname: hostname.to_string() }))?;
            let from = read_state(&tx, id)?;
            let step = check(&from).map_err(|source| {
                Abort::Inventory(InventoryError::IllegalTransition {
                    hostname: hostname.to_string(),
                    to: to.clone(),
                    source: Box::new(source),
                })
            })?;
            if step == Move::Changed {
                set_state(&tx, id, to)?;
                let at = format_timestamp(now());
                let event = EventRow { node_id: id, at: &at, from: Some(&from), to, actor, cause, run_id: None };
                append_event(&tx, &event)?;
            }
            Ok((step, from))
        })();
        match result {
            Ok((step, from)) => {
                tx.commit().map_err(failed)?;
                if step == Move::Changed {
                    tracing::info!(node = hostname, %from, %to, actor, "lifecycle state changed");
                }
                Ok((step, from))
            }
            Err(Abort::Sql(source)) => Err(failed(source)),
            Err(Abort::Inventory(e)) => Err(e),
        }
    }

    /// A node's current lifecycle state.
    pub fn state(&self, hostname: &str) -> Result<LifecycleState, InventoryError> {
        let query = |source| InventoryError::Query { what: format!("lifecycle state of node {hostname}"), source };
        let id = node_id(&self.conn, hostname)
            .map_err(|e| e.into_inventory(query))?
            .ok_or_else(|| InventoryError::UnknownNode { hostname: hostname.to_string() })?;
        read_state(&self.conn, id).map_err(query)
    }

    /// A node's lifecycle events, oldest first.
    pub fn history(&self, hostname: &str) -> Result<Vec<LifecycleEvent>, InventoryError> {
        let query = |source| InventoryError::Query { what: format!("lifecycle history of node {hostname}"), source };
        let id = node_id(&self.conn, hostname)
            .map_err(|e| e.into_inventory(query))?
            .ok_or_else(|| InventoryError::UnknownNode { hostname: hostname.to_string() })?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, from_state, from_reason, to_state, to_reason, actor, cause, run_id
                 FROM lifecycle_events WHERE node_id = ?1 ORDER BY id",
            )
            .map_err(query)?;
        let rows = stmt
            .query_map([id], |row| {
                let from = match row.get::<_, Option<String>>(2)? {
                    Some(name) => Some(state_from_row(name, row.get(3)?, 2)?),
                    None => None,
                };
                Ok(LifecycleEvent {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    from,
                    to: state_from_row(row.get(4)?, row.get(5)?, 4)?,
                    actor: row.get(6)?,
                    cause: row.get(7)?,
                    run_id: row.get::<_, Option<i64>>(8)?.map(RunId),
                })
            })
            .map_err(query)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(query)
    }
}
