//! Schema migrations: numbered SQL files applied in order, tracked by `PRAGMA user_version`.
//!
//! To change the schema, add `migrations/NNNN_name.sql` and append it to
//! `MIGRATIONS` with the next number. Never edit a migration that has been
//! released: databases in the field have already applied it. Each migration
//! runs in its own transaction, where `PRAGMA foreign_keys` cannot be changed,
//! so a migration that rebuilds a table must keep every reference valid.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::InventoryError;

/// Every migration, in order: (the `user_version` it brings the database to, its SQL).
pub static MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_burnin.sql")),
    (3, include_str!("migrations/0003_images_written.sql")),
    (4, include_str!("migrations/0004_rack_runs.sql")),
    (5, include_str!("migrations/0005_deploys.sql")),
    (6, include_str!("migrations/0006_slurm_jobs.sql")),
];

/// The schema version this binary writes: the last migration's number.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

pub(crate) fn read_version(conn: &Connection, path: &Path) -> Result<i64, InventoryError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| InventoryError::ReadVersion { path: path.to_path_buf(), source })
}

/// Bring the database up to `latest_version()`, refusing one that is newer.
///
/// The version is read again inside each migration's write transaction, so two
/// processes opening a fresh database at once do not both apply a migration:
/// the second waits for the first and then finds nothing to do.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<i64, InventoryError> {
    let known = latest_version();
    let mut version = read_version(conn, path)?;
    if version > known {
        return Err(InventoryError::TooNew { path: path.to_path_buf(), found: version, known });
    }
    let found = version;
    for &(target, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let failed = |source| InventoryError::Migrate { path: path.to_path_buf(), version: target, source };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        version = read_version(&tx, path)?;
        if version > known {
            return Err(InventoryError::TooNew { path: path.to_path_buf(), found: version, known });
        }
        if version >= target {
            continue;
        }
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", target).map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(db = %path.display(), version = target, "applied schema migration");
        version = target;
    }
    Ok(version)
}

/// Lets a read-only connection read a database of an older schema as if it
/// were current: the tables each missing migration creates are created
/// empty in the connection's own TEMP schema (their indexes and triggers
/// follow them there), which lives in memory and never touches the file.
/// Migrations only add tables; `tests::readers_see_every_older_schema_as_the_current_one`
/// fails the day one alters an existing table, which this would not cover.
pub(crate) fn overlay_older(conn: &Connection, path: &Path) -> Result<(), InventoryError> {
    let found = read_version(conn, path)?;
    for &(target, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let temp = sql.replace("CREATE TABLE ", "CREATE TEMP TABLE ");
        conn.execute_batch(&temp).map_err(|source| InventoryError::Overlay {
            path: path.to_path_buf(),
            version: target,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, (version, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1, "migration at position {i} has number {version}");
            assert!(!sql.trim().is_empty(), "migration {version} is empty");
        }
    }

    /// Every table with its columns, in `schema` (`main` or `temp`).
    fn tables(conn: &Connection, schema: &str) -> Vec<(String, Vec<String>)> {
        let names: Vec<String> = conn
            .prepare(&format!("SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"))
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("names");
        names
            .into_iter()
            .map(|t| {
                let cols: Vec<String> = conn
                    .prepare(&format!("SELECT name || ' ' || type FROM {schema}.pragma_table_info('{t}')"))
                    .expect("prepare")
                    .query_map([], |r| r.get(0))
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("columns");
                (t, cols)
            })
            .collect()
    }

    #[test]
    fn readers_see_every_older_schema_as_the_current_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let current = {
            let path = dir.path().join("current.db");
            let mut conn = Connection::open(&path).expect("open");
            migrate(&mut conn, &path).expect("migrate");
            tables(&conn, "main")
        };
        for (older, _) in MIGRATIONS.iter().filter(|(v, _)| *v < latest_version()) {
            let path = dir.path().join(format!("v{older}.db"));
            {
                let conn = Connection::open(&path).expect("open");
                for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| v <= older) {
                    conn.execute_batch(sql).expect("apply");
                    conn.pragma_update(None, "user_version", v).expect("version");
                }
            }
            let before = std::fs::read(&path).expect("read");
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = Connection::open_with_flags(&path, flags).expect("open read-only");
            overlay_older(&conn, &path).expect("overlay");
            let mut seen = tables(&conn, "main");
            seen.extend(tables(&conn, "temp"));
            seen.sort();
            assert_eq!(seen, current, "schema {older} read as {}", latest_version());
            assert!(std::fs::read(&path).expect("read") == before, "the file is untouched");
        }
    }
}
