//! How a node's agent proves who it is to the controller, and the controller to it.
//!
//! Each deployment (`kiln rack image`) draws a random deployment id and, for every node it
//! deploys, a random 256-bit key. The node receives both only through its boot path (the kernel
//! command line of the iPXE script or the virtual medium the controller serves to that node alone,
//! see `bootpath`), never through the agent API. Every agent request carries
//!
//! ```text
//! Kiln-Agent-Auth: node=<name> deploy=<deployment id> mac=<hex HMAC-SHA256>
//! ```
//!
//! over `kiln-agent-v1`, the deployment id, the node, the route and the body. The controller
//! recomputes it with the node's key and compares in constant time; a request of an earlier
//! deployment carries another deployment id and was made with another key, so it cannot be
//! replayed into this one. The controller signs its answers the same way (`kiln-controller-v1`,
//! the status in place of nothing), so an agent never acts on an answer that did not come from its
//! controller.
//!
//! The key lives in the controller's memory for the deployment only: never in the inventory, a
//! log line, an error or a report (`NodeKey`'s `Debug` hides it).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The request header carrying the proof (and the answer's).
pub use crate::image::serve::AUTH_HEADER as HEADER;

/// A node's key for one deployment. Zeroed when dropped (`zeroize`, as `Secret`); `Debug` never
/// shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(***)")
    }
}

/// Random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes)
}

impl NodeKey {
    /// A fresh random key.
    pub fn generate() -> Result<NodeKey, getrandom::Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut *key)?;
        Ok(NodeKey(key))
    }

    /// From its 64 hex digits (the kernel command line's `kiln.key=`).
    pub fn from_hex(text: &str) -> Option<NodeKey> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut *bytes).ok()?;
        Some(NodeKey(bytes))
    }

    /// 64 hex digits, for the node's boot path only.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_slice())
    }

    fn mac(&self, role: &str, deploy: &str, node: &str, route: &str, status: Option<u16>, body: &[u8]) -> Hmac<Sha256> {
        // A key of any length is accepted by HMAC; 32 bytes always are.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).unwrap_or_else(|_| unreachable_mac());
        let status = status.map(|s| s.to_string()).unwrap_or_default();
        for part in [role, deploy, node, route, &status] {
            m.update(part.as_bytes());
            m.update(b"\n");
        }
        m.update(body);
        m
    }

    /// The proof of an agent's request (hex).
    pub fn sign_request(&self, deploy: &str, node: &str, route: &str, body: &[u8]) -> String {
        hex::encode(self.mac("kiln-agent-v1", deploy, node, route, None, body).finalize().into_bytes())
    }

    /// The proof of the controller's answer (hex).
    pub fn sign_reply(&self, deploy: &str, node: &str, route: &str, status: u16, body: &[u8]) -> String {
        hex::encode(self.mac("kiln-controller-v1", deploy, node, route, Some(status), body).finalize().into_bytes())
    }

    /// True when `proof` (hex) is the request's; compared in constant time.
    pub fn verify_request(&self, deploy: &str, node: &str, route: &str, body: &[u8], proof: &str) -> bool {
        let Ok(given) = hex::decode(proof) else { return false };
        self.mac("kiln-agent-v1", deploy, node, route, None, body).verify_slice(&given).is_ok()
    }

    /// True when `proof` (hex) is the answer's; compared in constant time.
    pub fn verify_reply(&self, deploy: &str, node: &str, route: &str, status: u16, body: &[u8], proof: &str) -> bool {
        let Ok(given) = hex::decode(proof) else { return false };
        self.mac("kiln-controller-v1", deploy, node, route, Some(status), body).verify_slice(&given).is_ok()
    }
}

/// `Hmac::new_from_slice` fails only for key lengths HMAC cannot take, which no length is; this
/// is never reached. A key of zeros keeps the types simple without a panic path.
fn unreachable_mac() -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

/// What a `Kiln-Agent-Auth` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub node: String,
    pub deploy: String,
    pub mac: String,
}

impl Claim {
    /// The header's value: `node=N deploy=D mac=HEX`.
    pub fn header(node: &str, deploy: &str, mac: &str) -> String {
        format!("node={node} deploy={deploy} mac={mac}")
    }

    /// Parse a header value; `None` when a part is missing or repeated.
    pub fn parse(value: &str) -> Option<Claim> {
        let (mut node, mut deploy, mut mac) = (None, None, None);
        for word in value.split_whitespace() {
            let (key, v) = word.split_once('=')?;
            let slot = match key {
                "node" => &mut node,
                "deploy" => &mut deploy,
                "mac" => &mut mac,
                _ => return None,
            };
            if slot.replace(v.to_string()).is_some() || v.is_empty() {
                return None;
            }
        }
        Some(Claim { node: node?, deploy: deploy?, mac: mac? })
    }
}

/// What an agent holds to sign its requests: its node, the deployment, its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAuth {
    pub node: String,
    pub deploy: String,
    pub key: NodeKey,
}

impl AgentAuth {
    /// The header value for a request of `route` with `body`.
    pub fn header(&self, route: &str, body: &[u8]) -> String {
        Claim::header(&self.node, &self.deploy, &self.key.sign_request(&self.deploy, &self.node, route, body))
    }

    /// True when the answer's header value proves it came from this deployment's controller.
    pub fn answer_is_genuine(&self, route: &str, status: u16, body: &[u8], header: Option<&str>) -> bool {
        let Some(claim) = header.and_then(Claim::parse) else { return false };
        claim.node == self.node
            && claim.deploy == self.deploy
            && self.key.verify_reply(&self.deploy, &self.node, route, status, body, &claim.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> NodeKey {
        NodeKey(Zeroizing::new([byte; 32]))
    }

    #[test]
    fn a_request_verifies_only_with_its_key_deployment_node_route_and_body() {
        let k = key(7);
        let proof = k.sign_request("d1", "n1", "/agent/hello", b"{}");
        assert!(k.verify_request("d1", "n1", "/agent/hello", b"{}", &proof));
        assert!(!key(8).verify_request("d1", "n1", "/agent/hello", b"{}", &proof), "another key");
        assert!(!k.verify_request("d2", "n1", "/agent/hello", b"{}", &proof), "another deployment: a replay");
        assert!(!k.verify_request("d1", "n2", "/agent/hello", b"{}", &proof), "another node");
        assert!(!k.verify_request("d1", "n1", "/agent/result", b"{}", &proof), "another route");
        assert!(!k.verify_request("d1", "n1", "/agent/hello", b"{ }", &proof), "another body");
        assert!(!k.verify_request("d1", "n1", "/agent/hello", b"{}", "zz"), "not hex");
        assert!(!k.verify_request("d1", "n1", "/agent/hello", b"{}", &proof[..62]), "cut short");
        // A request's proof is no answer's, and the other way round.
        assert!(!k.verify_reply("d1", "n1", "/agent/hello", 200, b"{}", &proof));
        let answer = k.sign_reply("d1", "n1", "/agent/hello", 200, b"{}");
        assert!(k.verify_reply("d1", "n1", "/agent/hello", 200, b"{}", &answer));
        assert!(!k.verify_reply("d1", "n1", "/agent/hello", 403, b"{}", &answer), "another status");
    }

    #[test]
    fn keys_round_trip_through_hex_and_never_print() {
        let k = NodeKey::generate().expect("random");
        assert_ne!(k, NodeKey::generate().expect("random"));
        assert_eq!(NodeKey::from_hex(&k.to_hex()), Some(k.clone()));
        assert_eq!(NodeKey::from_hex("abc"), None);
        assert_eq!(format!("{k:?}"), "NodeKey(***)");
        let auth = AgentAuth { node: "n1".into(), deploy: "d1".into(), key: k.clone() };
        assert!(!format!("{auth:?}").contains(&k.to_hex()));
    }

    #[test]
    fn the_header_parses_strictly() {
        let c = Claim::parse("node=n1 deploy=d1 mac=ab").expect("parses");
        assert_eq!(c, Claim { node: "n1".into(), deploy: "d1".into(), mac: "ab".into() });
        for bad in ["", "node=n1 deploy=d1", "node=n1 node=n2 deploy=d1 mac=ab", "node= deploy=d1 mac=ab", "x=1"] {
            assert_eq!(Claim::parse(bad), None, "{bad:?}");
        }
        let auth = AgentAuth { node: "n1".into(), deploy: "d1".into(), key: key(1) };
        let body = br#"{"action":"wait"}"#;
        let signed = Claim::header("n1", "d1", &key(1).sign_reply("d1", "n1", "/agent/hello", 200, body));
        assert!(auth.answer_is_genuine("/agent/hello", 200, body, Some(&signed)));
        assert!(!auth.answer_is_genuine("/agent/hello", 200, body, None));
        let forged = Claim::header("n1", "d1", &key(2).sign_reply("d1", "n1", "/agent/hello", 200, body));
        assert!(!auth.answer_is_genuine("/agent/hello", 200, body, Some(&forged)));
    }
}
