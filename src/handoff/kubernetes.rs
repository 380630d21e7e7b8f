//! Hand-off to Kubernetes: label each node with kiln's verdict and run, taint and cordon failing
//! nodes, and uncordon passing nodes only when kiln cordoned them.
//!
//! Every change to one node goes in one JSON merge patch that carries the
//! node's `resourceVersion`, so a node changed by someone else in between is
//! refused by the API server (409) and re-read, rather than overwritten.
//! Merge patch replaces lists whole, which is why the taint list is sent
//! complete: everyone else's taints as read, plus or minus kiln's own.

use serde_json::{json, Map, Value};

use super::kube_api::KubeNodes;
use super::outcome::{Action, ActionResult, Disposition};
use super::{Decision, Health, KubeError};

/// kiln's verdict on the node: `pass`, `fail` or `hold`.
pub const HEALTH_LABEL: &str = "kiln.dev/health";
/// The inventory run the verdict rests on.
pub const RUN_LABEL: &str = "kiln.dev/run";
/// Set to `true` when kiln cordoned the node, so kiln uncordons only its own.
pub const CORDONED_ANNOTATION: &str = "kiln.dev/cordoned";
/// The taint kiln puts on failing and held nodes (`kiln.dev/health=fail:NoSchedule`).
pub const TAINT_KEY: &str = "kiln.dev/health";

/// How often a patch refused for a changed resourceVersion is retried.
const CONFLICT_TRIES: u32 = 3;

/// One step of a node's plan.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    what: String,
    /// `None`: the patch makes this change. `Some`: nothing to send, and why.
    unchanged: Option<ActionResult>,
}

/// The changes one node needs and the merge patch that makes them.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    steps: Vec<Step>,
    patch: Value,
    /// Someone else cordoned a node that should be in service.
    left_alone: bool,
}

fn labels_of<'a>(node: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    node.get("metadata")?.get(field)?.as_object()
}

fn text<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    map?.get(key)?.as_str()
}

/// Decide the changes for `node` (the object as read) given `health`.
fn plan(node: &Value, health: &Health) -> Plan {
    let labels = labels_of(node, "labels");
    let annotations = labels_of(node, "annotations");
    let spec = node.get("spec");
    let unschedulable = spec.and_then(|s| s.get("unschedulable")).and_then(Value::as_bool).unwrap_or(false);
    let taints: Vec<Value> = spec.and_then(|s| s.get("taints")).and_then(Value::as_array).cloned().unwrap_or_default();
    let kiln_cordoned = text(annotations, CORDONED_ANNOTATION) == Some("true");

    let mut steps = Vec::new();
    let mut metadata = Map::new();
    let mut new_labels = Map::new();
    let mut new_annotations = Map::new();
    let mut new_spec = Map::new();
    let already = |why: &str| Some(ActionResult::AlreadyDone { why: why.to_string() });

    let verdict = health.name();
    let what = format!("label {HEALTH_LABEL}={verdict}");
    if text(labels, HEALTH_LABEL) == Some(verdict) {
        steps.push(Step { what, unchanged: already("labelled") });
    } else {
        new_labels.insert(HEALTH_LABEL.into(), json!(verdict));
        steps.push(Step { what, unchanged: None });
    }
    if let Some(run) = health.run() {
        let id = run.0.to_string();
        let what = format!("label {RUN_LABEL}={id}");
        if text(labels, RUN_LABEL) == Some(id.as_str()) {
            steps.push(Step { what, unchanged: already("labelled") });
        } else {
            new_labels.insert(RUN_LABEL.into(), json!(id));
            steps.push(Step { what, unchanged: None });
        }
    }

    let is_ours = |t: &Value| t.get("key").and_then(Value::as_str) == Some(TAINT_KEY);
    let others: Vec<Value> = taints.iter().filter(|t| !is_ours(t)).cloned().collect();
    let ours = taints.iter().find(|t| is_ours(t));
    let mut left_alone = false;
    match health {
        Health::Pass { .. } => {
            let what = format!("remove taint {TAINT_KEY}");
            if ours.is_some() {
                new_spec.insert("taints".into(), Value::Array(others));
                steps.push(Step { what, unchanged: None });
            } else {
                steps.push(Step { what, unchanged: already("not tainted by kiln") });
            }
            let what = "uncordon".to_string();
            match (unschedulable, kiln_cordoned) {
                (true, true) => {
                    new_spec.insert("unschedulable".into(), json!(false));
                    new_annotations.insert(CORDONED_ANNOTATION.into(), Value::Null);
                    steps.push(Step { what, unchanged: None });
                }
                (true, false) => {
                    left_alone = true;
                    let why = "not uncordoning: cordoned by someone else".to_string();
                    steps.push(Step { what, unchanged: Some(ActionResult::Refused { why }) });
                }
                (false, mark) => {
                    // Someone uncordoned a node kiln cordoned: drop kiln's stale mark.
                    if mark {
                        new_annotations.insert(CORDONED_ANNOTATION.into(), Value::Null);
                    }
                    steps.push(Step { what, unchanged: already("schedulable") });
                }
            }
        }
        Health::Fail { .. } | Health::Hold { .. } => {
            let taint = json!({"key": TAINT_KEY, "value": verdict, "effect": "NoSchedule"});
            let what = format!("taint {TAINT_KEY}={verdict}:NoSchedule");
            let same = ours.is_some_and(|t| {
                t.get("value").and_then(Value::as_str) == Some(verdict)
                    && t.get("effect").and_then(Value::as_str) == Some("NoSchedule")
            });
            if same {
                steps.push(Step { what, unchanged: already("tainted") });
            } else {
                let mut all = others;
                all.push(taint);
                new_spec.insert("taints".into(), Value::Array(all));
                steps.push(Step { what, unchanged: None });
            }
            let what = "cordon".to_string();
            match (unschedulable, kiln_cordoned) {
                (false, _) => {
                    new_spec.insert("unschedulable".into(), json!(true));
                    new_annotations.insert(CORDONED_ANNOTATION.into(), json!("true"));
                    steps.push(Step { what, unchanged: None });
                }
                (true, true) => steps.push(Step { what, unchanged: already("cordoned by kiln") }),
                (true, false) => {
                    steps.push(Step { what, unchanged: already("cordoned by someone else; left to them") })
                }
            }
        }
    }

    if !new_labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(new_labels));
    }
    if !new_annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(new_annotations));
    }
    let mut patch = Map::new();
    if !metadata.is_empty() || !new_spec.is_empty() {
        if let Some(rv) = node.get("metadata").and_then(|m| m.get("resourceVersion")).cloned() {
            metadata.insert("resourceVersion".into(), rv);
        }
        patch.insert("metadata".into(), Value::Object(metadata));
        if !new_spec.is_empty() {
            patch.insert("spec".into(), Value::Object(new_spec));
        }
    }
    Plan { steps, patch: Value::Object(patch), left_alone }
}

fn disposition(health: &Health, left_alone: bool) -> Disposition {
    match health {
        Health::Pass { .. } if left_alone => Disposition::LeftAlone,
        Health::Pass { .. } => Disposition::HandedOff,
        Health::Fail { .. } => Disposition::Quarantined,
        Health::Hold { .. } => Disposition::Held,
    }
}

fn failed(what: String, e: KubeError) -> (Vec<Action>, Disposition) {
    (vec![Action::new(what, ActionResult::Failed { error: crate::error::chain(&e) })], Disposition::Error)
}

/// Hand one node to Kubernetes as `decision` says (with `dry_run`, read the
/// node and say what would change). Returns the actions and where the node
/// ended up; nothing here writes the inventory.
pub fn hand_off(api: &dyn KubeNodes, decision: &Decision, dry_run: bool) -> (Vec<Action>, Disposition) {
    let name = decision.node.as_str();
    let mut tries = 0;
    loop {
        tries += 1;
        let node = match api.get_node(name) {
            Ok(n) => n,
            Err(e) => return failed(format!("GET /api/v1/nodes/{name}"), e),
        };
        let plan = plan(&node, &decision.health);
        let changing = plan.steps.iter().any(|s| s.unchanged.is_none());
        let result_of = |s: &Step, done: &ActionResult| s.unchanged.clone().unwrap_or_else(|| done.clone());
        if !changing || dry_run {
            let actions =
                plan.steps.iter().map(|s| Action::new(s.what.clone(), result_of(s, &ActionResult::WouldDo))).collect();
            return (actions, disposition(&decision.health, plan.left_alone));
        }
        match api.patch_node(name, &plan.patch) {
            Ok(_) => {
                tracing::info!(node = name, health = decision.health.name(), "kubernetes node patched");
                let actions =
                    plan.steps.iter().map(|s| Action::new(s.what.clone(), result_of(s, &ActionResult::Done))).collect();
                return (actions, disposition(&decision.health, plan.left_alone));
            }
            Err(KubeError::Status { status: 409, .. }) if tries < CONFLICT_TRIES => continue,
            Err(KubeError::Status { status: 409, .. }) => {
                return failed(
                    format!("PATCH /api/v1/nodes/{name}"),
                    KubeError::Conflict { node: name.to_string(), tries },
                )
            }
            Err(e) => return failed(format!("PATCH /api/v1/nodes/{name}"), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::RunId;

    fn node(unschedulable: bool, annotated: bool, taints: Value) -> Value {
        let mut annotations = json!({});
        if annotated {
            annotations[CORDONED_ANNOTATION] = json!("true");
        }
        json!({"metadata": {"name": "n1", "resourceVersion": "41", "labels": {"zone": "a"}, "annotations": annotations},
               "spec": {"unschedulable": unschedulable, "taints": taints}})
    }

    fn fail() -> Health {
        Health::Fail { checks: vec!["gpu.count".into()], run: Some(RunId(9)), reason: "gpu.count (run 9)".into() }
    }

    #[test]
    fn a_failing_node_is_labelled_tainted_and_cordoned_keeping_other_taints() {
        let other = json!({"key": "gpu", "value": "true", "effect": "NoSchedule"});
        let p = plan(&node(false, false, json!([other.clone()])), &fail());
        assert_eq!(
            p.patch,
            json!({"metadata": {"resourceVersion": "41",
                                "labels": {HEALTH_LABEL: "fail", RUN_LABEL: "9"},
                                "annotations": {CORDONED_ANNOTATION: "true"}},
                   "spec": {"unschedulable": true,
                            "taints": [other, {"key": TAINT_KEY, "value": "fail", "effect": "NoSchedule"}]}})
        );
    }

    #[test]
    fn a_passing_node_is_uncordoned_only_when_kiln_cordoned_it() {
        let ours = json!([{"key": TAINT_KEY, "value": "fail", "effect": "NoSchedule"}]);
        let pass = Health::Pass { run: Some(RunId(10)), sign_off: false };
        let p = plan(&node(true, true, ours.clone()), &pass);
        assert_eq!(p.patch["spec"], json!({"unschedulable": false, "taints": []}));
        assert_eq!(p.patch["metadata"]["annotations"], json!({CORDONED_ANNOTATION: null}));
        assert!(!p.left_alone);
        let p = plan(&node(true, false, ours), &pass);
        assert!(p.left_alone);
        assert!(p.patch["spec"].get("unschedulable").is_none(), "someone else's cordon stays: {}", p.patch);
    }

    #[test]
    fn a_node_already_as_wanted_gets_no_patch() {
        let mut n = node(true, true, json!([{"key": TAINT_KEY, "value": "fail", "effect": "NoSchedule"}]));
        n["metadata"]["labels"][HEALTH_LABEL] = json!("fail");
        n["metadata"]["labels"][RUN_LABEL] = json!("9");
        let p = plan(&n, &fail());
        assert_eq!(p.patch, json!({}));
        assert!(p.steps.iter().all(|s| s.unchanged.is_some()));
    }
}
