//! The device script (`xtask/gpu/device.sh`, docs/benchmarks.md "The device script") on this
//! machine, which has no NVIDIA driver: it runs every step with the kiln under test, never
//! stops at a failing one, and every GPU step says it was skipped for want of a driver with
//! exit 7 — never a pass, never a panic. On a GPU machine the same script is the GPU check.

use std::path::Path;
use std::process::Command;

#[test]
fn the_device_script_runs_every_step_and_each_gpu_step_is_skipped_without_a_driver() {
    if Path::new("/proc/driver/nvidia").exists() {
        println!("SKIPPED: this machine has an NVIDIA driver; the script's GPU steps would run for real");
        return;
    }
    let out_dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("xtask/gpu/device.sh");
    let out = Command::new("sh")
        .arg(&script)
        .env("KILN", env!("CARGO_BIN_EXE_kiln"))
        .env("OUT", out_dir.path())
        .env("DURATION", "1s")
        .env_remove("KILN_DB")
        .output()
        .expect("run the device script");
    let summary = std::fs::read_to_string(out_dir.path().join("summary.txt")).expect("summary.txt");
    assert!(out.status.success(), "the script itself ends 0 whatever its steps did: {summary}");
    let exit_of = |step: &str| -> Option<i32> {
        let line = summary.lines().find(|l| l.split_whitespace().next() == Some(step))?;
        line.split_whitespace().nth(2)?.parse().ok()
    };
    // What needs no GPU passes here as on the GPU machine.
    for step in ["inspect", "capture", "inspect-replay", "validate", "report"] {
        assert_eq!(exit_of(step), Some(0), "{step}: {summary}");
    }
    assert!(summary.contains("capture round trip: identical JSON"), "{summary}");
    // Every GPU step is skipped (exit 7) and says why.
    for step in ["burnin-collective", "fault-gemm", "fault-memtest", "nccl-rank"] {
        assert_eq!(exit_of(step), Some(7), "{step}: {summary}");
        let said = std::fs::read_to_string(out_dir.path().join(format!("{step}.out"))).expect("step output");
        assert!(said.contains("no NVIDIA driver") || said.contains("no NCCL"), "{step}: {said}");
    }
    // The full burn-in ran its host test and was recorded, whatever the host test made of a
    // one-second run: the GPU tests are skipped, so it can never be a pass.
    assert!(exit_of("burnin").is_some_and(|c| c != 0), "{summary}");
    assert!(out_dir.path().join("kiln.db").exists(), "the burn-in was recorded");
    assert!(summary.lines().any(|l| l.starts_with("timing: ")), "{summary}");
}
