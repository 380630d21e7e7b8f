//! `kiln burnin` end to end through the real binary on a machine without a GPU.
//!
//! Where a GPU is present these print `SKIPPED: GPU present` (tests/burnin_gpu.rs covers that case).

use std::path::PathBuf;
use std::process::Command;

fn kiln_bin() -> PathBuf {
    std::env::var_os("KILN_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

/// kiln with a burn-in lock and temporary directory of its own, one per test
/// (`tests/burnin_kill.rs` tests the lock), so that tests running at once,
/// here or in another checkout, do not refuse each other.
fn kiln(test: &str) -> Command {
    let mut c = Command::new(kiln_bin());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("burnin-cli-{test}"));
    std::fs::create_dir_all(&dir).expect("test directory");
    c.env("KILN_BURNIN_LOCK", dir.join("burnin.lock")).env("TMPDIR", &dir);
    c
}

fn gpu_present() -> bool {
    std::path::Path::new("/dev/nvidiactl").exists()
}

#[test]
fn gpu_tests_without_a_driver_are_skipped_and_exit_7() {
    if gpu_present() {
        eprintln!("SKIPPED: GPU present");
        return;
    }
    let out = kiln("gpu").args(["burnin", "--tests", "gemm", "--duration", "1s"]).output().expect("run kiln");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("skipped: no NVIDIA driver"), "{stdout}");
    assert!(stdout.contains("verdict: skipped"), "{stdout}");
}

#[test]
fn json_report_is_versioned_and_says_why_gpu_tests_did_not_run() {
    if gpu_present() {
        eprintln!("SKIPPED: GPU present");
        return;
    }
    let out = kiln("json")
        .args(["burnin", "--tests", "gemm,hbm,p2p", "--duration", "1s", "--json"])
        .output()
        .expect("run kiln");
    assert_eq!(out.status.code(), Some(7));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["kind"], "kiln.burnin");
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["gpu_access"]["status"], "unavailable");
    assert_eq!(v["gpu_access"]["reason"], "no NVIDIA driver");
    assert_eq!(v["incomplete"], true);
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["status"] == "skipped" && r["reason"] == "no NVIDIA driver"));
}

#[test]
fn the_collective_without_a_driver_is_skipped_with_why_and_exits_7() {
    if gpu_present() {
        eprintln!("SKIPPED: GPU present");
        return;
    }
    let out = kiln("collective").args(["burnin", "--tests", "collective", "--json"]).output().expect("run kiln");
    assert_eq!(out.status.code(), Some(7), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(v["tests_requested"], serde_json::json!(["collective"]));
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["test"], "collective");
    assert_eq!(results[0]["status"], "skipped");
    assert_eq!(results[0]["reason"], "no NVIDIA driver");
    assert_eq!(results[0]["applicable"], true);
    assert_eq!(v["incomplete"], true);
    let finding = v["findings"].as_array().and_then(|f| f.iter().find(|f| f["check"] == "burnin.collective"));
    assert!(finding.is_some_and(|f| f["outcome"] == "skipped"), "{}", v["findings"]);
}

#[test]
fn all_includes_the_collective_only_where_the_platform_spec_has_one() {
    if gpu_present() {
        eprintln!("SKIPPED: GPU present");
        return;
    }
    let tests_of = |platform: &str| {
        let out = kiln("collective-all")
            .args([
                "burnin",
                "--tests",
                "all",
                "--duration",
                "1s",
                "--host-memory",
                "2",
                "--json",
                "--platform",
                platform,
            ])
            .output()
            .expect("run kiln");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        let requested: Vec<String> = v["tests_requested"]
            .as_array()
            .expect("tests_requested")
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        let ran_for_it = v["results"].as_array().expect("results").iter().any(|r| r["test"] == "collective");
        (requested, ran_for_it)
    };
    // The GB200 tray spec has [burnin.collective]; H100 SXM's has none.
    let (requested, result) = tests_of("gb200-nvl72-tray");
    assert!(requested.iter().any(|t| t == "collective") && result, "{requested:?}");
    let (requested, result) = tests_of("h100-sxm");
    assert!(!requested.iter().any(|t| t == "collective") && !result, "{requested:?}");
}

#[test]
fn host_burn_in_runs_end_to_end_with_stress_ng() {
    if gpu_present() {
        eprintln!("SKIPPED: GPU present");
        return;
    }
    if Command::new("stress-ng").arg("--version").output().is_err() {
        eprintln!("SKIPPED: stress-ng not installed");
        return;
    }
    let out =
        kiln("host").args(["burnin", "--duration", "3s", "--host-memory", "2", "--json"]).output().expect("run kiln");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let host =
        v["results"].as_array().expect("results").iter().find(|r| r["test"] == "host").expect("host result").clone();
    assert_eq!(host["status"], "ran", "{host}");
    assert_eq!(host["data_error_count"], 0);
    assert!(host["figures"].as_array().is_some_and(|f| f.iter().any(|x| x["name"] == "cpu_bogo_ops")), "{host}");
    // The host passed but the GPU tests could not run: the run is incomplete.
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        vec!["burnin", "--duration", "soon"],
        vec!["burnin", "--tests", "gemm,bogus"],
        vec!["burnin", "--inject-fault", "everything"],
    ] {
        let out = kiln("bad").args(&args).output().expect("run kiln");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = kiln("bad")
        .args(["burnin", "--platform", "h999", "--tests", "host", "--duration", "1s"])
        .output()
        .expect("run kiln");
    assert_eq!(out.status.code(), Some(4), "unknown platform is bad input");
}
