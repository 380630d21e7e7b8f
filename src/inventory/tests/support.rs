//! Helpers for inventory tests: temporary databases, fixed times, findings.

use std::path::PathBuf;

use time::{Duration, OffsetDateTime};

use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::inventory::{Inventory, RunLifecycle, RunRecord};
use crate::lifecycle::RunKind;
use crate::model::Node;

/// A database path inside a fresh temporary directory (kept alive by the guard).
pub fn temp_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("inventory").join("kiln.db");
    (dir, path)
}

/// 2025-03-01T08:00:00Z plus `minutes`: fixed times keep snapshots stable.
pub fn at(minutes: i64) -> OffsetDateTime {
    time::macros::datetime!(2025-03-01 08:00:00 UTC) + Duration::minutes(minutes)
}

/// Three findings of a validate run: two passes and, when `failing`, a
/// failed link width on GPU 3.
pub fn validate_findings(failing: bool) -> Vec<Finding> {
    let gpu = |i: u32| Component {
        kind: "gpu".into(),
        address: Some(crate::hw::fixture::sample::gpu_address(i as u8)),
        gpu_index: Some(i),
        serial: Some(crate::hw::fixture::sample::gpu_serial("gpu-a01", i as u8)),
        slot: None,
        name: Some("NVIDIA B200".into()),
    };
    let mut out = vec![
        Finding::new("gpu.count", Outcome::Pass, Severity::Critical, Component::node(), "8 GPUs present")
            .expected(8)
            .actual(8),
        Finding::new("pci.link_speed", Outcome::Pass, Severity::Warning, gpu(0), "link at 32.0 GT/s"),
    ];
    if failing {
        out.push(
            Finding::new("pci.link_width", Outcome::Fail, Severity::Critical, gpu(3), "link trained at x8")
                .expected("x16")
                .actual("x8")
                .action("reseat GPU 3 in its tray and check the riser cable"),
        );
    }
    out
}

/// Record one run of `kind` for `node`, started at `at(minute)` and lasting a minute.
pub fn record(
    inv: &mut Inventory,
    kind: RunKind,
    node: &Node,
    findings: &[Finding],
    minute: i64,
) -> crate::inventory::RunId {
    let verdict = (kind != RunKind::Inspect).then(|| Verdict::of(findings));
    let run = RunRecord {
        platform: Some("hgx-b200"),
        rack: Some("r07"),
        findings,
        verdict,
        exit_code: match verdict {
            Some(Verdict::Fail) => 1,
            _ => 0,
        },
        started_at: at(minute),
        finished_at: at(minute + 1),
        lifecycle: RunLifecycle::FromOutcome,
        ..RunRecord::new(kind, node, "tech-ana")
    };
    inv.record_run(&run).expect("record a run")
}

/// A raw second connection to the same file, for poking under the API.
pub fn raw(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open a raw connection");
    conn.busy_timeout(std::time::Duration::from_secs(10)).expect("set busy timeout");
    conn
}

pub fn count(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).expect("count rows")
}
