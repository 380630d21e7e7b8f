//! One finding as a row: the same columns in `findings` (per node run) and
//! `rack_findings` (per rack run), written and read by the same two functions.

use rusqlite::{params, Row, Statement};

use super::query::enum_column;
use crate::checks::{Component, Finding};

/// Inserts `f` under `owner` (a run or rack run id) with a statement whose
/// placeholders are the owner then the 14 finding columns, in table order.
pub(crate) fn insert_finding(stmt: &mut Statement<'_>, owner: i64, f: &Finding) -> rusqlite::Result<usize> {
    let c = &f.component;
    stmt.execute(params![
        owner,
        f.check,
        f.outcome.as_str(),
        f.severity.as_str(),
        c.label(),
        c.kind,
        c.address,
        c.gpu_index,
        c.serial,
        c.slot,
        c.name,
        f.expected,
        f.actual,
        f.message,
        f.action,
    ])
}

/// Reads a finding from a row selecting `"check", outcome, severity,
/// component_kind, component_address, component_gpu_index, component_serial,
/// component_slot, component_name, expected, actual, message, action`.
pub(crate) fn finding_from_row(row: &Row<'_>) -> rusqlite::Result<Finding> {
    Ok(Finding {
        check: row.get(0)?,
        outcome: enum_column(row, 1)?,
        severity: enum_column(row, 2)?,
        component: Component {
            kind: row.get(3)?,
            address: row.get(4)?,
            gpu_index: row.get(5)?,
            serial: row.get(6)?,
            slot: row.get(7)?,
            name: row.get(8)?,
        },
        expected: row.get(9)?,
        actual: row.get(10)?,
        message: row.get(11)?,
        action: row.get(12)?,
    })
}

/// Inserts every finding of run `run_id`, inside the caller's transaction.
pub(crate) fn insert_run_findings(
    tx: &rusqlite::Connection,
    run_id: i64,
    findings: &[Finding],
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO findings (run_id, \"check\", outcome, severity, component_label, component_kind,
             component_address, component_gpu_index, component_serial, component_slot, component_name,
             expected, actual, message, action)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for f in findings {
        insert_finding(&mut insert, run_id, f)?;
    }
    Ok(())
}
