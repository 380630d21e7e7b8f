//! Where each node's requests may come from: the address the manifest gives (an IP, or a name
//! resolved when the deployment starts) and the addresses DHCP leased to its MACs (dnsmasq's lease
//! file, `--dhcp-leases`, read at each check: a node gets its lease only once it boots); and where
//! its BMC is (the host of its `bmc` URL), which fetches its virtual media.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::rack::RackNode;

/// The addresses a node and its BMC are known by.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// Manifest addresses, resolved, per node.
    fixed: HashMap<String, Vec<IpAddr>>,
    macs: HashMap<String, Vec<String>>,
    bmc: HashMap<String, Vec<IpAddr>>,
    leases: Option<PathBuf>,
}

/// A literal IP, or every address a name resolves to now (none when it does not).
fn resolve(host: &str) -> Vec<IpAddr> {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip.to_canonical()];
    }
    (host, 0).to_socket_addrs().map(|a| a.map(|s| s.ip().to_canonical()).collect()).unwrap_or_default()
}

/// The host of a URL `scheme://host[:port][/...]`.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    authority.split(':').next()
}

impl Peers {
    /// The addresses of `nodes` (those being deployed); `Err` names a node no request could ever
    /// be matched to: its address is no IP and does not resolve, and no lease file is given.
    pub fn new(nodes: &[&RackNode], leases: Option<PathBuf>) -> Result<Peers, String> {
        let mut p = Peers { leases, ..Peers::default() };
        for n in nodes {
            let fixed = resolve(&n.address);
            if fixed.is_empty() && p.leases.is_none() {
                return Err(format!(
                    "node {}: address {:?} is not an IP address and does not resolve; agents are checked against \
                     it (give an IP in nodes[name={}].address, or --dhcp-leases FILE)",
                    n.name, n.address, n.name
                ));
            }
            p.fixed.insert(n.name.clone(), fixed);
            p.macs.insert(n.name.clone(), n.macs.clone());
            let bmc = n.bmc.as_deref().and_then(url_host).map(resolve).unwrap_or_default();
            p.bmc.insert(n.name.clone(), bmc);
        }
        Ok(p)
    }

    /// The addresses `node`'s own requests may come from, now.
    pub fn node_addresses(&self, node: &str) -> Vec<IpAddr> {
        let mut all = self.fixed.get(node).cloned().unwrap_or_default();
        if let (Some(file), Some(macs)) = (&self.leases, self.macs.get(node)) {
            for (mac, ip) in read_leases(file) {
                if macs.iter().any(|m| m.eq_ignore_ascii_case(&mac)) && !all.contains(&ip) {
                    all.push(ip);
                }
            }
        }
        all
    }

    /// True when `peer` is one of `node`'s addresses.
    pub fn is_node(&self, node: &str, peer: IpAddr) -> bool {
        self.node_addresses(node).contains(&peer.to_canonical())
    }

    /// True when `peer` is `node`'s BMC.
    pub fn is_bmc(&self, node: &str, peer: IpAddr) -> bool {
        self.bmc.get(node).is_some_and(|a| a.contains(&peer.to_canonical()))
    }

    /// The MACs the manifest gives `node`.
    pub fn macs(&self, node: &str) -> &[String] {
        self.macs.get(node).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The node being deployed that has `mac`.
    pub fn node_of_mac(&self, mac: &str) -> Option<&str> {
        self.macs.iter().find(|(_, ms)| ms.iter().any(|m| m.eq_ignore_ascii_case(mac))).map(|(n, _)| n.as_str())
    }
}

/// `(mac, address)` of every lease in a dnsmasq lease file (`expiry mac ip hostname client-id`);
/// an unreadable file has none (the manifest's address still counts).
pub fn read_leases(path: &Path) -> Vec<(String, IpAddr)> {
    match crate::input::read_to_string(path, crate::input::Input::DhcpLeases) {
        Ok(text) => parse_leases(&text),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the DHCP lease file");
            Vec::new()
        }
    }
}

pub fn parse_leases(text: &str) -> Vec<(String, IpAddr)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mac, ip) = (f.next()?, f.next()?, f.next()?);
            Some((mac.to_ascii_lowercase(), ip.parse::<IpAddr>().ok()?.to_canonical()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_node_is_its_manifest_address_or_its_leases_and_its_bmc_is_its_bmc_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leases = dir.path().join("leases");
        let n1 = testing::node("n1", "10.0.0.1", &["52:54:00:00:00:01"], Some("https://admin@10.1.0.1:8443"));
        let n2 = testing::node("n2", "n2.invalid", &["52:54:00:00:00:02"], None);
        let err = Peers::new(&[&n1, &n2], None).expect_err("n2 cannot be matched");
        assert!(err.contains("node n2: address \"n2.invalid\" is not an IP address"), "{err}");
        let peers = Peers::new(&[&n1, &n2], Some(leases.clone())).expect("with leases");
        assert!(peers.is_node("n1", ip("10.0.0.1")));
        assert!(peers.is_node("n1", ip("::ffff:10.0.0.1")), "an IPv4 address seen through an IPv6 socket");
        assert!(!peers.is_node("n1", ip("10.0.0.2")));
        assert!(!peers.is_node("n2", ip("10.0.0.12")), "no lease yet");
        std::fs::write(&leases, "1700000000 52:54:00:00:00:02 10.0.0.12 n2 01:52:54:00:00:00:02\nbad line\n")
            .expect("leases");
        assert!(peers.is_node("n2", ip("10.0.0.12")), "leased to its MAC");
        assert!(!peers.is_node("n1", ip("10.0.0.12")));
        assert!(peers.is_bmc("n1", ip("10.1.0.1")) && !peers.is_bmc("n1", ip("10.0.0.1")));
        assert!(!peers.is_bmc("n2", ip("10.1.0.1")));
        assert_eq!(peers.node_of_mac("52:54:00:00:00:02"), Some("n2"));
        assert_eq!(url_host("https://[fd00::1]:443"), Some("fd00::1"));
    }
}
