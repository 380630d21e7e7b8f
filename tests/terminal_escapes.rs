//! Strings from the machine reach the terminal as text, never as escape sequences: a hostname
//! and a DMI product name that retitle the window and clear the screen are shown escaped in
//! every text output and in errors, and kept as they are in JSON.

use std::path::Path;
use std::process::{Command, Output};

const HOSTNAME: &str = "gpu\x1b]0;owned\x07-a01";
const PRODUCT: &str = "DGX\x1b[2J\u{9b}1m B200";

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env_remove("KILN_LOG")
        .env("KILN_DB", dir.join("kiln.db"))
        .output()
        .expect("kiln runs")
}

fn hostile_root(dir: &Path) -> String {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sys/class/dmi/id")).expect("mkdir");
    std::fs::create_dir_all(root.join("proc/sys/kernel")).expect("mkdir");
    std::fs::write(root.join("proc/sys/kernel/hostname"), format!("{HOSTNAME}\n")).expect("write");
    std::fs::write(root.join("sys/class/dmi/id/product_name"), format!("{PRODUCT}\n")).expect("write");
    root.to_str().expect("utf-8").to_string()
}

fn no_controls(what: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let bad: Vec<char> = text.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(bad.is_empty(), "{what} holds raw control characters {bad:?}:\n{text}");
    text
}

#[test]
fn machine_strings_are_escaped_in_text_and_kept_in_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = hostile_root(dir.path());

    let inspect = kiln(dir.path(), &["inspect", "--root", &root]);
    let text = no_controls("inspect", &inspect.stdout);
    assert!(text.contains("gpu\\x1b]0;owned\\x07-a01") && text.contains("DGX\\x1b[2J\\u{9b}1m B200"), "{text}");

    let validate = kiln(dir.path(), &["validate", "--root", &root]);
    let text = no_controls("validate", &validate.stdout);
    assert!(text.contains("node gpu\\x1b]0;owned\\x07-a01"), "{text}");

    let json = kiln(dir.path(), &["inspect", "--root", &root, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!((doc["hostname"].as_str(), doc["dmi"]["product_name"].as_str()), (Some(HOSTNAME), Some(PRODUCT)));
}

#[test]
fn an_error_quoting_a_hostile_value_is_escaped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kiln(dir.path(), &["validate", "--node", "node\x1b[2J.json"]);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    let err = no_controls("the error", &out.stderr);
    assert!(err.contains("node\\x1b[2J.json"), "{err}");
}
