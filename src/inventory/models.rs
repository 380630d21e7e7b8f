//! Node models stored once per distinct content (`node_models`, schema 7): a run points to the
//! model it judged by `runs.model_id`, found by the SHA-256 of its JSON.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// The id of the stored model whose JSON is `json`, storing it first when it is new.
pub(crate) fn store_model(conn: &Connection, json: &str) -> rusqlite::Result<i64> {
    let sha = hex(&Sha256::digest(json.as_bytes()));
    let found: Option<i64> = conn
        .prepare_cached("SELECT id FROM node_models WHERE sha256 = ?1")?
        .query_row([&sha], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO node_models (sha256, node_json) VALUES (?1, ?2)")?.execute(params![sha, json])?;
    Ok(conn.last_insert_rowid())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Migration 7: every run's model into `node_models`, once per distinct content; the run keeps
/// an empty `node_json` and points to its model. Run by run, so a large database is never held
/// in memory at once.
pub(crate) fn move_models(conn: &Connection) -> rusqlite::Result<()> {
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM runs WHERE model_id IS NULL AND node_json <> '' ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in ids {
        let json: String = conn.query_row("SELECT node_json FROM runs WHERE id = ?1", [id], |r| r.get(0))?;
        let model = store_model(conn, &json)?;
        conn.execute("UPDATE runs SET model_id = ?2, node_json = '' WHERE id = ?1", params![id, model])?;
    }
    Ok(())
}

/// What a query selects as a run's model JSON, with `runs` as `r` and `node_models` left-joined
/// as `m` on `m.id = r.model_id`.
pub(crate) const RUN_MODEL: &str = "coalesce(m.node_json, r.node_json)";
