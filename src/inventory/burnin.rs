//! Recording a burn-in report in the inventory (tables of migration 0002).

use rusqlite::{params, Connection};

use super::{Inventory, InventoryError, RunId, RunRecord};

use crate::burnin::report::{BurninReport, GpuAccess, GpuTelemetry, HealthCounters, TestStatus, Watch};

impl Inventory {
    /// Records a burn-in run: the node, its components, the report's
    /// findings, and the burn-in results and telemetry, in one transaction.
    pub fn record_burnin_run(&mut self, run: &RunRecord<'_>, report: &BurninReport) -> Result<RunId, InventoryError> {
        self.record_run_with(run, &mut |conn, id| record_burnin(conn, id.0, report))
    }
}

/// Writes one burn-in report under `run_id` (a row of `runs`). The caller
/// owns the transaction: the whole run lands or none of it does.
pub fn record_burnin(tx: &Connection, run_id: i64, report: &BurninReport) -> rusqlite::Result<()> {
    let (access, reason, driver) = match &report.gpu_access {
        GpuAccess::Available { driver_version, .. } => ("available", None, Some(driver_version.as_str())),
        GpuAccess::Replayed { driver_version, .. } => ("replayed", None, Some(driver_version.as_str())),
        GpuAccess::Unavailable { reason } => ("unavailable", Some(reason.as_str()), None),
        GpuAccess::NotRequested => ("not_requested", None, None),
    };
    let tests: Vec<&str> = report.tests_requested.iter().map(|t| t.as_str()).collect();
    tx.execute(
        "INSERT INTO burnin_runs (run_id, report_version, started_at, finished_at, duration_s, tests, gemm_dtype,
             platform, platform_source, gpu_access, gpu_reason, driver_version, verdict, incomplete, inject_fault)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            run_id,
            report.version,
            report.started_at,
            report.finished_at,
            report.duration_s,
            tests.join(","),
            report.gemm_dtype.as_str(),
            report.platform,
            report.platform_source,
            access,
            reason,
            driver,
            report.verdict.as_str(),
            report.incomplete,
            report.inject_fault,
        ],
    )?;

    let mut result_stmt = tx.prepare(
        "INSERT INTO burnin_results (run_id, test, gpu_index, gpu_pci_address, gpu_serial, gpu_uuid, status, reason,
             applicable, started_unix_ms, seconds, data_error_count, notes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut figure_stmt = tx.prepare(
        "INSERT INTO burnin_figures (result_id, name, value, unit, peer_gpu_index, min_value, expected_value,
             threshold_reason, samples) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut error_stmt = tx.prepare(
        "INSERT INTO burnin_data_errors (result_id, phase, location, device_address, byte_offset, expected, actual)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in &report.results {
        let (status, reason, applicable) = match &r.status {
            TestStatus::Ran => ("ran", None, None),
            TestStatus::Skipped { reason, applicable } => ("skipped", Some(reason.as_str()), Some(*applicable)),
            TestStatus::Error { message } => ("error", Some(message.as_str()), None),
        };
        let g = r.gpu.as_ref();
        result_stmt.execute(params![
            run_id,
            r.test.as_str(),
            g.map(|g| g.index),
            g.map(|g| g.pci_address.to_string()),
            g.and_then(|g| g.serial.as_deref()),
            g.and_then(|g| g.uuid.as_deref()),
            status,
            reason,
            applicable,
            r.started_unix_ms,
            r.seconds,
            r.data_error_count as i64,
            r.notes.join("\n"),
        ])?;
        let result_id = tx.last_insert_rowid();
        for f in &r.figures {
            let samples = if f.samples.is_empty() { None } else { serde_json::to_string(&f.samples).ok() };
            figure_stmt.execute(params![
                result_id,
                f.name,
                f.value,
                f.unit,
                f.peer_gpu,
                f.min,
                f.expected,
                f.threshold_reason,
                samples
            ])?;
        }
        for e in &r.data_errors {
            error_stmt.execute(params![
                result_id,
                e.phase,
                e.location,
                e.device_address,
                e.offset as i64,
                e.expected,
                e.actual
            ])?;
        }
    }

    record_telemetry(tx, run_id, &report.telemetry)
}

/// Writes each GPU's telemetry (samples, Xid events, counters before and after) under `run_id`:
/// a burn-in's, or a tray's rank in a rack collective. Inside the caller's transaction.
pub fn record_telemetry(tx: &Connection, run_id: i64, telemetry: &[GpuTelemetry]) -> rusqlite::Result<()> {
    let mut sample_stmt = tx.prepare(
        "INSERT INTO burnin_samples (run_id, gpu_index, gpu_serial, at_unix_ms, temperature_c, power_w, sm_clock_mhz,
             mem_clock_mhz, throttle_reasons, ecc_volatile_corrected, ecc_volatile_uncorrected, pcie_replay, nvlink_errors)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut xid_stmt =
        tx.prepare("INSERT INTO burnin_xids (run_id, gpu_index, at_unix_ms, xid) VALUES (?1, ?2, ?3, ?4)")?;
    let mut counter_stmt = tx.prepare(
        "INSERT INTO burnin_counters (run_id, gpu_index, phase, ecc_volatile_uncorrected, ecc_volatile_corrected,
             remap_pending, remap_failure, pcie_replay, nvlink_errors, xid_watch, problems)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for t in telemetry {
        for s in &t.samples {
            sample_stmt.execute(params![
                run_id,
                t.gpu.index,
                t.gpu.serial,
                s.at_unix_ms,
                s.temperature_c,
                s.power_w,
                s.sm_clock_mhz,
                s.mem_clock_mhz,
                s.throttle_reasons.map(|b| b as i64),
                s.ecc_volatile_corrected.map(|v| v as i64),
                s.ecc_volatile_uncorrected.map(|v| v as i64),
                s.pcie_replay.map(|v| v as i64),
                s.nvlink_errors.map(|v| v as i64),
            ])?;
        }
        for x in &t.xids {
            xid_stmt.execute(params![run_id, t.gpu.index, x.at_unix_ms, x.xid as i64])?;
        }
        let watch = match &t.xid_watch {
            Watch::Watched => "watched",
            Watch::NotSupported { .. } => "not_supported",
            Watch::Failed { .. } => "failed",
        };
        for (phase, c) in [("before", &t.before), ("after", &t.after)] {
            let c: &HealthCounters = c;
            counter_stmt.execute(params![
                run_id,
                t.gpu.index,
                phase,
                c.ecc_volatile_uncorrected.map(|v| v as i64),
                c.ecc_volatile_corrected.map(|v| v as i64),
                c.remap_pending,
                c.remap_failure,
                c.pcie_replay.map(|v| v as i64),
                c.nvlink_errors.map(|v| v as i64),
                watch,
                t.problems.join("\n"),
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burnin::options::{GemmDtype, TestKind};
    use crate::burnin::report::{
        CudaLibraries, DataError, Figure, GpuIdentity, GpuTelemetry, Sample, TestResult, XidEvent, REPORT_KIND,
        REPORT_VERSION,
    };
    use crate::checks::Verdict;

    const MIGRATION: &str = include_str!("migrations/0002_burnin.sql");

    fn db() -> rusqlite::Connection {
        let c = rusqlite::Connection::open_in_memory().expect("open");
        c.execute_batch("PRAGMA foreign_keys = ON; CREATE TABLE runs (id INTEGER PRIMARY KEY, command TEXT NOT NULL);")
            .expect("runs");
        c.execute_batch(MIGRATION).expect("migration 0002 applies");
        c.execute("INSERT INTO runs (id, command) VALUES (7, 'burnin')", []).expect("run row");
        c
    }

    fn gpu() -> GpuIdentity {
        GpuIdentity {
            index: 0,
            pci_address: "0000:1b:00.0".parse().expect("address"),
            serial: Some("1650123456789".into()),
            uuid: Some("GPU-1234".into()),
            name: Some("NVIDIA H100 80GB HBM3".into()),
            numa_node: Some(0),
            slot: None,
        }
    }

    fn report() -> BurninReport {
        let mut gemm = TestResult::ran(TestKind::Gemm, Some(gpu()));
        gemm.figures.push(Figure {
            min: Some(596.0),
            expected: Some(795.0),
            threshold_reason: Some("ml-engineering".into()),
            ..Figure::new("tflops", 781.5, "TFLOP/s").with_samples(vec![780.0, 783.0])
        });
        gemm.data_error_count = 1;
        gemm.data_errors.push(DataError {
            phase: "iteration 3".into(),
            location: "element 16385 (row 1, col 2) of the output".into(),
            device_address: Some("0x7f0000010004".into()),
            offset: 65540,
            expected: "0x41f00000".into(),
            actual: "0x41f01000".into(),
        });
        BurninReport {
            kind: REPORT_KIND.into(),
            version: REPORT_VERSION,
            kiln_version: "0.1.0".into(),
            hostname: Some("node-a".into()),
            started_at: "2026-11-22T10:00:00Z".into(),
            finished_at: "2026-11-22T10:05:00Z".into(),
            duration_s: 300.0,
            tests_requested: vec![TestKind::Gemm, TestKind::P2p],
            gemm_dtype: GemmDtype::Bf16,
            platform: "h100-sxm".into(),
            platform_source: "--platform".into(),
            gpu_access: GpuAccess::Available {
                driver_version: "580.159.04".into(),
                cuda_driver_version: Some(13000),
                gpus: vec![gpu()],
                libraries: CudaLibraries { driver: true, nvrtc: true, cublaslt: true },
            },
            inject_fault: None,
            results: vec![gemm, TestResult::skipped(TestKind::P2p, None, "needs two GPUs", false)],
            telemetry: vec![GpuTelemetry {
                gpu: gpu(),
                before: HealthCounters {
                    ecc_volatile_uncorrected: Some(0),
                    remap_pending: Some(false),
                    ..Default::default()
                },
                after: HealthCounters {
                    ecc_volatile_uncorrected: Some(0),
                    remap_pending: Some(false),
                    ..Default::default()
                },
                samples: vec![
                    Sample { at_unix_ms: 1000, power_w: Some(690.5), throttle_reasons: Some(4), ..Default::default() },
                    Sample { at_unix_ms: 2000, temperature_c: Some(61), ..Default::default() },
                ],
                xids: vec![XidEvent { at_unix_ms: 1500, xid: 79 }],
                xid_watch: Watch::Watched,
                power_limit_w: Some(700.0),
                problems: vec![],
            }],
            findings: vec![],
            verdict: Verdict::Fail,
            incomplete: false,
        }
    }

    #[test]
    fn a_report_lands_in_every_table_under_its_run() {
        let mut c = db();
        let tx = c.transaction().expect("tx");
        record_burnin(&tx, 7, &report()).expect("record");
        tx.commit().expect("commit");
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql);
        assert_eq!(count("SELECT COUNT(*) FROM burnin_runs WHERE run_id = 7 AND verdict = 'fail'"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM burnin_results WHERE run_id = 7"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM burnin_results WHERE status = 'skipped' AND applicable = 0"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM burnin_samples WHERE run_id = 7 AND gpu_serial = '1650123456789'"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM burnin_xids WHERE xid = 79"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM burnin_counters WHERE run_id = 7"), 2);
        let (value, min, samples): (f64, f64, String) = c
            .query_row(
                "SELECT f.value, f.min_value, f.samples FROM burnin_figures f JOIN burnin_results r ON r.id = f.result_id
                 WHERE r.test = 'gemm' AND r.gpu_serial = '1650123456789' AND f.name = 'tflops'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("figure");
        assert_eq!((value, min, samples.as_str()), (781.5, 596.0, "[780.0,783.0]"));
        let loc: String = c.query_row("SELECT location FROM burnin_data_errors", [], |r| r.get(0)).expect("error row");
        assert!(loc.contains("row 1, col 2"));
    }

    #[test]
    fn the_nodes_collective_lands_like_the_other_tests_with_its_op_and_size() {
        let measured = crate::burnin::collective::SizeResult {
            op: crate::burnin::collective::Op::AllReduce,
            bytes: 4 << 30,
            iterations: 20,
            time_us: 9800.0,
            algbw_gbps: 438.3,
            busbw_gbps: 767.0,
            checked_words: 3 << 20,
            wrong_words: 2,
        };
        let mut r = report();
        r.results = vec![crate::burnin::collective::node_result(&measured, 8, 1_000)];
        r.results[0].figures[0].min = Some(600.0);
        let mut c = db();
        let tx = c.transaction().expect("tx");
        record_burnin(&tx, 7, &r).expect("record");
        tx.commit().expect("commit");
        let (test, wrong, notes): (String, i64, String) = c
            .query_row("SELECT test, data_error_count, notes FROM burnin_results WHERE run_id = 7", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("result row");
        assert_eq!((test.as_str(), wrong), ("collective", 2));
        assert!(notes.contains("all_reduce of 4 GiB over 8 GPUs"), "{notes}");
        let (value, min): (f64, f64) = c
            .query_row("SELECT value, min_value FROM burnin_figures WHERE name = 'busbw'", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("busbw figure");
        assert_eq!((value, min), (767.0, 600.0));
    }

    #[test]
    fn a_report_for_a_missing_run_is_refused_and_nothing_lands() {
        let mut c = db();
        let tx = c.transaction().expect("tx");
        assert!(record_burnin(&tx, 99, &report()).is_err(), "run 99 does not exist");
        drop(tx);
        let n: i64 = c.query_row("SELECT COUNT(*) FROM burnin_results", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 0);
    }
}
