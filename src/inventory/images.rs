//! Image writes: one row per `kiln image write --db`, whatever its outcome.

use rusqlite::params;
use serde::Serialize;

use super::timestamp::{format_timestamp, now};
use super::{Inventory, InventoryError};

/// One image write about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageWrite<'a> {
    /// The node whose disk was written; it must already be in the inventory.
    pub hostname: Option<&'a str>,
    pub target: &'a str,
    pub image: &'a str,
    pub image_sha256: Option<&'a str>,
    pub image_size: u64,
    pub bytes_written: u64,
    pub duration_ms: u64,
    pub ok: bool,
    /// After a failure: `untouched`, `wiped`, `preserved` or `wipe-failed`.
    pub target_state: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// One recorded image write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageWriteRow {
    pub id: i64,
    pub at: String,
    pub hostname: Option<String>,
    pub target: String,
    pub image: String,
    pub image_sha256: Option<String>,
    pub image_size: u64,
    pub bytes_written: u64,
    pub duration_ms: u64,
    pub outcome: String,
    pub target_state: Option<String>,
    pub error: Option<String>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Inventory {
    /// Record an image write; answers its row id.
    pub fn record_image_write(&mut self, w: &ImageWrite<'_>) -> Result<i64, InventoryError> {
        let failed = |source| InventoryError::Query { what: format!("record image write to {}", w.target), source };
        let node_id: Option<i64> = match w.hostname {
            Some(h) => Some(
                super::machine::node_named(&self.conn, h)
                    .map_err(|e| e.into_inventory(failed))?
                    .ok_or_else(|| InventoryError::UnknownNode { hostname: h.to_string() })?,
            ),
            None => None,
        };
        self.conn
            .execute(
                "INSERT INTO images_written (at, node_id, target, image, image_sha256, image_size, bytes_written,
                     duration_ms, outcome, target_state, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    format_timestamp(now()),
                    node_id,
                    w.target,
                    // An image URL may carry a user and password: never kept.
                    crate::redact::userinfo(w.image),
                    w.image_sha256,
                    to_i64(w.image_size),
                    to_i64(w.bytes_written),
                    to_i64(w.duration_ms),
                    if w.ok { "ok" } else { "failed" },
                    w.target_state,
                    w.error.map(crate::redact::userinfo),
                ],
            )
            .map_err(failed)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Image writes, newest first.
    pub fn images_written(&self) -> Result<Vec<ImageWriteRow>, InventoryError> {
        let failed = |source| InventoryError::Query { what: "list image writes".into(), source };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT w.id, w.at, n.name, w.target, w.image, w.image_sha256, w.image_size, w.bytes_written,
                        w.duration_ms, w.outcome, w.target_state, w.error
                 FROM images_written w LEFT JOIN nodes n ON n.id = w.node_id
                 ORDER BY w.at DESC, w.id DESC",
            )
            .map_err(failed)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ImageWriteRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    hostname: r.get(2)?,
                    target: r.get(3)?,
                    image: r.get(4)?,
                    image_sha256: r.get(5)?,
                    image_size: r.get::<_, i64>(6)?.max(0) as u64,
                    bytes_written: r.get::<_, i64>(7)?.max(0) as u64,
                    duration_ms: r.get::<_, i64>(8)?.max(0) as u64,
                    outcome: r.get(9)?,
                    target_state: r.get(10)?,
                    error: r.get(11)?,
                })
            })
            .map_err(failed)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_recorded_and_listed_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut inv = Inventory::open(dir.path().join("k.db")).expect("open");
        let ok = ImageWrite {
            hostname: None,
            target: "/dev/loop3",
            image: "kiln-test.raw",
            image_sha256: Some("ab"),
            image_size: 100,
            bytes_written: 10,
            duration_ms: 5,
            ok: true,
            target_state: None,
            error: None,
        };
        inv.record_image_write(&ok).expect("record ok");
        let bad = ImageWrite { ok: false, target_state: Some("wiped"), error: Some("checksum"), ..ok.clone() };
        inv.record_image_write(&bad).expect("record failure");
        let rows = inv.images_written().expect("list");
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].outcome.as_str(), rows[0].target_state.as_deref()), ("failed", Some("wiped")));
        assert_eq!(rows[1].outcome, "ok");
        let unknown = ImageWrite { hostname: Some("nope"), ..ok };
        assert!(matches!(inv.record_image_write(&unknown), Err(InventoryError::UnknownNode { .. })));
    }
}
