//! The transition table: which lifecycle moves are legal (see docs/lifecycle.md).

use super::LifecycleState;

/// What a legal transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// The node is already in that state: nothing to record.
    Unchanged,
    /// The node changes state: record an event.
    Changed,
}

/// A refused transition, naming both ends and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal lifecycle transition from {from} to {to}: {rule}")]
pub struct IllegalTransition {
    pub from: LifecycleState,
    pub to: LifecycleState,
    pub rule: &'static str,
}

/// Decide whether a node may move from `from` to `to`.
///
/// The rules, in the spirit of OpenStack Ironic's provision states:
/// - the step states go forward one step at a time (enrolled, inspected,
///   validated, burned_in, ready, handed_off), except that enrolled may go
///   straight to validated because validation inspects the node itself;
/// - a node may go back to an earlier step (inspected, validated, burned_in)
///   to rerun it, but never back to enrolled;
/// - a handed-off node must be taken back (to ready) before anything else
///   except failing or quarantine;
/// - any state may go to failed, except quarantined;
/// - failed goes to enrolled, inspected or validated, for a rerun after repair;
/// - any state may go to quarantined; quarantined only goes to enrolled, by an
///   explicit release;
/// - failed to failed and quarantined to quarantined with a new reason are
///   legal, and replace the reason.
pub fn check_transition(from: &LifecycleState, to: &LifecycleState) -> Result<Move, IllegalTransition> {
    use LifecycleState as S;

    let refuse = |rule: &'static str| Err(IllegalTransition { from: from.clone(), to: to.clone(), rule });
    if from == to {
        return Ok(Move::Unchanged);
    }
    match (from, to) {
        (_, S::Quarantined { .. }) => Ok(Move::Changed),
        (S::Quarantined { .. }, S::Enrolled) => Ok(Move::Changed),
        (S::Quarantined { .. }, _) => refuse("a quarantined node is only released to enrolled"),
        (_, S::Failed { .. }) => Ok(Move::Changed),
        (S::Failed { .. }, S::Enrolled | S::Inspected | S::Validated) => Ok(Move::Changed),
        (S::Failed { .. }, _) => refuse("a failed node reruns from enrolled, inspected or validated after repair"),
        (S::HandedOff, S::Ready) => Ok(Move::Changed),
        (S::HandedOff, _) => refuse("a handed-off node must be taken back to ready first"),
        (_, S::Enrolled) => refuse("only a failed or quarantined node goes back to enrolled"),
        _ => match (from.step(), to.step()) {
            (Some(a), Some(b)) if b == a + 1 => Ok(Move::Changed),
            (Some(0), Some(2)) => Ok(Move::Changed),
            (Some(a), Some(b)) if b < a => Ok(Move::Changed),
            _ => refuse("steps go forward one at a time"),
        },
    }
}

/// Decide whether a node may be released from quarantine (to enrolled).
///
/// Release is the one way out of quarantine, and nothing else: a failed node
/// could also go to enrolled by `check_transition`, but calling that a release
/// would hide that nobody held it. Any state but quarantined is refused.
pub fn check_release(from: &LifecycleState) -> Result<Move, IllegalTransition> {
    match from {
        LifecycleState::Quarantined { .. } => check_transition(from, &LifecycleState::Enrolled),
        _ => Err(IllegalTransition {
            from: from.clone(),
            to: LifecycleState::Enrolled,
            rule: "only a quarantined node is released",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifecycleState as S;

    fn failed() -> S {
        S::Failed { reason: "gpu.count".into() }
    }

    fn quarantined() -> S {
        S::Quarantined { reason: "suspect tray".into() }
    }

    fn all() -> Vec<S> {
        vec![S::Enrolled, S::Inspected, S::Validated, S::BurnedIn, S::Ready, S::HandedOff, failed(), quarantined()]
    }

    #[test]
    fn only_a_quarantined_node_is_released() {
        assert_eq!(check_release(&quarantined()), Ok(Move::Changed));
        for from in all().into_iter().filter(|s| !matches!(s, S::Quarantined { .. })) {
            let err = check_release(&from).expect_err("not quarantined");
            assert_eq!((&err.to, err.rule), (&S::Enrolled, "only a quarantined node is released"), "{from}");
        }
        let err = check_release(&S::Enrolled).expect_err("enrolled is not held");
        assert_eq!(
            err.to_string(),
            "illegal lifecycle transition from enrolled to enrolled: only a quarantined node is released"
        );
    }

    #[test]
    fn happy_path_is_legal() {
        let path = [S::Enrolled, S::Inspected, S::Validated, S::BurnedIn, S::Ready, S::HandedOff];
        for pair in path.windows(2) {
            assert_eq!(check_transition(&pair[0], &pair[1]), Ok(Move::Changed), "{} -> {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn skipping_steps_is_refused_except_enrolled_to_validated() {
        assert_eq!(check_transition(&S::Enrolled, &S::Validated), Ok(Move::Changed));
        for (from, to) in [
            (S::Enrolled, S::BurnedIn),
            (S::Inspected, S::BurnedIn),
            (S::Validated, S::Ready),
            (S::BurnedIn, S::HandedOff),
            (S::Enrolled, S::HandedOff),
        ] {
            let err = check_transition(&from, &to).expect_err("a skipped step must be refused");
            assert_eq!((err.from, err.to), (from, to));
        }
    }

    #[test]
    fn rerunning_an_earlier_step_is_legal_but_not_back_to_enrolled() {
        assert_eq!(check_transition(&S::Validated, &S::Inspected), Ok(Move::Changed));
        assert_eq!(check_transition(&S::Ready, &S::Validated), Ok(Move::Changed));
        assert_eq!(check_transition(&S::BurnedIn, &S::Inspected), Ok(Move::Changed));
        assert!(check_transition(&S::Validated, &S::Enrolled).is_err());
        assert!(check_transition(&S::HandedOff, &S::Validated).is_err());
        assert_eq!(check_transition(&S::HandedOff, &S::Ready), Ok(Move::Changed));
    }

    #[test]
    fn any_state_fails_and_quarantines_except_quarantined_to_failed() {
        for from in all() {
            assert!(check_transition(&from, &quarantined()).is_ok(), "{from} -> quarantined");
            let to_failed = check_transition(&from, &S::Failed { reason: "other".into() });
            assert_eq!(to_failed.is_ok(), !matches!(from, S::Quarantined { .. }), "{from} -> failed");
        }
    }

    #[test]
    fn failed_reruns_from_early_steps_only() {
        for to in [S::Enrolled, S::Inspected, S::Validated] {
            assert_eq!(check_transition(&failed(), &to), Ok(Move::Changed));
        }
        for to in [S::BurnedIn, S::Ready, S::HandedOff] {
            let err = check_transition(&failed(), &to).expect_err("failed must rerun from an early step");
            assert!(err.to_string().contains("from failed (gpu.count) to"), "{err}");
        }
    }

    #[test]
    fn quarantine_is_released_only_to_enrolled() {
        for to in all() {
            let result = check_transition(&quarantined(), &to);
            let legal = matches!(to, S::Enrolled | S::Quarantined { .. });
            assert_eq!(result.is_ok(), legal, "quarantined -> {to}");
        }
    }

    #[test]
    fn same_state_is_unchanged() {
        for s in all() {
            assert_eq!(check_transition(&s, &s), Ok(Move::Unchanged));
        }
    }
}
