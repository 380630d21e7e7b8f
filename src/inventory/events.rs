//! The node event log: what kiln did to a node that is not a lifecycle change (BMC actions).

use rusqlite::{params, TransactionBehavior};
use serde::{Deserialize, Serialize};

use super::lifecycle::node_id;
use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};

/// How far an action had got when the event was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOutcome {
    /// About to be sent: written first, so a destructive action is on record
    /// even if kiln dies before it hears back.
    Requested,
    /// The peer accepted it.
    Done,
    /// The peer refused it or could not be reached.
    Failed,
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Requested => "requested",
            EventOutcome::Done => "done",
            EventOutcome::Failed => "failed",
        }
    }
}

/// One event to append.
#[derive(Debug, Clone)]
pub struct NodeEvent<'a> {
    /// The node's name (manifest name or hostname); `None` for a target given
    /// only by URL. A node the inventory does not know yet is enrolled.
    pub node: Option<&'a str>,
    /// The rack the node stands in, when known (set on enrolment).
    pub rack: Option<&'a str>,
    /// What was acted on, `https://10.77.0.1:8101`; never with credentials.
    pub target: &'a str,
    pub actor: &'a str,
    /// `power.force-off`, `boot.pxe`, `media.insert`.
    pub action: &'a str,
    pub outcome: EventOutcome,
    pub detail: Option<&'a str>,
}

/// An event as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: i64,
    /// The node's name, when the event names one.
    pub node: Option<String>,
    pub target: String,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub outcome: EventOutcome,
    pub detail: Option<String>,
}

impl Inventory {
    /// Append one event, enrolling its node first when the inventory does not
    /// know it, in one transaction.
    pub fn log_event(&mut self, e: &NodeEvent<'_>) -> Result<i64, InventoryError> {
        let failed =
            |source| InventoryError::LogEvent { target: e.target.to_string(), action: e.action.to_string(), source };
        if let Some(node) = e.node {
            // Enrolment is its own small transaction; an event without its
            // node is never written, and an enrolled node without events is
            // a consistent state.
            self.enroll(node, e.rack, e.actor)?;
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let id = match e.node {
            Some(name) => node_id(&tx, name).map_err(failed)?,
            None => None,
        };
        tx.prepare_cached(
            "INSERT INTO events (node_id, target, at, actor, action, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| {
            s.execute(params![id, e.target, format_timestamp(now()), e.actor, e.action, e.outcome.as_str(), e.detail])
        })
        .map_err(failed)?;
        let row = tx.last_insert_rowid();
        tx.commit().map_err(failed)?;
        tracing::debug!(node = ?e.node, target = e.target, action = e.action, outcome = e.outcome.as_str(), "event logged");
        Ok(row)
    }

    /// A node's events, oldest first.
    pub fn events(&self, hostname: &str) -> Result<Vec<EventRow>, InventoryError> {
        self.query_events(|| format!("events of node {hostname}"), "WHERE n.hostname = ?1", rusqlite::params![hostname])
    }

    /// Events about a target given only by URL (no node), oldest first.
    pub fn target_events(&self, target: &str) -> Result<Vec<EventRow>, InventoryError> {
        self.query_events(|| format!("events of {target}"), "WHERE e.target = ?1", rusqlite::params![target])
    }

    fn query_events(
        &self,
        what: impl Fn() -> String,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<EventRow>, InventoryError> {
        let failed = |source| InventoryError::Query { what: what(), source };
        let sql = format!(
            "SELECT e.id, n.hostname, e.target, e.at, e.actor, e.action, e.outcome, e.detail
             FROM events e LEFT JOIN nodes n ON n.id = e.node_id {filter} ORDER BY e.id"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(failed)?;
        let rows = stmt
            .query_map(params, |row| {
                Ok(EventRow {
                    id: row.get(0)?,
                    node: row.get(1)?,
                    target: row.get(2)?,
                    at: row.get(3)?,
                    actor: row.get(4)?,
                    action: row.get(5)?,
                    outcome: super::query::enum_column(row, 6)?,
                    detail: row.get(7)?,
                })
            })
            .map_err(failed)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(failed)
    }
}
