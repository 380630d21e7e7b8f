//! Each tray's part in a rack collective: a run of kind `collective` of that tray (its findings,
//! its results per op and size in the burn-in result tables, its GPUs' telemetry in the burn-in
//! telemetry tables), linked to the collective's rack run (table `rack_run_trays`, migration 9).
//!
//! Like a BMC firmware reading, the run did not read the node: its model is a placeholder, it
//! has no components, and the queries that compare a node's runs (`latest_run`) skip it. It moves
//! no lifecycle state: the rack run's gate does. Its verdict is the tray's own (`None` for a
//! rank that was skipped or stopped because another failed, unless its telemetry failed), so
//! hand-off (`latest_judged_runs`) holds a tray whose own collective failed.

use super::record::{insert_run_row, RunRow};
use rusqlite::{params, Connection, TransactionBehavior};
use time::OffsetDateTime;

use crate::burnin::collective::{human, RankReport};
use crate::checks::{Finding, Verdict};

use super::burnin::record_telemetry;
use super::burnin_query::{BurninResultRecord, BurninSampleRecord};
use super::finding_rows::insert_run_findings;
use super::firmware::{find_or_enroll, placeholder_node, NodeSeen};
use super::query::enum_column;
use super::rack::RackRunId;
use super::timestamp::format_timestamp;
use super::{Inventory, InventoryError, NodeId, RunId};

/// The `runs.kind` of a tray's rank in a rack collective.
pub const COLLECTIVE_RUN: &str = "collective";

/// Why a collective rank's node model is a placeholder.
const NOT_INSPECTED: &str = "a rank of a rack collective: the node itself was not inspected";

/// One tray's rank to record, after its rack run.
#[derive(Debug, Clone)]
pub struct CollectiveTrayRecord<'a> {
    pub rack: &'a str,
    /// The collective's rack run (`record_rack_run`, kind `collective`).
    pub rack_run: RackRunId,
    /// The tray's manifest name.
    pub node: &'a str,
    pub rank: u32,
    /// `pass`, `fail`, `error`, `skipped`, `peer_error`.
    pub status: &'a str,
    pub reason: Option<&'a str>,
    pub killed: bool,
    pub duration_ms: u64,
    /// What the rank reported, when it reported: results and telemetry.
    pub report: Option<&'a RankReport>,
    /// The findings about this tray: its rank, its outlier verdicts, its GPUs' telemetry.
    pub findings: &'a [Finding],
    pub verdict: Option<Verdict>,
    pub exit_code: i32,
    /// The platform the collective was judged against.
    pub platform: Option<&'a str>,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub actor: &'a str,
}

/// A tray's recorded rank, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectiveTrayRow {
    pub rack_run_id: RackRunId,
    pub run_id: RunId,
    pub rack: Option<String>,
    pub node: String,
    pub rank: u32,
    pub status: String,
    pub reason: Option<String>,
    pub killed: bool,
    pub duration_ms: i64,
    pub hostname: Option<String>,
    pub gpus: Option<u32>,
    pub world: Option<u32>,
    pub nccl_version: Option<String>,
    pub telemetry_note: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub verdict: Option<Verdict>,
    pub exit_code: i32,
    /// One per op and size (`test` `collective.all_reduce`, ...), or one saying why there are
    /// none (`test` `collective`, skipped or error).
    pub results: Vec<BurninResultRecord>,
    /// The GPUs' samples, by GPU, then by time.
    pub samples: Vec<BurninSampleRecord>,
}

impl Inventory {
    /// Records one tray's rank of a rack collective in one transaction: the node (enrolled in
    /// the rack if unknown), its run with findings, results and telemetry, and its link to the
    /// rack run.
    pub fn record_collective_tray(&mut self, r: &CollectiveTrayRecord<'_>) -> Result<RunId, InventoryError> {
        let failed = |source| InventoryError::RecordCollective { node: r.node.to_string(), source };
        let node_json = serde_json::to_string(&placeholder_node(r.node, NOT_INSPECTED))
            .map_err(|source| InventoryError::Encode { hostname: r.node.to_string(), what: "node", source })?;
        let started = format_timestamp(r.started_at);
        let finished = format_timestamp(r.finished_at);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        let seen =
            NodeSeen { name: r.node, started: &started, finished: &finished, rack: Some(r.rack), actor: r.actor };
        let node_id =
            find_or_enroll(&tx, &seen, "first recorded by a rack collective").map_err(|e| e.into_inventory(failed))?;
        let model = super::models::store_model(&tx, &node_json).map_err(failed)?;
        let row = RunRow {
            node_id,
            kind: COLLECTIVE_RUN,
            started: &started,
            finished: &finished,
            platform: r.platform,
            verdict: r.verdict.map(Verdict::as_str),
            exit_code: r.exit_code,
            model_id: model,
            actor: r.actor,
        };
        let run_id = insert_run_row(&tx, &row).map_err(failed)?;
        write_tray(&tx, run_id, r).map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::debug!(node = r.node, run = run_id, rack_run = r.rack_run.0, "recorded the tray's collective rank");
        Ok(RunId(run_id))
    }

    /// Every tray recorded with a collective's rack run, by rank.
    pub fn collective_trays(&self, rack_run: RackRunId) -> Result<Vec<CollectiveTrayRow>, InventoryError> {
        let rows = self.query_rows(
            || format!("trays of rack run {}", rack_run.0),
            &format!("{TRAY_SELECT} WHERE t.rack_run_id = ?1 ORDER BY t.rank"),
            [rack_run.0],
            tray_row,
        )?;
        rows.into_iter().map(|row| self.with_results(row)).collect()
    }

    /// The node's newest collective rank started at or before `as_of` (a timestamp as stored;
    /// `None`: the newest), with its results and samples.
    pub fn latest_collective_as_of(
        &self,
        node: NodeId,
        as_of: Option<&str>,
    ) -> Result<Option<CollectiveTrayRow>, InventoryError> {
        let mut rows = self.query_rows(
            || format!("latest collective of node {}", node.0),
            &format!(
                "{TRAY_SELECT} WHERE r.node_id = ?1 AND (?2 IS NULL OR r.started_at <= ?2)
                 ORDER BY r.started_at DESC, r.id DESC LIMIT 1"
            ),
            params![node.0, as_of],
            tray_row,
        )?;
        rows.pop().map(|row| self.with_results(row)).transpose()
    }

    /// Every collective rank of the node, oldest first, without results or samples (for its
    /// history; `collective_trays` or `latest_collective_as_of` give those).
    pub fn collective_runs(&self, node: NodeId) -> Result<Vec<CollectiveTrayRow>, InventoryError> {
        self.query_rows(
            || format!("collectives of node {}", node.0),
            &format!("{TRAY_SELECT} WHERE r.node_id = ?1 ORDER BY r.started_at, r.id"),
            [node.0],
            tray_row,
        )
    }

    fn with_results(&self, mut row: CollectiveTrayRow) -> Result<CollectiveTrayRow, InventoryError> {
        row.results = self.burnin_results_of(row.run_id)?;
        row.samples = self.burnin_samples_of(row.run_id)?;
        Ok(row)
    }
}

const TRAY_SELECT: &str = "SELECT t.rack_run_id, t.run_id, n.rack, n.name, t.rank, t.status, t.reason, t.killed,
        t.duration_ms, t.hostname, t.gpus, t.world, t.nccl_version, t.telemetry_note, r.started_at, r.finished_at,
        r.verdict, r.exit_code
    FROM rack_run_trays t JOIN runs r ON r.id = t.run_id JOIN nodes n ON n.id = r.node_id";

fn tray_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CollectiveTrayRow> {
    let verdict = match row.get::<_, Option<String>>(16)? {
        None => None,
        Some(_) => Some(enum_column(row, 16)?),
    };
    Ok(CollectiveTrayRow {
        rack_run_id: RackRunId(row.get(0)?),
        run_id: RunId(row.get(1)?),
        rack: row.get(2)?,
        node: row.get(3)?,
        rank: row.get(4)?,
        status: row.get(5)?,
        reason: row.get(6)?,
        killed: row.get(7)?,
        duration_ms: row.get(8)?,
        hostname: row.get(9)?,
        gpus: row.get(10)?,
        world: row.get(11)?,
        nccl_version: row.get(12)?,
        telemetry_note: row.get(13)?,
        started_at: row.get(14)?,
        finished_at: row.get(15)?,
        verdict,
        exit_code: row.get(17)?,
        results: Vec::new(),
        samples: Vec::new(),
    })
}

/// The run's findings, its results (per op and size, else why there are none), its telemetry
/// and its link to the rack run, inside the caller's transaction.
fn write_tray(tx: &Connection, run_id: i64, r: &CollectiveTrayRecord<'_>) -> rusqlite::Result<()> {
    insert_run_findings(tx, run_id, r.findings)?;
    let started_ms = (r.started_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut result_stmt = tx.prepare_cached(
        "INSERT INTO burnin_results (run_id, test, status, reason, applicable, started_unix_ms, seconds,
             data_error_count, notes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut figure_stmt =
        tx.prepare_cached("INSERT INTO burnin_figures (result_id, name, value, unit) VALUES (?1, ?2, ?3, ?4)")?;
    let results = r.report.map(|rep| rep.results.as_slice()).unwrap_or_default();
    let local = r.report.map(|rep| rep.local.as_slice()).unwrap_or_default();
    // The domain's sizes, then the tray's own GPUs alone (`collective.tray.<op>`): the figure
    // a slow tray is named by.
    let rows = results.iter().map(|s| (s, false)).chain(local.iter().map(|s| (s, true)));
    for (s, alone) in rows {
        let (test, notes) = match (r.report, alone) {
            (Some(rep), false) => (
                format!("{COLLECTIVE_RUN}.{}", s.op.as_str()),
                format!(
                    "{} of {} over {} GPUs ({} ranks), {} iterations",
                    s.op.as_str(),
                    human(s.bytes),
                    rep.world,
                    rep.ranks,
                    s.iterations
                ),
            ),
            (Some(rep), true) => (
                format!("{COLLECTIVE_RUN}.tray.{}", s.op.as_str()),
                format!(
                    "{} of {} over this tray's {} GPUs alone, {} iterations",
                    s.op.as_str(),
                    human(s.bytes),
                    rep.gpus,
                    s.iterations
                ),
            ),
            (None, _) => (format!("{COLLECTIVE_RUN}.{}", s.op.as_str()), String::new()),
        };
        result_stmt.execute(params![
            run_id,
            test,
            "ran",
            None::<String>,
            None::<bool>,
            started_ms,
            s.time_us * f64::from(s.iterations) / 1e6,
            s.wrong_words as i64,
            notes,
        ])?;
        let result_id = tx.last_insert_rowid();
        let figures = [
            ("bytes", s.bytes as f64, "B"),
            ("time", s.time_us, "us"),
            ("algbw", s.algbw_gbps, "GB/s"),
            ("busbw", s.busbw_gbps, "GB/s"),
            ("checked_words", s.checked_words as f64, "words"),
            ("wrong_words", s.wrong_words as f64, "words"),
        ];
        for (name, value, unit) in figures {
            figure_stmt.execute(params![result_id, name, value, unit])?;
        }
    }
    if results.is_empty() {
        // No figure: say why, as a skipped or failed test says it.
        let (status, applicable) = match r.status {
            "skipped" => ("skipped", Some(true)),
            _ => ("error", None),
        };
        let reason =
            r.reason.map(str::to_string).unwrap_or_else(|| format!("the rank ended {} without results", r.status));
        result_stmt.execute(params![
            run_id,
            COLLECTIVE_RUN,
            status,
            reason,
            applicable,
            started_ms,
            r.duration_ms as f64 / 1000.0,
            0i64,
            String::new(),
        ])?;
    }
    if let Some(rep) = r.report {
        record_telemetry(tx, run_id, &rep.telemetry)?;
    }
    tx.prepare_cached(
        "INSERT INTO rack_run_trays (rack_run_id, run_id, rank, status, reason, killed, duration_ms, hostname, gpus,
             world, nccl_version, telemetry_note)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        r.rack_run.0,
        run_id,
        r.rank,
        r.status,
        r.reason,
        r.killed,
        r.duration_ms as i64,
        r.report.map(|rep| rep.hostname.as_str()).filter(|h| !h.is_empty()),
        r.report.map(|rep| rep.gpus),
        r.report.map(|rep| rep.world),
        r.report.and_then(|rep| rep.nccl_version.as_deref()),
        r.report.and_then(|rep| rep.telemetry_note.as_deref()),
    ])?;
    Ok(())
}
