//! Which node of the rack an agent is: the name it gives, else one of its MAC addresses against
//! the manifest's `macs`, else the address its request came from against the manifest's `address`.

use std::net::IpAddr;

use super::protocol::Hello;
use crate::rack::RackNode;

/// The manifest name of the node `hello` came from, or `None` when no node matches. A name that
/// is given but unknown is not matched by MAC or address: the agent was told who it is, and a
/// wrong name is a misconfiguration to report, not to guess around.
pub fn identify(nodes: &[RackNode], hello: &Hello, peer: IpAddr) -> Option<String> {
    if let Some(name) = &hello.node {
        return nodes.iter().find(|n| &n.name == name).map(|n| n.name.clone());
    }
    let by_mac = nodes.iter().find(|n| n.macs.iter().any(|m| hello.macs.iter().any(|h| h.eq_ignore_ascii_case(m))));
    if let Some(n) = by_mac {
        return Some(n.name.clone());
    }
    // The manifest's address may be a DNS name; only literal IPs are compared.
    nodes.iter().find(|n| n.address.parse::<IpAddr>().is_ok_and(|a| a == peer)).map(|n| n.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::protocol::AgentMode;

    fn node(name: &str, address: &str, macs: &[&str]) -> RackNode {
        RackNode {
            name: name.into(),
            address: address.into(),
            ssh_port: 22,
            bmc: None,
            bmc_system: None,
            ipmi: None,
            macs: macs.iter().map(|m| m.to_string()).collect(),
            slot: None,
            tray: None,
            kiln_root: None,
        }
    }

    fn hello(node: Option<&str>, macs: &[&str]) -> Hello {
        Hello {
            node: node.map(str::to_string),
            macs: macs.iter().map(|m| m.to_string()).collect(),
            mode: AgentMode::Imaging,
            kiln_version: String::new(),
        }
    }

    #[test]
    fn name_then_mac_then_address() {
        let nodes = [node("n1", "10.0.0.1", &["52:54:00:00:00:01"]), node("n2", "n2.example", &["52:54:00:00:00:02"])];
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(identify(&nodes, &hello(Some("n2"), &[]), ip("10.0.0.1")).as_deref(), Some("n2"));
        assert_eq!(identify(&nodes, &hello(Some("n9"), &["52:54:00:00:00:01"]), ip("10.0.0.1")), None);
        assert_eq!(identify(&nodes, &hello(None, &["52:54:00:00:00:02"]), ip("10.0.0.1")).as_deref(), Some("n2"));
        assert_eq!(identify(&nodes, &hello(None, &["aa:aa:aa:aa:aa:aa"]), ip("10.0.0.1")).as_deref(), Some("n1"));
        assert_eq!(identify(&nodes, &hello(None, &[]), ip("10.0.0.9")), None);
    }
}
