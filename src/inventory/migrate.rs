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
use crate::model::{Dmi, MachineIdentity, PlatformInfo};

/// One schema migration.
pub struct Migration {
    /// The `user_version` it brings the database to.
    pub version: i64,
    /// Its SQL, run in the migration's transaction.
    pub sql: &'static str,
    /// What runs after the SQL in the same transaction: rows only code can derive.
    then: Option<fn(&Connection) -> rusqlite::Result<()>>,
    /// What a read-only reader of an older database lays over it instead of the migration's
    /// tables as TEMP tables (see `overlay_older`): needed by a migration that changes a table.
    overlay: Option<&'static str>,
}

const fn adds(version: i64, sql: &'static str) -> Migration {
    Migration { version, sql, then: None, overlay: None }
}

/// Every migration, in order.
pub static MIGRATIONS: &[Migration] = &[
    adds(1, include_str!("migrations/0001_init.sql")),
    adds(2, include_str!("migrations/0002_burnin.sql")),
    adds(3, include_str!("migrations/0003_images_written.sql")),
    adds(4, include_str!("migrations/0004_rack_runs.sql")),
    adds(5, include_str!("migrations/0005_deploys.sql")),
    Migration {
        version: 6,
        sql: include_str!("migrations/0006_machine_identity.sql"),
        then: Some(fill_machine_identity),
        overlay: Some(include_str!("migrations/0006_machine_identity.overlay.sql")),
    },
    Migration {
        version: 7,
        sql: include_str!("migrations/0007_node_models.sql"),
        then: Some(super::models::move_models),
        overlay: Some(include_str!("migrations/0007_node_models.overlay.sql")),
    },
    adds(8, include_str!("migrations/0008_slurm_jobs.sql")),
    adds(9, include_str!("migrations/0009_collective_trays.sql")),
];

/// Migration 6: each node's identity columns from its newest node run's model. Two nodes of
/// an older database that were the same machine (one renamed, recorded under both names) stay
/// two nodes with the same machine key: no rows are merged or lost.
fn fill_machine_identity(conn: &Connection) -> rusqlite::Result<()> {
    let rows: Vec<(i64, String)> = conn
        .prepare(
            "SELECT n.id, r.node_json FROM nodes n
             JOIN runs r ON r.id = (SELECT k.id FROM runs k WHERE k.node_id = n.id AND k.kind <> 'bmc_firmware'
                                    ORDER BY k.started_at DESC, k.id DESC LIMIT 1)
             ORDER BY n.last_seen DESC, n.id DESC",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, json) in rows {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&json) else { continue };
        let dmi: Dmi = value.get("dmi").cloned().and_then(|d| serde_json::from_value(d).ok()).unwrap_or_default();
        let platform: Option<PlatformInfo> = value
            .pointer("/gpus/gpus")
            .and_then(|g| g.as_array())
            .into_iter()
            .flatten()
            .find_map(|g| g.get("platform").cloned().and_then(|p| serde_json::from_value(p).ok()));
        let identity = MachineIdentity::from_parts(&dmi, platform.as_ref());
        let key = identity.key();
        let hostname = value.get("hostname").and_then(|h| h.as_str()).filter(|h| !h.trim().is_empty());
        conn.execute(
            "UPDATE nodes SET machine = ?2, system_uuid = ?3, serial = ?4, board_serial = ?5, chassis_serial = ?6,
                 tray_index = ?7, hostname = coalesce(?8, hostname)
             WHERE id = ?1",
            rusqlite::params![
                id,
                key,
                identity.system_uuid,
                identity.system_serial,
                identity.board_serial,
                identity.chassis_serial,
                identity.tray_index,
                hostname,
            ],
        )?;
    }
    Ok(())
}

/// The schema version this binary writes: the last migration's number.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
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
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let target = m.version;
        let failed = |source| InventoryError::Migrate { path: path.to_path_buf(), version: target, source };
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
        version = read_version(&tx, path)?;
        if version > known {
            return Err(InventoryError::TooNew { path: path.to_path_buf(), found: version, known });
        }
        if version >= target {
            continue;
        }
        tx.execute_batch(m.sql).map_err(failed)?;
        if let Some(then) = m.then {
            then(&tx).map_err(failed)?;
        }
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
/// A migration that changes an existing table brings its own overlay (a TEMP view of the old
/// table under the new columns, which shadows it); `tests::readers_see_every_older_schema_as_the_current_one`
/// fails the day one changes a table without one.
pub(crate) fn overlay_older(conn: &Connection, path: &Path) -> Result<(), InventoryError> {
    let found = read_version(conn, path)?;
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let temp = match m.overlay {
            Some(overlay) => overlay.to_string(),
            None => m.sql.replace("CREATE TABLE ", "CREATE TEMP TABLE "),
        };
        conn.execute_batch(&temp).map_err(|source| InventoryError::Overlay {
            path: path.to_path_buf(),
            version: m.version,
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
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "migration at position {i} has number {}", m.version);
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.version);
        }
    }

    /// Every table with its columns, in `schema` (`main` or `temp`).
    fn tables(conn: &Connection, schema: &str) -> Vec<(String, Vec<String>)> {
        let names: Vec<String> = conn
            .prepare(&format!("SELECT name FROM {schema}.sqlite_master WHERE type IN ('table', 'view') ORDER BY name"))
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
        for older in MIGRATIONS.iter().map(|m| m.version).filter(|v| *v < latest_version()) {
            let path = dir.path().join(format!("v{older}.db"));
            {
                let conn = Connection::open(&path).expect("open");
                for m in MIGRATIONS.iter().filter(|m| m.version <= older) {
                    conn.execute_batch(m.sql).expect("apply");
                    conn.pragma_update(None, "user_version", m.version).expect("version");
                }
            }
            let before = std::fs::read(&path).expect("read");
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
            let conn = Connection::open_with_flags(&path, flags).expect("open read-only");
            overlay_older(&conn, &path).expect("overlay");
            // A TEMP table or view shadows the main table of its name, as in every query.
            let temp = tables(&conn, "temp");
            let mut seen: Vec<_> =
                tables(&conn, "main").into_iter().filter(|(t, _)| !temp.iter().any(|(n, _)| n == t)).collect();
            seen.extend(temp);
            seen.sort();
            assert_eq!(seen, current, "schema {older} read as {}", latest_version());
            assert!(std::fs::read(&path).expect("read") == before, "the file is untouched");
        }
    }
}
