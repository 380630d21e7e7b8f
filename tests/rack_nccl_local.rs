//! The collective's controller over the local transport with this build's real `kiln` as every
//! rank (no SSH, no root): without NCCL every rank is skipped; a rank that dies is named and a
//! rank hanging beside it is killed at once, long before its deadline; a rank that hangs alone
//! is named at its deadline. No rank process outlives the run. A rank samples its GPUs' telemetry
//! live through NVML (a fake `libnvidia-ml.so.1`) or from a capture (`--root`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kiln::fleet::{run_collective, CollectiveRun, LocalConnector, NodeStatus, RemoteBinary};
use kiln::rack::RackNode;

fn run(dir: &Path, hooks: &[(&str, &str)], deadline: Duration) -> (kiln::fleet::CollectiveOutcome, f64) {
    let remote = dir.join("bin/kiln");
    let binary = RemoteBinary::new(Some(Path::new(env!("CARGO_BIN_EXE_kiln"))), remote.to_str().expect("utf8"))
        .expect("this build's kiln");
    let nodes: Vec<RackNode> = (1..=4).map(|i| RackNode::new(&format!("t{i}"), "127.0.0.1")).collect();
    let refs: Vec<&RackNode> = nodes.iter().collect();
    let hooks: BTreeMap<String, String> = hooks.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
    let run = CollectiveRun {
        nodes: &refs,
        binary: &binary,
        push_timeout: Duration::from_secs(60),
        deadline,
        limits: None,
        telemetry: None,
        hooks: &hooks,
    };
    let t0 = Instant::now();
    let out = run_collective(&run, &LocalConnector, &["--sizes-mib".into(), "1".into()]);
    (out, t0.elapsed().as_secs_f64())
}

/// Processes of this machine running a rank from `dir`.
fn ranks_left(dir: &Path) -> Vec<String> {
    let marker = dir.join("bin/kiln").display().to_string();
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(|e| {
            let cmd = std::fs::read(e.ok()?.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(&marker) && cmd.contains("nccl-rank")).then_some(cmd)
        })
        .collect()
}

fn wait_none_left(dir: &Path) {
    let until = Instant::now() + Duration::from_secs(5);
    while !ranks_left(dir).is_empty() {
        assert!(Instant::now() < until, "ranks left: {:?}", ranks_left(dir));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_nccl_every_rank_is_skipped_never_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _) = run(dir.path(), &[], Duration::from_secs(60));
    assert_eq!(out.exit_code, 7, "{out:#?}");
    for t in &out.trays {
        assert_eq!(t.status, NodeStatus::Skipped, "{out:#?}");
        assert!(t.reason.as_deref().unwrap_or("").contains("no NCCL"), "{out:#?}");
    }
}

#[test]
fn a_dead_rank_is_named_and_the_hung_one_beside_it_is_killed_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, took) = run(dir.path(), &[("t2", "die"), ("t4", "hang")], Duration::from_secs(120));
    assert_eq!(out.exit_code, 3, "{out:#?}");
    assert!(out.trays[1].reason.as_deref().unwrap_or("").starts_with("died"), "{out:#?}");
    assert!(out.trays[3].killed, "{out:#?}");
    assert!(
        out.trays[3].reason.as_deref().unwrap_or("").starts_with("stopped by kiln after rank 1 on t2 failed"),
        "{out:#?}"
    );
    assert!(took < 30.0, "killed when t2 died, not at the deadline: {took:.1} s");
    assert_eq!(out.gate().keys().collect::<Vec<_>>(), ["t2"], "{out:#?}");
    wait_none_left(dir.path());
}

#[test]
fn a_hung_rank_is_named_at_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, took) = run(dir.path(), &[("t3", "hang")], Duration::from_secs(4));
    assert_eq!(out.exit_code, 3, "{out:#?}");
    assert!(out.trays[2].reason.as_deref().unwrap_or("").starts_with("hung: rank 2 on t3"), "{out:#?}");
    assert!((4.0..15.0).contains(&took), "{took:.1} s");
    wait_none_left(dir.path());
}

/// `kiln nccl-rank --root` on a GB200 tray capture with telemetry recorded for GPU 1: the rank
/// runs no collective on GPUs that are not here (skipped, exit 7), and its report carries the
/// capture's telemetry for every GPU of the tray, named as burn-in names them.
#[test]
fn a_rank_replaying_a_capture_reports_its_recorded_telemetry_per_gpu() {
    use kiln::hw::fixture::{gb200_tray, Gb200Tray};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tree = gb200_tray(&Gb200Tray::default());
    tree.file(
        kiln::hw::telemetry::TELEMETRY_PATH,
        r#"{"gpus": [{"index": 1, "samples": [{"at_unix_ms": 1000, "power_w": 810.5}, {"at_unix_ms": 2000, "power_w": 990.0}],
             "xids": [{"at_unix_ms": 1500, "xid": 79}]}]}"#,
    );
    let root = dir.path().join("tray");
    tree.write(&root).expect("write the tray");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["nccl-rank", "--json", "--sample-ms", "50", "--root"])
        .arg(&root)
        .output()
        .expect("run kiln nccl-rank");
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let report: kiln::burnin::collective::RankReport = serde_json::from_slice(&out.stdout).expect("a rank report");
    assert!(report.reason.as_deref().unwrap_or("").starts_with("replayed from a capture"), "{report:?}");
    assert_eq!(report.telemetry.len(), 4, "the tray's four GPUs: {report:?}");
    let g1 = report.telemetry.iter().find(|t| t.gpu.index == 1).expect("GPU 1");
    assert_eq!(g1.samples.iter().filter_map(|s| s.power_w).collect::<Vec<_>>(), [810.5, 990.0]);
    assert_eq!(g1.xids.iter().map(|x| x.xid).collect::<Vec<_>>(), [79]);
    assert!(report.telemetry.iter().all(|t| t.gpu.serial.is_some()), "each GPU named by its serial");
}

/// `kiln nccl-rank` on this machine with a fake `libnvidia-ml.so.1` (built from
/// tests/fixtures/fake-nvml) as its driver: the live NVML session names the GPUs and samples
/// them for as long as the rank runs, through the same source as `kiln burnin`; the rank itself
/// is skipped (no NCCL, or no CUDA behind the fake), never passed.
#[test]
fn a_rank_samples_its_gpus_live_through_nvml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-nvml/fake_nvml.c");
    let library = dir.path().join("libnvidia-ml.so.1");
    match std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O0", "-Wall", "-Werror", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
    {
        Ok(s) => assert!(s.success(), "fake nvml failed to compile: {s}"),
        Err(e) => return println!("SKIPPED: no C compiler to build the fake NVML library ({e})"),
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["nccl-rank", "--json", "--sample-ms", "50", "--sizes-mib", "1"])
        .env("LD_LIBRARY_PATH", dir.path())
        .output()
        .expect("run kiln nccl-rank");
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    let report: kiln::burnin::collective::RankReport = serde_json::from_slice(&out.stdout).expect("a rank report");
    assert_eq!(report.verdict, kiln::checks::Outcome::Skipped, "{report:?}");
    assert!(report.telemetry_note.is_none(), "{report:?}");
    let g0 = report.telemetry.iter().find(|t| t.gpu.index == 0).expect("GPU 0 sampled");
    assert_eq!(g0.gpu.serial.as_deref(), Some("1654925000001"));
    assert!(!g0.samples.is_empty(), "sampled while the rank ran: {g0:?}");
    assert_eq!((g0.before.nvlink_errors, g0.after.nvlink_errors), (Some(167), Some(167)), "{g0:?}");
    assert!(matches!(g0.xid_watch, kiln::model::Watch::NotSupported { .. }), "{:?}", g0.xid_watch);
}
