//! Many racks at once, end to end with the real kiln binary on this machine (the local transport,
//! fixture trees as the nodes, one inventory on disk): both bounds hold while racks overlap,
//! each rack is recorded and gated on its own, the worst rack gives the exit code; and through
//! the binary, a site manifest that puts a node in two racks or names a missing rack file is
//! refused before anything is touched or recorded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln::checks::Outcome;
use kiln::exit;
use kiln::fleet::{
    racks_at_once, run_site_step, Connector, FanoutOptions, LocalConnector, NodeStatus, NodeTransport, Plan, RackStep,
    RemoteBinary, SiteRackStep, SiteStep, Step, TransportError,
};
use kiln::hw::fixture::trees::Fault;
use kiln::hw::fixture::{hgx_b200, Unit};
use kiln::inventory::Inventory;
use kiln::lifecycle::LifecycleState;
use kiln::rack::RackNode;

/// An HGX B200 of its own (serials of its own) with `fault`, written under `dir/name`.
fn tree(dir: &Path, name: &str, number: u32, fault: Option<Fault>) -> String {
    let mut t = hgx_b200(&Unit::new(name, number, format!("1654225{number:06}")));
    if let Some(f) = fault {
        f.apply(&mut t);
    }
    let root = dir.join(name);
    t.write(&root).expect("write the tree");
    root.display().to_string()
}

fn node(name: &str, root: String) -> RackNode {
    RackNode { kiln_root: Some(root), ..RackNode::new(name, "127.0.0.1") }
}

/// Counts the transports open at once, over all racks and per rack (the part of a node's name
/// before `-`), around the local transport.
#[derive(Default)]
struct Counting {
    open: Mutex<(usize, HashMap<String, usize>)>,
    peak: Mutex<(usize, HashMap<String, usize>)>,
}

struct Counted {
    inner: Box<dyn NodeTransport>,
    rack: String,
    counts: Arc<Counting>,
}

struct CountingConnector(Arc<Counting>);

impl Connector for CountingConnector {
    fn connect(&self, node: &RackNode) -> Result<Box<dyn NodeTransport>, TransportError> {
        let rack = node.name.split('-').next().unwrap_or_default().to_string();
        let c = &self.0;
        let mut open = c.open.lock().expect("lock");
        open.0 += 1;
        *open.1.entry(rack.clone()).or_default() += 1;
        let mut peak = c.peak.lock().expect("lock");
        peak.0 = peak.0.max(open.0);
        let here = open.1[&rack];
        let p = peak.1.entry(rack.clone()).or_default();
        *p = (*p).max(here);
        drop((open, peak));
        Ok(Box::new(Counted { inner: LocalConnector.connect(node)?, rack, counts: Arc::clone(c) }))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("lock");
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.rack) {
            *n -= 1;
        }
    }
}

impl NodeTransport for Counted {
    fn exec(
        &mut self,
        argv: &[String],
        timeout: Duration,
        answer: Option<&mut kiln::fleet::Answerer<'_>>,
    ) -> Result<kiln::fleet::CommandOutput, TransportError> {
        self.inner.exec(argv, timeout, answer)
    }
    fn node(&self) -> &str {
        self.inner.node()
    }
}

#[test]
fn racks_overlap_under_both_bounds_and_each_is_recorded_and_gated_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // r1: four healthy nodes. r2: three healthy, one with an NVLink down (the node fails).
    // r3: two machines with one system serial (each passes alone; the rack check fails both).
    let r1: Vec<RackNode> =
        (1..=4).map(|i| node(&format!("r1-n{i}"), tree(d, &format!("r1-n{i}"), 10 + i, None))).collect();
    let mut r2: Vec<RackNode> =
        (1..=3).map(|i| node(&format!("r2-n{i}"), tree(d, &format!("r2-n{i}"), 20 + i, None))).collect();
    r2.push(node("r2-n4", tree(d, "r2-n4", 24, Some(Fault::NvlinkDown))));
    let twin = {
        let t = hgx_b200(&Unit::new("twin", 31, "1654225999999"));
        t.write(&d.join("twin")).expect("write");
        d.join("twin").display().to_string()
    };
    let r3 = vec![node("r3-n1", twin.clone()), node("r3-n2", twin)];

    let kiln = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let remote = d.join("node-bin/kiln");
    let binary = RemoteBinary::new(Some(&kiln), remote.to_str().expect("utf-8")).expect("binary");
    let opts = FanoutOptions { parallel: 2, command_timeout: Duration::from_secs(60), binary };
    // The node command waits a little first, so that racks overlap for certain.
    let plan = Plan {
        step: Step::Validate,
        command: vec![
            "sh".into(),
            "-c".into(),
            "sleep 0.3; exec {kiln} validate --json --with-node --root {root}".into(),
        ],
        push: true,
    };
    let specs = kiln::checks::spec_load::load_builtin().expect("built-in specs");
    let counts = Arc::new(Counting::default());
    let connector = CountingConnector(Arc::clone(&counts));
    let refs: Vec<Vec<&RackNode>> = [&r1, &r2, &r3].iter().map(|r| r.iter().collect()).collect();
    let racks: Vec<SiteRackStep<'_>> = ["r1", "r2", "r3"]
        .iter()
        .zip(&refs)
        .map(|(id, nodes)| SiteRackStep {
            step: RackStep {
                rack: id,
                rack_platform: Some("hgx-b200"),
                specs: &specs,
                nodes,
                plan: &plan,
                opts: &opts,
                force: false,
                whole_rack: true,
            },
            connector: &connector,
            skip_nodes: false,
            after: None,
        })
        .collect();
    let db = d.join("kiln.db");
    let open = || Inventory::open(&db);
    let site = SiteStep { site: Some("hall-1"), step: Step::Validate, racks: &racks, parallel: 3 };
    let seen = Mutex::new(Vec::new());
    let out = run_site_step(&site, Some(&open), racks_at_once(3, 2, 3), &|rack, node, _| {
        seen.lock().expect("lock").push(format!("{rack}/{node}"))
    });

    // The bounds: never more than 3 sessions in all nor 2 in one rack, and racks overlapped.
    let peak = counts.peak.lock().expect("lock").clone();
    assert_eq!(peak.0, 3, "the site bound is reached and held: {peak:?}");
    assert!(peak.1.values().all(|&n| n <= 2), "no rack past its own bound: {peak:?}");
    assert_eq!(out.peak_sessions, 3);
    assert!(seen.lock().expect("lock").iter().any(|s| s == "r3/r3-n2"), "progress names rack and node");

    // One outcome per rack, in order; the worst decides.
    let codes: Vec<(&str, i32)> = out.racks.iter().map(|r| (r.rack.as_str(), r.exit_code)).collect();
    assert_eq!(codes, [("r1", exit::OK), ("r2", exit::CHECK_FAILED), ("r3", exit::CHECK_FAILED)]);
    assert_eq!(out.exit_code, exit::CHECK_FAILED);
    assert_eq!(out.kind, "kiln.site");
    // Reports are not held past recording; what was recorded says so.
    for n in out.racks.iter().flat_map(|r| &r.nodes) {
        assert!(n.report.is_none(), "{} kept its report", n.node);
        assert!(n.recorded.as_ref().is_some_and(|r| r.run_id.is_some()), "{} not recorded", n.node);
    }
    let r2_status: Vec<NodeStatus> = out.racks[1].nodes.iter().map(|n| n.status).collect();
    assert_eq!(r2_status, [NodeStatus::Pass, NodeStatus::Pass, NodeStatus::Pass, NodeStatus::Fail]);
    assert!(out.racks[2].rack_findings.iter().any(|f| f.check == "rack.serial.system" && f.outcome == Outcome::Fail));

    // The inventory: a rack run per rack, each rack's gate on its own nodes only.
    let inv = Inventory::open(&db).expect("inventory");
    for (i, rack) in ["r1", "r2", "r3"].iter().enumerate() {
        let runs = inv.rack_runs(rack).expect("rack runs");
        assert_eq!(runs.len(), 1, "{rack}");
        assert_eq!(Some(runs[0].id.0), out.racks[i].rack_run_id, "{rack}");
        assert_eq!(runs[0].node_status.len(), refs[i].len(), "{rack}");
    }
    for n in ["r1-n1", "r1-n4", "r2-n1", "r2-n3"] {
        assert_eq!(inv.state(n).expect("state"), LifecycleState::Validated, "{n}");
    }
    assert_eq!(inv.state("r2-n4").expect("state").name(), "failed");
    for n in ["r3-n1", "r3-n2"] {
        let s = inv.state(n).expect("state");
        assert!(s.reason().is_some_and(|r| r.starts_with("rack validate failed: rack.serial")), "{n}: {s}");
    }
    drop(inv);

    // A rerun skips what passed, rack by rack, and the rack checks still judge whole racks.
    let again = run_site_step(&site, Some(&open), 2, &|_, _, _| {});
    let skipped = again.racks[0].nodes.iter().filter(|n| n.status == NodeStatus::Skipped).count();
    assert_eq!(skipped, 4, "r1 passed and is skipped");
    assert_eq!(again.racks[0].exit_code, exit::OK);
    assert!(again.racks[2].rack_findings.iter().any(|f| f.check == "rack.serial.system" && f.outcome == Outcome::Fail));
    assert_eq!(again.exit_code, exit::CHECK_FAILED);
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

fn rack_file(dir: &Path, file: &str, id: &str, nodes: &[(&str, &str)]) {
    let mut t = format!("[rack]\nid = \"{id}\"\n\n[credentials]\nknown_hosts = \"known_hosts\"\n");
    for (name, address) in nodes {
        t.push_str(&format!("\n[[nodes]]\nname = \"{name}\"\naddress = \"{address}\"\nssh_port = 1\n"));
    }
    write(&dir.join(file), &t);
}

fn kiln(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env_remove("KILN_RACK")
        .env_remove("KILN_LOG")
        .env("KILN_DB", dir.join("kiln.db"))
        .output()
        .expect("kiln runs")
}

#[test]
fn a_site_naming_a_node_twice_or_a_missing_rack_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    rack_file(d, "r1.toml", "r1", &[("a1", "10.99.0.1"), ("a2", "10.99.0.2")]);
    rack_file(d, "r2.toml", "r2", &[("b1", "10.99.1.1"), ("b2", "10.99.0.2")]);
    write(
        &d.join("site.toml"),
        "[site]\nid = \"s\"\n\n[[racks]]\nmanifest = \"r1.toml\"\n\n[[racks]]\nmanifest = \"r2.toml\"\n",
    );
    let out = kiln(d, &["rack", "validate", "--site", "site.toml", "--connect-timeout", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BAD_INPUT), "{err}");
    assert!(err.contains("site.toml:8: field `racks[1].manifest`"), "{err}");
    assert!(err.contains("node \"b2\"") && err.contains("10.99.0.2:1") && err.contains("node \"a2\""), "{err}");
    assert!(!d.join("kiln.db").exists(), "nothing recorded, not even an inventory");
    // The same racks given one by one: the error is in the later rack file.
    let out = kiln(d, &["rack", "validate", "--rack", "r1.toml", "--rack", "r2.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BAD_INPUT), "{err}");
    assert!(err.contains("r2.toml:14: field `nodes[1].address`"), "{err}");

    write(&d.join("gone.toml"), "[[racks]]\nmanifest = \"r1.toml\"\n[[racks]]\nmanifest = \"racks/r9.toml\"\n");
    let out = kiln(d, &["rack", "inspect", "--site", "gone.toml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(exit::BAD_INPUT), "{err}");
    assert!(err.contains("gone.toml:4: field `racks[1].manifest`") && err.contains("racks/r9.toml"), "{err}");
    assert!(!d.join("kiln.db").exists());

    // Two good racks whose nodes cannot be reached: one table with a rack column, exit 6.
    rack_file(d, "r3.toml", "r3", &[("c1", "10.99.2.1")]);
    let out = kiln(d, &["rack", "status", "--rack", "r1.toml", "--rack", "r3.toml", "--connect-timeout", "1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(exit::PEER), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("RACK  NODE"), "{text}");
    let racks: Vec<&str> = lines[1..4].iter().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(racks, ["r1", "r1", "r3"], "{text}");
    assert!(text.contains("2 racks, 3 nodes: 0 pass, 0 fail, 0 error, 0 skipped, 3 peer_error"), "{text}");
}

#[test]
fn burn_in_through_slurm_takes_one_rack_and_says_so_for_several() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    rack_file(d, "a.toml", "ra", &[("a1", "10.0.0.1")]);
    rack_file(d, "b.toml", "rb", &[("b1", "10.0.0.2")]);
    let out = kiln(d, &["rack", "burnin", "--via", "slurm", "--rack", "a.toml", "--rack", "b.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE), "{stderr}");
    assert!(stderr.contains("--via slurm burns in one rack"), "{stderr}");
    assert!(!d.join("kiln.db").exists(), "nothing is recorded for a refused command");
}
