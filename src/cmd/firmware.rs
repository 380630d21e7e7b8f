//! `kiln rack firmware check|update`: every node's firmware against its recipe, through the
//! BMCs (docs/firmware.md).

use anyhow::Context;

use crate::bmc::rack_target::target_from_manifest;
use crate::bmc::RetryPolicy;
use crate::cli::{RackFirmwareArgs, RackFirmwareCommand};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::firmware::rack::{check_node, render_table, NodeCheck, NodeInput, NodeStatus, RackFirmware};
use crate::firmware::{load_set, LoadedRecipe, RecipeError};
use crate::inventory::{db_path, now, FirmwareCheckRecord, Inventory, InventoryError};
use crate::notice::Notices;
use crate::rack::{RackManifest, RackNode};

/// Who the inventory names for firmware checks and updates.
pub const ACTOR: &str = "kiln rack firmware";

pub fn run(cmd: RackFirmwareCommand, notices: &dyn Notices) -> CmdResult {
    match cmd {
        RackFirmwareCommand::Check(a) => check(&a),
        RackFirmwareCommand::Update(a) => crate::cmd::firmware_update::run(&a, notices),
    }
}

/// `kiln rack firmware check`: the manifest, the recipes and the inventory are read (and a bad
/// one refused) before any BMC is touched; then every node's BMC is read (`--parallel` at a
/// time), judged, recorded as a run of kind `firmware`, and printed.
fn check(args: &RackFirmwareArgs) -> CmdResult {
    let manifest = crate::cmd::rack::load(&args.rack, &args.nodes)?;
    let nodes = manifest.select(&args.nodes).map_err(CmdError::RackNodes)?;
    let recipes = load_set(args.checks_dir.as_deref())?;
    if let Some(name) = &args.recipe {
        named(&recipes, name)?;
    }
    let db = db_path(args.db.db.as_deref());
    let mut inventory = Inventory::open(&db)?;
    let inputs = inputs(&manifest, &nodes, &recipes, args.recipe.as_deref(), &inventory)?;
    let checked = check_nodes(&inputs, args.parallel);
    let checked = record_checks(&mut inventory, &manifest, checked, ACTOR);
    let report = RackFirmware::new(&manifest.rack.id, args.recipe.as_deref(), checked);
    print(&report, args.json)?;
    Ok(Outcome::exit(report.exit_code))
}

pub(crate) fn print(report: &RackFirmware, json: bool) -> CmdResult<()> {
    if json {
        crate::terminal::json(report).context("serialize the firmware check")?;
    } else {
        crate::terminal::print(&render_table(report));
    }
    Ok(())
}

/// The recipe named `name`, or the error that lists the known ones.
pub(crate) fn named<'a>(recipes: &'a [LoadedRecipe], name: &str) -> Result<&'a LoadedRecipe, RecipeError> {
    recipes.iter().find(|r| r.recipe.name == name).ok_or_else(|| RecipeError::Unknown {
        name: name.to_string(),
        known: recipes.iter().map(|r| r.recipe.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// What each node's check needs: its BMC target, its recipe, its newest recorded inspection.
pub(crate) fn inputs<'a>(
    manifest: &RackManifest,
    nodes: &[&RackNode],
    recipes: &'a [LoadedRecipe],
    recipe: Option<&str>,
    inventory: &Inventory,
) -> Result<Vec<NodeInput<'a>>, InventoryError> {
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        // The rack's place (`RACK/NAME`): manifest names repeat across racks.
        let place = format!("{}/{}", manifest.rack.id, n.name);
        let (inspected, platform) = recorded_inspection(inventory, &place)?;
        let platform = platform.or_else(|| manifest.rack.platform.clone());
        let recipe = match recipe {
            Some(name) => named(recipes, name).map_err(|e| e.to_string()),
            None => by_platform(recipes, platform.as_deref()),
        };
        let target = match &n.bmc {
            None => Err("the manifest gives this node no Redfish BMC (bmc = \"https://...\")".to_string()),
            Some(_) => target_from_manifest(manifest, &n.name).map_err(|e| crate::error::chain(&e)),
        };
        let position = n.slot.clone().or_else(|| n.tray.map(|t| format!("tray {t}")));
        out.push(NodeInput { node: n.name.clone(), position, target, recipe, inspected });
    }
    Ok(out)
}

/// A recorded inspection (its run id and model), or why there is none.
type Inspected = Result<(i64, crate::model::Node), String>;

/// The node's newest recorded inspection (inspect, validate or burn-in run) and its platform.
fn recorded_inspection(inventory: &Inventory, node: &str) -> Result<(Inspected, Option<String>), InventoryError> {
    let Some(row) = inventory.node(node)? else {
        return Ok((Err("no inspection recorded (kiln rack inspect): in-band versions not judged".into()), None));
    };
    let Some(run) = inventory.latest_run(row.id)? else {
        return Ok((Err("no inspection recorded (kiln rack inspect): in-band versions not judged".into()), None));
    };
    let platform = run.platform.clone().or(row.platform.clone());
    match inventory.run_node(run.id) {
        Ok(model) => Ok((Ok((run.id.0, model)), platform)),
        Err(e) => Ok((Err(format!("the recorded inspection of run {} does not read: {}", run.id.0, e)), platform)),
    }
}

/// The one recipe for `platform`, or why there is none.
fn by_platform<'a>(recipes: &'a [LoadedRecipe], platform: Option<&str>) -> Result<&'a LoadedRecipe, String> {
    let known = || recipes.iter().map(|r| r.recipe.name.as_str()).collect::<Vec<_>>().join(", ");
    let Some(platform) = platform else {
        return Err(format!(
            "its platform is not known (no run recorded, and the manifest's rack names none): choose a recipe with --recipe (known: {})",
            known()
        ));
    };
    let fits: Vec<&LoadedRecipe> = recipes.iter().filter(|r| r.recipe.platform.as_deref() == Some(platform)).collect();
    match fits.as_slice() {
        [one] => Ok(one),
        [] => {
            Err(format!("no firmware recipe for platform {platform:?}: choose one with --recipe (known: {})", known()))
        }
        many => Err(format!(
            "{} firmware recipes fit platform {platform:?} ({}): choose one with --recipe",
            many.len(),
            many.iter().map(|r| r.recipe.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Every node checked, `parallel` BMCs at a time.
pub(crate) fn check_nodes(inputs: &[NodeInput<'_>], parallel: usize) -> Vec<NodeCheck> {
    let policy = RetryPolicy::default();
    crate::fleet::map_bounded(inputs, parallel.max(1), |input| check_node(input, &policy))
}

/// Record every node that was checked as a `firmware` run; a node not checked (no BMC, no
/// recipe) records nothing. A write that fails is noted on the node and decides the exit code.
pub(crate) fn record_checks(
    inventory: &mut Inventory,
    manifest: &RackManifest,
    mut checked: Vec<NodeCheck>,
    actor: &str,
) -> Vec<NodeCheck> {
    let started = now();
    for c in checked.iter_mut().filter(|c| c.status != NodeStatus::NotChecked) {
        let components = c.components();
        let code = crate::firmware::rack::exit_code(std::slice::from_ref(c));
        let record = FirmwareCheckRecord {
            node: &c.node,
            rack: Some(&manifest.rack.id),
            platform: c.platform.as_deref(),
            inspected: c.inspected.as_ref(),
            components: &components,
            findings: &c.findings,
            verdict: c.verdict,
            exit_code: code,
            started_at: started,
            finished_at: now(),
            actor,
            move_to: None,
        };
        match inventory.record_firmware_check(&record) {
            Ok(id) => c.run_id = Some(id.0),
            Err(e) => c.record_error = Some(crate::error::chain(&e)),
        }
    }
    checked
}
