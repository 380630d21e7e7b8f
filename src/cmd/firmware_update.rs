//! `kiln rack firmware update`: check every node, plan what is out of date, stage and check
//! every package the plans need (refused before anything is sent), then update the nodes
//! (`--parallel` at a time, one package at a time per BMC, a `one_at_a_time = "rack"` package on
//! one node of the rack at a time), activate, and check again. Every step is a lifecycle note;
//! a failed step leaves the node `failed` with `firmware: <component>: <step>: <cause>`; a rerun
//! plans only what is still out of date. `--dry-run` prints the plans and changes nothing.

use std::collections::BTreeSet;
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;

use crate::bmc::{RedfishBmc, RetryPolicy};
use crate::cli::RackFirmwareUpdateArgs;
use crate::cmd::firmware::{check_nodes, inputs, named, record_checks, ACTOR};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::exit;
use crate::firmware::apply::{apply_plan, ApplyOptions, StepError, StepEvent};
use crate::firmware::package::{stage, PackageServer, StagedPackage};
use crate::firmware::plan::{plan_node, NodePlan};
use crate::firmware::rack::{check_node, NodeCheck, NodeInput, NodeStatus};
use crate::firmware::recipe::{Exclusive, Method};
use crate::firmware::{load_set, Recipe};
use crate::inventory::{db_path, Inventory};
use crate::lifecycle::LifecycleState;
use crate::notice::{Notice, Notices};

pub const RACK_FIRMWARE_UPDATE_KIND: &str = "kiln.rack-firmware-update";
pub const RACK_FIRMWARE_UPDATE_SCHEMA_VERSION: u32 = 1;

/// What became of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateResult {
    /// Compliant before: nothing sent.
    UpToDate,
    /// `--dry-run`: the plan, nothing sent.
    Planned,
    /// Every planned package applied and activated; see `after` for the re-check.
    Updated,
    /// A step failed: the node is `failed`.
    Failed,
    /// Out of date, but nothing the recipe can send fixes it (see the plan's `blocked`).
    Blocked,
    /// Not checked (no BMC, unreachable, quarantined): nothing sent.
    Skipped,
}

/// One node's update.
#[derive(Debug, Clone, Serialize)]
pub struct NodeUpdate {
    pub node: String,
    /// Compliance before.
    pub before: NodeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<NodePlan>,
    pub result: UpdateResult,
    /// Why it failed or was skipped: `firmware: bmc: task: ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every step started and done.
    pub steps: Vec<StepEvent>,
    /// Compliance after (the re-check), when one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<NodeStatus>,
    /// The firmware run the re-check was recorded as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_run_id: Option<i64>,
    /// Lifecycle writes that failed (the update itself went on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_logged: Vec<String>,
}

/// The document `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RackFirmwareUpdate {
    pub schema_version: u32,
    pub kind: &'static str,
    pub rack: String,
    pub recipe: String,
    pub dry_run: bool,
    pub exit_code: i32,
    pub nodes: Vec<NodeUpdate>,
}

pub fn run(args: &RackFirmwareUpdateArgs, notices: &dyn Notices) -> CmdResult {
    let manifest = crate::cmd::rack::load(&args.rack, &args.nodes)?;
    let nodes = manifest.select(&args.nodes).map_err(CmdError::RackNodes)?;
    let recipes = load_set(args.checks_dir.as_deref())?;
    let loaded = named(&recipes, &args.recipe)?;
    let recipe = &loaded.recipe;
    let db = db_path(args.db.db.as_deref());
    // A dry run reads the inventory if there is one and writes nothing.
    let mut inventory = if args.dry_run {
        match db.exists() {
            true => Some(Inventory::open_read_only(&db)?),
            false => None,
        }
    } else {
        Some(Inventory::open(&db)?)
    };
    let inputs = match &inventory {
        Some(inv) => inputs(&manifest, &nodes, &recipes, Some(&args.recipe), inv)?,
        None => nodes
            .iter()
            .map(|n| NodeInput {
                node: n.name.clone(),
                position: n.slot.clone(),
                target: crate::bmc::rack_target::target_from_manifest(&manifest, &n.name)
                    .map_err(|e| crate::error::chain(&e)),
                recipe: Ok(loaded),
                inspected: Err("no inventory".into()),
            })
            .collect(),
    };
    let before = check_nodes(&inputs, args.parallel);
    let quarantined: BTreeSet<String> = match &inventory {
        Some(inv) => nodes
            .iter()
            .filter(|n| {
                let place = format!("{}/{}", manifest.rack.id, n.name);
                matches!(inv.state(&place), Ok(LifecycleState::Quarantined { .. }))
            })
            .map(|n| n.name.clone())
            .collect(),
        None => BTreeSet::new(),
    };
    let plans: Vec<Option<NodePlan>> = before
        .iter()
        .map(|c| {
            c.compliance
                .as_ref()
                .filter(|_| c.status != NodeStatus::Unreachable && !quarantined.contains(&c.node))
                .map(|comp| plan_node(recipe, &c.node, comp))
        })
        .collect();

    // Every package any plan sends, checked before anything is sent (a dry run checks them in
    // a directory it removes).
    let needed: BTreeSet<&str> =
        plans.iter().flatten().flat_map(|p| p.updates.iter().map(|u| u.package.as_str())).collect();
    let scratch = Scratch::new().context("make a staging directory")?;
    let staging = match (&args.staging, args.dry_run) {
        (Some(dir), false) => dir.clone(),
        _ => scratch.0.clone(),
    };
    let mut staged = Vec::new();
    for id in &needed {
        let package = recipe
            .package(id)
            .ok_or_else(|| CmdError::BadInput(format!("recipe {} names no package {id}", recipe.name)))?;
        staged.push(stage(package, &args.packages, &staging)?);
    }

    if args.dry_run {
        let updates =
            before.into_iter().zip(plans).map(|(c, plan)| planned(c, plan, &quarantined, true)).collect::<Vec<_>>();
        return finish(&manifest.rack.id, recipe, true, updates, args.json);
    }
    let Some(inventory) = inventory.as_mut() else {
        return Err(CmdError::BadInput("no inventory to record the update in".into()).into());
    };

    // The package server, when a plan uses SimpleUpdate.
    let uses_simple = plans.iter().flatten().any(|p| p.updates.iter().any(|u| u.method == Method::SimpleUpdate));
    let server = match uses_simple {
        true => Some(PackageServer::start(&staging, args.listen)?),
        false => None,
    };
    let image_base = server.as_ref().map(|s| match &args.advertise {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", s.addr()),
    });
    if let (Some(s), Some(base)) = (&server, &image_base) {
        notices.notice(Notice::Note(&format!("serving firmware packages on {} as {base}", s.addr())));
    }
    let opts = ApplyOptions { task_poll: args.task_poll, image_base, ..ApplyOptions::default() };

    // The check the plans come from and the plans themselves go on record before any BMC is
    // asked to change anything.
    let before = record_checks(inventory, &manifest, before, ACTOR);
    for (c, plan) in before.iter().zip(&plans) {
        if let Some(plan) = plan.as_ref().filter(|p| !p.is_empty()) {
            let summary = plan_summary(plan);
            inventory
                .note(&c.node, ACTOR, &format!("firmware update planned ({}): {summary}", recipe.name), None)
                .map_err(|source| CmdError::InventoryDoing {
                    doing: format!("not updating {}: the plan could not be recorded in {}", c.node, db.display()),
                    source,
                })?;
        }
    }

    let shared = Mutex::new(&mut *inventory);
    let rack_lock = Mutex::new(());
    let work: Vec<(NodeCheck, Option<NodePlan>, &NodeInput<'_>)> =
        before.into_iter().zip(plans).zip(&inputs).map(|((c, p), i)| (c, p, i)).collect();
    let mut updates = crate::fleet::map_bounded(&work, args.parallel.max(1), |(c, plan, input)| {
        let Some(plan) = plan.as_ref().filter(|p| !p.is_empty()) else {
            return planned(c.clone(), plan.clone(), &quarantined, false);
        };
        update_node(c, plan, input, &staged, &opts, &shared, &rack_lock, notices)
    });
    notices.clear_status();

    // The re-checks, recorded as firmware runs.
    let rechecked: Vec<NodeCheck> = updates
        .iter()
        .zip(&work)
        .filter(|(u, _)| u.result == UpdateResult::Updated)
        .map(|(u, (before, _, input))| {
            let again = recheck_input(input, before, u.plan.as_ref());
            check_node(&again, &RetryPolicy::default())
        })
        .collect();
    let rechecked = record_checks(inventory, &manifest, rechecked, ACTOR);
    for after in rechecked {
        if let Some(u) = updates.iter_mut().find(|u| u.node == after.node) {
            u.after = Some(after.status);
            u.after_run_id = after.run_id;
            if let Some(e) = after.record_error {
                u.not_logged.push(e);
            }
            // A node kiln failed for its firmware, now compliant, goes back to enrolled to be
            // qualified again on its new firmware.
            if after.status == NodeStatus::Compliant {
                if let Ok(LifecycleState::Failed { reason }) = inventory.state(&u.node) {
                    if reason.starts_with("firmware: ") {
                        let cause = "firmware update completed and the node is compliant: qualify it again";
                        if let Err(e) = inventory.transition(&u.node, &LifecycleState::Enrolled, ACTOR, cause) {
                            u.not_logged.push(crate::error::chain(&e));
                        }
                    }
                }
            }
        }
    }
    drop(server);
    finish(&manifest.rack.id, recipe, false, updates, args.json)
}

/// What the re-check reads: the BMC again, and the recorded inspection only when no updated
/// component is read in-band (an inspection from before the update would show the old
/// versions; those components are then unreadable until the node is inspected again).
fn recheck_input<'a>(input: &NodeInput<'a>, before: &NodeCheck, plan: Option<&NodePlan>) -> NodeInput<'a> {
    let updated: Vec<&str> = plan
        .map(|p| p.updates.iter().flat_map(|u| u.components.iter().map(String::as_str)).collect())
        .unwrap_or_default();
    let stale = before
        .entries
        .iter()
        .any(|e| e.source == "inband" && e.component.as_deref().is_some_and(|c| updated.contains(&c)));
    let inspected = match &input.inspected {
        Ok((run, _)) if stale => Err(format!(
            "the recorded inspection (run {run}) is from before the update: inspect the node again (kiln rack inspect) to read its in-band versions"
        )),
        Ok((run, node)) => Ok((*run, node.clone())),
        Err(why) => Err(why.clone()),
    };
    NodeInput {
        node: input.node.clone(),
        position: input.position.clone(),
        target: input.target.clone(),
        recipe: input.recipe.clone(),
        inspected,
    }
}

/// A staging directory of kiln's own under the system's temporary directory, removed with
/// what it holds when the command ends.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("kiln-firmware-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Ours alone, made by `new`; a failure leaves a directory in the temp, nothing else.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A node nothing is sent to: up to date, blocked, skipped, or (dry run) planned.
fn planned(c: NodeCheck, plan: Option<NodePlan>, quarantined: &BTreeSet<String>, dry_run: bool) -> NodeUpdate {
    let (result, reason) = if quarantined.contains(&c.node) {
        (UpdateResult::Skipped, Some("quarantined: release it first (kiln node release)".to_string()))
    } else {
        match &plan {
            None => (UpdateResult::Skipped, c.problem.clone().or_else(|| Some(c.status.as_str().to_string()))),
            Some(p) if !p.is_empty() && dry_run => (UpdateResult::Planned, None),
            Some(p) if !p.blocked.is_empty() => (
                UpdateResult::Blocked,
                Some(p.blocked.iter().map(|b| format!("{}: {}", b.component, b.why)).collect::<Vec<_>>().join("; ")),
            ),
            Some(_) => (UpdateResult::UpToDate, None),
        }
    };
    NodeUpdate {
        node: c.node,
        before: c.status,
        plan,
        result,
        reason,
        steps: Vec::new(),
        after: None,
        after_run_id: None,
        not_logged: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn update_node(
    c: &NodeCheck,
    plan: &NodePlan,
    input: &NodeInput<'_>,
    staged: &[StagedPackage],
    opts: &ApplyOptions,
    inventory: &Mutex<&mut Inventory>,
    rack_lock: &Mutex<()>,
    notices: &dyn Notices,
) -> NodeUpdate {
    let mut out = NodeUpdate {
        node: c.node.clone(),
        before: c.status,
        plan: Some(plan.clone()),
        result: UpdateResult::Updated,
        reason: None,
        steps: Vec::new(),
        after: None,
        after_run_id: None,
        not_logged: Vec::new(),
    };
    let log = |cause: &str, not_logged: &mut Vec<String>| {
        let written = match inventory.lock() {
            Ok(mut inv) => inv.note(&c.node, ACTOR, cause, None).map_err(|e| crate::error::chain(&e)),
            Err(_) => Err("the inventory lock was poisoned".to_string()),
        };
        if let Err(e) = written {
            not_logged.push(e);
        }
    };
    // A package the recipe sends to one node of the rack at a time holds the rack's turn for
    // this node's whole update.
    let exclusive = plan.updates.iter().any(|u| u.one_at_a_time == Exclusive::Rack);
    let _turn = exclusive.then(|| rack_lock.lock().unwrap_or_else(|e| e.into_inner()));
    let result = match &input.target {
        Err(why) => Err(StepError {
            node: c.node.clone(),
            component: "bmc".into(),
            step: crate::firmware::apply::Step::Discover,
            cause: why.clone(),
        }),
        Ok(target) => match RedfishBmc::connect(target) {
            Err(e) => Err(StepError {
                node: c.node.clone(),
                component: plan.updates.first().map(|u| u.components.join("+")).unwrap_or_default(),
                step: crate::firmware::apply::Step::Discover,
                cause: crate::error::chain(&e),
            }),
            Ok(bmc) => {
                let mut steps = Vec::new();
                let mut not_logged = Vec::new();
                let r = apply_plan(&bmc, plan, staged, opts, &mut |e: &StepEvent| {
                    if e.state == "progress" {
                        notices.status(&format!("{}: {} {}: {}", e.node, e.component, e.step, e.detail));
                        return;
                    }
                    let cause = format!("firmware {}: {} {}: {}", e.component, e.step, e.state, e.detail);
                    notices.progress(&format!("{}: {cause}", e.node));
                    log(&cause, &mut not_logged);
                    steps.push(e.clone());
                });
                out.steps = steps;
                out.not_logged = not_logged;
                r.map(|_| ())
            }
        },
    };
    if let Err(e) = result {
        let reason = e.reason();
        out.result = UpdateResult::Failed;
        out.reason = Some(reason.clone());
        let moved = match inventory.lock() {
            Ok(mut inv) => inv
                .transition(&c.node, &LifecycleState::Failed { reason: reason.clone() }, ACTOR, &reason)
                .map(|_| ())
                .map_err(|e| crate::error::chain(&e)),
            Err(_) => Err("the inventory lock was poisoned".to_string()),
        };
        if let Err(e) = moved {
            out.not_logged.push(e);
        }
    }
    out
}

fn plan_summary(plan: &NodePlan) -> String {
    let mut parts: Vec<String> = plan
        .updates
        .iter()
        .map(|u| format!("{} ({}) for {}", u.package, u.method.as_str(), u.components.join(", ")))
        .collect();
    if plan.activation != crate::firmware::Activation::None {
        parts.push(format!("then {}", plan.activation.as_str()));
    }
    parts.join(", ")
}

/// In order: any node failed or still out of date after its update (or blocked): 1; any node
/// skipped (unreachable, not checked): 6 when a BMC could not be reached, else 3; a lifecycle
/// write that failed: 5; else 0.
fn exit_code(nodes: &[NodeUpdate]) -> i32 {
    let still_stale = |n: &NodeUpdate| matches!(n.after, Some(NodeStatus::NonCompliant));
    if nodes.iter().any(|n| matches!(n.result, UpdateResult::Failed | UpdateResult::Blocked) || still_stale(n)) {
        exit::CHECK_FAILED
    } else if nodes.iter().any(|n| n.result == UpdateResult::Skipped && n.before == NodeStatus::Unreachable) {
        exit::PEER
    } else if nodes.iter().any(|n| !n.not_logged.is_empty()) {
        exit::DATABASE
    } else if nodes.iter().any(|n| {
        n.result == UpdateResult::Skipped || matches!(n.after, Some(NodeStatus::Unreadable | NodeStatus::Unreachable))
    }) {
        exit::CHECK_ERROR
    } else {
        exit::OK
    }
}

fn finish(rack: &str, recipe: &Recipe, dry_run: bool, nodes: Vec<NodeUpdate>, json: bool) -> CmdResult {
    let doc = RackFirmwareUpdate {
        schema_version: RACK_FIRMWARE_UPDATE_SCHEMA_VERSION,
        kind: RACK_FIRMWARE_UPDATE_KIND,
        rack: rack.to_string(),
        recipe: recipe.name.clone(),
        dry_run,
        exit_code: exit_code(&nodes),
        nodes,
    };
    if json {
        crate::terminal::json(&doc).context("serialize the firmware update")?;
    } else {
        crate::terminal::print(&render(&doc));
    }
    Ok(Outcome::exit(doc.exit_code))
}

fn render(doc: &RackFirmwareUpdate) -> String {
    let mut out = String::new();
    if doc.dry_run {
        out.push_str(&format!("dry run: nothing was sent (recipe {})\n", doc.recipe));
    }
    for n in &doc.nodes {
        let result = match n.result {
            UpdateResult::UpToDate => "up to date".to_string(),
            UpdateResult::Planned => "would update".to_string(),
            UpdateResult::Updated => "updated".to_string(),
            UpdateResult::Failed => "FAILED".to_string(),
            UpdateResult::Blocked => "blocked".to_string(),
            UpdateResult::Skipped => "skipped".to_string(),
        };
        out.push_str(&format!("{}: {result}", n.node));
        if let Some(after) = n.after {
            out.push_str(&format!(", then {}", after.as_str()));
        }
        if let Some(r) = &n.reason {
            out.push_str(&format!(": {r}"));
        }
        out.push('\n');
        if let Some(plan) = &n.plan {
            for u in &plan.updates {
                out.push_str(&format!(
                    "  {} {} ({}) -> {}\n",
                    u.method.as_str(),
                    u.package,
                    u.components.join(", "),
                    if u.targets.is_empty() { "-".to_string() } else { u.targets.join(", ") }
                ));
            }
            if !plan.is_empty() && plan.activation != crate::firmware::Activation::None {
                out.push_str(&format!("  then {}\n", plan.activation.as_str()));
            }
            for b in &plan.blocked {
                out.push_str(&format!("  blocked {}: {}\n", b.component, b.why));
            }
        }
        for e in &n.not_logged {
            out.push_str(&format!("  not logged: {e}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Component, Verdict};
    use crate::firmware::plan::PlannedUpdate;
    use crate::firmware::{Activation, Entry, Status};

    fn entry(component: &str, source: &'static str) -> Entry {
        Entry {
            component: Some(component.into()),
            name: component.into(),
            place: component.into(),
            source,
            target: None,
            reported: Some("1".into()),
            pinned: Some("2".into()),
            status: Status::Older,
            detail: None,
            advisory: false,
            example: false,
            accept_newer: false,
            part: Component::node(),
        }
    }

    fn plan_for(components: &[&str]) -> NodePlan {
        NodePlan {
            node: "n1".into(),
            recipe: "r".into(),
            updates: vec![PlannedUpdate {
                package: "p".into(),
                method: Method::MultipartPush,
                components: components.iter().map(|c| c.to_string()).collect(),
                targets: Vec::new(),
                apply_time: None,
                delay_s: 0,
                one_at_a_time: Exclusive::Bmc,
                task_timeout_s: 10,
            }],
            activation: Activation::None,
            blocked: Vec::new(),
        }
    }

    #[test]
    fn an_inspection_from_before_the_update_is_not_used_for_what_the_update_changed_in_band() {
        let node = crate::hw::fixture::sample::hgx_b200_node("n1");
        let input = NodeInput {
            node: "n1".into(),
            position: None,
            target: Err("no BMC in this test".into()),
            recipe: Err("no recipe in this test".into()),
            inspected: Ok((7, node)),
        };
        let before = NodeCheck {
            node: "n1".into(),
            position: None,
            bmc: None,
            recipe: None,
            platform: None,
            inband: "run 7".into(),
            status: NodeStatus::NonCompliant,
            problem: None,
            entries: vec![entry("bmc", "redfish-inventory"), entry("vbios", "inband")],
            verdict: Verdict::Fail,
            run_id: None,
            record_error: None,
            findings: Vec::new(),
            compliance: None,
            inspected: None,
        };
        let bmc_only = recheck_input(&input, &before, Some(&plan_for(&["bmc"])));
        assert!(matches!(bmc_only.inspected, Ok((7, _))), "the BMC's update leaves the inspection valid");
        let vbios = recheck_input(&input, &before, Some(&plan_for(&["bmc", "vbios"])));
        let why = vbios.inspected.expect_err("stale for the VBIOS");
        assert!(why.contains("run 7") && why.contains("kiln rack inspect"), "{why}");
    }
}
