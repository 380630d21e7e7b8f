//! What a run's outcome means for a node's lifecycle state.

use crate::checks::{Finding, Outcome, Verdict};

use super::{LifecycleState, RunKind};

/// How many failing check ids a failure reason names before it says "and N more".
const REASON_CHECKS: usize = 3;

/// The state a node moves to after a run, or `None` when the run does not
/// move it. The result is always a legal transition from `current`.
///
/// A failed run fails the node (unless it is quarantined: a person's hold
/// outranks a run). A run kiln could not complete (verdict `error`) moves
/// nothing: the node is not known healthy, but it is not known broken either.
/// A passing run advances the node only from the state right before its step
/// (or from failed, for a rerun after repair); a passing rerun of an earlier
/// step leaves a later state alone, so a periodic validate does not undo a
/// burn-in.
pub fn state_after_run(
    current: &LifecycleState,
    kind: RunKind,
    verdict: Option<Verdict>,
    findings: &[Finding],
) -> Option<LifecycleState> {
    use LifecycleState as S;

    if verdict == Some(Verdict::Fail) {
        if matches!(current, S::Quarantined { .. }) {
            return None;
        }
        return Some(S::Failed { reason: failure_reason(kind, findings) });
    }
    let passed = verdict == Some(Verdict::Pass) || (kind == RunKind::Inspect && verdict.is_none());
    if !passed {
        return None;
    }
    match (kind, current) {
        (RunKind::Inspect, S::Enrolled | S::Failed { .. }) => Some(S::Inspected),
        (RunKind::Validate, S::Enrolled | S::Inspected | S::Failed { .. }) => Some(S::Validated),
        (RunKind::Burnin, S::Validated) => Some(S::BurnedIn),
        _ => None,
    }
}

/// `validate failed: pci.link_width, gpu.count` (first few distinct check ids).
fn failure_reason(kind: RunKind, findings: &[Finding]) -> String {
    let mut checks: Vec<&str> = Vec::new();
    for f in findings.iter().filter(|f| f.outcome == Outcome::Fail) {
        if !checks.contains(&f.check.as_str()) {
            checks.push(&f.check);
        }
    }
    if checks.is_empty() {
        return format!("{kind} failed");
    }
    let shown = checks.iter().take(REASON_CHECKS).copied().collect::<Vec<_>>().join(", ");
    match checks.len().saturating_sub(REASON_CHECKS) {
        0 => format!("{kind} failed: {shown}"),
        more => format!("{kind} failed: {shown} and {more} more"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Component, Severity};
    use crate::lifecycle::check_transition;
    use LifecycleState as S;

    fn fail(check: &str) -> Finding {
        Finding::new(check, Outcome::Fail, Severity::Critical, Component::node(), "seen")
    }

    #[test]
    fn passing_steps_advance_in_order() {
        assert_eq!(state_after_run(&S::Enrolled, RunKind::Inspect, None, &[]), Some(S::Inspected));
        assert_eq!(state_after_run(&S::Inspected, RunKind::Validate, Some(Verdict::Pass), &[]), Some(S::Validated));
        assert_eq!(state_after_run(&S::Validated, RunKind::Burnin, Some(Verdict::Pass), &[]), Some(S::BurnedIn));
    }

    #[test]
    fn passing_rerun_keeps_a_later_state() {
        assert_eq!(state_after_run(&S::BurnedIn, RunKind::Validate, Some(Verdict::Pass), &[]), None);
        assert_eq!(state_after_run(&S::HandedOff, RunKind::Inspect, None, &[]), None);
        assert_eq!(state_after_run(&S::Inspected, RunKind::Burnin, Some(Verdict::Pass), &[]), None);
    }

    #[test]
    fn failure_names_the_checks_and_error_moves_nothing() {
        let findings = [fail("a"), fail("b"), fail("a"), fail("c"), fail("d")];
        assert_eq!(
            state_after_run(&S::Ready, RunKind::Validate, Some(Verdict::Fail), &findings),
            Some(S::Failed { reason: "validate failed: a, b, c and 1 more".into() })
        );
        assert_eq!(state_after_run(&S::Validated, RunKind::Burnin, Some(Verdict::Error), &[]), None);
        let held = S::Quarantined { reason: "hold".into() };
        assert_eq!(state_after_run(&held, RunKind::Validate, Some(Verdict::Fail), &findings), None);
    }

    #[test]
    fn every_outcome_is_a_legal_transition() {
        let states = [
            S::Enrolled,
            S::Inspected,
            S::Validated,
            S::BurnedIn,
            S::Ready,
            S::HandedOff,
            S::Failed { reason: "x".into() },
            S::Quarantined { reason: "y".into() },
        ];
        for current in &states {
            for kind in RunKind::ALL {
                for verdict in [None, Some(Verdict::Pass), Some(Verdict::Fail), Some(Verdict::Error)] {
                    if let Some(to) = state_after_run(current, kind, verdict, &[fail("z")]) {
                        assert!(check_transition(current, &to).is_ok(), "{current} -> {to} after {kind} {verdict:?}");
                    }
                }
            }
        }
    }
}
