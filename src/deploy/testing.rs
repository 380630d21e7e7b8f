//! Values the deploy unit tests share: a rack node, an offer, and a deployment's access (keys,
//! addresses, boot files) with the requests a node's agent would sign.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::auth::{AgentAuth, NodeKey};
use super::board::{Access, Board, BootFiles, Offer};
use super::identify::Peers;
use crate::image::serve::{PostRoutes, Posted};
use crate::rack::RackNode;

/// The sha256 the test offer names.
pub const SHA: &str = "fe3576205e7c25047d0eeccfbd3477441de371cbb8ede00723e682739d413e01";
/// The test deployment's id.
pub const DEPLOY: &str = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";

/// A rack node with an address, MACs and, when given, a BMC.
pub fn node(name: &str, address: &str, macs: &[&str], bmc: Option<&str>) -> RackNode {
    RackNode {
        bmc: bmc.map(str::to_string),
        macs: macs.iter().map(|m| m.to_string()).collect(),
        ..RackNode::new(name, address)
    }
}

/// A 4 KiB image offered for /dev/vda.
pub fn offer() -> Offer {
    Offer {
        image_url: "http://c/files/i.raw".into(),
        bmap_url: "http://c/files/i.bmap.json".into(),
        image_sha256: SHA.into(),
        bmap_sha256: SHA.replace('f', "0"),
        image_size: 4096,
        target: "/dev/vda".into(),
    }
}

/// The key of node `name` in the test deployment (fixed per name).
pub fn key(name: &str) -> NodeKey {
    let byte = name.bytes().fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    NodeKey::from_hex(&format!("{byte:02x}").repeat(32)).expect("64 hex digits")
}

/// What a node's agent holds in the test deployment.
pub fn agent(name: &str) -> AgentAuth {
    AgentAuth { node: name.into(), deploy: DEPLOY.into(), key: key(name) }
}

/// The notes a board asked for: (node, cause).
pub type Notes = Arc<Mutex<Vec<(String, String)>>>;

/// A board deploying `deploying` of `nodes`, booting by network (vmlinuz, initrd.img), with its
/// notes.
pub fn board(nodes: Vec<RackNode>, deploying: &[&str]) -> (Board, Notes) {
    let deploying: Vec<String> = deploying.iter().map(|n| n.to_string()).collect();
    let selected: Vec<&RackNode> = nodes.iter().filter(|n| deploying.contains(&n.name)).collect();
    let peers = Peers::new(&selected, None).unwrap_or_default();
    let keys: HashMap<String, NodeKey> = deploying.iter().map(|n| (n.clone(), key(n))).collect();
    let notes: Notes = Arc::default();
    let sink = notes.clone();
    let access = Access {
        deploy: DEPLOY.into(),
        keys,
        peers,
        boot: BootFiles {
            base: "http://c".into(),
            cmdline: "console=ttyS0".into(),
            pxe: Some(("vmlinuz".into(), "initrd.img".into())),
            media: None,
        },
        note: Box::new(move |n: &str, c: &str| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push((n.into(), c.into()))
        }),
    };
    (Board::new("r1", nodes, &deploying, offer(), access), notes)
}

/// POST `body` to `path` from `from` (an IP), signed as `signer` when given; answers the status,
/// the JSON body and whether the answer carries the signer's controller proof.
pub fn post(
    b: &dyn PostRoutes,
    path: &str,
    body: &str,
    from: &str,
    signer: Option<&AgentAuth>,
) -> (u16, serde_json::Value, bool) {
    let header = signer.map(|a| a.header(path, body.as_bytes()));
    let peer = format!("{from}:40000").parse().expect("an address");
    let reply = b.post(&Posted { path, body: body.as_bytes(), peer, auth: header.as_deref() });
    let genuine =
        signer.is_some_and(|a| a.answer_is_genuine(path, reply.status, reply.body.as_bytes(), reply.auth.as_deref()));
    (reply.status, serde_json::from_str(&reply.body).unwrap_or_default(), genuine)
}
