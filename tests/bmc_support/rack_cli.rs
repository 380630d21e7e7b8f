//! The rack firmware tests' way of running `kiln` on a rack manifest: the binary with the
//! inventory in the test's directory and the BMC password in `RACK_PW`, a manifest written from
//! `(name, slot, bmc)` rows, and readers of what it printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `kiln ARGS` in `dir` (inventory `dir/kiln.db`), the manifest's BMC password in `RACK_PW`.
pub fn kiln(dir: &Path, args: &[&str], password: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_DB", dir.join("kiln.db"))
        .env("RACK_PW", password)
        .env_remove("KILN_LOG")
        .env_remove("KILN_CHECKS")
        .output()
        .expect("kiln runs")
}

/// stdout and stderr, as text.
pub fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// stdout as JSON; panics with both streams when it is none.
pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {:?}", text(out)))
}

/// The entry of `doc`'s `nodes` for node `name`.
pub fn node<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["nodes"].as_array().expect("nodes").iter().find(|n| n["node"] == name).expect("the node is listed")
}

/// `dir/rack.toml` for rack `lab-fw` (BMC user `admin`, password from `RACK_PW`) whose nodes
/// are `(name, slot, bmc URL)` rows; an empty slot and a missing URL are left out.
pub fn manifest(dir: &Path, platform: Option<&str>, nodes: &[(&str, &str, Option<&str>)]) -> PathBuf {
    let mut text = String::from("[rack]\nid = \"lab-fw\"\n");
    if let Some(p) = platform {
        text.push_str(&format!("platform = \"{p}\"\n"));
    }
    text.push_str("\n[credentials]\nbmc_user = \"admin\"\nbmc_password_env = \"RACK_PW\"\n");
    for (i, (name, slot, bmc)) in nodes.iter().enumerate() {
        text.push_str(&format!("\n[[nodes]]\nname = \"{name}\"\naddress = \"10.77.0.{}\"\n", 11 + i));
        if !slot.is_empty() {
            text.push_str(&format!("slot = \"{slot}\"\n"));
        }
        if let Some(bmc) = bmc {
            text.push_str(&format!("bmc = \"{bmc}\"\n"));
        }
    }
    let path = dir.join("rack.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
