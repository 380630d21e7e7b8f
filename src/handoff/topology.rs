//! Scheduler topology from verified NVLink domains: Slurm's topology.conf (block or tree form),
//! topology.yaml, and the Kubernetes clique labels NVIDIA's GPU operator sets, rendered from
//! the domains `topology_domains.rs` drew from the inventory.
//!
//! Rendering is pure: the same domains give the same bytes (domains and their nodes in a fixed
//! order, hostlists compressed the way Slurm reads them), so a file kiln installs changes only
//! when the verified domains change.

use serde::{Deserialize, Serialize};

/// One NVLink domain whose trays passed the rack gate: every GPU of every member reports the
/// same fabric cluster UUID and clique id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedDomain {
    /// The block (or leaf switch) name: `<rack>-<first 8 hex of the cluster UUID>-<clique>`.
    pub name: String,
    pub cluster_uuid: String,
    pub clique_id: u32,
    /// The manifests' rack ids the members come from, sorted.
    pub racks: Vec<String>,
    /// Member node names (the manifests' names, which are also the cluster's), in natural order.
    pub nodes: Vec<String>,
}

impl VerifiedDomain {
    /// `<clusterUUID>.<cliqueId>`: the clique as NVIDIA's GPU feature discovery labels it.
    pub fn clique(&self) -> String {
        format!("{}.{}", self.cluster_uuid, self.clique_id)
    }
}

/// A node of the manifests that is in no verified domain, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    pub node: String,
    pub rack: String,
    pub reason: String,
}

/// The verified domains of some racks and the nodes left out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub domains: Vec<VerifiedDomain>,
    pub left_out: Vec<LeftOut>,
}

/// The forms a topology is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TopologyFormat {
    /// topology.conf for topology/block (Slurm 23.11 and later): `BlockName= Nodes=`, `BlockSizes=`.
    SlurmBlock,
    /// topology.yaml with one block topology (Slurm 25.05 and later).
    SlurmYaml,
    /// topology.conf for topology/tree (any Slurm): a leaf switch per domain.
    SlurmTree,
    /// `kubectl label` lines: `nvidia.com/gpu.clique=<clusterUUID>.<cliqueId>` per node.
    K8sLabels,
}

impl TopologyFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TopologyFormat::SlurmBlock => "slurm-block",
            TopologyFormat::SlurmYaml => "slurm-yaml",
            TopologyFormat::SlurmTree => "slurm-tree",
            TopologyFormat::K8sLabels => "k8s-labels",
        }
    }
}

/// The label key NVIDIA's GPU feature discovery gives a node's NVLink clique.
pub const CLIQUE_LABEL: &str = "nvidia.com/gpu.clique";

/// The name of the tree form's top switch, above every domain's leaf switch.
const TREE_ROOT: &str = "nvlink-domains";

impl Topology {
    /// `BlockSizes`: the smallest domain's node count as the base block, doubled while that many
    /// domains exist (the base, then two domains, four, ...), so every size names blocks that are
    /// there. Slurm requires each size to be the one before times a power of two. Empty without
    /// domains.
    pub fn block_sizes(&self) -> Vec<usize> {
        let Some(base) = self.domains.iter().map(|d| d.nodes.len()).filter(|n| *n > 0).min() else {
            return Vec::new();
        };
        let mut sizes = vec![base];
        let mut blocks = 2;
        while blocks <= self.domains.len() {
            sizes.push(base * blocks);
            blocks *= 2;
        }
        sizes
    }

    /// The topology in `format`, one file's text, ending in a newline. `None` when no domain is
    /// verified: an empty block topology would leave Slurm no node to place a job on.
    pub fn render(&self, format: TopologyFormat) -> Option<String> {
        if self.domains.is_empty() {
            return None;
        }
        Some(match format {
            TopologyFormat::SlurmBlock => self.slurm_block(),
            TopologyFormat::SlurmYaml => self.slurm_yaml(),
            TopologyFormat::SlurmTree => self.slurm_tree(),
            TopologyFormat::K8sLabels => self.k8s_labels(),
        })
    }

    fn header(&self, comment: &str) -> String {
        let mut out = format!(
            "{comment} Written by kiln from its inventory: {} verified NVLink domain(s), only trays that passed the rack gate.\n",
            self.domains.len()
        );
        for d in &self.domains {
            out.push_str(&format!("{comment} {}: clique {}, {} node(s)\n", d.name, d.clique(), d.nodes.len()));
        }
        for l in &self.left_out {
            let reason: String = l.reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            out.push_str(&format!("{comment} left out: {} ({}): {reason}\n", l.node, l.rack));
        }
        out
    }

    fn slurm_block(&self) -> String {
        let mut out = self.header("#");
        for d in &self.domains {
            out.push_str(&format!("BlockName={} Nodes={}\n", d.name, hostlist(&d.nodes)));
        }
        let sizes: Vec<String> = self.block_sizes().iter().map(ToString::to_string).collect();
        out.push_str(&format!("BlockSizes={}\n", sizes.join(",")));
        out
    }

    fn slurm_tree(&self) -> String {
        let mut out = self.header("#");
        for d in &self.domains {
            out.push_str(&format!("SwitchName={} Nodes={}\n", d.name, hostlist(&d.nodes)));
        }
        // One switch above the domains, so a job may still span domains (over the scale-out
        // network) while the scheduler prefers one domain.
        if self.domains.len() > 1 {
            let names: Vec<String> = self.domains.iter().map(|d| d.name.clone()).collect();
            out.push_str(&format!("SwitchName={TREE_ROOT} Switches={}\n", hostlist(&names)));
        }
        out
    }

    fn slurm_yaml(&self) -> String {
        let mut out = self.header("#");
        out.push_str("- topology: nvlink\n  cluster_default: true\n  block:\n    block_sizes:\n");
        for size in self.block_sizes() {
            out.push_str(&format!("      - {size}\n"));
        }
        out.push_str("    blocks:\n");
        for d in &self.domains {
            out.push_str(&format!("      - block: {}\n        nodes: \"{}\"\n", d.name, hostlist(&d.nodes)));
        }
        out
    }

    fn k8s_labels(&self) -> String {
        let mut out = self.header("#");
        for d in &self.domains {
            for n in &d.nodes {
                out.push_str(&format!("kubectl label node {n} --overwrite {CLIQUE_LABEL}={}\n", d.clique()));
            }
        }
        out
    }
}

/// A block or switch name Slurm takes: letters, digits, `-` and `_`; anything else becomes `-`.
pub fn slurm_name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// A name split into its text and its trailing number (with the number's width, so `node01`
/// and `node1` are not one range).
fn split_number(name: &str) -> (&str, Option<(u64, usize)>) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    // Slurm's hostlist ranges hold up to 9 digits; longer numbers stay as they are.
    if digits == 0 || digits > 9 {
        return (name, None);
    }
    let (prefix, number) = name.split_at(name.len() - digits);
    match number.parse() {
        Ok(n) => (prefix, Some((n, digits))),
        Err(_) => (name, None),
    }
}

/// Natural order: `node2` before `node10`, then by the whole name.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (pa, na) = split_number(a);
    let (pb, nb) = split_number(b);
    pa.cmp(pb).then(na.map(|n| n.0).cmp(&nb.map(|n| n.0))).then(a.cmp(b))
}

/// Names as a Slurm hostlist expression: runs of one prefix and number width become
/// `node[01-03,05]`; other names stay as they are; groups are joined by commas. The names are
/// taken in the order given (sorted by the caller).
pub fn hostlist(names: &[String]) -> String {
    let mut groups: Vec<(String, usize, Vec<u64>)> = Vec::new();
    let mut plain: Vec<(usize, String)> = Vec::new();
    let mut order: Vec<(bool, usize)> = Vec::new();
    for name in names {
        match split_number(name) {
            (prefix, Some((n, width))) => {
                if let Some((p, w, numbers)) = groups.last_mut() {
                    if p == prefix && *w == width && matches!(order.last(), Some((true, _))) {
                        numbers.push(n);
                        continue;
                    }
                }
                groups.push((prefix.to_string(), width, vec![n]));
                order.push((true, groups.len() - 1));
            }
            (_, None) => {
                plain.push((order.len(), name.clone()));
                order.push((false, plain.len() - 1));
            }
        }
    }
    let mut parts = Vec::new();
    for (grouped, i) in order {
        if !grouped {
            parts.push(plain[i].1.clone());
            continue;
        }
        let (prefix, width, numbers) = &groups[i];
        if numbers.len() == 1 {
            parts.push(format!("{prefix}{:0width$}", numbers[0], width = *width));
            continue;
        }
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let mut ranges = Vec::new();
        let mut start = sorted[0];
        let mut end = start;
        for &n in &sorted[1..] {
            if n == end + 1 {
                end = n;
                continue;
            }
            ranges.push((start, end));
            start = n;
            end = n;
        }
        ranges.push((start, end));
        let text: Vec<String> = ranges
            .iter()
            .map(|(a, b)| {
                if a == b {
                    format!("{a:0width$}", width = *width)
                } else {
                    format!("{a:0width$}-{b:0width$}", width = *width)
                }
            })
            .collect();
        parts.push(format!("{prefix}[{}]", text.join(",")));
    }
    parts.join(",")
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
