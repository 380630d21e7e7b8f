//! The IMEX node check through `kiln validate --root` on GB200 tray trees: the daemon's recorded
//! `nvidia-imex-ctl -N -j` output (tests/fixtures/imex, written from NVIDIA's documented format),
//! the peer list and the channel device placed in the tree, each fault failing its own check and
//! a tray without IMEX skipped.

use std::path::Path;
use std::process::Command;

use kiln::hw::fixture::{gb200_tray, Gb200Tray};
use serde_json::Value;

const UP: &str = include_str!("fixtures/imex/domain-up.json");
const DEGRADED: &str = include_str!("fixtures/imex/domain-degraded.json");
const PEERS: &str = "10.77.5.11\n10.77.5.12\n10.77.5.13\n10.77.5.14\n";

fn validate(dir: &Path, files: &[(&str, &str)]) -> (i32, Vec<(String, String)>) {
    let mut tree = gb200_tray(&Gb200Tray::in_rack(1));
    for (rel, text) in files {
        tree.file(rel, text);
    }
    let _ = std::fs::remove_dir_all(dir);
    tree.write(dir).expect("write the tree");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["validate", "--json", "--platform", "gb200-nvl72-tray", "--root"])
        .arg(dir)
        .output()
        .expect("run kiln");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let imex = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"].as_str().is_some_and(|c| c.starts_with("imex.")))
        .map(|f| {
            (f["check"].as_str().unwrap_or_default().to_string(), f["outcome"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    (out.status.code().unwrap_or(-1), imex)
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn the_imex_check_passes_a_ready_domain_fails_each_fault_and_skips_a_tray_without_imex() {
    let tmp = tempfile::tempdir().expect("dir");
    let healthy = [
        ("kiln/imex-ctl.json", UP),
        ("etc/nvidia-imex/nodes_config.cfg", PEERS),
        ("dev/nvidia-caps-imex-channels/channel0", ""),
    ];
    let (code, imex) = validate(&tmp.path().join("up"), &healthy);
    assert_eq!(code, 0, "{imex:?}");
    assert_eq!(
        imex,
        pairs(&[("imex.config", "pass"), ("imex.daemon", "pass"), ("imex.peers", "pass"), ("imex.channel", "pass")])
    );

    let (code, imex) = validate(
        &tmp.path().join("degraded"),
        &[("kiln/imex-ctl.json", DEGRADED), ("etc/nvidia-imex/nodes_config.cfg", PEERS)],
    );
    assert_eq!(code, 1);
    assert!(imex.contains(&("imex.peers".into(), "fail".into())), "{imex:?}");
    assert!(imex.contains(&("imex.channel".into(), "fail".into())), "{imex:?}");

    let (code, imex) = validate(
        &tmp.path().join("down"),
        &[
            ("kiln/imex-ctl.err", "could not connect to the IMEX command service\n"),
            ("etc/nvidia-imex/nodes_config.cfg", PEERS),
            ("dev/nvidia-caps-imex-channels/channel0", ""),
        ],
    );
    assert_eq!(code, 1);
    assert!(imex.contains(&("imex.daemon".into(), "fail".into())), "{imex:?}");

    let (code, imex) = validate(&tmp.path().join("none"), &[]);
    assert_eq!(code, 0, "no IMEX is not a failure");
    assert_eq!(imex, pairs(&[("imex.daemon", "skipped")]));
}

#[test]
fn a_capture_of_a_tray_with_imex_replays_the_daemons_answer() {
    use kiln::hw::{capture::capture, inspect, open};
    let tmp = tempfile::tempdir().expect("dir");
    let src = tmp.path().join("tray");
    let mut tree = gb200_tray(&Gb200Tray::in_rack(2));
    tree.file("kiln/imex-ctl.json", DEGRADED).file("etc/nvidia-imex/nodes_config.cfg", PEERS);
    tree.write(&src).expect("write the tree");
    let (t, g) = open(Some(&src)).expect("open the tree");
    let dest = tmp.path().join("capture");
    let summary = capture(t.as_ref(), g.as_ref(), &dest).expect("capture");
    assert!(matches!(&summary.node.imex, Some(kiln::model::Imex::Inspected { .. })), "{:?}", summary.node.imex);
    let (t, g) = open(Some(&dest)).expect("open the capture");
    assert_eq!(inspect(t.as_ref(), g.as_ref()), summary.node);
}
