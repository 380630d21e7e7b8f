//! Lifecycle transitions persisted: legal moves, refused moves, an append-only history.

use super::support::{count, raw, record, temp_db, validate_findings};
use crate::hw::fixture::sample::hgx_b200_node;
use crate::inventory::{Inventory, InventoryError};
use crate::lifecycle::{LifecycleState, Move, RunKind};

#[test]
fn transitions_are_recorded_and_illegal_ones_refused() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    inv.enroll("gpu-a01", Some("r07"), "manifest").expect("enroll");
    assert_eq!(
        inv.enroll("gpu-a01", None, "manifest").expect("enroll again"),
        inv.node("gpu-a01").expect("query").expect("enrolled").id
    );

    let err = inv.transition("gpu-a01", &LifecycleState::BurnedIn, "tech-ana", "try").expect_err("skips steps");
    assert!(matches!(&err, InventoryError::IllegalTransition { .. }), "{err:?}");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("from enrolled to burned_in"), "{chain}");
    assert_eq!(inv.state("gpu-a01").expect("state"), LifecycleState::Enrolled, "refused move changed nothing");

    let held = LifecycleState::Quarantined { reason: "smoke seen at tray 7".into() };
    assert_eq!(inv.transition("gpu-a01", &held, "tech-ana", "smell").expect("quarantine"), Move::Changed);
    assert_eq!(inv.transition("gpu-a01", &held, "tech-ana", "again").expect("same"), Move::Unchanged);
    assert!(inv.transition("gpu-a01", &LifecycleState::Inspected, "tech-ana", "x").is_err());
    inv.transition("gpu-a01", &LifecycleState::Enrolled, "lead-bo", "released after PSU swap").expect("release");

    let history = inv.history("gpu-a01").expect("history");
    let steps: Vec<(Option<String>, String, &str)> =
        history.iter().map(|e| (e.from.as_ref().map(|s| s.to_string()), e.to.to_string(), e.actor.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            (None, "enrolled".into(), "manifest"),
            (Some("enrolled".into()), "quarantined (smoke seen at tray 7)".into(), "tech-ana"),
            (Some("quarantined (smoke seen at tray 7)".into()), "enrolled".into(), "lead-bo"),
        ]
    );
    assert_eq!(history[2].cause, "released after PSU swap");
    let node = inv.node("gpu-a01").expect("query").expect("node");
    assert_eq!((node.state, node.rack.as_deref()), (LifecycleState::Enrolled, Some("r07")));
}

#[test]
fn release_ends_only_a_quarantine_and_refuses_everything_else() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    inv.enroll("gpu-a02", None, "manifest").expect("enroll");
    let err = inv.release("gpu-a02", "lead-bo", "released").expect_err("enrolled is not held");
    assert!(matches!(&err, InventoryError::IllegalTransition { .. }), "{err:?}");
    let failed = LifecycleState::Failed { reason: "validate failed: gpu.count".into() };
    inv.transition("gpu-a02", &failed, "kiln validate", "validate failed").expect("fail");
    let chain = format!("{:#}", anyhow::Error::from(inv.release("gpu-a02", "lead-bo", "x").expect_err("failed")));
    assert!(chain.contains("only a quarantined node is released"), "{chain}");
    assert_eq!(inv.history("gpu-a02").expect("history").len(), 2, "a refused release records nothing");

    let held = LifecycleState::Quarantined { reason: "suspect tray".into() };
    inv.transition("gpu-a02", &held, "tech-ana", "hold").expect("quarantine");
    assert_eq!(inv.release("gpu-a02", "lead-bo", "tray swapped").expect("release"), held);
    assert_eq!(inv.state("gpu-a02").expect("state"), LifecycleState::Enrolled);
    let last = inv.history("gpu-a02").expect("history").pop().expect("an event");
    assert_eq!((last.from, last.actor.as_str(), last.cause.as_str()), (Some(held), "lead-bo", "tray swapped"));
    assert!(matches!(inv.release("ghost", "a", "b"), Err(InventoryError::UnknownNode { .. })));
}

#[test]
fn unknown_nodes_are_named() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let err = inv.transition("ghost", &LifecycleState::Inspected, "a", "b").expect_err("no such node");
    assert_eq!(err.to_string(), "find node ghost: not in the inventory");
    assert!(matches!(inv.history("ghost"), Err(InventoryError::UnknownNode { .. })));
}

#[test]
fn the_event_log_is_append_only() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    record(&mut inv, RunKind::Validate, &hgx_b200_node("gpu-a01"), &validate_findings(true), 0);
    let conn = raw(&path);
    let before = count(&conn, "lifecycle_events");
    assert_eq!(before, 2, "enrolled, then failed");
    let update = conn.execute("UPDATE lifecycle_events SET actor = 'someone else'", []);
    let delete = conn.execute("DELETE FROM lifecycle_events", []);
    for (what, result) in [("update", update), ("delete", delete)] {
        let err = result.expect_err("the log must refuse rewriting");
        assert!(err.to_string().contains("lifecycle_events is append-only"), "{what}: {err}");
    }
    assert_eq!(count(&conn, "lifecycle_events"), before);
    let actors: i64 = conn
        .query_row("SELECT count(*) FROM lifecycle_events WHERE actor = 'tech-ana'", [], |r| r.get(0))
        .expect("count");
    assert_eq!(actors, before);
}

#[test]
fn a_failed_node_reruns_after_repair() {
    let (_dir, path) = temp_db();
    let mut inv = Inventory::open(&path).expect("open");
    let node = hgx_b200_node("gpu-a01");
    record(&mut inv, RunKind::Validate, &node, &validate_findings(true), 0);
    assert!(matches!(inv.state("gpu-a01").expect("state"), LifecycleState::Failed { .. }));
    // Burn-in on a failed node does not advance it: it must validate first.
    record(&mut inv, RunKind::Burnin, &node, &validate_findings(false), 10);
    assert!(matches!(inv.state("gpu-a01").expect("state"), LifecycleState::Failed { .. }));
    record(&mut inv, RunKind::Validate, &node, &validate_findings(false), 20);
    assert_eq!(inv.state("gpu-a01").expect("state"), LifecycleState::Validated);
}
