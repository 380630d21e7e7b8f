//! Rack deployments (`kiln rack image`): the run, each node's steps, and the lifecycle event that
//! goes with every step, written together so that the history and the steps never disagree.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::lifecycle::{check_transition, LifecycleState, Move};

use super::lifecycle::{append_event, node_id, read_state, set_state, EventRow};
use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};

/// The id of a `deploys` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DeployId(pub i64);

/// A deployment about to start.
#[derive(Debug, Clone)]
pub struct DeployStart<'a> {
    pub rack: &'a str,
    pub image: &'a str,
    pub image_sha256: &'a str,
    pub boot: &'a str,
    pub actor: &'a str,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    Ok,
    Skipped,
    Failed,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Skipped => "skipped",
            StepOutcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> StepOutcome {
        match s {
            "ok" => StepOutcome::Ok,
            "skipped" => StepOutcome::Skipped,
            _ => StepOutcome::Failed,
        }
    }
}

/// A step of one node about to be recorded.
#[derive(Debug, Clone)]
pub struct DeployStep<'a> {
    pub deploy: DeployId,
    pub hostname: &'a str,
    /// `boot-set`, `reset`, `agent`, `written`, `reboot`, `booted`.
    pub step: &'a str,
    pub outcome: StepOutcome,
    pub detail: &'a str,
    pub image_sha256: &'a str,
    pub actor: &'a str,
}

/// One recorded step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployStepRow {
    pub deploy_id: i64,
    pub at: String,
    pub step: String,
    pub outcome: StepOutcome,
    pub detail: String,
    pub image_sha256: String,
}

/// The lifecycle reason of a failed step: `image: boot-set: <cause>`.
pub fn deploy_failure_reason(step: &str, cause: &str) -> String {
    format!("image: {step}: {cause}")
}

fn to_state_for(step: &DeployStep<'_>, from: &LifecycleState) -> LifecycleState {
    match step.outcome {
        StepOutcome::Failed => LifecycleState::Failed { reason: deploy_failure_reason(step.step, step.detail) },
        // A node confirmed booted on a fresh image is no longer failed: it starts over from
        // enrolled, as after a repair. Any other state is left alone (the step is a note).
        StepOutcome::Ok if step.step == "booted" && matches!(from, LifecycleState::Failed { .. }) => {
            LifecycleState::Enrolled
        }
        _ => from.clone(),
    }
}

fn append_step(conn: &Connection, node: i64, at: &str, s: &DeployStep<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO deploy_steps (deploy_id, node_id, at, step, outcome, detail, image_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        s.deploy.0,
        node,
        at,
        s.step,
        s.outcome.as_str(),
        crate::redact::userinfo(s.detail),
        s.image_sha256
    ])?;
    Ok(())
}

impl Inventory {
    /// Record the start of a deployment; answers its id.
    pub fn start_deploy(&mut self, d: &DeployStart<'_>) -> Result<DeployId, InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("record deployment of rack {}", d.rack), source };
        self.conn
            .execute(
                "INSERT INTO deploys (rack, image, image_sha256, boot, started_at, kiln_version, actor)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    d.rack,
                    d.image,
                    d.image_sha256,
                    d.boot,
                    format_timestamp(now()),
                    env!("CARGO_PKG_VERSION"),
                    d.actor
                ],
            )
            .map_err(failed)?;
        Ok(DeployId(self.conn.last_insert_rowid()))
    }

    /// Record how a deployment ended.
    pub fn finish_deploy(&mut self, id: DeployId, exit_code: i32) -> Result<(), InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("record end of deployment {}", id.0), source };
        self.conn
            .execute(
                "UPDATE deploys SET finished_at = ?2, exit_code = ?3 WHERE id = ?1",
                params![id.0, format_timestamp(now()), exit_code],
            )
            .map_err(failed)?;
        Ok(())
    }

    /// Record one step of a node and its lifecycle event in one transaction. A failed step moves
    /// the node to `failed` with the reason `image: <step>: <detail>`; a node that cannot be
    /// failed (quarantined) gets a note instead, so nothing is lost. `booted` moves a failed node
    /// to `enrolled`. Every other step is a note (the state stays).
    pub fn record_deploy_step(&mut self, s: &DeployStep<'_>) -> Result<(), InventoryError> {
        let failed = |source| InventoryError::Transition { hostname: s.hostname.to_string(), source };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let id = node_id(&tx, s.hostname)
            .map_err(|e| e.into_inventory(failed))?
            .ok_or_else(|| InventoryError::UnknownNode { hostname: s.hostname.to_string() })?;
        let from = read_state(&tx, id).map_err(failed)?;
        let wanted = to_state_for(s, &from);
        let to = match check_transition(&from, &wanted) {
            Ok(Move::Changed) => wanted,
            // Unchanged, or refused (a quarantined node): the event is a note.
            _ => from.clone(),
        };
        let at = format_timestamp(now());
        append_step(&tx, id, &at, s).map_err(failed)?;
        if to != from {
            set_state(&tx, id, &to).map_err(failed)?;
        }
        let cause = match s.outcome {
            StepOutcome::Failed => deploy_failure_reason(s.step, s.detail),
            outcome => format!("image: {}: {}: {}", s.step, outcome.as_str(), s.detail),
        };
        let event =
            EventRow { node_id: id, at: &at, from: Some(&from), to: &to, actor: s.actor, cause: &cause, run_id: None };
        append_event(&tx, &event).map_err(failed)?;
        tx.commit().map_err(failed)?;
        if to != from {
            tracing::info!(node = s.hostname, %from, %to, step = s.step, "lifecycle state changed");
        }
        Ok(())
    }

    /// Every deploy step of a node, oldest first.
    pub fn deploy_steps(&self, hostname: &str) -> Result<Vec<DeployStepRow>, InventoryError> {
        let query = |source| InventoryError::Query { what: format!("deploy steps of node {hostname}"), source };
        let Some(id) = node_id(&self.conn, hostname).map_err(|e| e.into_inventory(query))? else {
            return Ok(Vec::new());
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT deploy_id, at, step, outcome, detail, image_sha256 FROM deploy_steps
                 WHERE node_id = ?1 ORDER BY id",
            )
            .map_err(query)?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(DeployStepRow {
                    deploy_id: r.get(0)?,
                    at: r.get(1)?,
                    step: r.get(2)?,
                    outcome: StepOutcome::parse(&r.get::<_, String>(3)?),
                    detail: r.get(4)?,
                    image_sha256: r.get(5)?,
                })
            })
            .map_err(query)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(query)
    }

    /// True when the node's latest deploy step confirmed it booted on the image with this
    /// SHA-256: no deployment has touched it since.
    pub fn booted_on_image(&self, hostname: &str, image_sha256: &str) -> Result<bool, InventoryError> {
        let query = |source| InventoryError::Query { what: format!("deploy steps of node {hostname}"), source };
        let Some(id) = node_id(&self.conn, hostname).map_err(|e| e.into_inventory(query))? else {
            return Ok(false);
        };
        let last: Option<(String, String, String)> = self
            .conn
            .query_row(
                "SELECT step, outcome, image_sha256 FROM deploy_steps WHERE node_id = ?1 ORDER BY id DESC LIMIT 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(query)?;
        Ok(last.is_some_and(|(step, outcome, sha)| step == "booted" && outcome == "ok" && sha == image_sha256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::tests::support::temp_db;

    fn step<'a>(deploy: DeployId, name: &'a str, outcome: StepOutcome, detail: &'a str) -> DeployStep<'a> {
        DeployStep { deploy, hostname: "n1", step: name, outcome, detail, image_sha256: "aa", actor: "test" }
    }

    #[test]
    fn steps_and_events_are_written_together_and_a_failure_names_the_step() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        inv.enroll("n1", Some("r1"), "test").expect("enroll");
        let d = inv
            .start_deploy(&DeployStart { rack: "r1", image: "img", image_sha256: "aa", boot: "none", actor: "t" })
            .expect("start");
        inv.record_deploy_step(&step(d, "boot-set", StepOutcome::Skipped, "--boot none")).expect("step");
        inv.record_deploy_step(&step(d, "agent", StepOutcome::Failed, "no hello within 5s")).expect("step");
        assert_eq!(
            inv.state("n1").expect("state"),
            LifecycleState::Failed { reason: "image: agent: no hello within 5s".into() }
        );
        let steps = inv.deploy_steps("n1").expect("steps");
        assert_eq!(steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(), ["boot-set", "agent"]);
        let history = inv.history("n1").expect("history");
        assert_eq!(history.len(), 3, "enrolled + two steps");
        assert_eq!(history[1].cause, "image: boot-set: skipped: --boot none");
        assert!(!inv.booted_on_image("n1", "aa").expect("query"));

        // A later success brings the failed node back to enrolled and marks it booted.
        inv.record_deploy_step(&step(d, "booted", StepOutcome::Ok, "sha256 aa")).expect("step");
        assert_eq!(inv.state("n1").expect("state"), LifecycleState::Enrolled);
        assert!(inv.booted_on_image("n1", "aa").expect("query"));
        assert!(!inv.booted_on_image("n1", "bb").expect("query"));
        inv.finish_deploy(d, 0).expect("finish");
    }

    #[test]
    fn a_quarantined_node_keeps_its_hold_and_the_failure_is_still_recorded() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        inv.enroll("n1", None, "test").expect("enroll");
        let hold = LifecycleState::Quarantined { reason: "held".into() };
        inv.transition("n1", &hold, "person", "hold").expect("quarantine");
        let d = inv
            .start_deploy(&DeployStart { rack: "r", image: "i", image_sha256: "aa", boot: "pxe", actor: "t" })
            .expect("start");
        inv.record_deploy_step(&step(d, "reset", StepOutcome::Failed, "bmc down")).expect("recorded");
        assert_eq!(inv.state("n1").expect("state"), hold);
        let last = inv.history("n1").expect("history").pop().expect("event");
        assert_eq!(last.cause, "image: reset: bmc down");
    }
}
