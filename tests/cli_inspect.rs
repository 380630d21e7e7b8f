//! `kiln inspect` and `kiln capture` as a user runs them: exit codes and output.

mod fixture_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use kiln::model::Node;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).output().expect("kiln runs")
}

fn fixture(name: &str) -> PathBuf {
    fixture_support::shared(name)
}

fn json_node(args: &[&str]) -> Node {
    let out = kiln(args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inspect --json prints a Node")
}

#[test]
fn capture_of_a_fixture_inspects_like_the_fixture() {
    let root = fixture("hgx-b200");
    let root = root.to_str().expect("utf-8 path");
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("cap");
    let dest = dest.to_str().expect("utf-8 path");
    let out = kiln(&["capture", dest, "--root", root]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("captured hgx-b200-01"));
    let original = json_node(&["inspect", "--json", "--root", root]);
    let replayed = json_node(&["inspect", "--json", "--root", dest]);
    assert_eq!(original, replayed);
    assert_eq!(original.gpus.gpus().len(), 8);

    // Capturing into the same, now non-empty, directory is a usage error.
    let out = kiln(&["capture", dest, "--root", root]);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an empty directory"));
}

#[test]
fn live_capture_through_the_cli_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("cap");
    let dest = dest.to_str().expect("utf-8 path");
    let out = kiln(&["capture", dest]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let replayed = json_node(&["inspect", "--json", "--root", dest]);
    assert_eq!(replayed.cpus.architecture, std::env::consts::ARCH);
    assert!(!replayed.hostname.is_empty());
}

#[test]
fn human_summary_shows_gpus_links_and_problems() {
    let root = fixture("hgx-b200-malformed");
    let out = kiln(&["inspect", "--root", root.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("gpus     8 (driver 570.133.20)"), "{text}");
    assert!(text.contains("0000:1b:00.0  10de:2901 GB100 [B200]"), "{text}");
    assert!(text.contains("problems 1"), "{text}");
    assert!(text.contains("current_link_width: not an integer: \"x16?\""), "{text}");
}

#[test]
fn a_missing_or_broken_root_is_bad_input() {
    let out = kiln(&["inspect", "--root", "/nonexistent/kiln-root"]);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kiln-root"));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("kiln")).expect("mkdir");
    std::fs::write(dir.path().join("kiln/nvml.json"), "{not json").expect("write");
    let out = kiln(&["inspect", "--json", "--root", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("malformed nvml dump"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
