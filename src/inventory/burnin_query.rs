//! Reading a node's latest burn-in back from the tables of migration 0002, for reports.

use rusqlite::types::Type;
use rusqlite::Row;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::checks::Verdict;

use super::query::enum_column;
use super::record::{NodeId, RunId};
use super::{Inventory, InventoryError};

/// A node's burn-in run as recorded: the run, each test result with its
/// figures, and the telemetry samples.
#[derive(Debug, Clone, PartialEq)]
pub struct BurninRecord {
    pub run_id: RunId,
    /// When the burn-in started (RFC 3339, as the burn-in report has it).
    pub started_at: String,
    /// `started_at` in milliseconds since the Unix epoch, the origin of the
    /// telemetry time axis.
    pub started_unix_ms: i64,
    pub verdict: Verdict,
    /// A requested test did not run: the run must not read as a pass.
    pub incomplete: bool,
    /// `available`, `unavailable` or `not_requested`.
    pub gpu_access: String,
    /// Why the GPU tests did not run, when they did not.
    pub gpu_reason: Option<String>,
    /// The tests requested, in the order asked for.
    pub tests: Vec<String>,
    /// In recorded order.
    pub results: Vec<BurninResultRecord>,
    /// By GPU, then by time.
    pub samples: Vec<BurninSampleRecord>,
}

/// How a test went, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BurninResultStatus {
    Ran,
    Skipped,
    Error,
}

impl BurninResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BurninResultStatus::Ran => "ran",
            BurninResultStatus::Skipped => "skipped",
            BurninResultStatus::Error => "error",
        }
    }
}

/// One test on one GPU (or on the host).
#[derive(Debug, Clone, PartialEq)]
pub struct BurninResultRecord {
    /// `gemm`, `memtest`, `hbm`, `host-link`, `p2p`, `collective`, `host`.
    pub test: String,
    pub gpu_index: Option<u32>,
    pub gpu_serial: Option<String>,
    pub status: BurninResultStatus,
    /// Why it was skipped, or the error.
    pub reason: Option<String>,
    /// For a skipped test: whether it should have run here.
    pub applicable: Option<bool>,
    pub started_unix_ms: i64,
    pub seconds: f64,
    pub data_error_count: i64,
    /// In recorded order.
    pub figures: Vec<BurninFigureRecord>,
}

/// A measured number of one result.
#[derive(Debug, Clone, PartialEq)]
pub struct BurninFigureRecord {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The far GPU of a pairwise figure (p2p).
    pub peer_gpu_index: Option<u32>,
    pub min_value: Option<f64>,
    pub expected_value: Option<f64>,
    /// The samples `value` is the median of, in measured order.
    pub samples: Vec<f64>,
}

/// One telemetry sample of one GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurninSampleRecord {
    pub gpu_index: u32,
    pub at_unix_ms: i64,
    pub temperature_c: Option<i64>,
    pub power_w: Option<f64>,
}

fn unix_ms(row: &Row<'_>, column: usize) -> rusqlite::Result<i64> {
    let text: String = row.get(column)?;
    let at = OffsetDateTime::parse(&text, &Rfc3339)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn samples_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Vec<f64>> {
    match row.get::<_, Option<String>>(column)? {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))),
    }
}

impl Inventory {
    /// The node's newest burn-in run with its results, figures and samples;
    /// `None` when the node has no burn-in recorded.
    pub fn latest_burnin(&self, node: NodeId) -> Result<Option<BurninRecord>, InventoryError> {
        self.latest_burnin_as_of(node, None)
    }

    /// `latest_burnin` among the runs started at or before `as_of` (a timestamp as stored).
    pub fn latest_burnin_as_of(
        &self,
        node: NodeId,
        as_of: Option<&str>,
    ) -> Result<Option<BurninRecord>, InventoryError> {
        let mut runs = self.query_rows(
            || format!("latest burn-in of node {}", node.0),
            "SELECT b.run_id, b.started_at, b.started_at, b.verdict, b.incomplete, b.gpu_access, b.gpu_reason, b.tests
             FROM runs r JOIN burnin_runs b ON b.run_id = r.id
             WHERE r.node_id = ?1 AND r.kind = 'burnin' AND (?2 IS NULL OR r.started_at <= ?2)
             ORDER BY r.started_at DESC, r.id DESC LIMIT 1",
            rusqlite::params![node.0, as_of],
            |row| {
                let tests: String = row.get(7)?;
                Ok(BurninRecord {
                    run_id: RunId(row.get(0)?),
                    started_at: row.get(1)?,
                    started_unix_ms: unix_ms(row, 2)?,
                    verdict: enum_column(row, 3)?,
                    incomplete: row.get(4)?,
                    gpu_access: row.get(5)?,
                    gpu_reason: row.get(6)?,
                    tests: tests.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
                    results: Vec::new(),
                    samples: Vec::new(),
                })
            },
        )?;
        let Some(mut record) = runs.pop() else { return Ok(None) };
        record.results = self.burnin_results_of(record.run_id)?;
        record.samples = self.burnin_samples_of(record.run_id)?;
        Ok(Some(record))
    }

    /// The results recorded under a run (a burn-in's tests, a collective rank's ops and sizes),
    /// each with its figures, in recorded order.
    pub(super) fn burnin_results_of(&self, run: RunId) -> Result<Vec<BurninResultRecord>, InventoryError> {
        let run = run.0;
        let mut results: Vec<(i64, BurninResultRecord)> = self.query_rows(
            || format!("burn-in results of run {run}"),
            "SELECT id, test, gpu_index, gpu_serial, status, reason, applicable, started_unix_ms, seconds,
                    data_error_count
             FROM burnin_results WHERE run_id = ?1 ORDER BY id",
            [run],
            |row| {
                Ok((
                    row.get(0)?,
                    BurninResultRecord {
                        test: row.get(1)?,
                        gpu_index: row.get(2)?,
                        gpu_serial: row.get(3)?,
                        status: enum_column(row, 4)?,
                        reason: row.get(5)?,
                        applicable: row.get(6)?,
                        started_unix_ms: row.get(7)?,
                        seconds: row.get(8)?,
                        data_error_count: row.get(9)?,
                        figures: Vec::new(),
                    },
                ))
            },
        )?;
        let figures = self.query_rows(
            || format!("burn-in figures of run {run}"),
            "SELECT f.result_id, f.name, f.value, f.unit, f.peer_gpu_index, f.min_value, f.expected_value, f.samples
             FROM burnin_figures f JOIN burnin_results r ON r.id = f.result_id
             WHERE r.run_id = ?1 ORDER BY f.result_id, f.rowid",
            [run],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    BurninFigureRecord {
                        name: row.get(1)?,
                        value: row.get(2)?,
                        unit: row.get(3)?,
                        peer_gpu_index: row.get(4)?,
                        min_value: row.get(5)?,
                        expected_value: row.get(6)?,
                        samples: samples_column(row, 7)?,
                    },
                ))
            },
        )?;
        for (result_id, figure) in figures {
            if let Some((_, result)) = results.iter_mut().find(|(id, _)| *id == result_id) {
                result.figures.push(figure);
            }
        }
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }

    /// The telemetry samples recorded under a run, by GPU, then by time.
    pub(super) fn burnin_samples_of(&self, run: RunId) -> Result<Vec<BurninSampleRecord>, InventoryError> {
        let run = run.0;
        self.query_rows(
            || format!("burn-in telemetry of run {run}"),
            "SELECT gpu_index, at_unix_ms, temperature_c, power_w FROM burnin_samples
             WHERE run_id = ?1 ORDER BY gpu_index, at_unix_ms",
            [run],
            |row| {
                Ok(BurninSampleRecord {
                    gpu_index: row.get(0)?,
                    at_unix_ms: row.get(1)?,
                    temperature_c: row.get(2)?,
                    power_w: row.get(3)?,
                })
            },
        )
    }
}
