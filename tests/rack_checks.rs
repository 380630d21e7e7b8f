//! Rack-wide checks over collected nodes: firmware and count drift within a platform, and the
//! NVLink domain of an NVL72 rack, known from its platform spec's `[nvlink_domain]`.

use kiln::checks::Outcome;
use kiln::fleet::rack_checks::{rack_findings, RackMember};
use kiln::model::Node;
use serde_json::json;

/// A node as `kiln inspect --json` would print it, with `gpus` GPUs.
fn node(host: &str, bios: &str, vbios: &[&str], fabric: Option<(&str, u32)>) -> Node {
    let gpus: Vec<serde_json::Value> = vbios
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut g = json!({"index": i, "pci_address": format!("0000:{:02x}:00.0", 0x10 + i), "vbios_version": v});
            if let Some((uuid, clique)) = fabric {
                g["fabric"] = json!({"state": "completed", "status": 0, "cluster_uuid": uuid, "clique_id": clique, "health_mask": 0});
            }
            g
        })
        .collect();
    serde_json::from_value(json!({
        "schema_version": 1,
        "hostname": host,
        "dmi": {"product_name": "B200", "bios_version": bios},
        "cpus": {"architecture": "x86_64", "sockets": 2, "cores": 112, "threads": 224},
        "memory": {"total_kib": 2113929216u64},
        "net": [{"name": "ibp0", "kind": "infiniband", "firmware": "28.43.1014"}],
        "gpus": {"status": "inspected", "driver_version": "570.133.20", "gpus": gpus},
    }))
    .expect("node json")
}

/// The built-in platform specs, whose capabilities (`[nvlink_domain]`) the rack checks read.
fn specs() -> Vec<kiln::checks::spec_load::LoadedSpec> {
    kiln::checks::spec_load::load_builtin().expect("built-in specs parse")
}

fn failing<'a>(findings: &'a [kiln::checks::Finding], check: &str) -> Vec<&'a kiln::checks::Finding> {
    findings.iter().filter(|f| f.check == check && f.outcome == Outcome::Fail).collect()
}

#[test]
fn consistent_nodes_pass() {
    let nodes: Vec<Node> = (0..3).map(|i| node(&format!("n{i}"), "1.2", &["97.00.01"; 8], None)).collect();
    let names = ["n0", "n1", "n2"];
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(names)
        .map(|(node, name)| RackMember { name, platform: Some("hgx-b200"), node, tray: None })
        .collect();
    let findings = rack_findings(&members, &specs());
    assert!(findings.iter().all(|f| f.outcome != Outcome::Fail), "{findings:#?}");
    assert!(findings.iter().any(|f| f.check == "rack.firmware.vbios" && f.outcome == Outcome::Pass));
}

#[test]
fn the_odd_node_out_is_named_with_expected_and_actual() {
    let mut vbios_odd = vec!["97.00.01"; 8];
    vbios_odd[3] = "96.00.99";
    let nodes = [
        node("n0", "1.2", &["97.00.01"; 8], None),
        node("n1", "1.2", &["97.00.01"; 8], None),
        node("n2", "1.1", &vbios_odd, None),
        node("n3", "1.2", &["97.00.01"; 7], None),
    ];
    let names = ["n0", "n1", "n2", "n3"];
    let members: Vec<RackMember> =
        nodes.iter().zip(names).map(|(node, name)| RackMember { name, platform: None, node, tray: None }).collect();
    let findings = rack_findings(&members, &specs());

    let bios = failing(&findings, "rack.firmware.bios");
    assert_eq!(bios.len(), 1, "{findings:#?}");
    assert_eq!(bios[0].component.name.as_deref(), Some("n2"));
    assert_eq!(bios[0].expected.as_deref(), Some("1.2"));
    assert_eq!(bios[0].actual.as_deref(), Some("1.1"));
    assert!(bios[0].action.is_some());

    let vbios = failing(&findings, "rack.firmware.vbios");
    assert_eq!(vbios.len(), 1);
    assert_eq!(vbios[0].actual.as_deref(), Some("96.00.99, 97.00.01"));

    let count = failing(&findings, "rack.count.gpu");
    assert_eq!(count.len(), 1);
    assert_eq!((count[0].component.name.as_deref(), count[0].actual.as_deref()), (Some("n3"), Some("7")));
}

#[test]
fn an_even_split_has_no_majority_and_still_fails() {
    let nodes = [node("n0", "1.1", &["a"], None), node("n1", "1.2", &["a"], None)];
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(["n0", "n1"])
        .map(|(node, name)| RackMember { name, platform: None, node, tray: None })
        .collect();
    let bios: Vec<_> =
        rack_findings(&members, &specs()).into_iter().filter(|f| f.check == "rack.firmware.bios").collect();
    assert_eq!(bios.len(), 1);
    assert_eq!(bios[0].outcome, Outcome::Fail);
    assert!(bios[0].message.contains("n0=1.1; n1=1.2"), "{}", bios[0].message);
}

#[test]
fn nvl72_gpus_must_share_cluster_and_clique() {
    let uuid = "6b1f0000-0000-4000-8000-000000000001";
    let other = "6b1f0000-0000-4000-8000-000000000002";
    let nodes = [
        node("t0", "1", &["x"; 4], Some((uuid, 7))),
        node("t1", "1", &["x"; 4], Some((uuid, 7))),
        node("t2", "1", &["x"; 4], Some((other, 7))),
        node("t3", "1", &["x"; 4], Some((uuid, 9))),
    ];
    let names = ["t0", "t1", "t2", "t3"];
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(names)
        .map(|(node, name)| RackMember { name, platform: Some("gb200-nvl72-tray"), node, tray: None })
        .collect();
    let findings = rack_findings(&members, &specs());
    let cluster = failing(&findings, "rack.fabric.cluster");
    assert_eq!(cluster.len(), 4, "every GPU of t2: {findings:#?}");
    assert!(cluster.iter().all(|f| f.component.name.as_deref().unwrap_or("").starts_with("t2 gpu")));
    assert_eq!(cluster[0].expected.as_deref(), Some(uuid));
    let clique = failing(&findings, "rack.fabric.clique");
    assert_eq!(clique.len(), 4);
    assert!(clique.iter().all(|f| f.actual.as_deref() == Some("9")));
}

#[test]
fn nvl72_gpu_without_fabric_is_an_error_not_a_pass() {
    let nodes = [
        node("t0", "1", &["x"; 4], Some(("6b1f0000-0000-4000-8000-000000000001", 1))),
        node("t1", "1", &["x"; 4], None),
    ];
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(["t0", "t1"])
        .map(|(node, name)| RackMember { name, platform: Some("gb200-nvl72-tray"), node, tray: None })
        .collect();
    let findings = rack_findings(&members, &specs());
    let errors: Vec<_> =
        findings.iter().filter(|f| f.check == "rack.fabric.state" && f.outcome == Outcome::Error).collect();
    assert_eq!(errors.len(), 4);
}

/// The healthy GB200 tray of the fixture builder, inspected.
fn gb200_tray() -> Node {
    kiln::hw::fixture::sample::gb200_tray_node()
}

fn with_cluster(mut node: Node, uuid: &str) -> Node {
    if let kiln::model::GpuInventory::Inspected { gpus, .. } = &mut node.gpus {
        for g in gpus {
            g.fabric.as_mut().expect("fabric").cluster_uuid = uuid.to_string();
        }
    }
    node
}

#[test]
fn trays_named_by_no_platform_are_detected_and_judged_as_one_domain() {
    let tray = gb200_tray();
    let odd = with_cluster(gb200_tray(), "6b1f0000-0000-4000-8000-0000000000ff");
    let nodes = [tray.clone(), tray, odd];
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(["t0", "t1", "t2"])
        .map(|(node, name)| RackMember { name, platform: None, node, tray: None })
        .collect();
    let findings = rack_findings(&members, &specs());
    let cluster = failing(&findings, "rack.fabric.cluster");
    assert_eq!(cluster.len(), 4, "every GPU of t2: {findings:#?}");
    assert!(cluster.iter().all(|f| f.component.name.as_deref().unwrap_or("").starts_with("t2 gpu")));

    // A platform name the spec set does not know is detected the same way.
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(["t0", "t1", "t2"])
        .map(|(node, name)| RackMember { name, platform: Some("site-tray"), node, tray: None })
        .collect();
    assert_eq!(failing(&rack_findings(&members, &specs()), "rack.fabric.cluster").len(), 4);
}

#[test]
fn the_domain_check_follows_the_spec_capability_not_the_platform_name() {
    let tray = gb200_tray();
    let odd = with_cluster(gb200_tray(), "6b1f0000-0000-4000-8000-0000000000ff");
    let nodes = [tray.clone(), tray, odd];
    let named = |platform| -> Vec<RackMember> {
        nodes
            .iter()
            .zip(["t0", "t1", "t2"])
            .map(|(node, name)| RackMember { name, platform, node, tray: None })
            .collect()
    };
    // The same spec without [nvlink_domain]: its trays are separate machines.
    let mut without: Vec<_> = specs();
    for s in &mut without {
        s.platform.nvlink_domain = None;
    }
    let findings = rack_findings(&named(Some("gb200-nvl72-tray")), &without);
    assert!(!findings.iter().any(|f| f.check.starts_with("rack.fabric")), "{findings:#?}");
    // A differently named spec with the capability is judged as a domain.
    let mut renamed: Vec<_> = specs();
    for s in &mut renamed {
        if s.platform.nvlink_domain.is_some() {
            s.platform.name = "site-tray".into();
        }
    }
    assert_eq!(failing(&rack_findings(&named(Some("site-tray")), &renamed), "rack.fabric.cluster").len(), 4);
}

#[test]
fn a_rack_run_with_a_malformed_checks_dir_is_refused_before_any_node_is_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = dir.path().join("rack.toml");
    // TEST-NET-1: nothing answers there, so a node contacted would be a peer error (6), not 4.
    std::fs::write(
        &rack,
        "[rack]\nid = \"r1\"\n\n[credentials]\nssh_user = \"root\"\n\n[[nodes]]\nname = \"t0\"\naddress = \"192.0.2.1\"\n",
    )
    .expect("write manifest");
    let checks = dir.path().join("checks");
    std::fs::create_dir_all(checks.join("platforms")).expect("mkdir");
    std::fs::write(
        checks.join("platforms/site.toml"),
        "name = \"site\"\ndescription = \"x\"\n\n[nvlink_domain]\ngpus = 72\n",
    )
    .expect("write spec");
    let db = dir.path().join("kiln.db");
    for step in ["inspect", "validate", "burnin"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["rack", step, "--rack", rack.to_str().expect("utf-8"), "--connect-timeout", "1"])
            .args(["--checks-dir", checks.to_str().expect("utf-8"), "--db", db.to_str().expect("utf-8")])
            .output()
            .expect("run kiln");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{step}: {err}");
        assert!(err.contains("platforms/site.toml:4:1") && err.contains("trays"), "{step}: {err}");
        assert!(!db.exists(), "{step}: the inventory was opened before the specs were checked");
    }
}

/// Tray `i` of a healthy NVL72 rack, built from the healthy tray by the fixture builder.
fn rack_tray(i: u32) -> Node {
    use kiln::hw::fixture::{gb200_tray, Gb200Tray};
    gb200_tray(&Gb200Tray::in_rack(i)).inspect()
}

/// Members of a GB200 rack, each at the manifest tray its name says (`tray-05` at tray 5).
fn placed<'a>(trays: &'a [(String, Node)]) -> Vec<RackMember<'a>> {
    trays
        .iter()
        .map(|(name, node)| RackMember {
            name,
            platform: Some("gb200-nvl72-tray"),
            node,
            tray: name.strip_prefix("tray-").and_then(|n| n.parse().ok()),
        })
        .collect()
}

fn rack(trays: impl IntoIterator<Item = u32>) -> Vec<(String, Node)> {
    trays.into_iter().map(|i| (format!("tray-{i:02}"), rack_tray(i))).collect()
}

fn outcome_of(findings: &[kiln::checks::Finding], check: &str) -> Vec<Outcome> {
    findings.iter().filter(|f| f.check == check).map(|f| f.outcome).collect()
}

#[test]
fn a_full_nvl72_rack_passes_completeness_placement_and_serials() {
    let trays = rack(1..=18);
    let findings = rack_findings(&placed(&trays), &specs());
    for check in ["rack.domain.trays", "rack.domain.gpus", "rack.placement.tray", "rack.serial.gpu"] {
        assert_eq!(outcome_of(&findings, check), [Outcome::Pass], "{check}: {findings:#?}");
    }
    assert!(findings.iter().all(|f| f.outcome != Outcome::Fail), "{findings:#?}");
}

#[test]
fn a_short_rack_fails_as_the_racks_finding_naming_no_node() {
    let trays = rack(1..=12);
    let findings = rack_findings(&placed(&trays), &specs());
    let short = failing(&findings, "rack.domain.trays");
    assert_eq!(short.len(), 1, "{findings:#?}");
    assert_eq!(short[0].component.kind, "rack");
    assert_eq!((short[0].expected.as_deref(), short[0].actual.as_deref()), (Some("18"), Some("12")));
    assert!(short[0].message.contains("position 13, 14, 15, 16, 17, 18"), "{}", short[0].message);
    // A run over some of the rack's nodes is short by design: not judged there.
    let partial = kiln::fleet::rack_checks::rack_findings_scoped(&placed(&trays), &specs(), false);
    assert_eq!(outcome_of(&partial, "rack.domain.trays"), [Outcome::Skipped]);
}

#[test]
fn a_tray_where_the_manifest_puts_another_fails_placement_naming_it() {
    let mut trays = rack(1..=18);
    // The nodes at manifest trays 5 and 6 answer with each other's tray: swapped cables.
    let (a, b) = (trays[4].1.clone(), trays[5].1.clone());
    trays[4].1 = b;
    trays[5].1 = a;
    let findings = rack_findings(&placed(&trays), &specs());
    let wrong = failing(&findings, "rack.placement.tray");
    let named: Vec<_> = wrong.iter().map(|f| f.component.name.as_deref().unwrap_or("")).collect();
    assert_eq!(named, ["tray-05", "tray-06"], "{findings:#?}");
    assert_eq!((wrong[0].expected.as_deref(), wrong[0].actual.as_deref()), (Some("tray 5"), Some("tray 6")));
    assert!(wrong[0].message.contains("chassis serial 1821724190006"), "{}", wrong[0].message);
}

#[test]
fn duplicated_gpu_and_tray_serials_fail_on_every_holder() {
    let mut trays = rack(1..=18);
    // Tray 9's record is a copy of tray 8's: the same GPU and system serials.
    let mut copy = trays[7].1.clone();
    copy.hostname = "tray-09".into();
    if let kiln::model::GpuInventory::Inspected { gpus, .. } = &mut copy.gpus {
        for g in gpus {
            g.platform.as_mut().expect("platform").tray_index = 9;
        }
    }
    trays[8].1 = copy;
    let findings = rack_findings(&placed(&trays), &specs());
    let gpu = failing(&findings, "rack.serial.gpu");
    assert_eq!(gpu.len(), 8, "4 serials on two trays each: {findings:#?}");
    assert!(gpu.iter().all(|f| {
        let n = f.component.name.as_deref().unwrap_or("");
        n.starts_with("tray-08 gpu") || n.starts_with("tray-09 gpu")
    }));
    let system = failing(&findings, "rack.serial.system");
    let named: Vec<_> = system.iter().map(|f| f.component.name.as_deref().unwrap_or("")).collect();
    assert_eq!(named, ["tray-08", "tray-09"]);
}
