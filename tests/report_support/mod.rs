//! A populated rack for report tests: a manifest, an inventory with nodes in several states
//! (one failed with findings, one with a swapped GPU and a reflashed VBIOS, one quarantined, one
//! never run) and synthetic burn-in data of the shape `kiln burnin` records.

use std::path::PathBuf;

use kiln::checks::{Component, Finding, Outcome, Severity, Verdict};
use kiln::hw::fixture::sample::{gpu_address, gpu_serial, hgx_b200_node, nic_address};
use kiln::inventory::{Inventory, NodeRow, RunId, RunRecord};
use kiln::lifecycle::{LifecycleState, RunKind};
use kiln::model::GpuInventory;
use kiln::report::burnin_view::{BurninFigure, BurninView, GpuTelemetry, HostLink, P2pMatrix, TelemetrySample};

pub const MANIFEST: &str = r#"[rack]
id = "sjc1-a07"
site = "sjc1"
row = "A"
position = 7
platform = "hgx-b200"

[credentials]
bmc_user = "admin"
bmc_password_env = "KILN_BMC_PASSWORD"

[[nodes]]
name = "a07-n01"
address = "10.20.7.11"
slot = "U02"
bmc = "https://10.20.8.11"

[[nodes]]
name = "a07-n02"
address = "10.20.7.12"
slot = "U12"

[[nodes]]
name = "a07-n03"
address = "10.20.7.13"
slot = "U22"
bmc = "https://10.20.8.13"

[[nodes]]
name = "a07-n04"
address = "10.20.7.14"
slot = "U32"

[[nodes]]
name = "a07-n05"
address = "10.20.7.15"
slot = "U42"
"#;

pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub manifest: PathBuf,
    pub db: PathBuf,
}

fn gpu(host: &str, i: u32) -> Component {
    Component {
        kind: "gpu".into(),
        address: Some(gpu_address(i as u8)),
        gpu_index: Some(i),
        serial: Some(gpu_serial(host, i as u8)),
        slot: None,
        name: Some("NVIDIA B200".into()),
    }
}

fn passing() -> Vec<Finding> {
    vec![
        Finding::new("gpu.count", Outcome::Pass, Severity::Critical, Component::node(), "8 GPUs present")
            .expected(8)
            .actual(8),
        Finding::new("pcie.width", Outcome::Pass, Severity::Critical, gpu("x", 0), "x16"),
    ]
}

fn record(inv: &mut Inventory, kind: RunKind, node: &kiln::model::Node, findings: &[Finding]) -> RunId {
    let verdict = Verdict::of(findings);
    let run = RunRecord {
        platform: Some("hgx-b200"),
        rack: Some("sjc1-a07"),
        findings,
        verdict: Some(verdict),
        exit_code: if verdict == Verdict::Fail { 1 } else { 0 },
        ..RunRecord::new(kind, node, "tech-ana")
    };
    inv.record_run(&run).expect("record a run")
}

pub fn build() -> Scenario {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("sjc1-a07.toml");
    std::fs::write(&manifest, MANIFEST).expect("manifest");
    let db = dir.path().join("kiln.db");
    let mut inv = Inventory::open(&db).expect("open");

    // n01: validated, burned in, handed off.
    let n01 = hgx_b200_node("a07-n01");
    record(&mut inv, RunKind::Validate, &n01, &passing());
    record(&mut inv, RunKind::Burnin, &n01, &[]);
    inv.transition("a07-n01", &LifecycleState::Ready, "tech-ana", "signed off").expect("ready");
    inv.transition("a07-n01", &LifecycleState::HandedOff, "kiln rack handoff", "handed off to slurm").expect("handoff");

    // n02: GPU 0 swapped and GPU 5 reflashed between two passing validates.
    let before = hgx_b200_node("a07-n02");
    let mut after = before.clone();
    if let GpuInventory::Inspected { gpus, .. } = &mut after.gpus {
        gpus[0].serial = Some("1650924060999".into());
        gpus[5].vbios_version = Some("97.00.6B.00.02".into());
    }
    record(&mut inv, RunKind::Validate, &before, &passing());
    record(&mut inv, RunKind::Burnin, &before, &[]);
    record(&mut inv, RunKind::Validate, &after, &passing());

    // n03: GPU 3 trained at x8 and a NIC link down: failed.
    let n03 = hgx_b200_node("a07-n03");
    let mut findings = passing();
    findings.push(
        Finding::new("pcie.width", Outcome::Fail, Severity::Critical, gpu("a07-n03", 3), "GPU 3 link trained at x8")
            .expected("x16")
            .actual("x8")
            .action("reseat GPU 3 in its tray and check the riser cable"),
    );
    findings.push(
        Finding::new(
            "net.link",
            Outcome::Fail,
            Severity::Warning,
            Component { kind: "nic".into(), address: Some(nic_address(6)), ..Default::default() },
            "port 1 is down",
        )
        .expected("up")
        .actual("down")
        .action("check the cable and the switch port of NIC 6"),
    );
    findings.push(Finding::new(
        "nvlink.active",
        Outcome::Skipped,
        Severity::Info,
        Component::node(),
        "NVML not queried",
    ));
    record(&mut inv, RunKind::Validate, &n03, &findings);

    // n04: quarantined by a person.
    let n04 = hgx_b200_node("a07-n04");
    record(&mut inv, RunKind::Validate, &n04, &passing());
    inv.transition(
        "a07-n04",
        &LifecycleState::Quarantined { reason: "suspect tray: smoke smell".into() },
        "tech-bo",
        "hold",
    )
    .expect("quarantine");
    // n05 is in the manifest only.
    Scenario { dir, manifest, db }
}

/// A deterministic wobble in -1..1, so the synthetic series look measured.
fn wobble(seed: u32) -> f64 {
    let h = seed.wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x5bd1_e995;
    (h % 2001) as f64 / 1000.0 - 1.0
}

/// A burn-in of 10 minutes on 8 GPUs, with a GPU that throttles and a weak
/// link on `a07-n03`; nothing for nodes that have no burn-in run.
pub fn burnin(_inv: &Inventory, row: &NodeRow) -> Result<BurninView, kiln::inventory::InventoryError> {
    if row.name == "a07-n05" || row.name == "a07-n04" {
        return Ok(BurninView::default());
    }
    let bad = row.name == "a07-n03";
    let seed = row.name.bytes().map(u32::from).sum::<u32>();
    let gpus: Vec<GpuTelemetry> = (0..8u32)
        .map(|g| GpuTelemetry {
            gpu: g,
            samples: (0..=40u32)
                .map(|k| {
                    let t = f64::from(k) * 15.0;
                    let ramp = (t / 60.0).min(1.0);
                    let throttled = bad && g == 5 && t > 300.0;
                    let w = wobble(seed + g * 101 + k);
                    TelemetrySample {
                        t_s: t,
                        tflops: Some(if throttled { 610.0 + 8.0 * w } else { 420.0 + 365.0 * ramp + 6.0 * w }),
                        temperature_c: Some(
                            38.0 + 36.0 * ramp + f64::from(g) * 0.8 + if throttled { 9.0 } else { 0.0 } + w,
                        ),
                        power_w: Some(180.0 + 800.0 * ramp + 10.0 * w - if throttled { 160.0 } else { 0.0 }),
                    }
                })
                .collect(),
        })
        .collect();
    let gbps: Vec<Vec<Option<f64>>> = (0..8u32)
        .map(|i| {
            (0..8u32)
                .map(|j| {
                    (i != j)
                        .then(|| if bad && i == 3 && j == 6 { 122.0 } else { 378.0 + 4.0 * wobble(seed + i * 8 + j) })
                })
                .collect()
        })
        .collect();
    let mut host_links = Vec::new();
    for g in 0..8u32 {
        for dir in ["h2d", "d2h"] {
            let v = if bad && g == 3 { 26.4 } else { 52.0 + wobble(seed + g * 3 + dir.len() as u32) };
            host_links.push(HostLink { gpu: g, direction: dir.into(), gbps: v, threshold_gbps: Some(48.0) });
        }
    }
    let figures: Vec<BurninFigure> = gpus
        .iter()
        .map(|g| {
            let tail: Vec<f64> = g.samples.iter().filter(|s| s.t_s >= 120.0).filter_map(|s| s.tflops).collect();
            BurninFigure {
                name: "gemm_tflops".into(),
                gpu: Some(g.gpu),
                peer_gpu: None,
                value: tail.iter().sum::<f64>() / tail.len() as f64,
                unit: "TFLOP/s".into(),
                threshold: Some(700.0),
                higher_is_better: true,
            }
        })
        .collect();
    Ok(BurninView {
        run: Some(RunId(if bad { 9 } else { 4 })),
        verdict: Some(if bad { Verdict::Fail } else { Verdict::Pass }),
        incomplete: false,
        gpus,
        p2p: Some(P2pMatrix { gpus: (0..8).collect(), gbps, threshold_gbps: Some(335.0) }),
        host_links,
        figures,
    })
}
