//! A whole node: identity, host parts, PCI tree, GPUs, and what could not be read.

use serde::{Deserialize, Serialize};

use super::{BlockDevice, Cpus, Dmi, GpuInventory, Memory, NetPort, PciAddress, PciDevice, ReadProblem};

/// Version of the `Node` JSON. Bumped on any change a consumer could notice;
/// documented in `docs/json-schema.md`.
pub const NODE_SCHEMA_VERSION: u32 = 1;

/// `kind` of the node document `kiln inspect --json` prints (and `kiln validate --with-node`
/// nests as `inspected`).
pub const NODE_KIND: &str = "kiln.node";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Refused on reading when newer than `NODE_SCHEMA_VERSION`: a node
    /// written by a newer kiln may mean something this one would misjudge.
    #[serde(deserialize_with = "known_schema_version")]
    pub schema_version: u32,
    /// From `proc/sys/kernel/hostname` under the root.
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    pub dmi: Dmi,
    pub cpus: Cpus,
    pub memory: Memory,
    #[serde(default)]
    pub disks: Vec<BlockDevice>,
    #[serde(default)]
    pub net: Vec<NetPort>,
    /// Every PCI function, sorted by address.
    #[serde(default)]
    pub pci: Vec<PciDevice>,
    pub gpus: GpuInventory,
    /// Everything inspection could not read; the rest of the node is still valid.
    #[serde(default)]
    pub problems: Vec<ReadProblem>,
    /// The IMEX service; absent in a node recorded by a kiln that did not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imex: Option<super::Imex>,
}

/// Every reader of node JSON (`validate --node`, the rack controller, the
/// inventory's stored nodes) deserializes a `Node`, so the refusal is here.
fn known_schema_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let version = u32::deserialize(d)?;
    if version == 0 || version > NODE_SCHEMA_VERSION {
        return Err(serde::de::Error::custom(format!(
            "node schema_version {version} is not one kiln {} reads (it reads schema_version {NODE_SCHEMA_VERSION}); \
             read it with the kiln that wrote it or a newer one",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(version)
}

impl Node {
    pub fn pci_device(&self, address: &PciAddress) -> Option<&PciDevice> {
        self.pci.iter().find(|d| d.address == *address)
    }

    /// The nearest upstream port of a device, when it has one.
    pub fn upstream_port(&self, device: &PciDevice) -> Option<&PciDevice> {
        device.upstream.first().and_then(|a| self.pci_device(a))
    }

    /// Problems recorded against one component (PCI address or `gpuN`).
    pub fn problems_for<'a>(&'a self, component: &'a str) -> impl Iterator<Item = &'a ReadProblem> + 'a {
        self.problems.iter().filter(move |p| p.component.as_deref() == Some(component))
    }
}

/// A node as kiln prints it: `kind` beside the node's own fields (`schema_version` first
/// among them). Reading a node back (`kiln validate --node FILE`, the rack controller) takes
/// the document as a `Node`; `kind` is not part of the model.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct NodeDocument<'a> {
    pub kind: &'static str,
    #[serde(flatten)]
    pub node: &'a Node,
}

impl<'a> NodeDocument<'a> {
    pub fn new(node: &'a Node) -> Self {
        NodeDocument { kind: NODE_KIND, node }
    }

    /// For `#[serde(serialize_with)]` on an optional node that is printed as a document.
    pub fn serialize_option<S: serde::Serializer>(node: &Option<Node>, s: S) -> Result<S::Ok, S::Error> {
        node.as_ref().map(NodeDocument::new).serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_a_newer_schema_is_refused_naming_both_versions() {
        let node = crate::checks::testnode::hgx_b200();
        let mut doc = serde_json::to_value(NodeDocument::new(&node)).expect("serialize");
        assert_eq!(serde_json::from_value::<Node>(doc.clone()).expect("current version"), node);
        for version in [999, 0] {
            doc["schema_version"] = serde_json::json!(version);
            let err = serde_json::from_value::<Node>(doc.clone()).expect_err("refused").to_string();
            assert!(err.contains(&format!("node schema_version {version} ")), "{err}");
            assert!(err.contains(&format!("kiln {}", env!("CARGO_PKG_VERSION"))), "{err}");
            assert!(err.contains(&format!("schema_version {NODE_SCHEMA_VERSION})")), "{err}");
        }
    }
}
