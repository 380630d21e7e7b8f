//! The inventory file is never rewritten unless it is a kiln inventory kiln may write, and
//! readers open it read-only: the real binary against database files on disk.
//!
//! Each bad file is given to a reading command (`kiln report`, `kiln node history`) and to
//! writing ones (`kiln validate`, `kiln node quarantine`); each must exit 5 naming the file,
//! and leave its bytes as they were.

mod fixture_support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::exit;
use kiln::hw::fixture::sample::hgx_b200_node;
use kiln::inventory::migrate::latest_version;
use kiln::inventory::{Inventory, RunRecord};
use kiln::lifecycle::RunKind;

const NODE: &str = "gpu-b07";

fn kiln(args: &[&str], db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args).arg("--db").arg(db).env_remove("KILN_DB");
    cmd
}

fn fixture() -> PathBuf {
    fixture_support::shared("hgx-b200")
}

fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out: Output = cmd.output().expect("run kiln");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The commands that read and those that write, as argument lists.
fn commands() -> Vec<Vec<String>> {
    let root = fixture().display().to_string();
    [
        vec!["report"],
        vec!["report", "--format", "json"],
        vec!["node", "history", NODE],
        vec!["validate", "--root", &root, "--platform", "hgx-b200"],
        vec!["node", "quarantine", NODE, "--reason", "test"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect()
}

fn recorded_db(path: &Path) {
    let mut inv = Inventory::open(path).expect("open");
    let node = hgx_b200_node(NODE);
    inv.record_run(&RunRecord::new(RunKind::Validate, &node, "tech-ana")).expect("record");
}

/// Files at an inventory path that are not a kiln inventory this kiln may touch.
fn bad_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    let mut add = |name: &str, bytes: &[u8], says: &'static str| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        out.push((p, says));
    };
    add("zero.db", b"", "an empty file");
    add("one.db", b"S", "not an SQLite database");
    add("garbage.db", &b"kiln inventory, honest\n".repeat(300), "not an SQLite database");
    add("truncated-header.db", b"SQLite format 3", "not an SQLite database");
    let foreign = dir.join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE nodes_of_my_own (x); INSERT INTO nodes_of_my_own VALUES (1);"))
        .expect("another program's database");
    out.push((foreign, "without kiln's schema"));
    let newer = dir.join("newer.db");
    recorded_db(&newer);
    {
        let c = rusqlite::Connection::open(&newer).expect("open");
        c.pragma_update(None, "journal_mode", "DELETE").expect("a newer kiln's journal mode");
        c.pragma_update(None, "user_version", latest_version() + 1).expect("future");
    }
    out.push((newer, "newer than this kiln knows"));
    out
}

#[test]
fn bad_inventory_files_are_refused_by_every_command_and_left_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tried = 0;
    for (path, says) in bad_files(dir.path()) {
        let before = std::fs::read(&path).expect("read");
        for args in commands() {
            let (code, err) = run(&mut kiln(&args.iter().map(String::as_str).collect::<Vec<_>>(), &path));
            assert_eq!(code, Some(exit::DATABASE), "{args:?} on {}: {err}", path.display());
            assert!(err.contains(&path.display().to_string()), "{args:?} names the file: {err}");
            assert!(err.contains(says), "{args:?} on {} says {says:?}: {err}", path.display());
            assert!(std::fs::read(&path).expect("read") == before, "{args:?} left {} as it was", path.display());
            tried += 1;
        }
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = path.clone().into_os_string();
            side.push(suffix);
            assert!(!Path::new(&side).exists(), "no {suffix} beside {}", path.display());
        }
    }
    assert_eq!(tried, 30);
}

/// The uid and gid a read-only reader runs as: `nobody` when the test runs
/// as root (root writes through any permission bits), else the caller.
fn as_reader(cmd: &mut Command) -> &mut Command {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 {
        // std drops the supplementary groups when root changes uid.
        cmd.uid(65534).gid(65534);
    }
    cmd
}

/// A recorded inventory in WAL mode in `dir`, closed (no -wal, no -shm).
fn recorded_in(dir: &Path) -> PathBuf {
    let path = dir.join("kiln.db");
    recorded_db(&path);
    let mode: String = rusqlite::Connection::open(&path)
        .and_then(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
        .expect("journal mode");
    assert_eq!(mode, "wal");
    assert!(!dir.join("kiln.db-wal").exists() && !dir.join("kiln.db-shm").exists(), "closed cleanly");
    path
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("list").map(|e| e.expect("entry").file_name().to_string_lossy().into()).collect();
    names.sort();
    names
}

#[test]
fn a_read_only_inventory_is_reported_and_nothing_is_written() {
    let top = tempfile::tempdir().expect("tempdir");
    chmod(top.path(), 0o755);
    for dir_mode in [0o555, 0o777] {
        let dir = top.path().join(format!("dir-{dir_mode:o}"));
        std::fs::create_dir(&dir).expect("mkdir");
        let path = recorded_in(&dir);
        chmod(&path, 0o444);
        chmod(&dir, dir_mode);
        let before = std::fs::read(&path).expect("read");
        for args in [vec!["report"], vec!["report", "--format", "json"], vec!["node", "history", NODE]] {
            let out = as_reader(&mut kiln(&args, &path)).output().expect("run kiln");
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(exit::OK), "{args:?} in a {dir_mode:o} directory: {stderr}");
            assert!(stdout.contains(NODE), "{args:?}: {stdout}");
        }
        assert!(std::fs::read(&path).expect("read") == before, "bytes unchanged");
        assert_eq!(listing(&dir), ["kiln.db"], "nothing created beside it (directory {dir_mode:o})");
        // A writer that may not write is refused, naming the file, and changes nothing.
        let out = as_reader(&mut kiln(&["node", "quarantine", NODE, "--reason", "x"], &path)).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(exit::DATABASE), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(std::fs::read(&path).expect("read") == before, "bytes unchanged by the refused writer");
        chmod(&dir, 0o755);
    }
}

/// A copy of a database taken while its changes were still in the write-ahead
/// log (the file and its -wal, no -shm), in a directory the reader cannot
/// write: SQLite cannot read the log without creating the index, and reading
/// the file alone would show an older inventory. kiln says so.
#[test]
fn changes_in_a_log_that_cannot_be_read_are_an_error_not_an_older_inventory() {
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let top = tempfile::tempdir().expect("tempdir");
    chmod(top.path(), 0o755);
    let live = top.path().join("live");
    std::fs::create_dir(&live).expect("mkdir");
    let path = recorded_in(&live);
    let copy = top.path().join("copy");
    std::fs::create_dir(&copy).expect("mkdir");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.pragma_update(None, "wal_autocheckpoint", 0).expect("no checkpoint");
        let mut inv = Inventory::open(&path).expect("open");
        inv.record_run(&RunRecord::new(RunKind::Validate, &hgx_b200_node("gpu-c09"), "tech-ana")).expect("record");
        std::fs::copy(&path, copy.join("kiln.db")).expect("copy");
        std::fs::copy(live.join("kiln.db-wal"), copy.join("kiln.db-wal")).expect("copy the log");
        drop(c);
    }
    let copied = copy.join("kiln.db");
    assert!(std::fs::metadata(copy.join("kiln.db-wal")).expect("log").len() > 0);
    chmod(&copied, 0o444);
    chmod(&copy.join("kiln.db-wal"), 0o444);
    chmod(&copy, 0o555);
    let before = std::fs::read(&copied).expect("read");
    let out = as_reader(&mut kiln(&["report"], &copied)).output().expect("run kiln");
    let stderr = String::from_utf8_lossy(&out.stderr);
    chmod(&copy, 0o755);
    if !root && out.status.code() == Some(exit::OK) {
        eprintln!("SKIPPED: this user can write the directory regardless of its mode");
        return;
    }
    assert_eq!(out.status.code(), Some(exit::DATABASE), "{stderr}");
    assert!(stderr.contains("write-ahead log") && stderr.contains(&copied.display().to_string()), "{stderr}");
    assert!(std::fs::read(&copied).expect("read") == before, "the copy is untouched");
    assert_eq!(listing(&copy), ["kiln.db", "kiln.db-wal"]);
}

#[test]
fn a_reader_reads_an_older_schema_without_upgrading_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.db");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/h100-burnin-schema2.db"), &path)
        .expect("copy the schema-2 fixture");
    let before = std::fs::read(&path).expect("read");
    let (code, err) = run(&mut kiln(&["report"], &path));
    assert_eq!(code, Some(exit::OK), "{err}");
    assert!(std::fs::read(&path).expect("read") == before, "a reader does not migrate");
    let version: i64 = rusqlite::Connection::open(&path)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .expect("version");
    assert_eq!(version, 2);
}

#[test]
fn a_new_inventory_appears_whole_or_not_at_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new/kiln.db");
    let (code, err) = run(&mut kiln(&["validate", "--root", &fixture().display().to_string()], &path));
    assert!(matches!(code, Some(0 | 1 | 3)), "{err}");
    assert_eq!(listing(&dir.path().join("new")), ["kiln.db"], "no temporary file left");
    let version: i64 = rusqlite::Connection::open(&path)
        .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
        .expect("version");
    assert_eq!(version, latest_version());
}
