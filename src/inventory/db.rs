//! `Inventory`: one open SQLite database with kiln's settings and current schema.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::migrate::{self, migrate};
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
    /// Open the database at `path` for writing, creating it (and its parent
    /// directories) when missing, and migrate it to the current schema.
    ///
    /// A file that exists is opened only when it is a kiln inventory of this
    /// kiln's schema or an older one: an empty file, another file or another
    /// program's SQLite database is refused and left as it is, and a newer
    /// schema is refused before anything is written (no switch to WAL first).
    pub fn open(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        Inventory::open_with_timeout(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// `open` with a different wait for a database another process holds.
    pub fn open_with_timeout(path: impl AsRef<Path>, busy_timeout: Duration) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        if !exists(path) {
            create(path, busy_timeout)?;
        }
        Inventory::open_writable(path, busy_timeout)
    }

    /// Open a database that must already exist, for writing: for commands
    /// that change what is recorded but must not create an inventory where a
    /// mistyped path points.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        if !exists(path) {
            return Err(InventoryError::Missing { path: path.to_path_buf() });
        }
        Inventory::open_writable(path, DEFAULT_BUSY_TIMEOUT)
    }

    /// Open a database that must already exist, for reading only: for
    /// commands that only report. Nothing is ever written to the file, its
    /// directory or its journal: a database on read-only media, or one the
    /// reader may not write, is read as it is. An older schema is read as it
    /// is too: the tables its migrations lack are empty tables of this
    /// connection alone (`migrate::overlay_older`).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Inventory, InventoryError> {
        let path = path.as_ref();
        if !exists(path) {
            return Err(InventoryError::Missing { path: path.to_path_buf() });
        }
        let conn = kiln_database(path)?;
        migrate::overlay_older(&conn, path)?;
        // record_run alone keeps eight statements; the report's queries more.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Inventory { conn, path: path.to_path_buf() })
    }

    /// An existing file, checked to be a kiln inventory before it is opened
    /// for writing.
    fn open_writable(path: &Path, busy_timeout: Duration) -> Result<Inventory, InventoryError> {
        drop(kiln_database(path)?);
        // Without SQLITE_OPEN_CREATE, a file removed since the check is still
        // an error and not a new empty database.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| InventoryError::Open { path: path.to_path_buf(), source })?;
        Inventory::configure(conn, path, busy_timeout)
    }

    fn configure(mut conn: Connection, path: &Path, busy_timeout: Duration) -> Result<Inventory, InventoryError> {
        set_up(&conn, path, busy_timeout)?;
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

    /// Every table of the database file (not a reader's overlay) with its number of rows, by
    /// name: what a migration must keep.
    pub fn row_counts(&self) -> Result<Vec<(String, i64)>, InventoryError> {
        let what = || format!("tables of {}", self.path.display());
        let failed = |source| InventoryError::Query { what: what(), source };
        let tables: Vec<String> = self
            .conn
            .prepare("SELECT name FROM main.sqlite_master WHERE type = 'table' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(failed)?;
        let mut out = Vec::new();
        for t in tables {
            let sql = format!("SELECT count(*) FROM main.\"{}\"", t.replace('"', "\"\""));
            let n: i64 = self.conn.query_row(&sql, [], |r| r.get(0)).map_err(failed)?;
            out.push((t, n));
        }
        Ok(out)
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

/// Whether something is at `path` (a dangling symlink counts: it is not
/// kiln's to replace).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The busy timeout, WAL and the pragmas every writing connection uses.
fn set_up(conn: &Connection, path: &Path, busy_timeout: Duration) -> Result<(), InventoryError> {
    let failed = |setting| move |source| InventoryError::Configure { path: path.to_path_buf(), setting, source };
    // rusqlite panics on a timeout that overflows i32 milliseconds; cap it at a day.
    let busy_timeout = busy_timeout.min(Duration::from_secs(86_400));
    // The busy timeout comes first: switching to WAL itself needs a lock.
    conn.busy_timeout(busy_timeout).map_err(failed("busy_timeout"))?;
    let mode = switch_to_wal(conn, busy_timeout).map_err(failed("journal_mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some filesystems (network mounts) refuse WAL; SQLite then keeps
        // its rollback journal, which is slower but still safe.
        tracing::warn!(db = %path.display(), mode, "database is not in WAL mode");
    }
    conn.pragma_update(None, "foreign_keys", "ON").map_err(failed("foreign_keys"))?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(failed("synchronous"))?;
    Ok(())
}

/// Creates a new inventory at `path` whole: built under a temporary name in
/// the same directory, migrated, closed, then linked into place only if
/// nothing is there yet. So kiln never leaves an empty or half-made database
/// at an inventory path (which is why an empty file there is not kiln's and
/// is refused), and of two processes creating one at once, one wins and the
/// other opens what it made.
fn create(path: &Path, busy_timeout: Duration) -> Result<(), InventoryError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| InventoryError::CreateDir { path: dir.to_path_buf(), source })?;
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "kiln.db".into());
    let temp = dir.join(format!(
        ".{name}.new-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    ));
    let made = (|| {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&temp, flags)
            .map_err(|source| InventoryError::Open { path: path.to_path_buf(), source })?;
        set_up(&conn, path, busy_timeout)?;
        migrate(&mut conn, path)?;
        // Closing the last connection checkpoints the WAL into the file and removes it.
        conn.close().map_err(|(_, source)| InventoryError::Open { path: path.to_path_buf(), source })?;
        match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(()),
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // A filesystem without hard links: a rename, which could replace a
            // database made in the same instant, is the best there is.
            Err(_) if !exists(path) => std::fs::rename(&temp, path)
                .map_err(|source| InventoryError::CreateFile { path: path.to_path_buf(), source }),
            Err(source) => Err(InventoryError::CreateFile { path: path.to_path_buf(), source }),
        }
    })();
    for leftover in [temp.clone(), with_suffix(&temp, "-wal"), with_suffix(&temp, "-shm")] {
        let _ = std::fs::remove_file(leftover);
    }
    made
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A read-only connection to `path` once it is known to be a kiln inventory
/// whose schema this kiln can read: refused before anything is written when
/// the file is not a database, is another program's database, or is newer.
fn kiln_database(path: &Path) -> Result<Connection, InventoryError> {
    let not_kiln = |what: &str| InventoryError::NotKiln { path: path.to_path_buf(), what: what.to_string() };
    let meta =
        std::fs::metadata(path).map_err(|source| InventoryError::ReadFile { path: path.to_path_buf(), source })?;
    if !meta.is_file() {
        return Err(not_kiln("not a regular file"));
    }
    if meta.len() == 0 {
        return Err(not_kiln("an empty file: kiln never leaves one, so something else made it"));
    }
    let mut header = Vec::with_capacity(SQLITE_MAGIC.len());
    std::fs::File::open(path)
        .and_then(|f| f.take(SQLITE_MAGIC.len() as u64).read_to_end(&mut header))
        .map_err(|source| InventoryError::ReadFile { path: path.to_path_buf(), source })?;
    if header != SQLITE_MAGIC {
        return Err(not_kiln(&format!(
            "not an SQLite database: it is {} bytes that do not start like one",
            meta.len()
        )));
    }
    let conn = connect_read_only(path)?;
    let version = migrate::read_version(&conn, path)?;
    let known = migrate::latest_version();
    if version > known {
        return Err(InventoryError::TooNew { path: path.to_path_buf(), found: version, known });
    }
    let has_nodes: bool = conn
        .query_row("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'nodes'", [], |r| r.get(0))
        .map_err(|source| InventoryError::Open { path: path.to_path_buf(), source })?;
    if version < 1 || !has_nodes {
        return Err(not_kiln(&format!("an SQLite database without kiln's schema (user_version {version})")));
    }
    Ok(conn)
}

/// A read-only connection that creates nothing when it need not. A WAL
/// database is read through its `-shm` index, which SQLite creates (and
/// leaves) beside the file; a reader that may not write the database, or a
/// directory it may not write, is read with `immutable=1` instead when no
/// write-ahead log holds changes (then the file alone is the whole database).
/// With changes in a log and no way to open the index, it is an error that
/// says so: reading the file alone would show an older inventory.
fn connect_read_only(path: &Path) -> Result<Connection, InventoryError> {
    let open_err = |source| InventoryError::Open { path: path.to_path_buf(), source };
    let wal = with_suffix(path, "-wal");
    let log_is_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    let may_write = std::ffi::CString::new(path.as_os_str().as_bytes())
        // SAFETY: access(2) with a valid C string.
        .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0);
    if !may_write && log_is_empty {
        return connect_immutable(path);
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(DEFAULT_BUSY_TIMEOUT).map_err(open_err)?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) =>
        {
            if log_is_empty {
                connect_immutable(path)
            } else {
                Err(InventoryError::LogUnreadable { path: path.to_path_buf() })
            }
        }
        Err(source) => Err(InventoryError::Open { path: path.to_path_buf(), source }),
    }
}

/// `file:PATH?immutable=1`: no lock, no journal, no index file.
fn connect_immutable(path: &Path) -> Result<Connection, InventoryError> {
    let open_err = |source| InventoryError::Open { path: path.to_path_buf(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let uri = format!("file:{}?immutable=1", uri_path(path));
    let conn = Connection::open_with_flags(uri, flags).map_err(open_err)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)).map_err(open_err)?;
    Ok(conn)
}

/// A path as the path of a `file:` URI: every byte but unreserved ones and
/// `/` percent-encoded (`?`, `#` and `%` in a name must not end the path).
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
