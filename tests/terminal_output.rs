//! What reaches the terminal from outside data. Strings from the machine are text, never escape
//! sequences: a hostname and a DMI product name that retitle the window and clear the screen are
//! shown escaped in every text output and in errors, and kept as they are in JSON. A huge input
//! value quoted in an error is cut to its first characters and its size.

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

#[test]
fn an_error_quoting_a_huge_value_quotes_its_start_and_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = "A".repeat(100_000);
    let cases = [
        ("name.toml", format!("name = \"{big}\"\ndescription = \"x\"\n[aer]\n")),
        (
            "id.toml",
            format!("name = \"x\"\ndescription = \"x\"\n[[devices]]\nrole = \"gpu\"\nids = [\"{big}\"]\ncount = 1\n"),
        ),
        ("bios.toml", format!("name = \"x\"\ndescription = \"x\"\n[firmware]\nbios_min = \"{big}\"\n")),
    ];
    for (file, text) in cases {
        std::fs::write(dir.path().join(file), text).expect("write");
        let out = kiln(dir.path(), &["spec", "check", file]);
        assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.len() < 600, "{file}: {} bytes of error", err.len());
        assert!(err.contains(&format!("{}\"... (100000 bytes)", "A".repeat(80))), "{file}: {err}");
        assert!(err.contains(file), "{err}");
    }
}
