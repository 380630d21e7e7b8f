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
    out.extend(rules::fabric::check(&ctx, spec));
    out.extend(rules::memory_health::check(&ctx, spec));
    out.extend(rules::firmware::check(&ctx, spec));
    out.extend(rules::problems::check(&ctx, spec));
    out
}
