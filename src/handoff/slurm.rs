//! Hand-off to Slurm: resume passing nodes, drain failing ones with a `kiln:` reason, and never
//! resume a node that someone else drained.
//!
//! The cluster is reached through the narrow `SlurmControl` trait; the real
//! backend (`Scontrol`) runs `scontrol`, which talks to slurmctld with the
//! site's own configuration and authentication.

use super::outcome::{Action, ActionResult, Disposition};
use super::{Decision, Health, SlurmError};

/// Every drain reason kiln writes starts with this; kiln resumes only nodes
/// whose reason does.
pub const KILN_REASON_PREFIX: &str = "kiln:";

/// A node as slurmctld reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmNode {
    pub name: String,
    /// The base state: `IDLE`, `ALLOCATED`, `MIXED`, `DOWN`, ...
    pub state: String,
    /// The flags after `+`: `DRAIN`, `NOT_RESPONDING`, `COMPLETING`, ...
    pub flags: Vec<String>,
    /// The reason as set, without the `[user@time]` Slurm appends.
    pub reason: Option<String>,
}

impl SlurmNode {
    /// Drained or draining: no new jobs go to it.
    pub fn drained(&self) -> bool {
        self.flags.iter().any(|f| f == "DRAIN") || matches!(self.state.as_str(), "DRAIN" | "DRAINED" | "DRAINING")
    }

    pub fn down(&self) -> bool {
        self.state == "DOWN"
    }

    /// Whether kiln wrote the node's reason.
    pub fn reason_is_kiln(&self) -> bool {
        self.reason.as_deref().is_some_and(|r| r.starts_with(KILN_REASON_PREFIX))
    }

    /// `IDLE+DRAIN`.
    pub fn state_text(&self) -> String {
        std::iter::once(self.state.as_str()).chain(self.flags.iter().map(String::as_str)).collect::<Vec<_>>().join("+")
    }
}

/// What a RESUME did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    Done,
    /// Slurm refused because the node is not drained or down: it already is
    /// in service (scontrol exits 1 with "Invalid node state specified").
    AlreadyUp,
}

/// The Slurm operations hand-off and healthcheck need.
pub trait SlurmControl {
    /// The node's state and reason; `SlurmError::UnknownNode` when slurmctld does not know it.
    fn show_node(&self, name: &str) -> Result<SlurmNode, SlurmError>;
    /// `scontrol update NodeName=NAME State=DRAIN Reason=REASON`.
    fn drain(&self, name: &str, reason: &str) -> Result<(), SlurmError>;
    /// `scontrol update NodeName=NAME State=RESUME`.
    fn resume(&self, name: &str) -> Result<Resumed, SlurmError>;
}

/// The drain reason for a node kiln keeps out: `kiln: gpu.count (run 12)`.
pub fn drain_reason(health: &Health) -> Option<String> {
    health.reason().map(|r| format!("{KILN_REASON_PREFIX} {r}"))
}

fn resume_command(node: &str) -> String {
    format!("scontrol update NodeName={node} State=RESUME")
}

fn drain_command(node: &str, reason: &str) -> String {
    format!("scontrol update NodeName={node} State=DRAIN Reason=\"{reason}\"")
}

/// Hand one node to Slurm as `decision` says (or, with `dry_run`, say what
/// would be done after reading its state). Returns the actions and where the
/// node ended up; nothing here writes the inventory.
pub fn hand_off(ctl: &dyn SlurmControl, decision: &Decision, dry_run: bool) -> (Vec<Action>, Disposition) {
    let name = decision.node.as_str();
    let node = match ctl.show_node(name) {
        Ok(n) => n,
        Err(e) => {
            let error = crate::error::chain(&e);
            return (
                vec![Action::new(format!("scontrol show node {name}"), ActionResult::Failed { error })],
                Disposition::Error,
            );
        }
    };
    match &decision.health {
        Health::Pass { .. } => resume(ctl, &node, dry_run),
        Health::Fail { .. } | Health::Hold { .. } => {
            let reason = drain_reason(&decision.health).unwrap_or_else(|| KILN_REASON_PREFIX.to_string());
            let kept_out = if matches!(decision.health, Health::Fail { .. }) {
                Disposition::Quarantined
            } else {
                Disposition::Held
            };
            let action = drain(ctl, &node, &reason, dry_run);
            let disposition =
                if matches!(action.result, ActionResult::Failed { .. }) { Disposition::Error } else { kept_out };
            (vec![action], disposition)
        }
    }
}

fn resume(ctl: &dyn SlurmControl, node: &SlurmNode, dry_run: bool) -> (Vec<Action>, Disposition) {
    let what = resume_command(&node.name);
    let reason = node.reason.clone().unwrap_or_else(|| "no reason given".into());
    if node.drained() || node.down() {
        if !node.reason_is_kiln() {
            let why = if node.drained() {
                format!("not resuming: drained by someone else ({reason})")
            } else {
                format!("not resuming: down, and not by kiln ({reason})")
            };
            return (vec![Action::new(what, ActionResult::Refused { why })], Disposition::LeftAlone);
        }
        if dry_run {
            return (vec![Action::new(what, ActionResult::WouldDo)], Disposition::HandedOff);
        }
        return match ctl.resume(&node.name) {
            Ok(Resumed::Done) => (vec![Action::new(what, ActionResult::Done)], Disposition::HandedOff),
            Ok(Resumed::AlreadyUp) => {
                let why = "slurm says the node is not drained".to_string();
                (vec![Action::new(what, ActionResult::AlreadyDone { why })], Disposition::HandedOff)
            }
            Err(e) => {
                let error = crate::error::chain(&e);
                (vec![Action::new(what, ActionResult::Failed { error })], Disposition::Error)
            }
        };
    }
    let why = format!("in service ({})", node.state_text());
    (vec![Action::new(what, ActionResult::AlreadyDone { why })], Disposition::HandedOff)
}

fn drain(ctl: &dyn SlurmControl, node: &SlurmNode, reason: &str, dry_run: bool) -> Action {
    let what = drain_command(&node.name, reason);
    if node.drained() {
        match node.reason.as_deref() {
            Some(r) if r == reason => {
                return Action::new(what, ActionResult::AlreadyDone { why: "drained with this reason".into() })
            }
            Some(r) if !node.reason_is_kiln() => {
                let why = format!("drained by someone else ({r}); their reason kept");
                return Action::new(what, ActionResult::AlreadyDone { why });
            }
            _ => {}
        }
    }
    if dry_run {
        return Action::new(what, ActionResult::WouldDo);
    }
    match ctl.drain(&node.name, reason) {
        Ok(()) => Action::new(what, ActionResult::Done),
        Err(e) => Action::new(what, ActionResult::Failed { error: crate::error::chain(&e) }),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::RunId;

    /// An in-memory slurmctld with its rules: RESUME of a node that is not
    /// drained or down fails, DRAIN needs a reason, unknown nodes fail.
    #[derive(Default)]
    struct FakeSlurm {
        nodes: RefCell<BTreeMap<String, SlurmNode>>,
        calls: RefCell<Vec<String>>,
    }

    impl FakeSlurm {
        fn with(nodes: &[(&str, &str, &[&str], Option<&str>)]) -> Self {
            let fake = FakeSlurm::default();
            for (name, state, flags, reason) in nodes {
                fake.nodes.borrow_mut().insert(
                    name.to_string(),
                    SlurmNode {
                        name: name.to_string(),
                        state: state.to_string(),
                        flags: flags.iter().map(|f| f.to_string()).collect(),
                        reason: reason.map(str::to_string),
                    },
                );
            }
            fake
        }
    }

    impl SlurmControl for FakeSlurm {
        fn show_node(&self, name: &str) -> Result<SlurmNode, SlurmError> {
            self.nodes.borrow().get(name).cloned().ok_or_else(|| SlurmError::UnknownNode { node: name.into() })
        }
        fn drain(&self, name: &str, reason: &str) -> Result<(), SlurmError> {
            self.calls.borrow_mut().push(format!("drain {name} {reason}"));
            let mut nodes = self.nodes.borrow_mut();
            let n = nodes.get_mut(name).ok_or_else(|| SlurmError::UnknownNode { node: name.into() })?;
            if !n.flags.contains(&"DRAIN".to_string()) {
                n.flags.push("DRAIN".into());
            }
            n.reason = Some(reason.into());
            Ok(())
        }
        fn resume(&self, name: &str) -> Result<Resumed, SlurmError> {
            self.calls.borrow_mut().push(format!("resume {name}"));
            let mut nodes = self.nodes.borrow_mut();
            let n = nodes.get_mut(name).ok_or_else(|| SlurmError::UnknownNode { node: name.into() })?;
            if !n.drained() && !n.down() {
                return Ok(Resumed::AlreadyUp);
            }
            n.flags.retain(|f| f != "DRAIN");
            n.reason = None;
            Ok(Resumed::Done)
        }
    }

    fn pass(node: &str) -> Decision {
        Decision { node: node.into(), state: None, health: Health::Pass { run: Some(RunId(4)), sign_off: false } }
    }

    fn fail(node: &str) -> Decision {
        Decision {
            node: node.into(),
            state: None,
            health: Health::Fail {
                checks: vec!["gpu.count".into()],
                run: Some(RunId(7)),
                reason: "gpu.count (run 7)".into(),
            },
        }
    }

    #[test]
    fn resumes_only_what_kiln_drained() {
        let fake = FakeSlurm::with(&[
            ("n1", "IDLE", &["DRAIN"], Some("kiln: gpu.count (run 3)")),
            ("n2", "IDLE", &["DRAIN"], Some("maintenance")),
            ("n3", "IDLE", &[], None),
        ]);
        let (a, d) = hand_off(&fake, &pass("n1"), false);
        assert_eq!((d, &a[0].result), (Disposition::HandedOff, &ActionResult::Done));
        let (a, d) = hand_off(&fake, &pass("n2"), false);
        assert_eq!(d, Disposition::LeftAlone);
        assert!(matches!(&a[0].result, ActionResult::Refused { why } if why.contains("maintenance")), "{a:?}");
        let (a, d) = hand_off(&fake, &pass("n3"), false);
        assert!(matches!(a[0].result, ActionResult::AlreadyDone { .. }));
        assert_eq!(d, Disposition::HandedOff);
        assert_eq!(*fake.calls.borrow(), vec!["resume n1"]);
        assert!(!fake.show_node("n1").expect("n1").drained());
        assert!(fake.show_node("n2").expect("n2").drained(), "the human's drain stays");
    }

    #[test]
    fn drains_with_a_kiln_reason_once_and_keeps_a_human_reason() {
        let fake = FakeSlurm::with(&[("n1", "IDLE", &[], None), ("n2", "IDLE", &["DRAIN"], Some("maintenance"))]);
        let (a, d) = hand_off(&fake, &fail("n1"), false);
        assert_eq!((d, &a[0].result), (Disposition::Quarantined, &ActionResult::Done));
        assert_eq!(fake.show_node("n1").expect("n1").reason.as_deref(), Some("kiln: gpu.count (run 7)"));
        let (a, _) = hand_off(&fake, &fail("n1"), false);
        assert!(matches!(a[0].result, ActionResult::AlreadyDone { .. }), "second run changes nothing: {a:?}");
        let (a, d) = hand_off(&fake, &fail("n2"), false);
        assert_eq!(d, Disposition::Quarantined);
        assert!(matches!(&a[0].result, ActionResult::AlreadyDone { why } if why.contains("someone else")));
        assert_eq!(fake.show_node("n2").expect("n2").reason.as_deref(), Some("maintenance"));
        assert_eq!(fake.calls.borrow().len(), 1);
    }

    #[test]
    fn dry_run_reads_but_never_writes() {
        let fake = FakeSlurm::with(&[("n1", "IDLE", &[], None), ("n2", "IDLE", &["DRAIN"], Some("kiln: x"))]);
        let (a, _) = hand_off(&fake, &fail("n1"), true);
        assert_eq!(a[0].result, ActionResult::WouldDo);
        let (a, _) = hand_off(&fake, &pass("n2"), true);
        assert_eq!(a[0].result, ActionResult::WouldDo);
        assert!(fake.calls.borrow().is_empty());
    }

    #[test]
    fn an_unknown_node_is_an_error() {
        let fake = FakeSlurm::default();
        let (a, d) = hand_off(&fake, &pass("zz"), false);
        assert_eq!(d, Disposition::Error);
        assert!(matches!(&a[0].result, ActionResult::Failed { error } if error.contains("zz")), "{a:?}");
    }
}
