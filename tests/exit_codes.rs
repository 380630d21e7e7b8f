//! One test per exit code class of docs/exit-codes.md, through the real binary: the code is the
//! documented one, and the error is said exactly once on stderr, naming the file, field, node
//! or peer at fault. A code that reports a verdict (1, 3, 7) says no error at all unless one
//! happened beside it.

mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::exit;

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env_remove("KILN_LOG")
        .env("KILN_DB", dir.join("kiln.db"))
        .env("KILN_BMC_PASSWORD", "exit-codes-pw")
        .output()
        .expect("kiln runs")
}

fn fixture(name: &str) -> PathBuf {
    fixture_support::shared(name)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The lines kiln wrote to stderr that say an error (logs and notices are other lines).
fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("kiln: error: "))
        .map(str::to_string)
        .collect()
}

/// Exit `code` and exactly one error line, which contains every one of `names`.
fn fails_once(out: &Output, code: i32, names: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{stderr}");
    let errors = error_lines(out);
    assert_eq!(errors.len(), 1, "the error is said once:\n{stderr}");
    for name in names {
        assert!(errors[0].contains(name), "the error names {name:?}: {}", errors[0]);
    }
    errors[0].clone()
}

fn rack_manifest(dir: &Path) -> PathBuf {
    let path = dir.join("rack.toml");
    std::fs::write(
        &path,
        "[rack]\nid = \"exit-codes\"\n\n[credentials]\nssh_user = \"kiln\"\nknown_hosts = \"known_hosts\"\n\n\
         [[nodes]]\nname = \"n1\"\naddress = \"127.0.0.1\"\nssh_port = 1\n",
    )
    .expect("write rack manifest");
    path
}

#[test]
fn usage_2_names_the_flag_or_the_node_not_in_the_rack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(dir.path(), &["report", "--format", "html"]);
    fails_once(&out, exit::USAGE, &["--format html needs --rack"]);
    let rack = rack_manifest(dir.path());
    let out = kiln(dir.path(), &["rack", "validate", "--rack", s(&rack), "--nodes", "n9"]);
    fails_once(&out, exit::USAGE, &["rack.toml", "\"n9\"", "n1"]);
}

#[test]
fn bad_input_4_names_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("site.toml");
    std::fs::write(&spec, "name = \"site\"\ndescription = \"d\"\n[aer]\nfatal_max = -1\n").expect("write spec");
    let out = kiln(dir.path(), &["validate", "--spec", s(&spec), "--root", s(&fixture("hgx-b200")), "--json"]);
    fails_once(&out, exit::BAD_INPUT, &["site.toml:4:", "aer.fatal_max"]);
    assert!(out.stdout.is_empty(), "no document for bad input");

    let rack = dir.path().join("bad-rack.toml");
    std::fs::write(&rack, "[rack]\nid = \"r\"\n\n[[nodes]]\nname = 3\n").expect("write manifest");
    let out = kiln(dir.path(), &["rack", "status", "--rack", s(&rack)]);
    fails_once(&out, exit::BAD_INPUT, &["bad-rack.toml:5", "nodes[0].name"]);
}

#[test]
fn database_5_names_the_database_and_keeps_the_printed_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(dir.path(), &["report", "--db", "/nonexistent/kiln.db"]);
    fails_once(&out, exit::DATABASE, &["/nonexistent/kiln.db", "no such file"]);
    // The run is judged and printed; only recording it failed, and that decides the code.
    let out = kiln(dir.path(), &["validate", "--root", s(&fixture("hgx-b200")), "--json", "--db", "/proc/kiln.db"]);
    fails_once(&out, exit::DATABASE, &["could not record the run in /proc/kiln.db"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the report was printed");
    assert_eq!(doc["verdict"], "pass");
}

#[test]
fn peer_6_names_the_peer_and_the_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(
        dir.path(),
        &["bmc", "power", "status", "--bmc", "http://127.0.0.1:1", "--bmc-user", "admin", "--node", "n7"],
    );
    fails_once(&out, exit::PEER, &["http://127.0.0.1:1 (n7)", "GET /redfish/v1"]);
    // An agent with its deployment key (as its boot path gives it) whose controller is gone.
    let cmdline = dir.path().join("cmdline");
    std::fs::write(&cmdline, format!("kiln.node=n7 kiln.deploy=d1 kiln.key={}\n", "ab".repeat(32))).expect("cmdline");
    let out = kiln(
        dir.path(),
        &["agent", "--controller", "http://127.0.0.1:1", "--wait-for", "1s", "--cmdline", s(&cmdline)],
    );
    fails_once(&out, exit::PEER, &["controller http://127.0.0.1:1/agent/hello", "did not answer within 1s"]);
}

#[test]
fn skipped_7_is_a_verdict_not_an_error() {
    if Path::new("/dev/nvidiactl").exists() {
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED: an NVIDIA driver is present; burn-in would run");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(dir.path(), &["burnin", "--tests", "gemm", "--duration", "1s"]);
    assert_eq!(out.status.code(), Some(exit::SKIPPED));
    assert!(error_lines(&out).is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped: no NVIDIA driver"));
}

#[test]
fn check_failed_1_from_the_lifecycle_names_both_states_and_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(dir.path(), &["validate", "--root", s(&fixture("hgx-b200")), "--db", "kiln.db"]);
    assert_eq!(out.status.code(), Some(exit::OK), "{}", String::from_utf8_lossy(&out.stderr));
    let out = kiln(dir.path(), &["node", "release", "hgx-b200-01", "--db", "kiln.db"]);
    fails_once(&out, exit::CHECK_FAILED, &["hgx-b200-01", "validated", "enrolled"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("kiln: nothing was recorded"));
}

#[test]
fn target_failed_8_names_the_target_and_what_it_holds_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("synth.raw");
    kiln::image::synth::generate(&image, 4 << 20, 100, 5).expect("synthetic image");
    let target = dir.path().join("no/such/dir/disk.img");
    let out = kiln(dir.path(), &["image", "write", s(&image), s(&target), "--no-direct"]);
    fails_once(&out, exit::TARGET_FAILED, &["no/such/dir/disk.img"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("kiln: target untouched"));
    let out = kiln(dir.path(), &["image", "wipe", s(dir.path())]);
    fails_once(&out, exit::TARGET_FAILED, &["neither a regular file nor a block device"]);
}

#[test]
fn internal_10_says_what_kiln_could_not_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(dir.path(), &["capture", "/proc/kiln-capture", "--root", s(&fixture("hgx-b200"))]);
    fails_once(&out, exit::INTERNAL, &["capture failed", "cannot create /proc/kiln-capture"]);
}

/// `kiln` with its stdout a pipe whose reader has already gone (`kiln ... | head` after `head`
/// stopped reading).
fn kiln_to_a_closed_pipe(dir: &Path, args: &[&str]) -> Output {
    let (read, write) = nix::unistd::pipe().expect("pipe");
    drop(read);
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env_remove("KILN_LOG")
        .env("KILN_DB", dir.join("kiln.db"))
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("kiln runs")
}

#[test]
fn a_reader_that_stops_early_is_no_error_and_the_verdict_is_still_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fixture("hgx-b200");
    let broken = fixture("hgx-b200-gpu-x8");
    for args in [
        vec!["inspect", "--json", "--root", s(&root)],
        vec!["inspect", "--root", s(&root)],
        vec!["validate", "--json", "--root", s(&root)],
        vec!["spec", "list"],
    ] {
        let out = kiln_to_a_closed_pipe(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit::OK), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && error_lines(&out).is_empty(), "{args:?}: {stderr}");
    }
    // A failing validate keeps its exit code and records its run although nobody read the result.
    let out = kiln_to_a_closed_pipe(dir.path(), &["validate", "--json", "--root", s(&broken), "--db", "kiln.db"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::CHECK_FAILED), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report = kiln(dir.path(), &["report", "--db", "kiln.db", "--format", "json"]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("pcie.link_width") || text.contains("x8"), "the run was not recorded: {text}");
}
