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
    let members: Vec<RackMember> =
        nodes.iter().zip(names).map(|(node, name)| RackMember { name, platform: Some("hgx-b200"), node }).collect();
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
        nodes.iter().zip(names).map(|(node, name)| RackMember { name, platform: None, node }).collect();
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
    let members: Vec<RackMember> =
        nodes.iter().zip(["n0", "n1"]).map(|(node, name)| RackMember { name, platform: None, node }).collect();
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
        .map(|(node, name)| RackMember { name, platform: Some("gb200-nvl72-tray"), node })
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
        .map(|(node, name)| RackMember { name, platform: Some("gb200-nvl72-tray"), node })
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
    let members: Vec<RackMember> =
        nodes.iter().zip(["t0", "t1", "t2"]).map(|(node, name)| RackMember { name, platform: None, node }).collect();
    let findings = rack_findings(&members, &specs());
    let cluster = failing(&findings, "rack.fabric.cluster");
    assert_eq!(cluster.len(), 4, "every GPU of t2: {findings:#?}");
    assert!(cluster.iter().all(|f| f.component.name.as_deref().unwrap_or("").starts_with("t2 gpu")));

    // A platform name the spec set does not know is detected the same way.
    let members: Vec<RackMember> = nodes
        .iter()
        .zip(["t0", "t1", "t2"])
        .map(|(node, name)| RackMember { name, platform: Some("site-tray"), node })
        .collect();
    assert_eq!(failing(&rack_findings(&members, &specs()), "rack.fabric.cluster").len(), 4);
}

#[test]
fn the_domain_check_follows_the_spec_capability_not_the_platform_name() {
    let tray = gb200_tray();
    let odd = with_cluster(gb200_tray(), "6b1f0000-0000-4000-8000-0000000000ff");
    let nodes = [tray.clone(), tray, odd];
    let named = |platform| -> Vec<RackMember> {
        nodes.iter().zip(["t0", "t1", "t2"]).map(|(node, name)| RackMember { name, platform, node }).collect()
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
