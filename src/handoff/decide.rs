//! What the inventory says about a node at hand-off: pass (hand it to the cluster), fail (keep it
//! out, naming the failed checks) or hold (not known healthy: keep it out until it is).

use serde::{Deserialize, Serialize};

use crate::checks::{Outcome, Verdict};
use crate::inventory::{Inventory, InventoryError, RunId, RunRow, FIRMWARE_CHECK_RUN};
use crate::lifecycle::LifecycleState;

/// How many failed check ids a reason names before it says "and N more".
/// Slurm shows the reason in `sinfo -R`, so it must stay short.
const REASON_CHECKS: usize = 4;

/// The inventory's judgement of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "health", rename_all = "snake_case")]
pub enum Health {
    /// Ready (or already handed off): put it into service.
    Pass {
        /// The newest judged run the pass rests on.
        run: Option<RunId>,
        /// The node is `burned_in` with its latest validate and burn-in
        /// passing: hand-off signs it off (`ready`) on the way.
        sign_off: bool,
    },
    /// Failed or quarantined, or its latest validate or burn-in failed: keep
    /// it out of service and quarantine it.
    Fail {
        /// Failed check ids, distinct, in the order the runs recorded them.
        checks: Vec<String>,
        /// The failing run, when a run failed.
        run: Option<RunId>,
        /// `gpu.count, nvlink.active (run 12)`: what the cluster is told.
        reason: String,
    },
    /// Not known healthy: kiln could not check it (verdict `error`), it has
    /// not passed burn-in yet, or the inventory does not know it. Kept out of
    /// service (fail closed) without quarantining it.
    Hold { run: Option<RunId>, reason: String },
}

impl Health {
    pub fn name(&self) -> &'static str {
        match self {
            Health::Pass { .. } => "pass",
            Health::Fail { .. } => "fail",
            Health::Hold { .. } => "hold",
        }
    }

    /// The run the decision rests on.
    pub fn run(&self) -> Option<RunId> {
        match self {
            Health::Pass { run, .. } | Health::Fail { run, .. } | Health::Hold { run, .. } => *run,
        }
    }

    /// The text after `kiln: ` in a drain reason or an event; `None` for a pass.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Pass { .. } => None,
            Health::Fail { reason, .. } | Health::Hold { reason, .. } => Some(reason),
        }
    }
}

/// A node's decision with what it was drawn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub node: String,
    /// `None` when the inventory does not know the node.
    pub state: Option<LifecycleState>,
    #[serde(flatten)]
    pub health: Health,
}

/// `a, b, c, d and 2 more`.
pub fn list_checks(checks: &[String]) -> String {
    let shown = checks.iter().take(REASON_CHECKS).cloned().collect::<Vec<_>>().join(", ");
    match checks.len().saturating_sub(REASON_CHECKS) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

fn with_run(text: String, run: Option<RunId>) -> String {
    match run {
        Some(r) => format!("{text} (run {})", r.0),
        None => text,
    }
}

/// Distinct ids of the findings with `outcome` in `runs`, and the newest such run.
fn checks_with(
    inventory: &Inventory,
    runs: &[&RunRow],
    outcome: Outcome,
) -> Result<(Vec<String>, Option<RunId>), InventoryError> {
    let mut checks: Vec<String> = Vec::new();
    let mut run = None;
    for r in runs {
        for f in inventory.run_findings(r.id)? {
            if f.outcome == outcome && !checks.contains(&f.check) {
                checks.push(f.check);
                run.get_or_insert(r.id);
            }
        }
    }
    Ok((checks, run.or_else(|| runs.first().map(|r| r.id))))
}

/// Decide a node from its lifecycle state and its latest judged runs (the
/// newest validate and the newest burn-in). In order:
/// - unknown to the inventory: hold;
/// - quarantined or failed, or a latest judged run failed: fail, naming the
///   failed checks (or the state's reason when no run names any);
/// - the latest firmware check failed (a pinned component out of date; advisory ones pass):
///   hold, naming the components and `kiln rack firmware update`;
/// - a latest judged run could not check (verdict `error`): hold;
/// - `ready` or `handed_off`: pass;
/// - `burned_in` with a passing validate and a passing burn-in: pass, signed off on the way;
/// - any earlier state: hold, "not ready".
pub fn decide(inventory: &Inventory, hostname: &str) -> Result<Decision, InventoryError> {
    let Some(node) = inventory.node(hostname)? else {
        return Ok(Decision {
            node: hostname.to_string(),
            state: None,
            health: Health::Hold {
                run: None,
                reason: "not in the inventory: validate and burn in the node first".into(),
            },
        });
    };
    let runs = inventory.latest_judged_runs(node.id)?;
    // A node out of firmware compliance is held (an update fixes it), not failed: it is the
    // failing node runs that quarantine.
    let (firmware_failing, failing): (Vec<&RunRow>, Vec<&RunRow>) =
        runs.iter().filter(|r| r.verdict == Some(Verdict::Fail)).partition(|r| r.kind == FIRMWARE_CHECK_RUN);
    let erring: Vec<&RunRow> = runs.iter().filter(|r| r.verdict == Some(Verdict::Error)).collect();
    let state = node.state.clone();
    let health = match &state {
        LifecycleState::Quarantined { reason } | LifecycleState::Failed { reason } if failing.is_empty() => {
            Health::Fail { checks: Vec::new(), run: None, reason: format!("{} ({reason})", state.name()) }
        }
        _ if !failing.is_empty() => {
            let (checks, run) = checks_with(inventory, &failing, Outcome::Fail)?;
            let text = if checks.is_empty() {
                format!("{} failed", failing.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>().join(", "))
            } else {
                list_checks(&checks)
            };
            Health::Fail { reason: with_run(text, run), checks, run }
        }
        _ if !firmware_failing.is_empty() => {
            let (checks, run) = checks_with(inventory, &firmware_failing, Outcome::Fail)?;
            let text = format!("firmware out of compliance: {}", list_checks(&checks));
            Health::Hold { reason: with_run(text, run) + "; kiln rack firmware update", run }
        }
        _ if !erring.is_empty() => {
            let (checks, run) = checks_with(inventory, &erring, Outcome::Error)?;
            let text = if checks.is_empty() {
                "could not check".to_string()
            } else {
                format!("could not check {}", list_checks(&checks))
            };
            Health::Hold { reason: with_run(text, run), run }
        }
        LifecycleState::Ready | LifecycleState::HandedOff => {
            Health::Pass { run: runs.first().map(|r| r.id), sign_off: false }
        }
        LifecycleState::BurnedIn => {
            let passed = |kind: &str| runs.iter().any(|r| r.kind == kind && r.verdict == Some(Verdict::Pass));
            if passed("validate") && passed("burnin") {
                Health::Pass { run: runs.first().map(|r| r.id), sign_off: true }
            } else {
                Health::Hold {
                    run: runs.first().map(|r| r.id),
                    reason: "not ready: burned_in without a passing validate and burn-in on record".into(),
                }
            }
        }
        other => Health::Hold {
            run: runs.first().map(|r| r.id),
            reason: format!("not ready: state {} (burn-in has not passed)", other.name()),
        },
    };
    Ok(Decision { node: hostname.to_string(), state: Some(state), health })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::fixture::sample::hgx_b200_node;
    use crate::inventory::tests::support::{record, temp_db, validate_findings};
    use crate::lifecycle::RunKind;

    #[test]
    fn a_node_out_of_firmware_compliance_is_held_not_failed() {
        use crate::checks::{Component, Finding, Severity};
        use crate::inventory::{FirmwareCheckRecord, FIRMWARE_CHECK_RUN};
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        let ok = hgx_b200_node("n1");
        record(&mut inv, RunKind::Validate, &ok, &validate_findings(false), 0);
        record(&mut inv, RunKind::Burnin, &ok, &validate_findings(false), 5);
        let stale = Finding::new("firmware.bmc", Outcome::Fail, Severity::Warning, Component::node(), "older");
        let check = |inv: &mut Inventory, findings: &[Finding], verdict| {
            let t = crate::inventory::now();
            inv.record_firmware_check(&FirmwareCheckRecord {
                node: "n1",
                rack: None,
                platform: None,
                inspected: None,
                components: &[],
                findings,
                verdict,
                exit_code: 1,
                started_at: t,
                finished_at: t,
                actor: "test",
                move_to: None,
            })
            .expect("record")
        };
        let run = check(&mut inv, std::slice::from_ref(&stale), Verdict::Fail);
        let d = decide(&inv, "n1").expect("decide");
        let Health::Hold { reason, run: held_on } = &d.health else { panic!("held: {d:?}") };
        assert_eq!(*held_on, Some(run));
        assert_eq!(
            reason,
            &format!("firmware out of compliance: firmware.bmc (run {}); kiln rack firmware update", run.0)
        );
        // The firmware run is never the node's latest run.
        let row = inv.node("n1").expect("query").expect("node");
        assert_ne!(inv.latest_run(row.id).expect("query").map(|r| r.kind), Some(FIRMWARE_CHECK_RUN.to_string()));
        // Brought up to date, the node passes (and is signed off as before).
        check(&mut inv, &[], Verdict::Pass);
        assert!(matches!(decide(&inv, "n1").expect("decide").health, Health::Pass { sign_off: true, .. }));
    }

    #[test]
    fn each_state_and_verdict_decides() {
        let (_dir, path) = temp_db();
        let mut inv = Inventory::open(&path).expect("open");
        // Passed validate and burn-in: burned_in, signed off on the way.
        let ok = hgx_b200_node("ok");
        record(&mut inv, RunKind::Validate, &ok, &validate_findings(false), 0);
        let burn = record(&mut inv, RunKind::Burnin, &ok, &validate_findings(false), 5);
        assert_eq!(decide(&inv, "ok").expect("decide").health, Health::Pass { run: Some(burn), sign_off: true });
        // Failed validate: fail, naming the check and the run.
        let bad = hgx_b200_node("bad");
        let run = record(&mut inv, RunKind::Validate, &bad, &validate_findings(true), 0);
        let d = decide(&inv, "bad").expect("decide");
        assert_eq!(
            d.health,
            Health::Fail {
                checks: vec!["pci.link_width".into()],
                run: Some(run),
                reason: format!("pci.link_width (run {})", run.0)
            }
        );
        // Validated only: hold, not ready.
        record(&mut inv, RunKind::Validate, &hgx_b200_node("early"), &validate_findings(false), 0);
        let d = decide(&inv, "early").expect("decide");
        assert!(matches!(&d.health, Health::Hold { reason, .. } if reason.contains("validated")), "{d:?}");
        // Quarantined by a person without a failing run: fail with their reason.
        inv.enroll("held", None, "tech").expect("enroll");
        inv.transition("held", &LifecycleState::Quarantined { reason: "suspect tray".into() }, "tech", "hold")
            .expect("quarantine");
        let d = decide(&inv, "held").expect("decide");
        assert!(matches!(&d.health, Health::Fail { reason, .. } if reason.contains("suspect tray")), "{d:?}");
        // Unknown: hold.
        let d = decide(&inv, "ghost").expect("decide");
        assert!(d.state.is_none() && matches!(d.health, Health::Hold { .. }));
    }

    #[test]
    fn a_long_list_is_cut() {
        let checks: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
        assert_eq!(list_checks(&checks), "c0, c1, c2, c3 and 2 more");
    }
}
