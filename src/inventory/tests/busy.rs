//! Another process holding the write lock is waited for, up to the busy timeout.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::support::{raw, temp_db};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::{Inventory, InventoryError, RunRecord};
use crate::lifecycle::RunKind;

/// Hold the database's write lock from another connection for `hold`, and
/// return once the lock is taken.
fn hold_write_lock(path: &std::path::Path, hold: Duration) -> thread::JoinHandle<()> {
    let path = path.to_path_buf();
    let (taken, wait) = mpsc::channel();
    let holder = thread::spawn(move || {
        let conn = raw(&path);
        conn.execute_batch("BEGIN IMMEDIATE; UPDATE nodes SET rack = 'held' WHERE 0;").expect("take the lock");
        taken.send(()).expect("signal");
        thread::sleep(hold);
        conn.execute_batch("COMMIT").expect("release the lock");
    });
    wait.recv().expect("lock taken");
    holder
}

#[test]
fn a_held_database_is_waited_for() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    let holder = hold_write_lock(&path, Duration::from_millis(1000));
    let start = Instant::now();
    inv.record_run(&RunRecord::new(RunKind::Inspect, &node, "tech-ana")).expect("waits, then records");
    let waited = start.elapsed();
    holder.join().expect("holder thread");
    assert!(waited >= Duration::from_millis(800), "recorded after {waited:?}, before the lock was released");
    assert_eq!(inv.nodes().expect("nodes").len(), 1);
}

#[test]
fn a_database_held_past_the_timeout_is_an_error() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open_with_timeout(&path, Duration::from_millis(200)).expect("open");
    let node = hgx_b200_node("gpu-a01");
    let holder = hold_write_lock(&path, Duration::from_millis(1500));
    let err = inv.record_run(&RunRecord::new(RunKind::Inspect, &node, "tech-ana")).expect_err("gives up");
    holder.join().expect("holder thread");
    assert!(matches!(err, InventoryError::RecordRun { .. }), "{err:?}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("locked"), "{chain}");
}
