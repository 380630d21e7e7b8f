//! The per-node report's burn-in section: every figure of the node's latest burn-in, judged
//! against its minimum, and whether the run was complete.

use serde::{Deserialize, Serialize};

use super::burnin_view::counts_wrong_data;
use crate::checks::Verdict;
use crate::inventory::{BurninRecord, BurninResultStatus, RunId, RunRow};

/// The node's latest burn-in run, as the per-node report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurninSection {
    pub run_id: RunId,
    pub verdict: Verdict,
    /// A requested test did not run: the verdict covers less than was asked.
    pub incomplete: bool,
    /// Why it is incomplete, one entry per cause (`GPU tests skipped: no
    /// NVIDIA driver`); empty when complete.
    pub not_run: Vec<String>,
    /// Every figure of the run, and a row for each test that did not run or
    /// broke, in recorded order.
    pub rows: Vec<BurninRow>,
}

/// One figure of one test (or a test without figures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurninRow {
    /// `gemm`, `hbm`, `host-link`, `p2p`, ...
    pub test: String,
    pub gpu: Option<u32>,
    /// The far GPU of a pairwise figure (p2p).
    pub peer_gpu: Option<u32>,
    /// The figure's name within its test (`tflops`, `h2d`); `None` for a
    /// test without figures.
    pub figure: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    /// The lowest passing value, when the platform has one.
    pub min: Option<f64>,
    /// What a healthy part does.
    pub expected: Option<f64>,
    pub status: RowStatus,
    /// Why a test was skipped or broke.
    pub reason: Option<String>,
}

/// How a row reads: a figure at or above its minimum passes, one below
/// fails, a count of wrong values passes only at zero, any other figure
/// without a minimum is reported only; a test that did not run
/// is skipped, one that broke is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Pass,
    Fail,
    NotJudged,
    Skipped,
    Error,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Pass => "pass",
            RowStatus::Fail => "fail",
            RowStatus::NotJudged => "not judged",
            RowStatus::Skipped => "skipped",
            RowStatus::Error => "error",
        }
    }
}

/// The section of one recorded burn-in run.
pub fn burnin_section(record: &BurninRecord) -> BurninSection {
    let mut rows = Vec::new();
    for r in &record.results {
        let row = |figure: Option<String>| BurninRow {
            test: r.test.clone(),
            gpu: r.gpu_index,
            peer_gpu: None,
            figure,
            value: None,
            unit: None,
            min: None,
            expected: None,
            status: RowStatus::NotJudged,
            reason: None,
        };
        for f in &r.figures {
            let status = match f.min_value {
                Some(min) if f.value >= min => RowStatus::Pass,
                Some(_) => RowStatus::Fail,
                // The burn-in fails its data check on any wrong value.
                None if counts_wrong_data(&f.name) && f.value == 0.0 => RowStatus::Pass,
                None if counts_wrong_data(&f.name) => RowStatus::Fail,
                None => RowStatus::NotJudged,
            };
            rows.push(BurninRow {
                peer_gpu: f.peer_gpu_index,
                value: Some(f.value),
                unit: Some(f.unit.clone()),
                min: f.min_value,
                expected: f.expected_value,
                status,
                ..row(Some(f.name.clone()))
            });
        }
        let status = match r.status {
            BurninResultStatus::Ran => continue,
            BurninResultStatus::Skipped => RowStatus::Skipped,
            BurninResultStatus::Error => RowStatus::Error,
        };
        rows.push(BurninRow { status, reason: r.reason.clone(), ..row(None) });
    }
    BurninSection {
        run_id: record.run_id,
        verdict: record.verdict,
        incomplete: record.incomplete,
        not_run: if record.incomplete { not_run(record) } else { Vec::new() },
        rows,
    }
}

/// The causes of an incomplete run: the GPU side as a whole when it could
/// not start, then each other requested test that should have run and did
/// not.
fn not_run(record: &BurninRecord) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let gpu_reason = record.gpu_reason.as_deref().filter(|_| record.gpu_access == "unavailable");
    if let Some(reason) = gpu_reason {
        out.push(format!("GPU tests skipped: {reason}"));
    }
    for r in &record.results {
        if r.status != BurninResultStatus::Skipped || r.applicable == Some(false) {
            continue;
        }
        let reason = r.reason.as_deref().unwrap_or("no reason recorded");
        if r.gpu_index.is_none() && gpu_reason == Some(reason) {
            continue;
        }
        let line = match r.gpu_index {
            Some(g) => format!("{} on GPU {g} skipped: {reason}", r.test),
            None => format!("{} skipped: {reason}", r.test),
        };
        if !out.contains(&line) {
            out.push(line);
        }
    }
    if out.is_empty() && !record.results.iter().any(|r| r.status == BurninResultStatus::Ran) {
        out.push("no test ran".to_string());
    }
    if out.is_empty() {
        out.push("a requested test did not run".to_string());
    }
    out
}

/// A run's verdict as a report shows it: `pass`, or for an incomplete
/// burn-in `pass (incomplete: GPU tests skipped: no NVIDIA driver)`, so a
/// run that covered less than was asked never reads as a plain pass.
pub fn run_verdict(run: &RunRow, burnin: Option<&BurninSection>) -> String {
    let verdict = run.verdict.map_or("no verdict", |v| v.as_str());
    match burnin {
        Some(b) if b.run_id == run.id && b.incomplete => format!("{verdict} (incomplete: {})", b.not_run.join("; ")),
        _ => verdict.to_string(),
    }
}
