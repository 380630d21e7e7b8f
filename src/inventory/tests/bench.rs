//! The benchmark hook writes what it says it wrote.

use super::support::{count, raw, temp_db, validate_findings};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::{components_of, record_inventories, Inventory};

#[test]
fn record_inventories_writes_every_run() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("bench");
    let findings = validate_findings(true);
    let stats = record_inventories(&mut inv, &node, &findings, 30, 10).expect("record");
    assert_eq!(stats.runs, 30);
    let conn = raw(&path);
    assert_eq!(count(&conn, "nodes"), 10);
    assert_eq!(count(&conn, "runs"), 30);
    assert_eq!(count(&conn, "components") as usize, 30 * components_of(&node).len());
    assert_eq!(count(&conn, "findings") as usize, 30 * findings.len());
    assert_eq!(stats.components, 30 * components_of(&node).len());
    assert!(stats.runs_per_second() > 0.0);
}
