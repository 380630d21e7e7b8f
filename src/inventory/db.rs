//! `Inventory`: one open SQLite database with kiln's settings and current schema.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::migrate::migrate;
use super::InventoryError;

/// Where the inventory lives when neither `--db` nor `KILN_DB` says otherwise,
/// relative to the current directory.
pub const DEFAULT_DB_PATH: &str = "inventory/kiln.db";

/// How long a write waits for another process holding the database before it
/// gives up. Runs are small transactions, so a wait this long means something
/// is stuck.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database path a command uses: the one given (flag or environment),
/// else `DEFAULT_DB_PATH`.
pub fn db_path(given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| PathBuf::from(DEFAULT_DB_PATH), Path::to_path_buf)
}

/// An open inventory database. All SQL in kiln goes through this type.
#[derive(Debug)]
pub struct Inventory {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
}

impl Inventory {
    /// Open the database at `path`, creating it (and its parent directories)
    /// when missing, and migrate it to the current schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        Inventory::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// `open` with a different wait for a database another process holds.
    pub fn open_with_timeout(path: impl AsRef<Path>, busy_timeout: Duration) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| InventoryError::CreateDir { path: parent.to_path_buf(), source })?;
        }
        let conn =
            Connection::open(path).map_err(|source| InventoryError::Open { path: path.to_path_buf(), source })?;
        Inventory::configure(conn, path, busy_timeout)
    }

    /// Open a database that must already exist: for commands that only read,
    /// where a mistyped path must not silently create an empty inventory.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(InventoryError::Missing { path: path.to_path_buf() });
        }
        // Without SQLITE_OPEN_CREATE, a file removed after the check above is
        // still an error and not a new empty database.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| InventoryError::Open { path: path.to_path_buf(), source })?;
        Inventory::configure(conn, path, DEFAULT_BUSY_TIMEOUT)
    }

    fn configure(mut conn: Connection, path: &Path, busy_timeout: Duration) -> Result<Inventory, InventoryError> {
        let failed = |setting| move |source| InventoryError::Configure { path: path.to_path_buf(), setting, source };
        // rusqlite panics on a timeout that overflows i32 milliseconds; cap it at a day.
        let busy_timeout = busy_timeout.min(Duration::from_secs(86_400));
        // The busy timeout comes first: switching to WAL itself needs a lock.
        conn.busy_timeout(busy_timeout).map_err(failed("busy_timeout"))?;
        let mode = switch_to_wal(&conn, busy_timeout).map_err(failed("journal_mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some filesystems (network mounts) refuse WAL; SQLite then keeps
            // its rollback journal, which is slower but still safe.
            tracing::warn!(db = %path.display(), mode, "database is not in WAL mode");
        }
        conn.pragma_update(None, "foreign_keys", "ON").map_err(failed("foreign_keys"))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(failed("synchronous"))?;
        // record_run alone keeps eight statements; the report's queries more.
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn, path)?;
        Ok(Inventory { conn, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version (`PRAGMA user_version`) of the open database.
    pub fn schema_version(&self) -> Result<i64, InventoryError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| InventoryError::ReadVersion { path: self.path.clone(), source })
    }

    /// `PRAGMA integrity_check`: `["ok"]` for a sound database, else SQLite's complaints.
    pub fn integrity_check(&self) -> Result<Vec<String>, InventoryError> {
        let what = || format!("integrity of {}", self.path.display());
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(|source| InventoryError::Query { what: what(), source })?;
        let rows =
            stmt.query_map([], |row| row.get(0)).map_err(|source| InventoryError::Query { what: what(), source })?;
        rows.collect::<Result<Vec<String>, _>>().map_err(|source| InventoryError::Query { what: what(), source })
    }
}

/// `PRAGMA journal_mode = WAL`, answering the mode now in force. Two
/// connections switching a new database at once can get SQLITE_BUSY at once,
/// without the busy handler (SQLite refuses to wait where waiting could
/// deadlock), so a busy answer is retried here until `limit` has passed.
fn switch_to_wal(conn: &Connection, limit: Duration) -> rusqlite::Result<String> {
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < limit =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}
