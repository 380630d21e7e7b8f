//! `InventoryError`: one variant per inventory operation that can fail.

use std::path::PathBuf;

use crate::lifecycle::{IllegalTransition, LifecycleState, RunKind};

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("create database directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open database {}: no such file (record a run first, or pass --db)", path.display())]
    Missing { path: PathBuf },
    #[error(
        "open database {}: not a kiln inventory ({what}); kiln leaves it as it is: pass another --db, or move it away",
        path.display()
    )]
    NotKiln { path: PathBuf, what: String },
    #[error("read database file {}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("create database {}", path.display())]
    CreateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "open database {} read-only: changes in its write-ahead log {}-wal can only be read with write access to the \
         directory (for {}-shm); copy the database with its -wal file somewhere writable and report from the copy",
        path.display(), path.display(), path.display()
    )]
    LogUnreadable { path: PathBuf },
    #[error("open database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("set {setting} on database {}", path.display())]
    Configure {
        path: PathBuf,
        setting: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("read the schema version of database {}", path.display())]
    ReadVersion {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "open database {}: its schema version {found} is newer than this kiln knows ({known}); use a newer kiln",
        path.display()
    )]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("apply schema migration {version} to database {}", path.display())]
    Migrate {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("read database {}: lay the tables of schema {version} over its older schema", path.display())]
    Overlay {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("encode the {what} of node {hostname} as JSON")]
    Encode {
        hostname: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "record {kind} run: nothing identifies the node: it reported no hostname and no DMI system UUID, \
         system or board serial"
    )]
    NoIdentity { kind: RunKind },
    #[error(
        "find node {name}: {} nodes answer to that name ({}); name one by its serial, or as RACK/NAME",
        matches.len(),
        matches.join(", ")
    )]
    AmbiguousNode { name: String, matches: Vec<String> },
    #[error("record {kind} run of node {hostname}")]
    RecordRun {
        hostname: String,
        kind: RunKind,
        #[source]
        source: rusqlite::Error,
    },
    #[error("find part {serial}: no part with that serial was ever recorded")]
    UnknownSerial { serial: String },
    #[error("node {hostname} as of {at}: it was first recorded later, at {first_seen}")]
    NotYetRecorded { hostname: String, at: String, first_seen: String },
    #[error("run {run}: {why}")]
    UnknownRun { run: i64, why: String },
    #[error("find node {hostname}: not in the inventory")]
    UnknownNode { hostname: String },
    #[error("move node {hostname} to {to}")]
    IllegalTransition {
        hostname: String,
        to: LifecycleState,
        #[source]
        source: Box<IllegalTransition>,
    },
    #[error("record lifecycle change of node {hostname}")]
    Transition {
        hostname: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("record rack run of rack {rack}")]
    RecordRackRun {
        rack: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("record the collective rank of tray {node}")]
    RecordCollective {
        node: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("record BMC firmware of node {hostname}")]
    RecordFirmware {
        hostname: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("query {what}")]
    Query {
        what: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("decode the node JSON stored with run {run_id}")]
    DecodeNode {
        run_id: i64,
        #[source]
        source: serde_json::Error,
    },
}
