//! Burn-in runs recorded in a real database file, read back into the rack view and the per-node
//! report: series, matrix, bars, figures, and an incomplete run that must not read as a pass.

use crate::burnin::options::{GemmDtype, TestKind};
use crate::burnin::report::{
    BurninReport, CudaLibraries, Figure, GpuAccess, GpuIdentity, GpuTelemetry, HealthCounters, Sample, TestResult,
    Watch, REPORT_KIND, REPORT_VERSION,
};
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::hw::fixture::sample::{gpu_address, gpu_serial, hgx_b200_node};
use crate::inventory::tests::support::{at, raw, record, temp_db, validate_findings};
use crate::inventory::{Inventory, InventoryError, RunId, RunLifecycle, RunRecord};
use crate::lifecycle::RunKind;
use crate::report::burnin_view::{HostLink, P2pMatrix};
use crate::report::{
    build_rack_report, build_report, load_burnin_view, render_html, render_json, render_table, Report, RowStatus,
};

const HOST: &str = "gpu-b01";
/// The burn-in starts at `at(30)`; every time below is relative to it.
const START_MINUTE: i64 = 30;

fn start_ms() -> i64 {
    at(START_MINUTE).unix_timestamp() * 1000
}

fn gpu(i: u32) -> GpuIdentity {
    GpuIdentity {
        index: i,
        pci_address: gpu_address(i as u8).parse().expect("address"),
        serial: Some(gpu_serial(HOST, i as u8)),
        uuid: Some(format!("GPU-{i:08}")),
        name: Some("NVIDIA B200".into()),
        numa_node: Some(i / 4),
        slot: None,
    }
}

fn figure(name: &str, value: f64, unit: &str, min: Option<f64>, expected: Option<f64>) -> Figure {
    Figure { min, expected, threshold_reason: min.map(|_| "platform table".into()), ..Figure::new(name, value, unit) }
}

fn ran(test: TestKind, g: u32, started_s: i64, seconds: f64, figures: Vec<Figure>) -> TestResult {
    TestResult {
        started_unix_ms: start_ms() + started_s * 1000,
        seconds,
        figures,
        ..TestResult::ran(test, Some(gpu(g)))
    }
}

/// Two GPUs: GEMM (four batch medians over 40 s from t = 10 s), HBM, host
/// links alone and together, p2p both ways with GPU 1 to GPU 0 weak (120
/// GB/s, under the 335 minimum), and telemetry every second for 3 s.
fn two_gpu_report() -> BurninReport {
    let gemm = |g: u32, samples: Vec<f64>, median: f64| {
        ran(
            TestKind::Gemm,
            g,
            10,
            40.0,
            vec![
                Figure { samples, ..figure("tflops", median, "TFLOP/s", Some(1700.0), Some(2250.0)) },
                figure("iterations", 4000.0, "products", None, None),
                figure("mismatches", 0.0, "words", None, None),
            ],
        )
    };
    let hbm = |g: u32| {
        ran(
            TestKind::Hbm,
            g,
            60,
            5.0,
            vec![
                figure("copy_kernel", 6.42, "TB/s", Some(5.6), Some(6.6)),
                figure("copy_engine", 6.05, "TB/s", Some(5.2), None),
            ],
        )
    };
    let link = |g: u32, h2d: f64, d2h: f64| {
        ran(
            TestKind::HostLink,
            g,
            1,
            4.0,
            vec![
                figure("h2d", h2d, "GB/s", Some(48.0), Some(55.0)),
                figure("d2h", d2h, "GB/s", Some(48.0), Some(55.0)),
                figure("h2d_together", h2d - 5.0, "GB/s", Some(40.0), None),
                figure("d2h_together", d2h - 5.0, "GB/s", Some(40.0), None),
            ],
        )
    };
    let p2p = |g: u32, peer: u32, value: f64| {
        ran(
            TestKind::P2p,
            g,
            70,
            2.0,
            vec![Figure {
                min: Some(335.0),
                ..Figure::new("p2p", value, "GB/s").with_peer(peer).with_samples(vec![value - 1.0, value, value + 1.0])
            }],
        )
    };
    let telemetry = |g: u32, temps: [u32; 3], watts: [f64; 3]| GpuTelemetry {
        gpu: gpu(g),
        before: HealthCounters::default(),
        after: HealthCounters::default(),
        samples: (0..3)
            .map(|k| Sample {
                at_unix_ms: start_ms() + 1000 * (k as i64 + 1),
                temperature_c: Some(temps[k]),
                power_w: Some(watts[k]),
                ..Default::default()
            })
            .collect(),
        xids: vec![],
        xid_watch: Watch::Watched,
        power_limit_w: Some(1000.0),
        problems: vec![],
    };
    BurninReport {
        kind: REPORT_KIND.into(),
        version: REPORT_VERSION,
        kiln_version: "0.1.0".into(),
        hostname: Some(HOST.into()),
        started_at: "2025-03-01T08:30:00Z".into(),
        finished_at: "2025-03-01T08:40:00Z".into(),
        duration_s: 40.0,
        tests_requested: vec![TestKind::Gemm, TestKind::Hbm, TestKind::HostLink, TestKind::P2p],
        gemm_dtype: GemmDtype::Bf16,
        platform: "hgx-b200".into(),
        platform_source: "detected".into(),
        gpu_access: GpuAccess::Available {
            driver_version: "580.159.04".into(),
            cuda_driver_version: Some(13000),
            gpus: vec![gpu(0), gpu(1)],
            libraries: CudaLibraries { driver: true, nvrtc: true, cublaslt: true },
        },
        inject_fault: None,
        results: vec![
            link(0, 55.1, 53.2),
            link(1, 26.4, 54.0),
            gemm(0, vec![2100.0, 2200.0, 2210.0, 2190.0], 2195.0),
            gemm(1, vec![2000.0, 2050.0, 1990.0, 2010.0], 2005.0),
            hbm(0),
            hbm(1),
            p2p(0, 1, 380.5),
            p2p(1, 0, 120.0),
        ],
        telemetry: vec![
            telemetry(0, [40, 61, 70], [300.0, 900.0, 980.0]),
            telemetry(1, [41, 63, 75], [310.0, 910.0, 990.0]),
        ],
        findings: vec![Finding::new(
            "burnin.p2p.p2p",
            Outcome::Fail,
            Severity::Critical,
            gpu(1).component(),
            "GPU 1 ran peer copy to GPU 0 at 120.00 GB/s, under the minimum 335 GB/s",
        )
        .action("check NVLink state and re-run")],
        verdict: Verdict::Fail,
        incomplete: false,
    }
}

/// No driver: every GPU test skipped for it, the host stress ran and passed.
fn no_driver_report() -> BurninReport {
    let mut host = TestResult::ran(TestKind::Host, None);
    host.started_unix_ms = start_ms();
    host.seconds = 30.0;
    host.figures.push(figure("cpu_bogo_ops", 51234.5, "bogo ops/s", None, None));
    let skipped = |t: TestKind| TestResult::skipped(t, None, crate::hw::gpu::NO_DRIVER, true);
    BurninReport {
        tests_requested: vec![TestKind::Gemm, TestKind::Hbm, TestKind::Host],
        gpu_access: GpuAccess::Unavailable { reason: crate::hw::gpu::NO_DRIVER.into() },
        results: vec![skipped(TestKind::Gemm), skipped(TestKind::Hbm), host],
        telemetry: vec![],
        findings: vec![Finding::new("burnin.host.data", Outcome::Pass, Severity::Info, Component::node(), "ok")],
        verdict: Verdict::Pass,
        incomplete: true,
        ..two_gpu_report()
    }
}

fn record_burnin(inv: &mut Inventory, report: &BurninReport, minute: i64) -> RunId {
    let node = hgx_b200_node(HOST);
    let run = RunRecord {
        platform: Some("hgx-b200"),
        rack: Some("r07"),
        findings: &report.findings,
        verdict: Some(report.verdict),
        exit_code: if report.verdict == Verdict::Fail { 1 } else { 0 },
        started_at: at(minute),
        finished_at: at(minute + 10),
        lifecycle: RunLifecycle::Leave,
        ..RunRecord::new(RunKind::Burnin, &node, "tech-ana")
    };
    inv.record_burnin_run(&run, report).expect("record the burn-in run")
}

/// A database file with `HOST` validated, then burnt in with `report`.
fn scenario(report: &BurninReport) -> (tempfile::TempDir, std::path::PathBuf, Inventory, RunId) {
    let (dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    record(&mut inv, RunKind::Validate, &hgx_b200_node(HOST), &validate_findings(false), 0);
    let run = record_burnin(&mut inv, report, START_MINUTE);
    (dir, path, inv, run)
}

fn node_report(inv: &Inventory) -> Report {
    build_report(inv, Some(HOST), at(120)).expect("build the report")
}

#[test]
fn the_view_has_each_gpus_series_the_p2p_matrix_row_to_column_and_the_host_links() {
    let (_dir, _path, inv, run) = scenario(&two_gpu_report());
    let row = inv.node(HOST).expect("query").expect("node");
    let view = load_burnin_view(&inv, &row).expect("load the view");

    assert_eq!(view.run, Some(run));
    assert_eq!(view.verdict, Some(Verdict::Fail));

    // Telemetry at 1, 2, 3 s; GEMM batch medians in the middle of each
    // tenth of 10 s .. 50 s: 15, 25, 35, 45 s.
    assert_eq!(view.gpus.iter().map(|g| g.gpu).collect::<Vec<_>>(), vec![0, 1]);
    let g1 = &view.gpus[1];
    let temps: Vec<(f64, f64)> = g1.samples.iter().filter_map(|s| s.temperature_c.map(|t| (s.t_s, t))).collect();
    assert_eq!(temps, vec![(1.0, 41.0), (2.0, 63.0), (3.0, 75.0)]);
    let watts: Vec<f64> = g1.samples.iter().filter_map(|s| s.power_w).collect();
    assert_eq!(watts, vec![310.0, 910.0, 990.0]);
    let tflops: Vec<(f64, f64)> = g1.samples.iter().filter_map(|s| s.tflops.map(|v| (s.t_s, v))).collect();
    assert_eq!(tflops, vec![(15.0, 2000.0), (25.0, 2050.0), (35.0, 1990.0), (45.0, 2010.0)]);
    let g0_tflops: Vec<f64> = view.gpus[0].samples.iter().filter_map(|s| s.tflops).collect();
    assert_eq!(g0_tflops, vec![2100.0, 2200.0, 2210.0, 2190.0]);
    assert!(view.gpus[0].samples.windows(2).all(|w| w[0].t_s <= w[1].t_s), "samples are in time order");

    // Row sends to column: GPU 1 -> GPU 0 is the weak pair.
    assert_eq!(
        view.p2p,
        Some(P2pMatrix {
            gpus: vec![0, 1],
            gbps: vec![vec![None, Some(380.5)], vec![Some(120.0), None]],
            threshold_gbps: Some(335.0),
        })
    );

    // Alone figures only, h2d before d2h, by GPU.
    let link =
        |gpu, direction: &str, gbps| HostLink { gpu, direction: direction.into(), gbps, threshold_gbps: Some(48.0) };
    assert_eq!(
        view.host_links,
        vec![link(0, "h2d", 55.1), link(0, "d2h", 53.2), link(1, "h2d", 26.4), link(1, "d2h", 54.0)]
    );

    // Every figure, named across tests, with its minimum.
    let gemm1 =
        view.figures.iter().find(|f| f.name == "gemm_tflops" && f.gpu == Some(1)).expect("gemm figure of GPU 1");
    assert_eq!((gemm1.value, gemm1.threshold, gemm1.unit.as_str()), (2005.0, Some(1700.0), "TFLOP/s"));
    assert!(gemm1.higher_is_better);
    let mismatches = view.figures.iter().find(|f| f.name == "gemm_mismatches").expect("mismatches");
    assert!(!mismatches.higher_is_better, "wrong words are better few");
    let pair = view.figures.iter().find(|f| f.name == "p2p" && f.gpu == Some(1)).expect("p2p figure of GPU 1");
    assert_eq!((pair.peer_gpu, pair.value), (Some(0), 120.0));
    assert!(view.figures.iter().any(|f| f.name == "host_link_h2d_together" && f.gpu == Some(0)));
    assert_eq!(view.figures.len(), 2 * (4 + 3 + 2) + 2);
}

#[test]
fn the_newest_burn_in_is_shown_and_a_node_without_one_gets_an_empty_view() {
    let (_dir, _path, mut inv, first) = scenario(&two_gpu_report());
    let mut again = two_gpu_report();
    again.results.retain(|r| r.test == TestKind::Gemm);
    again.verdict = Verdict::Pass;
    let second = record_burnin(&mut inv, &again, START_MINUTE + 60);
    assert_ne!(first, second);
    let row = inv.node(HOST).expect("query").expect("node");
    let view = load_burnin_view(&inv, &row).expect("load");
    assert_eq!((view.run, view.verdict), (Some(second), Some(Verdict::Pass)));
    assert_eq!(view.p2p, None, "the newer run measured no pair");

    record(&mut inv, RunKind::Inspect, &hgx_b200_node("gpu-b02"), &[], 5);
    let other = inv.node("gpu-b02").expect("query").expect("node");
    assert!(load_burnin_view(&inv, &other).expect("load").is_empty());
    let report = build_report(&inv, Some("gpu-b02"), at(120)).expect("report");
    assert_eq!(report.nodes[0].burnin, None);
    assert!(!render_json(&report).expect("json").contains("\"burnin\""), "absent, not null, when there is none");
}

#[test]
fn the_rack_html_draws_the_recorded_series_matrix_and_bars() {
    let (_dir, _path, inv, run) = scenario(&two_gpu_report());
    let report = build_rack_report(&inv, None, at(120), &load_burnin_view).expect("rack report");
    let html = render_html(&report);
    assert!(html.contains(&format!("burn-in run {}: fail", run.0)), "the run and its verdict");
    for chart in ["GEMM throughput per GPU", "GPU temperature", "GPU power", "GPU to GPU bandwidth (P2P)"] {
        assert!(html.contains(chart), "missing chart {chart}");
    }
    assert!(html.contains("<title>GPU0 to GPU1: 380</title>"), "row GPU0 sends 380.5 to column GPU1");
    assert!(html.contains("<title>GPU1 to GPU0: 120</title>"), "row GPU1 sends 120 to column GPU0");
    assert!(html.contains("<title>GPU1 h2d: 26.4 GB/s</title>"), "the weak host link bar");
    assert!(!html.contains("No burn-in recorded"));
}

#[test]
fn the_node_report_lists_every_figure_of_the_latest_burn_in() {
    let (_dir, _path, inv, run) = scenario(&two_gpu_report());
    let report = node_report(&inv);
    let section = report.nodes[0].burnin.as_ref().expect("a burn-in section");
    assert_eq!((section.run_id, section.verdict, section.incomplete), (run, Verdict::Fail, false));
    let weak = section.rows.iter().find(|r| r.test == "p2p" && r.gpu == Some(1)).expect("p2p row of GPU 1");
    assert_eq!(
        (weak.peer_gpu, weak.value, weak.min, weak.status),
        (Some(0), Some(120.0), Some(335.0), RowStatus::Fail)
    );
    let strong = section.rows.iter().find(|r| r.test == "p2p" && r.gpu == Some(0)).expect("p2p row of GPU 0");
    assert_eq!(strong.status, RowStatus::Pass);
    let iterations = section.rows.iter().find(|r| r.figure.as_deref() == Some("iterations")).expect("iterations");
    assert_eq!(iterations.status, RowStatus::NotJudged);
    let mismatches = section.rows.iter().find(|r| r.figure.as_deref() == Some("mismatches")).expect("mismatches");
    assert_eq!(mismatches.status, RowStatus::Pass, "no wrong word found");

    let text = render_table(&report);
    assert!(text.contains(&format!("  Burn-in (run {}): fail\n", run.0)), "{text}");
    assert!(text.contains(&format!("last run: burnin run {}: fail,", run.0)), "{text}");
    let line = |needles: &[&str]| text.lines().any(|l| needles.iter().all(|n| l.contains(n)));
    assert!(line(&["TEST", "GPU", "FIGURE", "VALUE", "UNIT", "MIN", "EXPECTED", "STATUS"]), "{text}");
    assert!(line(&["p2p", "1 -> 0", "120", "GB/s", "335", "fail"]), "{text}");
    assert!(line(&["gemm", "tflops", "2195", "TFLOP/s", "1700", "2250", "pass"]), "{text}");
    assert!(line(&["hbm", "copy_kernel", "6.42", "TB/s", "5.60", "6.60", "pass"]), "{text}");
    assert!(line(&["host-link", "h2d", "26.40", "48", "55", "fail"]), "{text}");

    let json = render_json(&report).expect("json");
    let parsed: Report = serde_json::from_str(&json).expect("the JSON reads back");
    assert_eq!(parsed, report);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let b = &value["nodes"][0]["burnin"];
    assert_eq!(b["run_id"], run.0);
    assert_eq!(b["incomplete"], false);
    assert!(b["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .any(|r| r["test"] == "p2p" && r["gpu"] == 1 && r["peer_gpu"] == 0 && r["status"] == "fail"));
}

#[test]
fn an_incomplete_burn_in_never_reads_as_a_plain_pass() {
    let (_dir, _path, inv, run) = scenario(&no_driver_report());
    let report = node_report(&inv);
    let section = report.nodes[0].burnin.as_ref().expect("section");
    assert!(section.incomplete);
    assert_eq!(section.not_run, vec!["GPU tests skipped: no NVIDIA driver".to_string()]);

    let text = render_table(&report);
    let last = text.lines().find(|l| l.contains("last run:")).expect("last run line");
    assert!(
        last.contains(&format!("burnin run {}: pass (incomplete: GPU tests skipped: no NVIDIA driver),", run.0)),
        "{last}"
    );
    assert!(text.contains("Burn-in (run"), "{text}");
    assert!(text.lines().any(|l| l.contains("gemm") && l.contains("skipped: no NVIDIA driver")), "{text}");
    assert!(text.lines().any(|l| l.contains("host") && l.contains("cpu_bogo_ops") && l.contains("51234.50")));

    let rack = build_rack_report(&inv, None, at(120), &load_burnin_view).expect("rack report");
    let html = render_html(&rack);
    assert!(html.contains("pass (incomplete: GPU tests skipped: no NVIDIA driver)"), "the HTML says so too");
    assert!(!html.contains(&format!("burnin {} (pass)", run.0)), "the overview does not say plain pass");

    let metrics = crate::report::render_prometheus(&rack);
    let line = metrics.lines().find(|l| l.starts_with("kiln_burnin_incomplete{")).expect("incomplete metric");
    assert!(line.ends_with(" 1"), "{line}");
}

#[test]
fn unreadable_burn_in_rows_are_errors_naming_the_run_not_an_empty_view() {
    let (_dir, path, inv, run) = scenario(&two_gpu_report());
    let row = inv.node(HOST).expect("query").expect("node");
    let conn = raw(&path);
    conn.execute("UPDATE burnin_figures SET samples = 'not json' WHERE name = 'p2p'", []).expect("corrupt samples");
    let err = load_burnin_view(&inv, &row).expect_err("garbage samples");
    assert!(matches!(&err, InventoryError::Query { what, .. } if what == &format!("burn-in figures of run {}", run.0)));

    conn.execute("UPDATE burnin_runs SET started_at = 'yesterday'", []).expect("corrupt start");
    let err = load_burnin_view(&inv, &row).expect_err("garbage start time");
    assert!(
        matches!(&err, InventoryError::Query { what, .. } if what.starts_with("latest burn-in of node")),
        "{err:?}"
    );
    assert!(build_report(&inv, Some(HOST), at(120)).is_err(), "the node report does not hide it either");
}

#[test]
fn burnin_table_snapshot() {
    let (_dir, _path, inv, _run) = scenario(&two_gpu_report());
    let text = render_table(&node_report(&inv)).replace(env!("CARGO_PKG_VERSION"), "[version]");
    insta::assert_snapshot!(text);
}
