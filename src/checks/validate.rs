//! `validate`: every rule of a spec applied to a node, in a fixed order.

use super::finding::Finding;
use super::platform::Platform;
use super::rules::{self, common::Ctx};
use crate::model::Node;

/// Judges a node against a spec. Pure and deterministic: the same node and
/// spec give the same findings in the same order (rule areas in a fixed
/// order, devices in PCI address order, GPUs in NVML index order).
pub fn validate(node: &Node, spec: &Platform) -> Vec<Finding> {
    let ctx = Ctx::new(node);
    let mut out = Vec::new();
    out.extend(rules::counts::check(&ctx, spec));
    out.extend(rules::pcie_link::check(&ctx, spec));
    out.extend(rules::numa::check(&ctx, spec));
    out.extend(rules::aer::check(&ctx, spec));
    out.extend(rules::nvlink::check(&ctx, spec));
    out.extend(rules::c2c::check(&ctx, spec));
    out.extend(rules::fabric::check(&ctx, spec));
    out.extend(rules::memory_health::check(&ctx, spec));
    out.extend(rules::firmware::check(&ctx, spec));
    out.extend(rules::imex::check(&ctx, spec));
    out.extend(rules::problems::check(&ctx, spec));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::testnode::{self, gpu, spec, with};
    use crate::checks::{Outcome, Verdict};
    use crate::model::GpuInventory;

    fn assert_passes(node: &Node, name: &str) {
        let f = validate(node, &spec(name));
        let bad: Vec<String> = f
            .iter()
            .filter(|x| matches!(x.outcome, Outcome::Fail | Outcome::Error))
            .map(|x| format!("{} {}: {}", x.check, x.component.label(), x.message))
            .collect();
        assert!(bad.is_empty(), "{name} on {}: {bad:#?}", node.hostname);
        assert_eq!(Verdict::of(&f), Verdict::Pass);
    }

    #[test]
    fn healthy_nodes_pass_their_platform() {
        assert_passes(&testnode::hgx_b200(), "hgx-b200");
        assert_passes(&testnode::hgx_h100(), "h100-sxm");
        assert_passes(&testnode::gb200_tray(), "gb200-nvl72-tray");
    }

    #[test]
    fn generic_passes_on_a_plain_vm_and_on_healthy_gpu_nodes() {
        assert_passes(&testnode::vm(), "generic");
        assert_passes(&testnode::hgx_b200(), "generic");
        let f = validate(&testnode::vm(), &spec("generic"));
        let passed: Vec<&str> = with(&f, Outcome::Pass).iter().map(|x| x.check.as_str()).collect();
        assert_eq!(passed, ["inspect.read_error"]);
        let skipped: Vec<&str> = with(&f, Outcome::Skipped).iter().map(|x| x.check.as_str()).collect();
        assert_eq!(skipped, ["aer.fatal", "gpu.memory_health", "inspect.identity"]);
    }

    #[test]
    fn generic_passes_on_a_single_gpu_lab_node() {
        // Shaped like the lab machine as its sysfs and nvidia-smi read: one
        // H100 passed through to a VM on the root bus (no upstream port),
        // NUMA -1, no AER files, Gen5 x16, fabric and NVLink not reported.
        let mut node = testnode::vm();
        let mut d = testnode::device("0000:00:06.0", 0x10de, 0x2330, 0x030200, &[], None);
        d.aer = None;
        node.pci.push(d);
        let mut g = gpu(0, "00000000:00:06.0", "NVIDIA H100 80GB HBM3", 0, false);
        g.vbios_version = Some("96.00.DA.00.0C".into());
        g.nvlinks = Some(Vec::new());
        node.gpus = GpuInventory::Inspected {
            driver_version: "580.159.04".into(),
            nvml_version: None,
            cuda_driver_version: None,
            gpus: vec![g],
        };
        assert_passes(&node, "generic");
        let f = validate(&node, &spec("generic"));
        assert_eq!(with(&f, Outcome::Pass).iter().filter(|x| x.check.starts_with("gpu.")).count(), 3);
        // The H100 HGX spec judges it, and fails it: one GPU, no NVSwitch.
        assert_eq!(Verdict::of(&validate(&node, &spec("h100-sxm"))), Verdict::Fail);
        // Detection does not pick the HGX spec for it.
        let specs = crate::checks::spec_load::load_builtin().expect("built-in specs parse");
        let found = crate::checks::detect::detect(&specs, &node).expect("detects");
        assert_eq!(found.spec.platform.name, "generic");
    }

    /// Many faults at once, on every platform: every fail and error must
    /// carry an action, and every check id must be dotted lowercase.
    #[test]
    fn every_fail_and_error_has_an_action() {
        use crate::checks::testnode::{gpu_mut, hgx_gpu_address, pci_mut, remove_pci};
        use crate::model::{FabricState, ReadProblem};
        let mut b200 = testnode::hgx_b200();
        remove_pci(&mut b200, &hgx_gpu_address(7));
        pci_mut(&mut b200, &hgx_gpu_address(1)).link.as_mut().expect("link").current_width = Some(4);
        pci_mut(&mut b200, &hgx_gpu_address(3)).aer.as_mut().expect("aer").fatal.insert("TOTAL_ERR_FATAL".into(), 2);
        gpu_mut(&mut b200, 0).nvlinks.as_mut().expect("links")[0].active = false;
        gpu_mut(&mut b200, 4).fabric.as_mut().expect("fabric").state = FabricState::NotStarted;
        gpu_mut(&mut b200, 5).remapped_rows.as_mut().expect("rows").failure = true;
        gpu_mut(&mut b200, 6).problems.push(ReadProblem::new("nvml", "nvmlDeviceGetSerial", "timeout"));
        let mut no_driver = testnode::gb200_tray();
        no_driver.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        // NUMA placement is judged only with every GPU present, so on its own node.
        let mut numa = testnode::hgx_b200();
        pci_mut(&mut numa, &hgx_gpu_address(2)).numa_node = Some(1);
        let cases = [
            (b200, "hgx-b200"),
            (numa, "hgx-b200"),
            (no_driver, "gb200-nvl72-tray"),
            (testnode::hgx_b200(), "h100-sxm"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (node, name) in &cases {
            for f in validate(node, &spec(name)) {
                let dotted = f.check.split('.').count() >= 2
                    && f.check.split('.').all(|p| {
                        p.starts_with(|c: char| c.is_ascii_lowercase())
                            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    });
                assert!(dotted, "check id {:?}", f.check);
                if matches!(f.outcome, Outcome::Fail | Outcome::Error) {
                    assert!(f.action.as_deref().is_some_and(|a| !a.is_empty()), "{name}: {f:?}");
                    seen.insert(f.check.clone());
                }
            }
        }
        // The faults above must each have been caught.
        for check in [
            "gpu.count",
            "pcie.width",
            "numa.placement",
            "aer.fatal",
            "nvlink.active",
            "fabric.state",
            "gpu.remap_failure",
            "inspect.read_error",
            "gpu.nvml_visible",
            "nvswitch.count",
        ] {
            assert!(seen.contains(check), "{check} not reported; saw {seen:?}");
        }
    }

    #[test]
    fn findings_are_deterministic() {
        let node = testnode::hgx_b200();
        assert_eq!(validate(&node, &spec("hgx-b200")), validate(&node, &spec("hgx-b200")));
    }

    #[test]
    fn no_driver_on_an_nvlink_platform_is_not_a_pass() {
        let mut node = testnode::hgx_b200();
        node.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        assert_eq!(Verdict::of(&validate(&node, &spec("hgx-b200"))), Verdict::Error);
    }
}
