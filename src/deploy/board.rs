//! The board: what the controller's HTTP side (agents' requests) and its node drivers (one
//! thread per node being deployed) share. Agents' requests are answered from it at once, except a
//! write result, whose answer waits (bounded) until the driver has set the node's next boot.
//!
//! The lock is never held across I/O: drivers talk to BMCs and the inventory without it, and wait
//! on the condition variable with a deadline, so neither side can block the other for good.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;

use super::identify::identify;
use super::protocol::{AgentMode, AgentResult, BootedReply, BootedReport, Hello, HelloReply, ResultReply};
use crate::image::serve::{error_json, PostRoutes};
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

/// Where a node being deployed stands, as far as agents' requests are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a slot (`--parallel`), or its boot being set: agents are told to wait.
    Preparing,
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

#[derive(Debug)]
struct Slot {
    phase: Phase,
    hello: bool,
    result: Option<AgentResult>,
    decision: Option<ResultReply>,
    booted: Option<BootedReport>,
}

/// How long the answer to a result waits for the driver to set the next boot.
const DECISION_WAIT: Duration = Duration::from_secs(90);
/// How soon an agent told to wait asks again.
const RETRY_MS: u64 = 1000;

pub struct Board {
    rack: String,
    nodes: Vec<RackNode>,
    offer: Offer,
    slots: Mutex<HashMap<String, Slot>>,
    changed: Condvar,
}

impl Board {
    /// A board for `deploying` (names of `nodes`, the whole rack, which identifies agents).
    pub fn new(rack: &str, nodes: Vec<RackNode>, deploying: &[String], offer: Offer) -> Board {
        let slots = deploying
            .iter()
            .map(|n| {
                let slot = Slot { phase: Phase::Preparing, hello: false, result: None, decision: None, booted: None };
                (n.clone(), slot)
            })
            .collect();
        Board { rack: rack.to_string(), nodes, offer, slots: Mutex::new(slots), changed: Condvar::new() }
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

    fn hello(&self, body: &[u8], peer: SocketAddr) -> (u16, String) {
        let hello = match Hello::parse(body) {
            Ok(h) => h,
            Err(e) => return (400, error_json(&e.0)),
        };
        let Some(name) = identify(&self.nodes, &hello, peer.ip()) else {
            let msg = format!(
                "no node of rack {} matches node {:?}, macs [{}], address {}",
                self.rack,
                hello.node.as_deref().unwrap_or(""),
                hello.macs.join(", "),
                peer.ip()
            );
            tracing::warn!(%peer, "{msg}");
            return (404, error_json(&msg));
        };
        let mut slots = self.lock();
        let wait = HelloReply::Wait { node: name.clone(), retry_ms: RETRY_MS };
        let reply = match (slots.get_mut(&name), hello.mode) {
            (Some(slot), AgentMode::Imaging) if matches!(slot.phase, Phase::AwaitAgent | Phase::Writing) => {
                slot.hello = true;
                slot.phase = Phase::Writing;
                HelloReply::Write {
                    node: name.clone(),
                    image_url: self.offer.image_url.clone(),
                    bmap_url: self.offer.bmap_url.clone(),
                    bmap_sha256: self.offer.bmap_sha256.clone(),
                    target: self.offer.target.clone(),
                    image_sha256: self.offer.image_sha256.clone(),
                    image_size: self.offer.image_size,
                }
            }
            (Some(slot), AgentMode::Booted) if slot.phase == Phase::AwaitBooted => HelloReply::Report {
                node: name.clone(),
                image_size: self.offer.image_size,
                target: self.offer.target.clone(),
            },
            _ => wait,
        };
        drop(slots);
        self.changed.notify_all();
        tracing::debug!(node = %name, ?reply, "agent hello");
        (200, serde_json::to_string(&reply).unwrap_or_default())
    }

    fn result(&self, body: &[u8]) -> (u16, String) {
        let result = match AgentResult::parse(body) {
            Ok(r) => r,
            Err(e) => return (400, error_json(&e.0)),
        };
        let node = result.node.clone();
        {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(&node) else {
                return self.unknown_or_stay(&node);
            };
            if slot.phase != Phase::Writing {
                return (200, stay());
            }
            slot.phase = Phase::Deciding;
            slot.decision = None;
            slot.result = Some(result);
        }
        self.changed.notify_all();
        let decision = self.wait_for(&node, Instant::now() + DECISION_WAIT, |s| s.decision);
        let reply = decision.unwrap_or(ResultReply::Stay);
        (200, serde_json::to_string(&reply).unwrap_or_default())
    }

    fn booted(&self, body: &[u8]) -> (u16, String) {
        let report = match BootedReport::parse(body) {
            Ok(r) => r,
            Err(e) => return (400, error_json(&e.0)),
        };
        let reply = {
            let mut slots = self.lock();
            let Some(slot) = slots.get_mut(&report.node) else {
                return self.unknown_or_stay(&report.node);
            };
            if slot.phase != Phase::AwaitBooted {
                let message = format!("node {} is not waiting for a booted report", report.node);
                return (409, serde_json::to_string(&BootedReply { ok: false, message }).unwrap_or_default());
            }
            let ok = report.image_sha256 == self.offer.image_sha256;
            let message = if ok {
                format!("node {} booted image sha256 {}", report.node, self.offer.image_sha256)
            } else {
                format!(
                    "node {} reports sha256 {} ({}), the image is {}",
                    report.node,
                    report.image_sha256,
                    report.source.as_str(),
                    self.offer.image_sha256
                )
            };
            slot.booted = Some(report);
            BootedReply { ok, message }
        };
        self.changed.notify_all();
        (200, serde_json::to_string(&reply).unwrap_or_default())
    }

    /// A node of the rack that is not being deployed is told to stay; any other name is a 404.
    fn unknown_or_stay(&self, node: &str) -> (u16, String) {
        if self.nodes.iter().any(|n| n.name == node) {
            (200, stay())
        } else {
            (404, error_json(&format!("no node {node:?} in rack {}", self.rack)))
        }
    }
}

fn stay() -> String {
    json!({"action": "stay"}).to_string()
}

impl PostRoutes for Board {
    fn post(&self, path: &str, body: &[u8], peer: SocketAddr) -> (u16, String) {
        match path {
            "/agent/hello" => self.hello(body, peer),
            "/agent/result" => self.result(body),
            "/agent/booted" => self.booted(body),
            other => (404, error_json(&format!("no route {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing::{node, offer, SHA};

    fn board() -> Board {
        let nodes = vec![
            node("n1", "10.0.0.1", &["52:54:00:00:00:01"], None),
            node("n2", "10.0.0.2", &["52:54:00:00:00:02"], None),
        ];
        Board::new("r1", nodes, &["n1".to_string()], offer())
    }

    fn peer(ip: &str) -> SocketAddr {
        format!("{ip}:40000").parse().expect("addr")
    }

    fn post(b: &Board, path: &str, body: &str, from: &str) -> (u16, serde_json::Value) {
        let (status, text) = b.post(path, body.as_bytes(), peer(from));
        (status, serde_json::from_str(&text).expect("answers JSON"))
    }

    #[test]
    fn agents_are_told_to_wait_until_the_reset_then_to_write() {
        let b = board();
        let hello = r#"{"macs":["52:54:00:00:00:01"],"mode":"imaging"}"#;
        let (status, v) = post(&b, "/agent/hello", hello, "192.0.2.9");
        assert_eq!((status, v["action"].as_str(), v["node"].as_str()), (200, Some("wait"), Some("n1")));
        b.set_phase("n1", Phase::AwaitAgent);
        let (_, v) = post(&b, "/agent/hello", r#"{"mode":"imaging"}"#, "10.0.0.1");
        assert_eq!(v["action"], "write");
        assert_eq!(v["image_sha256"], SHA);
        assert!(b.wait_hello("n1", Instant::now()));
        // A node of the rack that is not being deployed waits; a stranger is refused.
        let (_, v) = post(&b, "/agent/hello", r#"{"node":"n2","mode":"imaging"}"#, "192.0.2.9");
        assert_eq!(v["action"], "wait");
        let (status, v) = post(&b, "/agent/hello", r#"{"node":"zz","mode":"imaging"}"#, "192.0.2.9");
        assert_eq!(status, 404);
        assert!(v["error"].as_str().unwrap_or("").contains("no node of rack r1 matches node \"zz\""), "{v}");
        let (status, v) = post(&b, "/agent/hello", r#"{"mode":1}"#, "10.0.0.1");
        assert_eq!((status, v["error"].as_str()), (400, Some("field `mode`: expected a string, found 1")));
    }

    #[test]
    fn a_result_is_answered_once_the_driver_decides() {
        let b = std::sync::Arc::new(board());
        b.set_phase("n1", Phase::AwaitAgent);
        post(&b, "/agent/hello", r#"{"node":"n1","mode":"imaging"}"#, "10.0.0.1");
        let b2 = b.clone();
        let driver = std::thread::spawn(move || {
            let r = b2.wait_result("n1", Instant::now() + Duration::from_secs(10)).expect("result arrives");
            b2.decide("n1", ResultReply::Reboot);
            r
        });
        let body = format!(r#"{{"node":"n1","ok":true,"image_sha256":"{SHA}","bytes":4096,"seconds":0.1}}"#);
        let (_, v) = post(&b, "/agent/result", &body, "10.0.0.1");
        assert_eq!(v["action"], "reboot");
        assert!(driver.join().expect("driver").ok);
        let (_, v) = post(&b, "/agent/hello", r#"{"node":"n1","mode":"booted"}"#, "10.0.0.1");
        assert_eq!(v["action"], "report");
        let (_, v) = post(
            &b,
            "/agent/booted",
            &format!(r#"{{"node":"n1","image_sha256":"{SHA}","source":"disk"}}"#),
            "10.0.0.1",
        );
        assert_eq!(v["ok"], true);
        assert!(b.wait_booted("n1", Instant::now()).is_some());
    }

    #[test]
    fn an_unexpected_result_is_told_to_stay_and_a_wait_ends_at_its_deadline() {
        let b = board();
        let body = format!(r#"{{"node":"n1","ok":true,"image_sha256":"{SHA}"}}"#);
        let (_, v) = post(&b, "/agent/result", &body, "10.0.0.1");
        assert_eq!(v["action"], "stay");
        let started = Instant::now();
        assert!(b.wait_result("n1", started + Duration::from_millis(50)).is_none());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
