//! The update plan of one node: from its compliance, which packages to send (each once, with
//! the targets of the components that need it), what activation they need, and what cannot be
//! updated and why. Pure, so `--dry-run` prints exactly what an update would do, and a rerun
//! plans only what is still non-compliant.

use serde::Serialize;

use super::compliance::{Compliance, Status};
use super::recipe::{Activation, Exclusive, Method, Recipe};

/// One package to send to the node's BMC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedUpdate {
    pub package: String,
    pub method: Method,
    /// The recipe components it brings to their pinned versions.
    pub components: Vec<String>,
    /// `Targets` of the request.
    pub targets: Vec<String>,
    pub apply_time: Option<String>,
    pub delay_s: u64,
    pub one_at_a_time: Exclusive,
    pub task_timeout_s: u64,
}

/// A non-compliant component that the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub component: String,
    pub why: String,
}

/// Everything one node needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    pub node: String,
    pub recipe: String,
    /// In recipe order of their first component.
    pub updates: Vec<PlannedUpdate>,
    /// The strongest activation the updated components need.
    pub activation: Activation,
    pub blocked: Vec<Blocked>,
}

impl NodePlan {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty()
    }
}

/// Plan the updates that bring `node` from `compliance` to `recipe`. Components older, newer or
/// different from the pin are updated (advisory ones too: the recipe still pins them); a
/// missing or unreadable one is blocked, since kiln cannot tell what it would change.
pub fn plan_node(recipe: &Recipe, node: &str, compliance: &Compliance) -> NodePlan {
    let mut updates: Vec<PlannedUpdate> = Vec::new();
    let mut blocked: Vec<Blocked> = Vec::new();
    let mut activation = Activation::None;
    for component in &recipe.components {
        let entries: Vec<_> = compliance.of(&component.id).collect();
        let stale: Vec<_> =
            entries.iter().filter(|e| matches!(e.status, Status::Older | Status::Newer | Status::Differs)).collect();
        let unknown: Vec<_> =
            entries.iter().filter(|e| matches!(e.status, Status::Missing | Status::Unreadable)).collect();
        if let Some(e) = unknown.first() {
            let why = format!("{} {}: {}", e.place, e.status.as_str(), e.detail.as_deref().unwrap_or("no detail"));
            blocked.push(Blocked { component: component.id.clone(), why });
            continue;
        }
        if stale.is_empty() {
            continue;
        }
        let Some(package) = component.package.as_deref().and_then(|id| recipe.package(id)) else {
            blocked.push(Blocked {
                component: component.id.clone(),
                why: "the recipe names no package for it: update it by hand".into(),
            });
            continue;
        };
        let targets: Vec<String> = stale.iter().filter_map(|e| e.target.clone()).collect();
        if package.targets.is_none() && targets.len() < stale.len() {
            blocked.push(Blocked {
                component: component.id.clone(),
                why: format!("no Redfish URI to target for it; give package {} explicit targets", package.id),
            });
            continue;
        }
        activation = activation.max(component.activation);
        match updates.iter_mut().find(|u| u.package == package.id) {
            Some(u) => {
                u.components.push(component.id.clone());
                if package.targets.is_none() {
                    u.targets.extend(targets);
                }
            }
            None => updates.push(PlannedUpdate {
                package: package.id.clone(),
                method: package.method,
                components: vec![component.id.clone()],
                targets: package.targets.clone().unwrap_or(targets),
                apply_time: package.apply_time.clone(),
                delay_s: package.delay_s,
                one_at_a_time: package.one_at_a_time,
                task_timeout_s: package.task_timeout_s,
            }),
        }
    }
    NodePlan { node: node.to_string(), recipe: recipe.name.clone(), updates, activation, blocked }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmc::{BmcVersions, FirmwareItem, InventoryRead};
    use crate::firmware::compliance::{judge, Observed};
    use crate::firmware::recipe_load::parse_recipe;

    const RECIPE: &str = r#"name = "site"
description = "a site's GH200 set"
tray = "node"
source = "qualified 2025-01"

[[components]]
id = "bmc"
name = "BMC firmware"
version = "GH200-24.05-2"
prefix = "GH200-"
source = "qualified"
package = "bmc_pkg"
match = { redfish = ["FW_BMC_0"] }

[[components]]
id = "gpu"
name = "GPU firmware"
version = "96.00.A6.00.01"
scheme = "hex"
source = "qualified"
activation = "host-reset"
package = "hmc"
match = { redfish = ["HGX_FW_GPU_*"] }

[[components]]
id = "erot"
name = "ERoT firmware"
version = "01.03.0136.0000_n01"
scheme = "debian"
source = "qualified"
activation = "ac-power-cycle"
package = "hmc"
match = { redfish = ["*ERoT*"] }

[[components]]
id = "uefi"
name = "UEFI"
version = "buildbrain-gcid-35803827"
scheme = "exact"
source = "qualified"
match = { redfish = ["UEFI"] }

[[packages]]
id = "bmc_pkg"
file = "bmc.fwpkg"
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
delay_s = 30

[[packages]]
id = "hmc"
file = "hmc.fwpkg"
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
one_at_a_time = "rack"
"#;

    fn item(id: &str, version: &str) -> FirmwareItem {
        FirmwareItem {
            id: id.into(),
            name: "Software Inventory".into(),
            version: Some(version.into()),
            updateable: Some(true),
            related: None,
            serial: None,
            problem: None,
            path: Some(format!("/redfish/v1/UpdateService/FirmwareInventory/{id}")),
        }
    }

    fn plan(items: Vec<FirmwareItem>) -> NodePlan {
        let recipe = parse_recipe(RECIPE, std::path::Path::new("site.toml")).expect("recipe");
        let v = BmcVersions {
            bmc: "b".into(),
            inventory: InventoryRead::Listed { items },
            system: None,
            bios_version: Ok(None),
            manager: None,
            manager_firmware: Ok(None),
        };
        let c = judge(&recipe, Observed { bmc: Ok(&v), node: Err("n/a") });
        plan_node(&recipe, "node01", &c)
    }

    #[test]
    fn a_compliant_node_plans_nothing() {
        let p = plan(vec![
            item("FW_BMC_0", "GH200-24.05-2"),
            item("HGX_FW_GPU_0", "96.00.A6.00.01"),
            item("HGX_FW_ERoT_GPU_0", "01.03.0136.0000_n01"),
            item("UEFI", "buildbrain-gcid-35803827"),
        ]);
        assert!(p.is_empty() && p.blocked.is_empty(), "{p:?}");
        assert_eq!(p.activation, Activation::None);
    }

    #[test]
    fn one_bundle_carries_its_components_once_with_their_targets() {
        let p = plan(vec![
            item("FW_BMC_0", "GH200-24.01-1"),
            item("HGX_FW_GPU_0", "96.00.5E.00.01"),
            item("HGX_FW_GPU_1", "96.00.A6.00.01"),
            item("HGX_FW_ERoT_GPU_0", "01.03.0100.0000_n01"),
            item("UEFI", "buildbrain-gcid-1"),
        ]);
        let ids: Vec<&str> = p.updates.iter().map(|u| u.package.as_str()).collect();
        assert_eq!(ids, ["bmc_pkg", "hmc"]);
        assert_eq!(p.updates[0].delay_s, 30);
        let hmc = &p.updates[1];
        assert_eq!(hmc.components, ["gpu", "erot"]);
        assert_eq!(
            hmc.targets,
            [
                "/redfish/v1/UpdateService/FirmwareInventory/HGX_FW_GPU_0",
                "/redfish/v1/UpdateService/FirmwareInventory/HGX_FW_ERoT_GPU_0"
            ]
        );
        assert_eq!(hmc.one_at_a_time, Exclusive::Rack);
        assert_eq!(p.activation, Activation::AcPowerCycle, "the strongest activation wins");
        assert_eq!(
            p.blocked,
            [Blocked { component: "uefi".into(), why: "the recipe names no package for it: update it by hand".into() }]
        );
    }

    #[test]
    fn missing_and_unreadable_components_are_blocked_not_flashed() {
        let mut gpu = item("HGX_FW_GPU_0", "garbage");
        gpu.version = Some("N/A".into());
        let p = plan(vec![item("FW_BMC_0", "GH200-24.01-1"), gpu, item("UEFI", "buildbrain-gcid-35803827")]);
        assert_eq!(p.updates.iter().map(|u| u.package.as_str()).collect::<Vec<_>>(), ["bmc_pkg"]);
        let blocked: Vec<&str> = p.blocked.iter().map(|b| b.component.as_str()).collect();
        assert_eq!(blocked, ["gpu", "erot"]);
        assert!(p.blocked[0].why.contains("unreadable"), "{:?}", p.blocked[0]);
        assert!(p.blocked[1].why.contains("missing"), "{:?}", p.blocked[1]);
    }
}
