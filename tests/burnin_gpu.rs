//! GPU burn-in tests: run only where an NVIDIA GPU is present, else print `SKIPPED: no GPU`.
//!
//! They run the real binary (`KILN_BIN` overrides its path, so a test binary
//! built elsewhere can run on a GPU machine) and assert on its JSON report.

use std::path::PathBuf;
use std::process::Command;

fn kiln() -> PathBuf {
    std::env::var_os("KILN_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiln")))
}

fn gpu_present() -> bool {
    std::path::Path::new("/dev/nvidiactl").exists()
        && Command::new("nvidia-smi").arg("-L").output().is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

fn burnin(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(kiln()).arg("burnin").args(args).arg("--json").output().expect("run kiln");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), v)
}

fn results<'a>(v: &'a serde_json::Value, test: &str) -> Vec<&'a serde_json::Value> {
    v["results"].as_array().expect("results").iter().filter(|r| r["test"] == test).collect()
}

fn figure(r: &serde_json::Value, name: &str) -> f64 {
    r["figures"]
        .as_array()
        .and_then(|f| f.iter().find(|x| x["name"] == name))
        .and_then(|x| x["value"].as_f64())
        .unwrap_or(-1.0)
}

#[test]
fn gemm_hbm_and_host_link_run_and_verify_on_every_gpu() {
    if !gpu_present() {
        eprintln!("SKIPPED: no GPU");
        return;
    }
    let (code, v) = burnin(&["--tests", "gemm,hbm,host-link", "--duration", "5s"]);
    for test in ["gemm", "hbm", "host-link"] {
        let rs = results(&v, test);
        assert!(!rs.is_empty(), "no {test} result: {v}");
        for r in rs {
            assert_eq!(r["status"], "ran", "{r}");
            assert_eq!(r["data_error_count"], 0, "{r}");
        }
    }
    for r in results(&v, "gemm") {
        assert!(figure(r, "tflops") > 1.0, "{r}");
    }
    for r in results(&v, "hbm") {
        assert!(figure(r, "copy_kernel") > 0.1 && figure(r, "copy_engine") > 0.1, "{r}");
    }
    for r in results(&v, "host-link") {
        assert!(figure(r, "h2d") > 1.0 && figure(r, "d2h") > 1.0, "{r}");
    }
    // A healthy GPU passes; a throttling or slow one must say why.
    assert!(matches!(code, Some(0) | Some(1)), "exit {code:?}: {v}");
    if code == Some(1) {
        let fails: Vec<_> =
            v["findings"].as_array().expect("findings").iter().filter(|f| f["outcome"] == "fail").collect();
        assert!(!fails.is_empty() && fails.iter().all(|f| f["action"].is_string()), "{fails:?}");
    }
}

#[test]
fn an_injected_gemm_bitflip_is_caught_with_its_location() {
    if !gpu_present() {
        eprintln!("SKIPPED: no GPU");
        return;
    }
    let (code, v) = burnin(&["--tests", "gemm", "--duration", "3s", "--gpus", "0", "--inject-fault", "gemm-bitflip"]);
    assert_eq!(code, Some(1), "{v}");
    let r = results(&v, "gemm")[0];
    assert_eq!(r["data_error_count"], 1, "exactly the planted word differs: {r}");
    let e = &r["data_errors"][0];
    assert_eq!(e["phase"], "iteration 3", "{e}");
    assert!(e["location"].as_str().is_some_and(|l| l.contains("row 1, col 2")), "{e}");
    let f =
        v["findings"].as_array().expect("findings").iter().find(|f| f["check"] == "burnin.gemm.data").expect("finding");
    assert_eq!(f["outcome"], "fail");
    assert!(f["message"].as_str().is_some_and(|m| m.contains("GPU 0")), "{f}");
}

#[test]
fn an_injected_memtest_corruption_is_caught_with_its_address() {
    if !gpu_present() {
        eprintln!("SKIPPED: no GPU");
        return;
    }
    let (code, v) =
        burnin(&["--tests", "memtest", "--duration", "2s", "--gpus", "0", "--inject-fault", "memtest-corrupt"]);
    assert_eq!(code, Some(1), "{v}");
    let r = results(&v, "memtest")[0];
    assert_eq!(r["data_error_count"], 1, "{r}");
    let e = &r["data_errors"][0];
    assert_eq!(e["phase"], "random");
    assert_eq!(e["offset"], 8 * 123_457);
    assert!(e["device_address"].as_str().is_some_and(|a| a.starts_with("0x")), "{e}");
    assert!(figure(r, "coverage") >= 90.0, "{r}");
}

#[test]
fn the_collective_runs_over_every_gpu_verified_or_says_why_not() {
    if !gpu_present() {
        eprintln!("SKIPPED: no GPU");
        return;
    }
    let (code, v) = burnin(&["--tests", "collective"]);
    let rs = results(&v, "collective");
    assert!(!rs.is_empty(), "no collective result: {v}");
    let gpus = v["gpu_access"]["gpus"].as_array().map(Vec::len).unwrap_or(0);
    if gpus < 2 {
        assert_eq!(rs[0]["reason"], "needs 2 or more GPUs", "{v}");
        assert_eq!(rs[0]["applicable"], false);
        return;
    }
    if rs[0]["status"] == "skipped" {
        // No libnccl here: never a pass.
        assert!(rs[0]["reason"].as_str().is_some_and(|r| r.starts_with("no NCCL")), "{v}");
        assert_eq!(code, Some(7));
        return;
    }
    for r in &rs {
        assert_eq!(r["status"], "ran", "{r}");
        assert_eq!(r["data_error_count"], 0, "{r}");
        assert!(figure(r, "busbw") > 0.0 && figure(r, "checked_words") > 0.0, "{r}");
        assert_eq!(r["collective"]["gpus"].as_u64(), Some(gpus as u64), "{r}");
    }
    assert!(matches!(code, Some(0) | Some(1)), "exit {code:?}: {v}");
}
