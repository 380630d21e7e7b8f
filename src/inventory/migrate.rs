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
];

/// The schema version this binary writes: the last migration's number.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

fn read_version(conn: &Connection, path: &Path) -> Result<i64, InventoryError> {
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
}
