//! A tray's rank in a rack collective, recorded under the collective's rack run: its results and
//! telemetry in the burn-in tables, read back per rack run and per node, and kept out of the
//! runs that compare a node's parts.

use std::collections::BTreeMap;

use super::support::{at, record, temp_db, validate_findings};
use crate::burnin::collective::{Op, RankReport, SizeResult, RANK_KIND};
use crate::burnin::report::{GpuIdentity, GpuTelemetry, HealthCounters, Sample, Watch, XidEvent};
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::{CollectiveTrayRecord, Inventory, RackRunRecord, COLLECTIVE_RUN};
use crate::lifecycle::RunKind;

fn report(hostname: &str) -> RankReport {
    let gpu = GpuIdentity {
        index: 0,
        pci_address: "0000:1b:00.0".parse().expect("address"),
        serial: Some("1650000000007".into()),
        uuid: None,
        name: Some("NVIDIA B200".into()),
        numa_node: None,
        slot: None,
    };
    RankReport {
        schema_version: 1,
        kind: RANK_KIND.into(),
        hostname: hostname.into(),
        rank: 1,
        ranks: 2,
        gpus: 4,
        world: 8,
        verdict: Outcome::Pass,
        reason: None,
        nccl_version: Some("2.27.3".into()),
        results: vec![SizeResult {
            op: Op::AllReduce,
            bytes: 8 << 30,
            iterations: 20,
            time_us: 17_400.0,
            algbw_gbps: 493.7,
            busbw_gbps: 863.9,
            checked_words: 3000,
            wrong_words: 0,
        }],
        telemetry: vec![GpuTelemetry {
            gpu,
            before: HealthCounters { nvlink_errors: Some(0), ..Default::default() },
            after: HealthCounters { nvlink_errors: Some(2), ..Default::default() },
            samples: vec![
                Sample { at_unix_ms: 1000, power_w: Some(950.0), temperature_c: Some(58), ..Default::default() },
                Sample { at_unix_ms: 2000, power_w: Some(990.0), temperature_c: Some(61), ..Default::default() },
            ],
            xids: vec![XidEvent { at_unix_ms: 1500, xid: 63 }],
            xid_watch: Watch::Watched,
            power_limit_w: Some(1000.0),
            problems: Vec::new(),
        }],
        telemetry_note: None,
        local: vec![SizeResult {
            op: Op::AllReduce,
            bytes: 8 << 30,
            iterations: 20,
            time_us: 21_000.0,
            algbw_gbps: 409.0,
            busbw_gbps: 613.6,
            checked_words: 3000,
            wrong_words: 0,
        }],
    }
}

#[test]
fn each_trays_rank_is_a_run_of_its_own_under_the_rack_run_and_leaves_the_node_runs_alone() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("node07");
    let validate = record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 0);
    let serial = crate::inventory::components_of(&node)
        .into_iter()
        .find_map(|c| c.serial.filter(|s| !s.is_empty()))
        .expect("a part with a serial");
    let status: BTreeMap<String, String> =
        [("node06", "skipped"), ("node07", "pass")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    let rack_run = inv
        .record_rack_run(&RackRunRecord {
            rack: "r07",
            kind: "collective",
            started_at: at(10),
            finished_at: at(11),
            findings: &[],
            exit_code: 7,
            node_status: &status,
            actor: "kiln rack burnin",
            gate: &BTreeMap::new(),
        })
        .expect("rack run");
    let rank = Finding::new(
        "burnin.collective.rank",
        Outcome::Pass,
        Severity::Info,
        Component { kind: "node".into(), name: Some("node07".into()), ..Default::default() },
        "node07 (rank 1): ran",
    );
    let ran = report("node07");
    let tray = CollectiveTrayRecord {
        rack: "r07",
        rack_run,
        node: "node07",
        rank: 1,
        status: "pass",
        reason: None,
        killed: false,
        duration_ms: 61_000,
        report: Some(&ran),
        findings: std::slice::from_ref(&rank),
        verdict: Some(Verdict::Pass),
        exit_code: 0,
        platform: Some("gb200-nvl72-tray"),
        started_at: at(10),
        finished_at: at(11),
        actor: "kiln rack burnin",
    };
    let run = inv.record_collective_tray(&tray).expect("record the tray");
    // A tray the inventory did not know yet, whose rank was skipped: enrolled in the rack.
    let skipped = CollectiveTrayRecord {
        node: "node06",
        rank: 0,
        status: "skipped",
        reason: Some("no NCCL (libnccl.so.2 could not be loaded)"),
        report: None,
        findings: &[],
        verdict: None,
        exit_code: 7,
        ..tray.clone()
    };
    inv.record_collective_tray(&skipped).expect("record the skipped tray");

    let trays = inv.collective_trays(rack_run).expect("trays");
    assert_eq!(trays.iter().map(|t| (t.node.as_str(), t.rank)).collect::<Vec<_>>(), [("node06", 0), ("node07", 1)]);
    let t = &trays[1];
    assert_eq!((t.run_id, t.status.as_str(), t.verdict, t.exit_code), (run, "pass", Some(Verdict::Pass), 0));
    assert_eq!((t.gpus, t.world, t.nccl_version.as_deref()), (Some(4), Some(8), Some("2.27.3")));
    assert_eq!(t.rack.as_deref(), Some("r07"));
    assert_eq!(t.results.len(), 2, "the domain's size and the tray's own GPUs alone");
    assert_eq!(t.results[0].test, "collective.all_reduce");
    assert_eq!(t.results[1].test, "collective.tray.all_reduce");
    assert_eq!(t.results[1].figures.iter().find(|f| f.name == "busbw").map(|f| f.value), Some(613.6));
    let figure = |name: &str| t.results[0].figures.iter().find(|f| f.name == name).map(|f| (f.value, f.unit.clone()));
    assert_eq!(figure("busbw"), Some((863.9, "GB/s".to_string())));
    assert_eq!(figure("bytes"), Some(((8u64 << 30) as f64, "B".to_string())));
    assert_eq!(figure("wrong_words"), Some((0.0, "words".to_string())));
    assert_eq!(t.samples.iter().map(|s| s.power_w).collect::<Vec<_>>(), [Some(950.0), Some(990.0)]);
    let s = &trays[0];
    assert_eq!((s.status.as_str(), s.verdict, s.exit_code), ("skipped", None, 7));
    assert_eq!(s.results.len(), 1, "the skip is recorded as the tray's result");
    assert_eq!(s.results[0].test, COLLECTIVE_RUN);
    assert_eq!(s.results[0].reason.as_deref(), Some("no NCCL (libnccl.so.2 could not be loaded)"));
    assert!(s.samples.is_empty());

    // The raw rows: the Xid and the counters under the tray's run.
    let raw = super::support::raw(&path);
    let xids: i64 = raw
        .query_row("SELECT count(*) FROM burnin_xids WHERE run_id = ?1 AND xid = 63", [run.0], |r| r.get(0))
        .expect("xids");
    assert_eq!(xids, 1);
    let after: i64 = raw
        .query_row("SELECT nvlink_errors FROM burnin_counters WHERE run_id = ?1 AND phase = 'after'", [run.0], |r| {
            r.get(0)
        })
        .expect("counters");
    assert_eq!(after, 2);

    // The node's newest run of its parts is still the validate run, its parts still there.
    let row = inv.node("node07").expect("query").expect("node07");
    assert_eq!(inv.latest_run(row.id).expect("latest").map(|r| r.id), Some(validate));
    let stays = inv.part_history(&serial).expect("part history");
    assert!(stays.iter().any(|s| s.current), "a collective run does not take the part away: {stays:?}");
    assert_eq!(inv.latest_collective_as_of(row.id, None).expect("latest collective").map(|c| c.run_id), Some(run));
    assert!(inv.latest_collective_as_of(row.id, Some("2025-03-01T08:05:00.000Z")).expect("as of").is_none());
    // Its verdict is judged beside the node's other runs (hand-off reads them).
    let judged = inv.latest_judged_runs(row.id).expect("judged");
    assert!(judged.iter().any(|r| r.kind == COLLECTIVE_RUN && r.verdict == Some(Verdict::Pass)), "{judged:?}");
    assert_eq!(inv.state("node06").expect("state").name(), "enrolled");

    // `kiln report --node node07` shows it.
    let report = crate::report::build_report(&inv, Some("node07"), at(120)).expect("report");
    let section = report.nodes[0].collective.as_ref().expect("a collective section");
    assert_eq!((section.rank, section.status.as_str(), section.samples, section.gpus_sampled), (1, "pass", 2, 1));
    assert_eq!((section.rows[0].op.as_str(), section.rows[0].busbw_gbps), ("all_reduce", Some(863.9)));
    assert_eq!(section.peak_power_w, Some(990.0));
    let text = crate::report::render_table(&report);
    assert!(text.contains(&format!("Collective (rack run {}, rank 1, run {}", rack_run.0, run.0)), "{text}");
    assert!(text.contains("8 GiB") && text.contains("863.9"), "{text}");
    assert!(text.contains("telemetry: 1 GPUs, 2 samples, peak 990 W, peak 61 C"), "{text}");
    let skipped = crate::report::build_report(&inv, Some("node06"), at(120)).expect("report");
    let text = crate::report::render_table(&skipped);
    assert!(text.contains("skipped: no NCCL"), "{text}");
}
