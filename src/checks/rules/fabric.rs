//! NVLink fabric registration: every GPU registered (state completed, status
//! success) and all of them in one cluster and clique.
//!
//! Until Fabric Manager (and on Blackwell the NVLink Subnet Manager) has
//! registered a GPU, CUDA fails with CUDA_ERROR_SYSTEM_NOT_READY, so this is
//! judged before any burn-in: `gate` is the same rule, as burn-in's gate
//! before its first CUDA call.

use std::collections::BTreeMap;

use super::common::{error, fail, pass, ratio, skipped, Ctx, INSTALL_DRIVER, REREAD};
use crate::checks::finding::{Component, Finding, Outcome};
use crate::checks::platform::Platform;
use crate::model::{FabricInfo, FabricState, Gpu};

const STATE: &str = "fabric.state";
const STATUS: &str = "fabric.status";
const CLIQUE: &str = "fabric.clique";

const START_FABRIC: &str = "start nvidia-fabricmanager (and on Blackwell the NVLink Subnet Manager), wait until \
                            registration completes, then re-run";

pub fn check(ctx: &Ctx<'_>, spec: &Platform) -> Vec<Finding> {
    let Some(rules) = &spec.fabric else { return Vec::new() };
    let gpus = match ctx.nvml_gpus() {
        Ok(g) => g,
        Err(reason) => {
            return vec![error(STATE, fabric_node(), format!("fabric not inspected: {reason}"), INSTALL_DRIVER)];
        }
    };
    if gpus.is_empty() {
        return vec![skipped(STATE, fabric_node(), "NVML lists no GPU; see gpu.count")];
    }
    let mut out = Vec::new();
    let mut reported: Vec<(&Gpu, &FabricInfo)> = Vec::new();
    for gpu in gpus {
        match &gpu.fabric {
            Some(f) => reported.push((gpu, f)),
            None => {
                let why = ctx.gpu_problem(gpu, "fabric").map(|p| p.message.clone());
                let why = why.unwrap_or_else(|| "NVML did not report it".to_string());
                out.push(error(
                    STATE,
                    ctx.gpu_component(gpu),
                    format!("could not read fabric state of GPU {}: {why}", gpu.index),
                    format!("{REREAD}; fabric info needs a driver that supports nvmlDeviceGetGpuFabricInfoV"),
                ));
            }
        }
    }
    if rules.require_completed {
        out.extend(state(ctx, &reported, gpus.len()));
    }
    if rules.same_clique {
        out.extend(clique(ctx, &reported, gpus.len()));
    }
    if rules.health {
        out.extend(super::fabric_health::check(ctx, &reported));
    }
    out
}

/// The fabric rule as burn-in's gate before any CUDA work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    /// What `check` gives for the spec: the same findings validate reports.
    pub findings: Vec<Finding>,
    /// GPUs (NVML index) no kernel may run on, with why.
    pub blocked: BTreeMap<u32, String>,
}

/// Judges the fabric as validate does and blocks every GPU a failing or
/// erroring finding names. Whatever the spec says, a GPU whose registration
/// has not completed (`not_started`, `in_progress`) is blocked too: CUDA
/// refuses it (CUDA_ERROR_SYSTEM_NOT_READY) or hangs, so no test on it
/// would say anything about the hardware.
pub fn gate(ctx: &Ctx<'_>, spec: &Platform) -> Gate {
    let findings = check(ctx, spec);
    let mut blocked = BTreeMap::new();
    for f in findings.iter().filter(|f| matches!(f.outcome, Outcome::Fail | Outcome::Error)) {
        if let Some(index) = f.component.gpu_index {
            blocked.entry(index).or_insert_with(|| format!("{}: {}", f.check, f.message));
        }
    }
    for gpu in ctx.nvml_gpus().unwrap_or_default() {
        if let Some(f) =
            gpu.fabric.as_ref().filter(|f| matches!(f.state, FabricState::NotStarted | FabricState::InProgress))
        {
            blocked.entry(gpu.index).or_insert_with(|| {
                format!(
                    "GPU {} fabric registration is {}: CUDA cannot use it until it completes",
                    gpu.index,
                    state_name(f.state)
                )
            });
        }
    }
    Gate { findings, blocked }
}

fn fabric_node() -> Component {
    Component { kind: "fabric".into(), ..Component::node() }
}

fn state_name(s: FabricState) -> &'static str {
    match s {
        FabricState::NotSupported => "not_supported",
        FabricState::NotStarted => "not_started",
        FabricState::InProgress => "in_progress",
        FabricState::Completed => "completed",
        FabricState::Unknown => "unknown",
    }
}

fn state(ctx: &Ctx<'_>, reported: &[(&Gpu, &FabricInfo)], total: usize) -> Vec<Finding> {
    let mut out = Vec::new();
    for (gpu, f) in reported {
        if f.state != FabricState::Completed {
            let action = if f.state == FabricState::NotSupported {
                "NVML says this GPU has no fabric: check that the driver and GPU match the platform spec".to_string()
            } else {
                START_FABRIC.to_string()
            };
            out.push(
                fail(
                    STATE,
                    ctx.gpu_component(gpu),
                    format!("GPU {} fabric registration is {}", gpu.index, state_name(f.state)),
                    action,
                )
                .expected("completed")
                .actual(state_name(f.state)),
            );
        } else if f.status != 0 {
            out.push(
                fail(
                    STATUS,
                    ctx.gpu_component(gpu),
                    format!("GPU {} fabric registration completed with status {} (not success)", gpu.index, f.status),
                    format!(
                        "read the fabric manager log for GPU {}; restart fabric manager and re-run; if it repeats, \
                         reset the GPU",
                        gpu.index
                    ),
                )
                .expected(0)
                .actual(f.status),
            );
        }
    }
    if out.is_empty() && reported.len() == total {
        out.push(pass(
            STATE,
            fabric_node(),
            format!("{} registered with the fabric (completed, success)", ratio(total, total, "GPUs")),
        ));
    }
    out
}

/// The cluster and clique most GPUs are in is taken as the node's; every GPU
/// elsewhere fails. With a tie the first GPU's is taken.
fn clique(ctx: &Ctx<'_>, reported: &[(&Gpu, &FabricInfo)], total: usize) -> Vec<Finding> {
    let registered: Vec<&(&Gpu, &FabricInfo)> =
        reported.iter().filter(|(_, f)| f.state == FabricState::Completed).collect();
    if registered.is_empty() {
        return vec![skipped(CLIQUE, fabric_node(), "no GPU has completed fabric registration; see fabric.state")];
    }
    let mut tally: BTreeMap<(String, u32), (usize, usize)> = BTreeMap::new();
    for (pos, (_, f)) in registered.iter().enumerate() {
        let e = tally.entry((f.cluster_uuid.clone(), f.clique_id)).or_insert((0, pos));
        e.0 += 1;
    }
    let Some(((uuid, clique_id), _)) =
        tally.iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.1 .1.cmp(&a.1 .1)))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (gpu, f) in &registered {
        if &f.cluster_uuid != uuid || f.clique_id != *clique_id {
            out.push(
                fail(
                    CLIQUE,
                    ctx.gpu_component(gpu),
                    format!(
                        "GPU {} is in cluster {} clique {}, the other GPUs in cluster {uuid} clique {clique_id}",
                        gpu.index, f.cluster_uuid, f.clique_id
                    ),
                    format!(
                        "GPU {} joined another NVLink domain: check the NVLink cabling/switch tray assignment and the \
                         fabric manager configuration, then restart fabric manager",
                        gpu.index
                    ),
                )
                .expected(format!("{uuid}/{clique_id}"))
                .actual(format!("{}/{}", f.cluster_uuid, f.clique_id)),
            );
        }
    }
    if out.is_empty() && registered.len() == total {
        out.push(
            pass(
                CLIQUE,
                fabric_node(),
                format!("{} in cluster {uuid} clique {clique_id}", ratio(total, total, "GPUs")),
            )
            .expected(format!("{uuid}/{clique_id}")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::checks::testnode::{self, gpu_mut, of, spec};
    use crate::checks::{validate, Outcome};
    use crate::model::{FabricState, GpuInventory};

    fn fabric_mut(node: &mut crate::model::Node, i: u32) -> &mut crate::model::FabricInfo {
        gpu_mut(node, i).fabric.as_mut().expect("fabric info")
    }

    #[test]
    fn registered_gpus_in_one_clique_pass() {
        let f = validate(&testnode::gb200_tray(), &spec("gb200-nvl72-tray"));
        assert_eq!(of(&f, "fabric.state")[0].outcome, Outcome::Pass);
        assert_eq!(of(&f, "fabric.clique")[0].outcome, Outcome::Pass);
    }

    #[test]
    fn fabric_in_progress_fails_with_the_fabric_manager_action() {
        let mut node = testnode::hgx_b200();
        fabric_mut(&mut node, 3).state = FabricState::InProgress;
        let f = validate(&node, &spec("hgx-b200"));
        let s = of(&f, "fabric.state");
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].outcome, s[0].component.gpu_index), (Outcome::Fail, Some(3)));
        assert_eq!(s[0].actual.as_deref(), Some("in_progress"));
        assert!(s[0].action.as_deref().is_some_and(|a| a.contains("fabricmanager")));
    }

    #[test]
    fn failed_status_and_odd_clique_fail_for_their_gpu() {
        let mut node = testnode::gb200_tray();
        fabric_mut(&mut node, 1).status = 12;
        fabric_mut(&mut node, 2).clique_id = 9;
        let f = validate(&node, &spec("gb200-nvl72-tray"));
        let st = of(&f, "fabric.status");
        assert_eq!((st.len(), st[0].component.gpu_index), (1, Some(1)));
        let c = of(&f, "fabric.clique");
        assert_eq!((c.len(), c[0].outcome, c[0].component.gpu_index), (1, Outcome::Fail, Some(2)));
        // GB200 GPUs are located by tray, slot and module.
        assert_eq!(c[0].component.slot.as_deref(), Some("tray 4 slot 7 module 4"));
    }

    #[test]
    fn the_gate_gives_validates_findings_and_blocks_the_gpus_they_fail() {
        let mut node = testnode::gb200_tray();
        fabric_mut(&mut node, 2).state = FabricState::NotSupported;
        let spec = spec("gb200-nvl72-tray");
        let g = super::gate(&crate::checks::rules::common::Ctx::new(&node), &spec);
        let from_validate: Vec<_> =
            validate(&node, &spec).into_iter().filter(|f| f.check.starts_with("fabric.")).collect();
        assert_eq!(g.findings, from_validate);
        assert_eq!(g.blocked.keys().copied().collect::<Vec<_>>(), [2]);
        assert!(
            g.blocked[&2].starts_with("fabric.state: GPU 2 fabric registration is not_supported"),
            "{:?}",
            g.blocked
        );
    }

    #[test]
    fn an_unfinished_registration_blocks_cuda_even_where_the_spec_does_not_judge_fabric() {
        let mut node = testnode::hgx_b200();
        fabric_mut(&mut node, 5).state = FabricState::InProgress;
        let mut s = spec("hgx-b200");
        s.fabric = None;
        let g = super::gate(&crate::checks::rules::common::Ctx::new(&node), &s);
        assert!(g.findings.is_empty());
        assert_eq!(g.blocked.keys().copied().collect::<Vec<_>>(), [5]);
        // Not supported is no registration to wait for: without [fabric] it blocks nothing.
        fabric_mut(&mut node, 5).state = FabricState::NotSupported;
        assert!(super::gate(&crate::checks::rules::common::Ctx::new(&node), &s).blocked.is_empty());
    }

    #[test]
    fn no_driver_is_an_error() {
        let mut node = testnode::gb200_tray();
        node.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        let f = validate(&node, &spec("gb200-nvl72-tray"));
        let s = of(&f, "fabric.state");
        assert_eq!((s.len(), s[0].outcome), (1, Outcome::Error));
    }
}
