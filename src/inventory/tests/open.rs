//! Opening, migrating and re-opening databases.

use super::support::{count, raw, record, temp_db, validate_findings};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::migrate::latest_version;
use crate::inventory::{Inventory, InventoryError};
use crate::lifecycle::RunKind;

#[test]
fn open_creates_directories_and_migrates_from_empty() {
    let (_dir, path) = temp_db();
    let inv = Inventory::open(&path).expect("open a new database");
    assert!(path.is_file(), "database file created with its parent directory");
    assert_eq!(inv.schema_version().expect("read version"), latest_version());
    let conn = raw(&path);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("read names");
    for table in ["components", "findings", "lifecycle_events", "nodes", "runs"] {
        assert!(tables.iter().any(|t| t == table), "table {table} missing from {tables:?}");
    }
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("journal mode");
    assert_eq!(mode, "wal");
}

#[test]
fn settings_apply_to_the_connection() {
    let (_dir, path) = temp_db();
    let inv = Inventory::open(&path).expect("open");
    let fk: i64 = inv.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).expect("foreign_keys");
    let sync: i64 = inv.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).expect("synchronous");
    let busy: i64 = inv.conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0)).expect("busy_timeout");
    assert_eq!((fk, sync, busy), (1, 1, 10_000), "foreign_keys on, synchronous NORMAL, 10 s busy timeout");
}

#[test]
fn reopening_is_idempotent_and_keeps_data() {
    let (_dir, path) = temp_db();
    let node = hgx_b200_node("gpu-a01");
    {
        let mut inv = Inventory::open(&path).expect("open");
        record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 0);
    }
    for _ in 0..2 {
        let inv = Inventory::open(&path).expect("reopen");
        assert_eq!(inv.schema_version().expect("version"), latest_version());
        assert_eq!(inv.nodes().expect("nodes").len(), 1);
    }
    assert_eq!(count(&raw(&path), "runs"), 1);
}

#[test]
fn a_newer_database_is_refused() {
    let (_dir, path) = temp_db();
    drop(Inventory::open(&path).expect("open"));
    let future = latest_version() + 1;
    raw(&path).pragma_update(None, "user_version", future).expect("set a future version");
    let err = Inventory::open(&path).expect_err("a newer schema must be refused");
    assert!(matches!(err, InventoryError::TooNew { found, .. } if found == future), "{err:?}");
    assert!(err.to_string().contains("newer than this kiln knows"), "{err}");
}

#[test]
fn open_existing_refuses_a_missing_file_without_creating_it() {
    let (_dir, path) = temp_db();
    let err = Inventory::open_existing(&path).expect_err("missing database");
    assert!(matches!(err, InventoryError::Missing { .. }), "{err:?}");
    assert!(!path.exists(), "no file created");
    assert!(!path.parent().expect("parent").exists(), "no directory created");
    drop(Inventory::open(&path).expect("create"));
    Inventory::open_existing(&path).expect("now it exists");
}

#[test]
fn garbage_file_is_an_error_not_a_panic() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, "this is not a database, it is a shopping list\n".repeat(200)).expect("write");
    let err = Inventory::open(&path).expect_err("garbage must be refused");
    assert!(err.to_string().contains(&path.display().to_string()), "error names the file: {err}");
}

#[test]
fn a_failing_migration_leaves_the_database_as_it_was() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    // A schema-1 inventory with a table in the way makes migration 2 fail
    // halfway through its SQL.
    let conn = raw(&path);
    conn.execute_batch(crate::inventory::migrate::MIGRATIONS[0].sql).expect("schema 1");
    conn.pragma_update(None, "user_version", 1).expect("version 1");
    conn.execute_batch("CREATE TABLE burnin_figures (something TEXT);").expect("create a conflicting table");
    drop(conn);
    let tables = |conn: &rusqlite::Connection| -> i64 {
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).expect("tables")
    };
    let before = tables(&raw(&path));
    let err = Inventory::open(&path).expect_err("the migration must fail");
    assert!(matches!(err, InventoryError::Migrate { version: 2, .. }), "{err:?}");
    let conn = raw(&path);
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!((version, tables(&conn)), (1, before), "nothing of migration 2 was kept");
}

#[test]
fn processes_opening_a_new_database_at_once_migrate_it_once() {
    let (_dir, path) = temp_db();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Inventory::open(&path).map(|inv| inv.schema_version().ok()))
        })
        .collect();
    for opener in openers {
        let opened = opener.join().expect("thread").expect("every opener succeeds");
        assert_eq!(opened, Some(latest_version()));
    }
}

#[test]
fn files_that_are_not_kiln_inventories_are_refused_and_left_alone() {
    let (dir, _) = temp_db();
    let foreign = dir.path().join("foreign.db");
    raw(&foreign).execute_batch("CREATE TABLE recipes (name TEXT);").expect("another program's database");
    let empty_sqlite = dir.path().join("empty-sqlite.db");
    raw(&empty_sqlite).pragma_update(None, "journal_mode", "WAL").expect("an SQLite file with nothing in it");
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (dir.path().join("zero.db"), "an empty file"),
        (dir.path().join("one.db"), "not an SQLite database"),
        (dir.path().join("garbage.db"), "not an SQLite database"),
        (foreign, "without kiln's schema"),
        (empty_sqlite, "without kiln's schema"),
    ];
    std::fs::write(&cases[0].0, b"").expect("write");
    std::fs::write(&cases[1].0, b"S").expect("write");
    std::fs::write(&cases[2].0, "SQLite format 2\n".repeat(64)).expect("write");
    for (path, what) in &cases {
        let before = std::fs::read(path).expect("read");
        for (opener, result) in [
            ("open", Inventory::open(path).map(drop)),
            ("open_existing", Inventory::open_existing(path).map(drop)),
            ("open_read_only", Inventory::open_read_only(path).map(drop)),
        ] {
            let err = result.expect_err("refused");
            assert!(matches!(err, InventoryError::NotKiln { .. }), "{opener} {}: {err:?}", path.display());
            let text = err.to_string();
            assert!(text.contains(&path.display().to_string()) && text.contains(what), "{opener}: {text}");
        }
        assert!(std::fs::read(path).expect("read") == before, "{} unchanged", path.display());
    }
}

#[test]
fn a_newer_database_is_refused_before_anything_is_written() {
    let (_dir, path) = temp_db();
    drop(Inventory::open(&path).expect("open"));
    let conn = raw(&path);
    conn.pragma_update(None, "journal_mode", "DELETE").expect("as a newer kiln might keep it");
    conn.pragma_update(None, "user_version", latest_version() + 1).expect("future");
    drop(conn);
    let before = std::fs::read(&path).expect("read");
    for err in [
        Inventory::open(&path).expect_err("refused"),
        Inventory::open_existing(&path).expect_err("refused"),
        Inventory::open_read_only(&path).expect_err("refused"),
    ] {
        assert!(matches!(err, InventoryError::TooNew { .. }), "{err:?}");
    }
    assert!(std::fs::read(&path).expect("read") == before, "not switched to WAL, not touched");
}

#[test]
fn a_reader_writes_nothing_and_reads_an_older_schema() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let conn = raw(&path);
    conn.execute_batch(crate::inventory::migrate::MIGRATIONS[0].sql).expect("schema 1");
    conn.pragma_update(None, "user_version", 1).expect("version 1");
    drop(conn);
    let before = std::fs::read(&path).expect("read");
    let inv = Inventory::open_read_only(&path).expect("read-only");
    assert_eq!(inv.schema_version().expect("version"), 1, "not migrated");
    assert!(inv.nodes().expect("nodes").is_empty());
    assert!(inv.conn.execute_batch("INSERT INTO nodes (hostname) VALUES ('x')").is_err(), "a reader cannot write");
    drop(inv);
    assert!(std::fs::read(&path).expect("read") == before, "the file is untouched");
}
