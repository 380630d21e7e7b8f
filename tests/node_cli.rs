//! `kiln node history|quarantine|release` end to end: the real binary against
//! SQLite databases on disk, and the repair flow of docs/handoff.md (a node
//! kiln quarantined is released, then a passing validate moves it on).

mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::exit;
use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;

/// The hostname in the `hgx-b200*` fixture trees.
const NODE: &str = "hgx-b200-01";

fn kiln(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(cwd)
        .env_remove("KILN_DB")
        .env_remove("KILN_CHECKS")
        .env_remove("SUDO_USER")
        .env("USER", "tech-ana")
        .output()
        .expect("run kiln")
}

fn fixture(name: &str) -> String {
    fixture_support::shared(name).to_str().expect("utf-8 path").to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kiln validate --root FIXTURE --db DB`, answering its exit code.
fn validate(fixture_name: &str, db: &str, cwd: &Path) -> i32 {
    let out = kiln(&["validate", "--root", &fixture(fixture_name), "--db", db], cwd);
    out.status.code().expect("exit code")
}

fn state(db: &Path) -> LifecycleState {
    Inventory::open_existing(db).expect("open").state(NODE).expect("state")
}

fn event_count(db: &Path) -> usize {
    Inventory::open_existing(db).expect("open").history(NODE).expect("history").len()
}

/// A database with the node enrolled and validated (a passing run).
fn validated_db(dir: &Path) -> PathBuf {
    let db = dir.join("kiln.db");
    assert_eq!(validate("hgx-b200", db.to_str().expect("utf-8"), dir), exit::OK);
    assert_eq!(state(&db), LifecycleState::Validated);
    db
}

#[test]
fn quarantine_shows_in_history_and_release_enrolls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = validated_db(dir.path());
    let flag = db.to_str().expect("utf-8");

    let out =
        kiln(&["node", "quarantine", NODE, "--reason", "smoke at tray 3", "--by", "lead-bo", "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{NODE}: validated -> quarantined (smoke at tray 3)\n"));
    assert_eq!(state(&db), LifecycleState::Quarantined { reason: "smoke at tray 3".into() });

    // A new reason replaces the old one; the same reason again records nothing.
    let out = kiln(&["node", "quarantine", NODE, "--reason", "PSU 2 dead", "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let events = event_count(&db);
    let out = kiln(&["node", "quarantine", NODE, "--reason", "PSU 2 dead", "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::OK));
    assert!(stdout(&out).contains("already quarantined (PSU 2 dead); nothing recorded"), "{}", stdout(&out));
    assert_eq!(event_count(&db), events);

    // History through KILN_DB: the state first, then the events in order.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["node", "history", NODE])
        .current_dir(dir.path())
        .env("KILN_DB", &db)
        .output()
        .expect("run kiln");
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("{NODE}: quarantined (PSU 2 dead)"));
    assert!(lines[1].contains("new -> enrolled") && lines[1].ends_with("[kiln validate, run 1]"), "{text}");
    assert!(lines[2].contains("enrolled -> validated"), "{text}");
    assert!(
        lines[3].contains("validated -> quarantined (smoke at tray 3): quarantined: smoke at tray 3 [kiln node quarantine by lead-bo]"),
        "{text}"
    );
    assert!(
        lines[4].contains("-> quarantined (PSU 2 dead)") && lines[4].ends_with("[kiln node quarantine by tech-ana]"),
        "{text}"
    );
    assert_eq!(lines.len(), 5, "{text}");

    let out = kiln(&["node", "release", NODE, "--reason", "PSU 2 replaced", "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("{NODE}: quarantined (PSU 2 dead) -> enrolled\n")), "{}", stdout(&out));
    assert_eq!(state(&db), LifecycleState::Enrolled);

    let out = kiln(&["node", "history", NODE, "--json", "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!((doc["schema_version"].as_u64(), doc["kind"].as_str()), (Some(1), Some("kiln.node-history")));
    assert_eq!((doc["node"].as_str(), &doc["state"]), (Some(NODE), &serde_json::json!({"state": "enrolled"})));
    let last = doc["events"].as_array().and_then(|e| e.last()).expect("events");
    assert_eq!(last["from"], serde_json::json!({"state": "quarantined", "reason": "PSU 2 dead"}));
    assert_eq!(last["to"], serde_json::json!({"state": "enrolled"}));
    assert_eq!(last["actor"], "kiln node release by tech-ana");
    assert_eq!(last["cause"], "released from quarantine: PSU 2 replaced");
    assert!(last["run_id"].is_null());
}

#[test]
fn releasing_a_node_that_is_not_quarantined_is_refused_and_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let flag = db.to_str().expect("utf-8");
    // A failed node could go back to enrolled by the lifecycle's rules, but
    // nobody held it: release refuses it all the same.
    assert_eq!(validate("hgx-b200-gpu-x8", flag, dir.path()), exit::CHECK_FAILED);
    assert!(matches!(state(&db), LifecycleState::Failed { .. }));
    let events = event_count(&db);
    let out = kiln(&["node", "release", NODE, "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::CHECK_FAILED));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("release node {NODE} in {flag}"))
            && err.contains("illegal lifecycle transition from failed (validate failed: pcie.width) to enrolled: only a quarantined node is released"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(event_count(&db), events);

    // A node already enrolled is not "released" either.
    assert_eq!(validate("hgx-b200", flag, dir.path()), exit::OK);
    let events = event_count(&db);
    let out = kiln(&["node", "release", NODE, "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::CHECK_FAILED));
    assert!(stderr(&out).contains("from validated to enrolled"), "{}", stderr(&out));
    assert_eq!((event_count(&db), state(&db)), (events, LifecycleState::Validated));
}

#[test]
fn an_unknown_node_is_a_usage_error_naming_node_and_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = validated_db(dir.path());
    let flag = db.to_str().expect("utf-8");
    for args in [
        vec!["node", "history", "gpu-zz9", "--db", flag],
        vec!["node", "quarantine", "gpu-zz9", "--reason", "x", "--db", flag],
        vec!["node", "release", "gpu-zz9", "--db", flag],
    ] {
        let out = kiln(&args, dir.path());
        assert_eq!(out.status.code(), Some(exit::USAGE), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(&format!("node gpu-zz9 in {flag}")) && err.contains("not in the inventory"), "{err}");
    }
    assert_eq!(event_count(&db), 2, "nothing recorded for the known node either");
}

#[test]
fn a_missing_database_is_a_database_error_and_is_not_created() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["node", "history", NODE],
        vec!["node", "quarantine", NODE, "--reason", "x"],
        vec!["node", "release", NODE],
        vec!["node", "history", NODE, "--db", "elsewhere/k.db"],
    ] {
        let out = kiln(&args, dir.path());
        assert_eq!(out.status.code(), Some(exit::DATABASE), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("no such file") && err.contains(NODE), "{err}");
    }
    assert!(!dir.path().join("inventory").exists() && !dir.path().join("elsewhere").exists());
}

#[test]
fn an_empty_reason_is_refused_by_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = validated_db(dir.path());
    let out = kiln(&["node", "quarantine", NODE, "--reason", "  ", "--db", db.to_str().expect("utf-8")], dir.path());
    assert_eq!(out.status.code(), Some(exit::USAGE));
    let out = kiln(&["node", "quarantine", NODE, "--db", db.to_str().expect("utf-8")], dir.path());
    assert_eq!(out.status.code(), Some(exit::USAGE));
    assert_eq!(state(&db), LifecycleState::Validated);
}

/// A stand-in for `scontrol`: every node is idle, every update succeeds and
/// is appended to `scontrol.log` beside it.
fn fake_scontrol(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("scontrol");
    let log = dir.join("scontrol.log");
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n  show) echo \"NodeName=$3 Arch=x86_64\"; echo \"   State=IDLE ThreadsPerCore=2\" ;;\n  update) echo \"$*\" >> '{}' ;;\nesac\nexit 0\n",
        log.display()
    );
    std::fs::write(&path, script).expect("write fake scontrol");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn manifest(dir: &Path) -> PathBuf {
    let path = dir.join("rack.toml");
    let text = format!(
        "[rack]\nid = \"lab-r1\"\nplatform = \"hgx-b200\"\n\n[credentials]\nssh_user = \"root\"\n\n[[nodes]]\nname = \"{NODE}\"\naddress = \"10.0.0.1\"\n"
    );
    std::fs::write(&path, text).expect("write manifest");
    path
}

#[test]
fn a_node_kiln_quarantined_is_released_and_moves_on_after_a_passing_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let flag = db.to_str().expect("utf-8");
    let scontrol = fake_scontrol(dir.path());
    let rack = manifest(dir.path());
    let handoff = |cwd: &Path| {
        let args = ["rack", "handoff", "--rack", rack.to_str().expect("utf-8"), "--to", "slurm", "--db", flag];
        let out = kiln(&[&args[..], &["--scontrol", scontrol.to_str().expect("utf-8")]].concat(), cwd);
        (out.status.code().expect("exit code"), stderr(&out))
    };

    // A failing validate, then the hand-off keeps the node out and quarantines it.
    assert_eq!(validate("hgx-b200-gpu-x8", flag, dir.path()), exit::CHECK_FAILED);
    let (code, err) = handoff(dir.path());
    assert_eq!(code, exit::CHECK_FAILED, "{err}");
    let held = state(&db);
    assert!(
        matches!(&held, LifecycleState::Quarantined { reason } if reason.starts_with("kept out of slurm: pcie.width")),
        "{held:?}"
    );

    // Repaired and passing, but still held: a passing run does not end a
    // quarantine, and the next hand-off keeps it out (drains, never resumes).
    assert_eq!(validate("hgx-b200", flag, dir.path()), exit::OK);
    assert_eq!(state(&db), held);
    let (code, err) = handoff(dir.path());
    assert_eq!(code, exit::CHECK_FAILED, "{err}");
    assert_eq!(state(&db), held);
    let log = std::fs::read_to_string(dir.path().join("scontrol.log")).expect("scontrol log");
    assert!(log.contains("State=DRAIN") && !log.contains("State=RESUME"), "{log}");

    // The technician releases it; the next passing validate moves it forward.
    let out = kiln(&["node", "release", NODE, "--reason", "GPU 2 reseated", "--db", flag], dir.path());
    assert_eq!(out.status.code(), Some(exit::OK), "{}", stderr(&out));
    assert_eq!(state(&db), LifecycleState::Enrolled);
    assert_eq!(validate("hgx-b200", flag, dir.path()), exit::OK);
    assert_eq!(state(&db), LifecycleState::Validated);

    let out = kiln(&["node", "history", NODE, "--db", flag], dir.path());
    let text = stdout(&out);
    assert!(text.starts_with(&format!("{NODE}: validated\n")), "{text}");
    let release = text.lines().position(|l| l.contains("[kiln node release by tech-ana]")).expect("release line");
    let lines: Vec<&str> = text.lines().collect();
    let revalidated = lines.iter().rposition(|l| l.contains("enrolled -> validated")).expect("validate line");
    assert!(release < revalidated, "{text}");
}
