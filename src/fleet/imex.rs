//! `kiln rack imex`: each verified NVLink domain's IMEX peer list (`nodes_config.cfg`: one IP
//! per line, the gate-passed trays of the domain in their stable order) written on every member
//! over the node transport, atomically (a temporary file beside it, then a rename), and checked
//! by its SHA-256 read back on the node.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::map_bounded;
use super::transport::{Connector, NodeTransport, RemoteExit, TransportError};
use crate::handoff::{LeftOut, Topology};
use crate::rack::RackNode;

/// Where NVIDIA's IMEX daemon reads its peers (`IMEX_NODE_CONFIG_FILE` in its config.cfg).
pub const NODES_CONFIG: &str = "/etc/nvidia-imex/nodes_config.cfg";

/// One domain's peer list and the members it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImexDomain {
    pub name: String,
    pub clique: String,
    /// Members in the file's order: (node, IP).
    pub members: Vec<(String, String)>,
    /// The file's text: one IP per line.
    pub config: String,
    pub sha256: String,
}

/// What happened on one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ImexWrite {
    Written,
    /// The node already held this list.
    AlreadyDone,
    /// A dry run.
    WouldWrite,
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberWrite {
    pub node: String,
    pub domain: String,
    #[serde(flatten)]
    pub write: ImexWrite,
}

/// The peer list of every verified domain of `topology`, from the manifest's addresses. A member
/// whose address is not an IP address is left out (IMEX lists peers by IP) and its domain goes on
/// without it, so every member still lists the same peers.
pub fn plan(topology: &Topology, rack: &str, nodes: &[RackNode]) -> (Vec<ImexDomain>, Vec<LeftOut>) {
    let mut left_out = Vec::new();
    let mut domains = Vec::new();
    for d in &topology.domains {
        let mut members = Vec::new();
        for name in &d.nodes {
            let Some(node) = nodes.iter().find(|n| &n.name == name) else { continue };
            // The IMEX network's address where the manifest gives one, else the SSH address.
            let address = node.imex_address.as_deref().unwrap_or(&node.address);
            match address.parse::<std::net::IpAddr>() {
                Ok(ip) => members.push((name.clone(), ip.to_string())),
                Err(_) => left_out.push(LeftOut {
                    node: name.clone(),
                    rack: rack.to_string(),
                    reason: format!(
                        "its manifest address {address:?} is not an IP address, and IMEX's nodes_config.cfg lists \
                         peers by IP (give `imex_address` in the manifest)"
                    ),
                }),
            }
        }
        if members.is_empty() {
            continue;
        }
        let config: String = members.iter().map(|(_, ip)| format!("{ip}\n")).collect();
        let sha256 = hex::encode(Sha256::digest(config.as_bytes()));
        domains.push(ImexDomain { name: d.name.clone(), clique: d.clique(), members, config, sha256 });
    }
    (domains, left_out)
}

/// The node-side script: `$1` the path, `$2` the text. Writes a temporary file in the same
/// directory, keeps the old file when it already holds the text, else renames over it, and
/// prints `unchanged` or `written` and the file's SHA-256.
const WRITE_SCRIPT: &str = "set -e; umask 022; dir=$(dirname \"$1\"); mkdir -p \"$dir\"; \
     tmp=$(mktemp \"$1.kiln.XXXXXX\"); trap 'rm -f \"$tmp\"' EXIT; printf '%s' \"$2\" > \"$tmp\"; \
     chmod 644 \"$tmp\"; if cmp -s \"$tmp\" \"$1\"; then echo unchanged; else sync \"$tmp\" 2>/dev/null || sync; \
     mv -f \"$tmp\" \"$1\"; echo written; fi; sha256sum \"$1\"";

/// Writes `text` at `path` on the node behind `transport`; `Ok(true)` when the file changed.
pub fn write_config(
    transport: &mut dyn NodeTransport,
    path: &str,
    text: &str,
    sha256: &str,
    timeout: std::time::Duration,
) -> Result<bool, String> {
    let argv: Vec<String> = ["sh", "-c", WRITE_SCRIPT, "sh", path, text].iter().map(|s| s.to_string()).collect();
    let out = transport.run(&argv, timeout).map_err(|e| crate::error::chain(&e))?;
    if out.exit != RemoteExit::Code(0) {
        return Err(format!("write {path}: {}", out.stderr_tail().unwrap_or_else(|| format!("{:?}", out.exit))));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let changed = match lines.next() {
        Some("written") => true,
        Some("unchanged") => false,
        other => return Err(format!("write {path}: unexpected answer {other:?}")),
    };
    let read_back = lines.next().and_then(|l| l.split_whitespace().next()).unwrap_or_default();
    if read_back != sha256 {
        return Err(format!("{path} reads back with SHA-256 {read_back}, not the {sha256} sent"));
    }
    Ok(changed)
}

/// Writes every domain's list on its members, at most `parallel` at once, unless `dry_run`.
/// Results in the domains' and members' order.
pub fn write_all(
    domains: &[ImexDomain],
    nodes: &[RackNode],
    connector: &dyn Connector,
    path: &str,
    parallel: usize,
    timeout: std::time::Duration,
    dry_run: bool,
) -> Vec<MemberWrite> {
    let jobs: Vec<(&ImexDomain, &RackNode)> = domains
        .iter()
        .flat_map(|d| d.members.iter().filter_map(move |(n, _)| nodes.iter().find(|r| &r.name == n).map(|r| (d, r))))
        .collect();
    map_bounded(&jobs, parallel, |(d, node)| {
        let write = if dry_run {
            ImexWrite::WouldWrite
        } else {
            let done = connector
                .connect(node)
                .map_err(|e: TransportError| crate::error::chain(&e))
                .and_then(|mut t| write_config(t.as_mut(), path, &d.config, &d.sha256, timeout));
            match done {
                Ok(true) => ImexWrite::Written,
                Ok(false) => ImexWrite::AlreadyDone,
                Err(error) => ImexWrite::Failed { error },
            }
        };
        MemberWrite { node: node.name.clone(), domain: d.name.clone(), write }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::LocalConnector;
    use crate::handoff::VerifiedDomain;

    fn topology() -> Topology {
        Topology {
            domains: vec![VerifiedDomain {
                name: "r1-7c1e2f3a-5".into(),
                cluster_uuid: "7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6".into(),
                clique_id: 5,
                racks: vec!["r1".into()],
                nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            }],
            left_out: Vec::new(),
        }
    }

    #[test]
    fn the_list_holds_the_members_ips_in_order_and_a_name_is_left_out() {
        let nodes =
            vec![RackNode::new("n2", "10.0.0.12"), RackNode::new("n1", "10.0.0.11"), RackNode::new("n3", "tray3.lab")];
        let (domains, left) = plan(&topology(), "r1", &nodes);
        assert_eq!(domains.len(), 1);
        assert_eq!(domains[0].config, "10.0.0.11\n10.0.0.12\n");
        assert_eq!(domains[0].clique, "7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6.5");
        assert_eq!(left.len(), 1);
        assert!(left[0].node == "n3" && left[0].reason.contains("not an IP address"), "{left:?}");
        // The IMEX network's address wins over the SSH one, also for a node reached by name.
        let mut nodes = nodes;
        nodes[0].imex_address = Some("192.168.7.12".into());
        nodes[2].imex_address = Some("192.168.7.13".into());
        let (domains, left) = plan(&topology(), "r1", &nodes);
        assert_eq!(domains[0].config, "10.0.0.11\n192.168.7.12\n192.168.7.13\n");
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_write_is_atomic_checked_by_its_digest_and_a_second_one_changes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("etc/nvidia-imex/nodes_config.cfg");
        let p = path.to_string_lossy().into_owned();
        let nodes = vec![RackNode::new("n1", "10.0.0.11"), RackNode::new("n2", "10.0.0.12")];
        let (domains, _) = plan(&topology(), "r1", &nodes);
        let t = std::time::Duration::from_secs(10);
        let dry = write_all(&domains, &nodes, &LocalConnector, &p, 2, t, true);
        assert!(dry.iter().all(|w| w.write == ImexWrite::WouldWrite) && !path.exists());
        // Both members are this machine here: one writes, the other finds it done.
        let first = write_all(&domains, &nodes[..1], &LocalConnector, &p, 2, t, false);
        assert_eq!(first[0].write, ImexWrite::Written, "{first:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "10.0.0.11\n10.0.0.12\n");
        let again = write_all(&domains, &nodes[..1], &LocalConnector, &p, 2, t, false);
        assert_eq!(again[0].write, ImexWrite::AlreadyDone);
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("dir")).expect("list").collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
        // A digest that does not match what the node reads back is a failure.
        let mut t2 = crate::fleet::LocalTransport::new("n1");
        let err = write_config(&mut t2, &p, "10.0.0.11\n", "00", t).expect_err("digest");
        assert!(err.contains("reads back with SHA-256"), "{err}");
        // A path the node cannot write names it.
        let mut t3 = crate::fleet::LocalTransport::new("n1");
        let err = write_config(&mut t3, "/proc/kiln-no/nodes_config.cfg", "x\n", "00", t).expect_err("unwritable");
        assert!(err.contains("/proc/kiln-no/nodes_config.cfg"), "{err}");
    }
}
