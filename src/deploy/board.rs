//! The board: what the controller's HTTP side (agents' requests, nodes' boot files) and its node
//! drivers (one thread per node being deployed) share. Agents' requests are answered from it at
//! once, except a write result, whose answer waits (bounded) until the driver has set the node's
//! next boot.
//!
//! Nothing moves a node unless the request proves it comes from that node: signed with the node's
//! key for this deployment (`auth`), sent from the node's address (`identify`), and naming no other
//! node. Anything else is refused with a 403, logged, and noted
//! in the claimed node's history; the node's slot is not touched.
//!
//! The lock is never held across I/O: drivers talk to BMCs and the inventory without it, and wait
//! on the condition variable with a deadline, so neither side can block the other for good.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use super::auth::{Claim, NodeKey};
use super::bootpath::{chain_script, mac_from_path, node_script, Media, NodeWords, Patched};
use super::identify::Peers;
use super::protocol::{AgentMode, AgentResult, BadRequest, BootedReply, BootedReport, Hello, HelloReply, ResultReply};
use crate::image::serve::{error_json, Generated, PostRoutes, Posted, Reply};
use crate::rack::RackNode;

/// What every node is told to write, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub image_url: String,
    pub bmap_url: String,
    /// Lowercase hex of the whole image, from the artifact manifest (the block map agrees).
    pub image_sha256: String,
    /// Lowercase hex of the block map file, from the artifact manifest.
    pub bmap_sha256: String,
    pub image_size: u64,
    pub target: String,
}

/// How nodes boot into the imaging environment, for the files served under `/boot/`.
#[derive(Debug, Clone, Default)]
pub struct BootFiles {
    /// The URL nodes reach the controller at.
    pub base: String,
    /// The artifact's kernel command line, before the node's words.
    pub cmdline: String,
    /// Network boot: kernel and initrd, paths under `/files/`.
    pub pxe: Option<(String, String)>,
    /// Virtual media: the installer image with its placeholder.
    pub media: Option<Media>,
}

/// What the board checks requests against: this deployment's id, each node's key, each node's
/// addresses, and where refusals are noted (the node's history).
pub struct Access {
    pub deploy: String,
    pub keys: HashMap<String, NodeKey>,
    pub peers: Peers,
    pub boot: BootFiles,
    /// Note a refused request in `node`'s history (`cause`); failures are the sink's to log.
    pub note: NoteSink,
}

/// Where refusals are noted: `(node, cause)`.
pub type NoteSink = Box<dyn Fn(&str, &str) + Send + Sync>;

/// Where a node being deployed stands, as far as agents' requests are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a slot (`--parallel`): agents are told to wait, no boot file is served.
    Preparing,
    /// Its boot is being set (boot-set, reset): its boot files are served, agents told to wait.
    Booting,
    /// Reset done: the imaging agent is expected.
    AwaitAgent,
    /// The agent was told to write; its result is expected.
    Writing,
    /// The result is in; the driver sets the next boot and then answers it.
    Deciding,
    /// Told to reboot: the booted agent is expected.
    AwaitBooted,
    /// Finished (confirmed or failed): agents are told to wait, results to stay.
    Done,
}

impl Phase {
    /// While the node's iPXE script may be fetched.
    fn script_due(self) -> bool {
        matches!(self, Phase::Booting | Phase::AwaitAgent)
    }

    /// While its BMC may read its virtual medium (an installer reads it until it is ejected).
    fn media_due(self) -> bool {
        matches!(self, Phase::Booting | Phase::AwaitAgent | Phase::Writing | Phase::Deciding)
    }
}

#[derive(Debug)]
struct Slot {
    phase: Phase,
    hello: bool,
    result: Option<AgentResult>,
    decision: Option<ResultReply>,
    booted: Option<BootedReport>,
    /// Refusals noted in the node's history (at most `MAX_NOTED`; the rest are logged only).
    refusals: usize,
}

/// How long the answer to a result waits for the driver to set the next boot.
const DECISION_WAIT: Duration = Duration::from_secs(90);
/// How soon an agent told to wait asks again.
const RETRY_MS: u64 = 1000;
/// Refused requests noted per node and deployment; a flood is logged, not recorded.
pub const MAX_NOTED: usize = 10;

/// A request that does not prove where it comes from.
struct Refusal {
    /// The node it claims to be, when it names one of the rack.
    claimed: Option<String>,
    why: String,
}

pub struct Board {
    rack: String,
    nodes: Vec<RackNode>,
    offer: Offer,
    access: Access,
    slots: Mutex<HashMap<String, Slot>>,
    changed: Condvar,
    /// Refusals noted per claimed node not being deployed (no slot).
    others: Mutex<HashMap<String, usize>>,
}

impl Board {
    /// A board for `deploying` (names of `nodes`, the whole rack).
    pub fn new(rack: &str, nodes: Vec<RackNode>, deploying: &[String], offer: Offer, access: Access) -> Board {
        let slots = deploying
            .iter()
            .map(|n| {
                let slot = Slot {
                    phase: Phase::Preparing,
                    hello: false,
                    result: None,
                    decision: None,
                    booted: None,
                    refusals: 0,
                };
                (n.clone(), slot)
            })
            .collect();
        Board {
            rack: rack.to_string(),
            nodes,
            offer,
            access,
            slots: Mutex::new(slots),
            changed: Condvar::new(),
            others: Mutex::new(HashMap::new()),
        }
    }

    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic elsewhere while holding the lock is a bug; the map is still usable.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Move `node` to `phase` (clearing what the new phase expects) and wake every waiter.
    pub fn set_phase(&self, node: &str, phase: Phase) {
        if let Some(slot) = self.lock().get_mut(node) {
            slot.phase = phase;
            match phase {
                Phase::AwaitAgent => {
                    slot.hello = false;
                    slot.result = None;
                    slot.decision = None;
                }
                Phase::AwaitBooted => slot.booted = None,
                _ => {}
            }
        }
        self.changed.notify_all();
    }

    /// Answer the pending result of `node` and move it on: `Reboot` to `AwaitBooted`, `Stay` to
    /// `Done`.
    pub fn decide(&self, node: &str, reply: ResultReply) {
        if let Some(slot) = self.lock().get_mut(node) {
            slot.decision = Some(reply);
            slot.phase = if reply == ResultReply::Reboot { Phase::AwaitBooted } else { Phase::Done };
            slot.booted = None;
        }
        self.changed.notify_all();
    }

    /// Wait until `ready` picks something out of `node`'s slot, or `deadline` passes (`None`).
    fn wait_for<T>(&self, node: &str, deadline: Instant, mut ready: impl FnMut(&mut Slot) -> Option<T>) -> Option<T> {
        let mut slots = self.lock();
        loop {
            if let Some(found) = slots.get_mut(node).and_then(&mut ready) {
                return Some(found);
            }
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            slots = match self.changed.wait_timeout(slots, left) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Wait for the imaging agent's hello (or already its result).
    pub fn wait_hello(&self, node: &str, deadline: Instant) -> bool {
        self.wait_for(node, deadline, |s| (s.hello || s.result.is_some()).then_some(())).is_some()
    }

    /// Wait for the write result.
    pub fn wait_result(&self, node: &str, deadline: Instant) -> Option<AgentResult> {
        self.wait_for(node, deadline, |s| s.result.clone())
    }

    /// Wait for the booted report.
    pub fn wait_booted(&self, node: &str, deadline: Instant) -> Option<BootedReport> {
        self.wait_for(node, deadline, |s| s.booted.clone())
    }

    fn phase(&self, node: &str) -> Option<Phase> {
        self.lock().get(node).map(|s| s.phase)
    }

    fn in_rack(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n.name == node)
    }

    /// The node a request without valid proof claims to be: the header's, the body's `node`, or
    /// the node one of its MACs belongs to; only a node of the rack counts.
    fn claimed(&self, p: &Posted<'_>) -> Option<String> {
        let from_header = p.auth.and_then(Claim::parse).map(|c| c.node);
        let body: Option<serde_json::Value> = serde_json::from_slice(p.body).ok();
        let from_body = body.as_ref().and_then(|v| v["node"].as_str().map(str::to_string));
        let from_mac = body.as_ref().and_then(|v| {
            v["macs"].as_array()?.iter().filter_map(|m| m.as_str()).find_map(|m| {
                self.nodes.iter().find(|n| n.macs.iter().any(|x| x.eq_ignore_ascii_case(m))).map(|n| n.name.clone())
            })
        });
        [from_header, from_body, from_mac].into_iter().flatten().find(|n| self.in_rack(n))
    }

    /// Who sent `p`: the node whose key signed it, from that node's address.
    fn authenticate(&self, p: &Posted<'_>) -> Result<String, Refusal> {
        let refuse = |why: String| Refusal { claimed: self.claimed(p), why };
        let Some(value) = p.auth else {
            return Err(refuse(format!(
                "no {} header: an agent proves itself with the key its boot path gave it (kiln.key=)",
                super::auth::HEADER
            )));
        };
        let Some(claim) = Claim::parse(value) else {
            return Err(refuse(format!("a malformed {} header", super::auth::HEADER)));
        };
        let node = claim.node.clone();
        let Some(key) = self.access.keys.get(&node) else {
            return Err(refuse(format!("node {node:?} is not being deployed by this run of rack {}", self.rack)));
        };
        if claim.deploy != self.access.deploy {
            return Err(refuse(format!(
                "it was made for another deployment of node {node} (a replayed or stale request)"
            )));
        }
        if !key.verify_request(&claim.deploy, &node, p.path, p.body, &claim.mac) {
            return Err(refuse(format!("its proof does not match node {node}'s key for this deployment")));
        }
        let ip = p.peer.ip().to_canonical();
        if !self.access.peers.is_node(&node, ip) {
            return Err(refuse(format!(
                "it came from {ip}, which is not node {node}'s address ({})",
                addresses(&self.access.peers.node_addresses(&node))
            )));
        }
        Ok(node)
    }

    /// Refuse: 403, logged, and noted in the claimed node's history (bounded per node).
    fn refuse(&self, what: &str, peer: IpAddr, claimed: Option<&str>, why: &str) -> Reply {
        let message = format!("refused {what} from {peer}: {why}");
        tracing::warn!(node = claimed.unwrap_or("-"), "{message}");
        if let Some(node) = claimed {
            let noted = {
                let mut slots = self.lock();
                let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
                let count = match slots.get_mut(node) {
                    Some(slot) => &mut slot.refusals,
                    None => others.entry(node.to_string()).or_insert(0),
                };
                *count += 1;
                *count
            };
            if noted <= MAX_NOTED {
                let more = if noted == MAX_NOTED { " (further refusals this run are logged only)" } else { "" };
                (self.access.note)(node, &format!("image: {message}{more}"));
            }
        }
        Reply::json(403, error_json(&message))
    }

    /// Sign `body` as this deployment's controller's answer to `node` on `route`.
    fn signed(&self, node: &str, route: &str, status: u16, body: String) -> Reply {
        let auth = self.access.keys.get(node).map(|key| {
            let mac = key.sign_reply(&self.access.deploy, node, route, status, body.as_bytes());
            Claim::header(node, &self.access.deploy, &mac)
        });
        Reply { status, body, auth }
    }

    fn hello(&self, node: &str, hello: Hello) -> Result<(u16, String), String> {
        if let Some(named) = hello.node.as_deref().filter(|n| *n != node) {
            return Err(format!("node {node}'s request names node {named}"));
        }
        // The MACs an agent reports are its own word, proving nothing the key and the address do
        // not; a mismatch is a misconfiguration worth a line in the log.
        let known = self.access.peers.macs(node);
        if !known.is_empty() && !hello.macs.is_empty() && !hello.macs.iter().any(|m| known.iter().any(|k| k == m)) {
            tracing::warn!(node, macs = %hello.macs.join(", "), manifest = %known.join(", "), "the agent reports none of the node's MACs");
        }
        let mut slots = self.lock();
        let wait = HelloReply::Wait { node: node.to_string(), retry_ms: RETRY_MS };
        let reply = match (slots.get_mut(node), hello.mode) {
            (Some(slot), AgentMode::Imaging) if matches!(slot.phase, Phase::AwaitAgent | Phase::Writing) => {
                slot.hello = true;
                slot.phase = Phase::Writing;
                HelloReply::Write {
                    node: node.to_string(),
                    image_url: self.offer.image_url.clone(),
                    bmap_url: self.offer.bmap_url.clone(),
                    bmap_sha256: self.offer.bmap_sha256.clone(),
                    target: self.offer.target.clone(),
                    image_sha256: self.offer.image_sha256.clone(),
                    image_size: self.offer.image_size,
                }
            }
            (Some(slot), AgentMode::Booted) if slot.phase == Phase::AwaitBooted => HelloReply::Report {
                node: node.to_string(),
                image_size: self.offer.image_size,
                target: self.offer.target.clone(),
            },
            _ => wait,
        };
        drop(slots);
        self.changed.notify_all();
        tracing::debug!(node, ?reply, "agent hello");
        Ok((200, serde_json::to_string(&reply).unwrap_or_default()))
    }

    fn result(&self, node: &str, result: AgentResult) -> Result<(u16, String), String> {
        if result.node != node {
            return Err(format!("node {node}'s request names node {}", result.node));
        }
        {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(node) else { return Ok((200, stay())) };
            if slot.phase != Phase::Writing {
                return Ok((200, stay()));
            }
            slot.phase = Phase::Deciding;
            slot.decision = None;
            slot.result = Some(result);
        }
        self.changed.notify_all();
        let decision = self.wait_for(node, Instant::now() + DECISION_WAIT, |s| s.decision);
        let reply = decision.unwrap_or(ResultReply::Stay);
        Ok((200, serde_json::to_string(&reply).unwrap_or_default()))
    }

    fn booted(&self, node: &str, report: BootedReport) -> Result<(u16, String), String> {
        if report.node != node {
            return Err(format!("node {node}'s request names node {}", report.node));
        }
        let reply = {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(node) else { return Ok((200, stay())) };
            if slot.phase != Phase::AwaitBooted {
                let message = format!("node {node} is not waiting for a booted report");
                return Ok((409, serde_json::to_string(&BootedReply { ok: false, message }).unwrap_or_default()));
            }
            let ok = report.image_sha256 == self.offer.image_sha256;
            let message = if ok {
                format!("node {node} booted image sha256 {}", self.offer.image_sha256)
            } else {
                format!(
                    "node {node} reports sha256 {} ({}), the image is {}",
                    report.image_sha256,
                    report.source.as_str(),
                    self.offer.image_sha256
                )
            };
            slot.booted = Some(report);
            BootedReply { ok, message }
        };
        self.changed.notify_all();
        Ok((200, serde_json::to_string(&reply).unwrap_or_default()))
    }

    /// `GET /boot/<MAC>.ipxe`: the node's own script, to that node alone while its boot is due.
    fn node_script(&self, mac_text: &str, peer: IpAddr) -> Generated {
        let what = format!("GET /boot/{mac_text}.ipxe");
        let Some(mac) = mac_from_path(mac_text) else {
            return Generated::Refused(404, error_json(&format!("{mac_text:?} is not a MAC address")));
        };
        let Some(node) = self.access.peers.node_of_mac(&mac).map(str::to_string) else {
            let claimed = self.nodes.iter().find(|n| n.macs.contains(&mac)).map(|n| n.name.clone());
            let why = format!("no node being deployed has MAC {mac}");
            return refused(self.refuse(&what, peer, claimed.as_deref(), &why));
        };
        let Some((kernel, initrd)) = &self.access.boot.pxe else {
            return Generated::Refused(404, error_json("this deployment boots no node from the network"));
        };
        let phase = self.phase(&node);
        if !phase.is_some_and(Phase::script_due) {
            let why = format!("node {node}'s network boot is not due now ({phase:?})");
            return refused(self.refuse(&what, peer, Some(&node), &why));
        }
        if !self.access.peers.is_node(&node, peer) {
            let why = format!(
                "{peer} is not node {node}'s address ({})",
                addresses(&self.access.peers.node_addresses(&node))
            );
            return refused(self.refuse(&what, peer, Some(&node), &why));
        }
        match node_script(&self.access.boot.base, kernel, initrd, &self.access.boot.cmdline, &self.words(&node)) {
            Ok(script) => {
                tracing::info!(node, %peer, "served the node its iPXE script");
                Generated::Content(Box::new(script.into_bytes()))
            }
            Err(e) => Generated::Refused(500, error_json(&e.to_string())),
        }
    }

    /// `GET /boot/media/<node>/<name>`: the installer with the node's words, to its BMC alone.
    fn node_media(&self, rest: &str, peer: IpAddr) -> Generated {
        let what = format!("GET /boot/media/{rest}");
        let Some(media) = &self.access.boot.media else {
            return Generated::Refused(404, error_json("this deployment boots no node from virtual media"));
        };
        let (node, name) = rest.split_once('/').unwrap_or((rest, ""));
        if !self.access.keys.contains_key(node) || name != media.name {
            let claimed = self.in_rack(node).then_some(node);
            return refused(self.refuse(&what, peer, claimed, "no such medium in this deployment"));
        }
        let phase = self.phase(node);
        if !phase.is_some_and(Phase::media_due) {
            let why = format!("node {node}'s virtual media is not due now ({phase:?})");
            return refused(self.refuse(&what, peer, Some(node), &why));
        }
        if !self.access.peers.is_bmc(node, peer) {
            return refused(self.refuse(&what, peer, Some(node), &format!("{peer} is not node {node}'s BMC")));
        }
        match Patched::open(&media.path, &media.slots, &self.words(node).line()) {
            Ok(content) => {
                tracing::info!(node, %peer, "serving the node's virtual media");
                Generated::Content(Box::new(content))
            }
            Err(e) => Generated::Refused(500, error_json(&format!("{}: {e}", media.path.display()))),
        }
    }

    /// The words `node` is booted with.
    fn words(&self, node: &str) -> NodeWords {
        NodeWords {
            controller: self.access.boot.base.clone(),
            node: node.to_string(),
            deploy: self.access.deploy.clone(),
            key_hex: self.access.keys.get(node).map(NodeKey::to_hex).unwrap_or_default(),
            target: self.offer.target.clone(),
        }
    }
}

fn refused(reply: Reply) -> Generated {
    Generated::Refused(reply.status, reply.body)
}

fn addresses(list: &[IpAddr]) -> String {
    if list.is_empty() {
        return "none known yet".into();
    }
    list.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ")
}

fn stay() -> String {
    json!({"action": "stay"}).to_string()
}

impl PostRoutes for Board {
    fn post(&self, p: &Posted<'_>) -> Reply {
        let route = p.path;
        if !matches!(route, "/agent/hello" | "/agent/result" | "/agent/booted") {
            return Reply::json(404, error_json(&format!("no route {route}")));
        }
        let what = format!("POST {route}");
        let node = match self.authenticate(p) {
            Ok(node) => node,
            Err(r) => return self.refuse(&what, p.peer.ip().to_canonical(), r.claimed.as_deref(), &r.why),
        };
        let bad = |e: BadRequest| (400, error_json(&e.0));
        let answered = match route {
            "/agent/hello" => Hello::parse(p.body).map_err(bad).map(|h| self.hello(&node, h)),
            "/agent/result" => AgentResult::parse(p.body).map_err(bad).map(|r| self.result(&node, r)),
            _ => BootedReport::parse(p.body).map_err(bad).map(|r| self.booted(&node, r)),
        };
        match answered {
            Ok(Ok((status, body))) | Err((status, body)) => self.signed(&node, route, status, body),
            Ok(Err(why)) => self.refuse(&what, p.peer.ip().to_canonical(), Some(&node), &why),
        }
    }

    fn get(&self, path: &str, peer: SocketAddr) -> Option<Generated> {
        let peer = peer.ip().to_canonical();
        if path == "/boot/kiln.ipxe" {
            self.access.boot.pxe.as_ref()?;
            return Some(Generated::Content(Box::new(chain_script(&self.access.boot.base).into_bytes())));
        }
        if let Some(rest) = path.strip_prefix("/boot/media/") {
            return Some(self.node_media(rest, peer));
        }
        let mac = path.strip_prefix("/boot/")?.strip_suffix(".ipxe")?;
        Some(self.node_script(mac, peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::auth::AgentAuth;
    use crate::deploy::testing::{self, agent, node, post, SHA};

    fn board() -> (Board, testing::Notes) {
        let nodes = vec![
            node("n1", "10.0.0.1", &["52:54:00:00:00:01"], Some("https://10.1.0.1")),
            node("n2", "10.0.0.2", &["52:54:00:00:00:02"], None),
        ];
        testing::board(nodes, &["n1"])
    }

    #[test]
    fn agents_are_told_to_wait_until_the_reset_then_to_write_and_every_answer_is_signed() {
        let (b, notes) = board();
        let n1 = agent("n1");
        let hello = r#"{"node":"n1","macs":["52:54:00:00:00:01"],"mode":"imaging"}"#;
        let (status, v, genuine) = post(&b, "/agent/hello", hello, "10.0.0.1", Some(&n1));
        assert_eq!((status, v["action"].as_str(), genuine), (200, Some("wait"), true));
        b.set_phase("n1", Phase::AwaitAgent);
        let (_, v, genuine) = post(&b, "/agent/hello", r#"{"mode":"imaging"}"#, "10.0.0.1", Some(&n1));
        assert_eq!((v["action"].as_str(), v["image_sha256"].as_str(), genuine), (Some("write"), Some(SHA), true));
        assert!(b.wait_hello("n1", Instant::now()));
        let (status, v, genuine) = post(&b, "/agent/hello", r#"{"mode":1}"#, "10.0.0.1", Some(&n1));
        assert_eq!(
            (status, v["error"].as_str(), genuine),
            (400, Some("field `mode`: expected a string, found 1"), true)
        );
        assert!(notes.lock().expect("notes").is_empty(), "nothing was refused");
    }

    /// Every way a request can fail to prove it is the node's, each refused, noted against the
    /// node it claims, and none moving the node.
    #[test]
    fn a_request_that_does_not_prove_it_is_the_node_is_refused_and_noted() {
        let (b, notes) = board();
        b.set_phase("n1", Phase::AwaitAgent);
        let n1 = agent("n1");
        let wrong_key = AgentAuth { key: testing::key("other"), ..n1.clone() };
        let old_deploy = AgentAuth { deploy: "0123".into(), ..n1.clone() };
        let as_n2 = agent("n2");
        let imaging = r#"{"mode":"imaging","macs":["52:54:00:00:00:01"]}"#;
        let cases: [(&str, &str, Option<&AgentAuth>, &str); 7] = [
            (imaging, "10.0.0.1", None, "no Kiln-Agent-Auth header"),
            (imaging, "10.0.0.1", Some(&wrong_key), "does not match node n1's key"),
            (imaging, "10.0.0.1", Some(&old_deploy), "made for another deployment"),
            (imaging, "192.0.2.9", Some(&n1), "came from 192.0.2.9, which is not node n1's address (10.0.0.1)"),
            (r#"{"mode":"imaging","node":"n2"}"#, "10.0.0.1", Some(&n1), "node n1's request names node n2"),
            (r#"{"mode":"imaging","node":"n2"}"#, "10.0.0.2", Some(&as_n2), "node \"n2\" is not being deployed"),
            (
                r#"{"mode":"imaging"}"#,
                "10.0.0.1",
                Some(&AgentAuth { node: "zz".into(), ..n1.clone() }),
                "not being deployed",
            ),
        ];
        for (body, from, signer, why) in cases {
            let (status, v, _) = post(&b, "/agent/hello", body, from, signer);
            assert_eq!(status, 403, "{body} from {from}: {v}");
            assert!(v["error"].as_str().is_some_and(|e| e.contains(why)), "{why:?} in {v}");
        }
        // Not one of them counted as the node's hello.
        assert!(!b.wait_hello("n1", Instant::now()));
        let notes = notes.lock().expect("notes").clone();
        let on: Vec<&str> = notes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(on, ["n1", "n1", "n1", "n1", "n1", "n2"], "a stranger (zz) is logged only: {notes:?}");
        assert!(
            notes[0].1.starts_with("image: refused POST /agent/hello from 10.0.0.1: no Kiln-Agent-Auth"),
            "{notes:?}"
        );
        assert!(notes.iter().all(|(_, c)| !c.contains(&n1.key.to_hex())), "a key in a note");
    }

    #[test]
    fn a_flood_of_refusals_is_noted_a_bounded_number_of_times() {
        let (b, notes) = board();
        for _ in 0..50 {
            post(&b, "/agent/result", r#"{"node":"n1","ok":true}"#, "192.0.2.9", None);
        }
        let notes = notes.lock().expect("notes");
        assert_eq!(notes.len(), MAX_NOTED);
        assert!(notes[MAX_NOTED - 1].1.ends_with("(further refusals this run are logged only)"), "{notes:?}");
    }

    #[test]
    fn a_result_is_answered_once_the_driver_decides() {
        let (b, _) = board();
        let b = std::sync::Arc::new(b);
        let n1 = agent("n1");
        b.set_phase("n1", Phase::AwaitAgent);
        post(&*b, "/agent/hello", r#"{"node":"n1","mode":"imaging"}"#, "10.0.0.1", Some(&n1));
        let b2 = b.clone();
        let driver = std::thread::spawn(move || {
            let r = b2.wait_result("n1", Instant::now() + Duration::from_secs(10)).expect("result arrives");
            b2.decide("n1", ResultReply::Reboot);
            r
        });
        let body = format!(r#"{{"node":"n1","ok":true,"image_sha256":"{SHA}","bytes":4096,"seconds":0.1}}"#);
        // A copy of the result from elsewhere is refused and never reaches the driver.
        assert_eq!(post(&*b, "/agent/result", &body, "192.0.2.9", Some(&n1)).0, 403);
        let (_, v, genuine) = post(&*b, "/agent/result", &body, "10.0.0.1", Some(&n1));
        assert_eq!((v["action"].as_str(), genuine), (Some("reboot"), true));
        assert!(driver.join().expect("driver").ok);
        let (_, v, _) = post(&*b, "/agent/hello", r#"{"node":"n1","mode":"booted"}"#, "10.0.0.1", Some(&n1));
        assert_eq!(v["action"], "report");
        let report = format!(r#"{{"node":"n1","image_sha256":"{SHA}","source":"disk"}}"#);
        assert_eq!(post(&*b, "/agent/booted", &report, "10.0.0.9", Some(&n1)).0, 403, "not from the node");
        assert!(b.wait_booted("n1", Instant::now()).is_none());
        let (_, v, genuine) = post(&*b, "/agent/booted", &report, "10.0.0.1", Some(&n1));
        assert_eq!((v["ok"].as_bool(), genuine), (Some(true), true));
        assert!(b.wait_booted("n1", Instant::now()).is_some());
    }

    #[test]
    fn an_unexpected_result_is_told_to_stay_and_a_wait_ends_at_its_deadline() {
        let (b, _) = board();
        let body = format!(r#"{{"node":"n1","ok":true,"image_sha256":"{SHA}"}}"#);
        let (_, v, _) = post(&b, "/agent/result", &body, "10.0.0.1", Some(&agent("n1")));
        assert_eq!(v["action"], "stay");
        let started = Instant::now();
        assert!(b.wait_result("n1", started + Duration::from_millis(50)).is_none());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    fn get(b: &Board, path: &str, from: &str) -> (u16, String) {
        match b.get(path, format!("{from}:1").parse().expect("addr")) {
            Some(Generated::Content(mut c)) => {
                let mut out = Vec::new();
                c.copy_range(0, c.len(), &mut out).expect("content");
                (200, String::from_utf8_lossy(&out).into_owned())
            }
            Some(Generated::Refused(code, body)) => (code, body),
            None => (0, String::new()),
        }
    }

    #[test]
    fn a_node_gets_its_own_ipxe_script_from_its_address_while_its_boot_is_due() {
        let (b, notes) = board();
        let (status, chain) = get(&b, "/boot/kiln.ipxe", "192.0.2.9");
        assert_eq!(status, 200);
        assert!(chain.contains("/boot/${netX/mac:hexhyp}.ipxe") && !chain.contains("kiln.key"), "{chain}");
        let (status, body) = get(&b, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.1");
        assert_eq!(status, 403, "not before its boot is set: {body}");
        b.set_phase("n1", Phase::Booting);
        let (status, body) = get(&b, "/boot/52-54-00-00-00-01.ipxe", "192.0.2.9");
        assert!(status == 403 && body.contains("is not node n1's address"), "{body}");
        let (status, script) = get(&b, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.1");
        assert_eq!(status, 200, "{script}");
        let key = agent("n1").key.to_hex();
        assert!(script.contains(&format!("kiln.node=n1 kiln.deploy={} kiln.key={key}", testing::DEPLOY)), "{script}");
        assert!(
            script.contains("kernel http://c/files/vmlinuz initrd=initrd.img console=ttyS0 kiln.controller=http://c")
        );
        let (status, _) = get(&b, "/boot/52-54-00-00-00-02.ipxe", "10.0.0.2");
        assert_eq!(status, 403, "n2 is not being deployed");
        b.set_phase("n1", Phase::Writing);
        assert_eq!(get(&b, "/boot/52-54-00-00-00-01.ipxe", "10.0.0.1").0, 403, "not once it is writing");
        let notes = notes.lock().expect("notes");
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(notes.iter().all(|(_, c)| !c.contains(&key)));
        assert_eq!(get(&b, "/boot/other", "10.0.0.1").0, 0, "not a route: the file mounts answer");
    }

    #[test]
    fn a_node_medium_goes_to_its_bmc_alone_with_its_words_in_the_placeholder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let iso = dir.path().join("installer.iso");
        let original = format!("CD001\nlinux /vmlinuz quiet kiln.settings={}\nrest", "_".repeat(300));
        std::fs::write(&iso, &original).expect("iso");
        let nodes = vec![node("n1", "10.0.0.1", &["52:54:00:00:00:01"], Some("https://10.1.0.1"))];
        let (mut b, notes) = testing::board(nodes, &["n1"]);
        b.access.boot.media = Some(Media::load(&iso).expect("placeholder"));
        let path = "/boot/media/n1/installer.iso";
        assert_eq!(get(&b, path, "10.1.0.1").0, 403, "not before its boot-set");
        b.set_phase("n1", Phase::Booting);
        let (status, body) = get(&b, path, "10.0.0.1");
        assert!(status == 403 && body.contains("10.0.0.1 is not node n1's BMC"), "the node itself: {body}");
        assert_eq!(get(&b, "/boot/media/n2/installer.iso", "10.1.0.1").0, 403, "no such node");
        assert_eq!(get(&b, "/boot/media/n1/other.iso", "10.1.0.1").0, 403, "no such medium");
        let (status, served) = get(&b, path, "10.1.0.1");
        assert_eq!(status, 200);
        assert_eq!(served.len(), original.len(), "same length, same layout");
        let line = served.lines().nth(1).expect("kernel line");
        let key = agent("n1").key.to_hex();
        assert!(line.starts_with("linux /vmlinuz quiet kiln.controller=http://c kiln.node=n1 kiln.deploy="), "{line}");
        assert!(line.contains(&format!("kiln.key={key} kiln.mode=imaging kiln.target=/dev/vda")), "{line}");
        assert!(served.ends_with("\nrest"));
        b.set_phase("n1", Phase::Writing);
        assert_eq!(get(&b, path, "10.1.0.1").0, 200, "an installer reads its medium while it runs");
        b.set_phase("n1", Phase::AwaitBooted);
        assert_eq!(get(&b, path, "10.1.0.1").0, 403, "not once it was told to reboot");
        assert!(std::fs::read_to_string(&iso).expect("iso") == original, "the key never reaches the file");
        assert_eq!(notes.lock().expect("notes").len(), 4, "every refusal but the unknown node's is noted on n1");
    }
}
