//! `kiln rack handoff --to kubernetes` against a fake API server (real HTTPS, a thread in this
//! test) that records and checks every request: no Kubernetes API server can be installed here.

mod kube_support;

use std::path::Path;
use std::process::Command;

use kiln::checks::{Component, Finding, Outcome, Severity, Verdict};
use kiln::hw::fixture::sample::hgx_b200_node;
use kiln::inventory::{Inventory, RunRecord};
use kiln::lifecycle::{LifecycleState, RunKind};
use kube_support::{node_object, FakeKube};
use serde_json::{json, Value};

const TOKEN: &str = "kiln-test-token-0123456789";

fn record(inv: &mut Inventory, name: &str, pass: bool) {
    let node = hgx_b200_node(name);
    let findings = if pass {
        vec![Finding::new("gpu.count", Outcome::Pass, Severity::Critical, Component::node(), "8 GPUs")]
    } else {
        vec![Finding::new("nvlink.active", Outcome::Fail, Severity::Critical, Component::node(), "link 3 down")
            .action("reseat the NVLink cable")]
    };
    let verdict = Verdict::of(&findings);
    let run =
        RunRecord { findings: &findings, verdict: Some(verdict), ..RunRecord::new(RunKind::Validate, &node, "test") };
    inv.record_run(&run).expect("record validate");
    if pass {
        let burn = RunRecord { verdict: Some(Verdict::Pass), ..RunRecord::new(RunKind::Burnin, &node, "test") };
        inv.record_run(&burn).expect("record burn-in");
    }
}

struct Setup {
    dir: tempfile::TempDir,
    fake: FakeKube,
}

impl Setup {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn kiln(&self, extra: &[&str]) -> (i32, Value, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["rack", "handoff", "--to", "kubernetes", "--json", "--rack", &self.path("rack.toml")])
            .args(["--db", &self.path("kiln.db"), "--kube-api", &self.fake.url()])
            .args(["--kube-token-file", &self.path("token"), "--kube-ca", &self.path("ca.pem")])
            .args(extra)
            .output()
            .expect("run kiln");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), json, stderr)
    }

    fn inventory(&self) -> Inventory {
        Inventory::open_existing(Path::new(&self.path("kiln.db"))).expect("open")
    }
}

fn setup(cluster_nodes: Vec<Value>) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut manifest = String::from("[rack]\nid = \"k8s-r1\"\n");
    for n in ["k01", "k02", "k03", "k04"] {
        manifest.push_str(&format!("[[nodes]]\nname = \"{n}\"\naddress = \"127.0.0.1\"\n"));
    }
    std::fs::write(dir.path().join("rack.toml"), manifest).expect("manifest");
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).expect("token");
    let fake = FakeKube::start(TOKEN, cluster_nodes);
    std::fs::write(dir.path().join("ca.pem"), fake.ca_pem.as_bytes()).expect("ca");
    let mut inv = Inventory::open(dir.path().join("kiln.db")).expect("open");
    for (n, pass) in [("k01", true), ("k02", false), ("k03", true), ("k04", true)] {
        record(&mut inv, n, pass);
    }
    Setup { dir, fake }
}

/// k01 plain; k02 plain (it fails); k03 cordoned by a person; k04 cordoned,
/// tainted and labelled by kiln earlier, with someone else's taint beside.
fn cluster_nodes() -> Vec<Value> {
    let mut k03 = node_object("k03");
    k03["spec"]["unschedulable"] = json!(true);
    let mut k04 = node_object("k04");
    k04["spec"] = json!({"unschedulable": true, "taints": [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        {"key": "kiln.dev/health", "value": "fail", "effect": "NoSchedule"}]});
    k04["metadata"]["annotations"]["kiln.dev/cordoned"] = json!("true");
    k04["metadata"]["labels"]["kiln.dev/health"] = json!("fail");
    vec![node_object("k01"), node_object("k02"), k03, k04]
}

fn node_out<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["nodes"].as_array().and_then(|a| a.iter().find(|n| n["node"] == name)).expect("node in outcome")
}

#[test]
fn labels_taints_and_uncordons_only_what_kiln_cordoned() {
    let s = setup(cluster_nodes());
    let before: Vec<Value> = ["k01", "k02", "k03", "k04"].iter().map(|n| s.fake.node(n)).collect();

    // Dry run: GETs only, nothing recorded.
    let (code, out, err) = s.kiln(&["--dry-run"]);
    assert_eq!(code, 1, "k02 fails, k03 is left alone: {out:#} {err}");
    assert!(s.fake.requests().iter().all(|r| r.method == "GET"), "{:?}", s.fake.requests());
    let after: Vec<Value> = ["k01", "k02", "k03", "k04"].iter().map(|n| s.fake.node(n)).collect();
    assert_eq!(before, after);
    assert_eq!(s.inventory().state("k01").expect("state"), LifecycleState::BurnedIn);
    s.fake.clear_requests();

    // The real run; someone else changes k01 between kiln's read and its patch once.
    s.fake.race("k01", 1);
    let (code, out, err) = s.kiln(&[]);
    assert_eq!(code, 1, "{out:#} {err}");
    for r in s.fake.requests() {
        assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
        if r.method == "PATCH" {
            assert_eq!(r.content_type.as_deref(), Some("application/merge-patch+json"));
            let body: Value = serde_json::from_str(&r.body).expect("patch is JSON");
            assert!(body["metadata"]["resourceVersion"].is_string(), "every patch carries the version: {body}");
        }
    }
    let patches = |node: &str| -> Vec<kube_support::Seen> {
        s.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == "PATCH" && r.path == format!("/api/v1/nodes/{node}"))
            .collect()
    };
    // k01: the first patch hit the conflict, the second (after a fresh read) went through.
    let k01 = patches("k01");
    assert_eq!(k01.iter().map(|r| r.status).collect::<Vec<_>>(), vec![409, 200]);
    let k01 = s.fake.node("k01");
    assert_eq!(k01["metadata"]["labels"]["kiln.dev/health"], "pass");
    assert_eq!(k01["metadata"]["labels"]["someone.else/touched"], "yes", "the other writer's change survives");
    assert!(k01["metadata"]["labels"]["kiln.dev/run"].as_str().is_some_and(|r| r.parse::<i64>().is_ok()));

    // k02: labelled fail, tainted, cordoned and marked as cordoned by kiln, in one patch.
    let p = patches("k02");
    assert_eq!(p.len(), 1);
    let body: Value = serde_json::from_str(&p[0].body).expect("json");
    assert_eq!(body["spec"]["unschedulable"], true);
    assert_eq!(body["spec"]["taints"], json!([{"key": "kiln.dev/health", "value": "fail", "effect": "NoSchedule"}]));
    assert_eq!(body["metadata"]["annotations"]["kiln.dev/cordoned"], "true");
    let k02 = s.fake.node("k02");
    assert_eq!(k02["metadata"]["labels"]["kiln.dev/health"], "fail");
    assert_eq!(k02["spec"]["unschedulable"], true);
    assert!(
        matches!(s.inventory().state("k02").expect("state"), LifecycleState::Quarantined { reason } if reason.contains("nvlink.active"))
    );

    // k03: cordoned by a person: labelled pass but left cordoned, and the outcome says why.
    let k03 = s.fake.node("k03");
    assert_eq!(k03["spec"]["unschedulable"], true);
    assert_eq!(k03["metadata"]["labels"]["kiln.dev/health"], "pass");
    let n3 = node_out(&out, "k03");
    assert_eq!(n3["disposition"], "left_alone");
    let refused =
        n3["actions"].as_array().expect("actions").iter().find(|a| a["what"] == "uncordon").expect("uncordon");
    assert_eq!(refused["result"], "refused");
    assert!(refused["why"].as_str().is_some_and(|w| w.contains("someone else")));
    let h3 = s.inventory().history("k03").expect("history");
    assert!(h3.last().is_some_and(|e| e.cause.contains("cordoned by someone else")), "{h3:#?}");

    // k04: kiln's own cordon and taint undone; the other taint kept; the mark removed.
    let k04 = s.fake.node("k04");
    assert!(k04["spec"]["unschedulable"] == false || k04["spec"]["unschedulable"].is_null(), "{k04:#}");
    assert_eq!(k04["spec"]["taints"], json!([{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]));
    assert!(k04["metadata"]["annotations"].get("kiln.dev/cordoned").is_none(), "{k04:#}");
    assert_eq!(s.inventory().state("k04").expect("state"), LifecycleState::HandedOff);
    assert_eq!(s.inventory().state("k01").expect("state"), LifecycleState::HandedOff);

    // Again: everything is as wanted, so nothing is patched.
    s.fake.clear_requests();
    let (code, _, _) = s.kiln(&[]);
    assert_eq!(code, 1);
    assert!(s.fake.requests().iter().all(|r| r.method == "GET"), "{:?}", s.fake.requests());
}

#[test]
fn a_bad_token_an_unknown_node_and_an_untrusted_server_are_peer_errors() {
    let s = setup(vec![node_object("k01"), node_object("k02"), node_object("k03")]);
    // k04 is not a node of the cluster: 404, reported for that node.
    let (code, out, err) = s.kiln(&[]);
    assert_eq!(code, kiln::exit::PEER, "{out:#} {err}");
    let n4 = node_out(&out, "k04");
    assert_eq!(n4["disposition"], "error");
    assert!(n4["actions"][0]["error"].as_str().is_some_and(|e| e.contains("not a node of this Kubernetes cluster")));
    assert_eq!(s.inventory().state("k04").expect("state"), LifecycleState::BurnedIn, "nothing moved");

    std::fs::write(s.path("token"), "wrong-token\n").expect("token");
    let (code, out, _) = s.kiln(&["--nodes", "k01"]);
    assert_eq!(code, kiln::exit::PEER);
    assert!(node_out(&out, "k01")["actions"][0]["error"].as_str().is_some_and(|e| e.contains("HTTP 401")), "{out:#}");

    // A CA that did not sign the server's certificate: refused before any request.
    let other = FakeKube::start(TOKEN, Vec::new());
    std::fs::write(s.path("ca.pem"), &other.ca_pem).expect("ca");
    std::fs::write(s.path("token"), TOKEN).expect("token");
    let seen = s.fake.requests().len();
    let (code, out, _) = s.kiln(&["--nodes", "k01"]);
    assert_eq!(code, kiln::exit::PEER, "{out:#}");
    assert_eq!(s.fake.requests().len(), seen, "no request got through");
}
