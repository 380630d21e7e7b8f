//! Burn-in jobs submitted to Slurm: each job id recorded as soon as it exists, with a note in the
//! node's history, and closed with how the job ended and the run it gave.

use rusqlite::{params, TransactionBehavior};
use serde::Serialize;

use super::lifecycle::{append_event, node_id, read_state, EventRow};
use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};

/// The state of a job kiln submitted and has not yet seen end.
pub const SLURM_JOB_OPEN: &str = "submitted";

/// One job as the inventory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlurmJobRow {
    /// The row's id (not Slurm's).
    #[serde(skip)]
    pub id: i64,
    pub node: String,
    pub rack: String,
    pub job_id: u64,
    pub job_name: String,
    pub submitted_at: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a job ended, to close its row.
#[derive(Debug, Clone)]
pub struct SlurmJobEnd<'a> {
    pub state: &'a str,
    pub exit_code: Option<i32>,
    pub run_id: Option<i64>,
    pub reason: Option<&'a str>,
}

const COLUMNS: &str = "j.id, n.name, j.rack, j.job_id, j.job_name, j.submitted_at, j.state, j.exit_code, \
                       j.finished_at, j.run_id, j.reason";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SlurmJobRow> {
    Ok(SlurmJobRow {
        id: r.get(0)?,
        node: r.get(1)?,
        rack: r.get(2)?,
        job_id: r.get::<_, i64>(3)?.max(0) as u64,
        job_name: r.get(4)?,
        submitted_at: r.get(5)?,
        state: r.get(6)?,
        exit_code: r.get(7)?,
        finished_at: r.get(8)?,
        run_id: r.get(9)?,
        reason: r.get(10)?,
    })
}

impl Inventory {
    /// Records that `job_id` was submitted for `node` of `rack`, with a note
    /// in the node's history saying so, in one transaction. The node is
    /// enrolled first when unknown.
    pub fn record_slurm_job(
        &mut self,
        rack: &str,
        node: &str,
        job_id: u64,
        job_name: &str,
        actor: &str,
        note: &str,
    ) -> Result<SlurmJobRow, InventoryError> {
        // The rack's place `node` (the manifest name in `rack`), enrolled when new.
        let id = self.enroll(node, Some(rack), actor)?.0;
        let failed = |source| InventoryError::Transition { hostname: node.to_string(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let at = format_timestamp(now());
        tx.execute(
            "INSERT INTO slurm_jobs (node_id, rack, job_id, job_name, submitted_at, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, rack, job_id as i64, job_name, at, SLURM_JOB_OPEN],
        )
        .map_err(failed)?;
        let row_id = tx.last_insert_rowid();
        let state = read_state(&tx, id).map_err(failed)?;
        let event = EventRow { node_id: id, at: &at, from: Some(&state), to: &state, actor, cause: note, run_id: None };
        append_event(&tx, &event).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(SlurmJobRow {
            id: row_id,
            node: node.to_string(),
            rack: rack.to_string(),
            job_id,
            job_name: job_name.to_string(),
            submitted_at: at,
            state: SLURM_JOB_OPEN.to_string(),
            exit_code: None,
            finished_at: None,
            run_id: None,
            reason: None,
        })
    }

    /// The jobs of `rack` not yet seen to end, oldest first.
    pub fn open_slurm_jobs(&self, rack: &str) -> Result<Vec<SlurmJobRow>, InventoryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM slurm_jobs j JOIN nodes n ON n.id = j.node_id \
             WHERE j.rack = ?1 AND j.finished_at IS NULL ORDER BY j.id"
        );
        let query = |source| InventoryError::Query { what: format!("open Slurm jobs of rack {rack}"), source };
        let mut stmt = self.conn.prepare(&sql).map_err(query)?;
        let rows = stmt.query_map([rack], row).map_err(query)?;
        rows.collect::<Result<_, _>>().map_err(query)
    }

    /// Every job recorded for `node`, oldest first.
    pub fn slurm_jobs(&self, node: &str) -> Result<Vec<SlurmJobRow>, InventoryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM slurm_jobs j JOIN nodes n ON n.id = j.node_id WHERE n.id = ?1 ORDER BY j.id"
        );
        let query = |source| InventoryError::Query { what: format!("Slurm jobs of node {node}"), source };
        // A node's name, `RACK/NAME` or its machine, as every `--node` is looked up.
        let Some(id) = node_id(&self.conn, node).map_err(|e| e.into_inventory(query))? else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare(&sql).map_err(query)?;
        let rows = stmt.query_map([id], row).map_err(query)?;
        rows.collect::<Result<_, _>>().map_err(query)
    }

    /// Closes the job row `row_id` with how the job ended, and notes it in the
    /// node's history (`cause`), in one transaction.
    pub fn close_slurm_job(
        &mut self,
        row_id: i64,
        end: &SlurmJobEnd<'_>,
        actor: &str,
        cause: &str,
    ) -> Result<(), InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("close Slurm job row {row_id}"), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let at = format_timestamp(now());
        let node: i64 =
            tx.query_row("SELECT node_id FROM slurm_jobs WHERE id = ?1", [row_id], |r| r.get(0)).map_err(failed)?;
        tx.execute(
            "UPDATE slurm_jobs SET state = ?2, exit_code = ?3, finished_at = ?4, run_id = ?5, reason = ?6 WHERE id = ?1",
            params![row_id, end.state, end.exit_code, at, end.run_id, end.reason],
        )
        .map_err(failed)?;
        let state = read_state(&tx, node).map_err(failed)?;
        let event =
            EventRow { node_id: node, at: &at, from: Some(&state), to: &state, actor, cause, run_id: end.run_id };
        append_event(&tx, &event).map_err(failed)?;
        tx.commit().map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::tests::support::temp_db;

    #[test]
    fn a_job_is_open_until_closed_and_each_step_is_in_the_history() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        let a = inv.record_slurm_job("r1", "node01", 41, "kiln-burnin-r1-node01", "t", "submitted 41").expect("rec");
        inv.record_slurm_job("r1", "node02", 42, "kiln-burnin-r1-node02", "t", "submitted 42").expect("rec");
        inv.record_slurm_job("r2", "node09", 43, "kiln-burnin-r2-node09", "t", "submitted 43").expect("rec");
        let open: Vec<u64> = inv.open_slurm_jobs("r1").expect("open jobs").iter().map(|j| j.job_id).collect();
        assert_eq!(open, [41, 42]);
        let end = SlurmJobEnd { state: "CANCELLED", exit_code: None, run_id: None, reason: Some("cancelled") };
        inv.close_slurm_job(a.id, &end, "t", "Slurm job 41 CANCELLED").expect("close");
        let open: Vec<u64> = inv.open_slurm_jobs("r1").expect("open jobs").iter().map(|j| j.job_id).collect();
        assert_eq!(open, [42]);
        let jobs = inv.slurm_jobs("node01").expect("jobs");
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].state.as_str(), jobs[0].reason.as_deref()), ("CANCELLED", Some("cancelled")));
        assert!(jobs[0].finished_at.is_some());
        let causes: Vec<String> = inv.history("node01").expect("history").into_iter().map(|e| e.cause).collect();
        assert_eq!(causes, ["enrolled", "submitted 41", "Slurm job 41 CANCELLED"]);
        assert_eq!(inv.state("node01").expect("state"), crate::lifecycle::LifecycleState::Enrolled);
    }
}
