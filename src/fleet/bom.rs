//! A rack validate judged against the rack's bill of materials: the node's inspected model (in its
//! validate JSON) against the node's BOM entry and its platform's, on the controller, as
//! `kiln validate --bom` judges it on the node.

use serde::Deserialize;

use super::fanout::findings_reason;
use super::outcome::{NodeOutcome, NodeStatus, Step};
use crate::checks::bom::Bom;
use crate::checks::Verdict;
use crate::report::findings::ValidateReport;

/// `o` with the BOM's findings after the node's own, its report's verdict and summary counted
/// again and its status and reason following them: a node that passed its spec but holds the
/// wrong GPU fails, with the slot and the action in its findings. `None` when there is nothing
/// to judge: not a validate, a node that did not run to its end, or a report without the node
/// model (recording says why that report is unreadable).
pub fn judged(o: &NodeOutcome, bom: &Bom) -> Option<NodeOutcome> {
    if o.step != Step::Validate
        || o.failure.is_some()
        || !matches!(o.status, NodeStatus::Pass | NodeStatus::Fail | NodeStatus::Error)
    {
        return None;
    }
    let report = ValidateReport::deserialize(o.report.as_ref()?).ok()?;
    let node = report.inspected.as_ref()?;
    let more = bom.judge(node, &o.node, &report.platform);
    let report = report.with_findings(more);
    let json = serde_json::to_value(&report).ok()?;
    let mut out = o.clone();
    let status = match report.verdict {
        Verdict::Fail => NodeStatus::Fail,
        Verdict::Error if o.status == NodeStatus::Pass => NodeStatus::Error,
        _ => o.status,
    };
    if status != o.status {
        let word = if status == NodeStatus::Fail { "fail" } else { "error" };
        out.reason = findings_reason(Some(&json), word);
    }
    out.status = status;
    out.verdict = Some(report.verdict.as_str().to_string());
    out.report = Some(json);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::bom::{BomNode, ExpectedPart};
    use crate::checks::detect::Selection;
    use crate::inventory::now;

    fn validated(name: &str) -> NodeOutcome {
        let node = crate::hw::fixture::sample::hgx_b200_node("hgx-b200-01");
        let report = ValidateReport::new("hgx-b200-01", "hgx-b200", "built-in", Selection::Detected, Vec::new());
        let report = ValidateReport { inspected: Some(node), ..report };
        NodeOutcome {
            node: name.into(),
            step: Step::Validate,
            status: NodeStatus::Pass,
            started: now(),
            finished: now(),
            duration_ms: 1,
            remote_exit: Some(0),
            verdict: Some("pass".into()),
            failure: None,
            reason: None,
            binary: None,
            report: serde_json::to_value(&report).ok(),
            recorded: None,
        }
    }

    #[test]
    fn a_wrong_serial_fails_a_node_that_passed_its_spec_by_its_manifest_name() {
        let o = validated("tray03");
        let node = crate::hw::fixture::sample::hgx_b200_node("hgx-b200-01");
        let gpu = crate::inventory::components_of(&node).into_iter().find(|p| p.kind == "gpu").expect("a GPU");
        let place = format!("gpu{}", gpu.extra.get("index").and_then(serde_json::Value::as_u64).unwrap_or(0));
        let part = |serial: &str| ExpectedPart { kind: "gpu".into(), place: place.clone(), serial: serial.into() };
        let entry =
            |serial: &str| BomNode { name: Some("tray03".into()), parts: vec![part(serial)], ..BomNode::default() };

        let right = Bom { node: vec![entry(gpu.serial.as_deref().unwrap_or_default())], ..Bom::default() };
        let same = judged(&o, &right).expect("judged");
        assert_eq!((same.status, same.verdict.as_deref(), same.reason), (NodeStatus::Pass, Some("pass"), None));

        let wrong = Bom { node: vec![entry("WRONG-1")], ..Bom::default() };
        let failed = judged(&o, &wrong).expect("judged");
        assert_eq!((failed.status, failed.verdict.as_deref()), (NodeStatus::Fail, Some("fail")));
        let reason = failed.reason.unwrap_or_default();
        assert!(reason.starts_with("bom.serial ") && reason.contains("WRONG-1"), "{reason}");
        let report = ValidateReport::deserialize(failed.report.as_ref().expect("report")).expect("a report");
        assert_eq!((report.summary.fail, report.verdict), (1, Verdict::Fail));

        // Another node's entry does not judge this one.
        let other = Bom { node: vec![BomNode { name: Some("tray04".into()), ..entry("WRONG-1") }], ..Bom::default() };
        assert_eq!(judged(&o, &other).expect("judged").status, NodeStatus::Pass);
        // A node that could not run has nothing to judge.
        let lost = NodeOutcome { status: NodeStatus::PeerError, report: None, ..o };
        assert!(judged(&lost, &wrong).is_none());
    }
}
