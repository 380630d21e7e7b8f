//! Every JSON document kiln prints carries `schema_version` and `kind`, and every kind is
//! described in docs/json-schema.md. The real binary is run for every `--json` output the CLI
//! has, against peers that need no lab: snapshot trees, a recorded Redfish tree served over
//! HTTP, an SSH port nobody listens on, an `scontrol` that fails, a controller nobody runs.
//! The source is read for every kind it can print, so a new document cannot go unlisted.

mod bmc_support;
mod fixture_support;
#[path = "image_support/mod.rs"]
mod image_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bmc_support::server::RecordedServer;
use serde_json::Value;

/// Every document kind kiln prints. A new one goes here and gets a section in
/// docs/json-schema.md.
const KINDS: &[&str] = &[
    "kiln.node",
    "kiln.validate",
    "kiln.burnin",
    "kiln.report",
    "kiln.rack_report",
    "kiln.node-history",
    "kiln.part-history",
    "kiln.inventory-diff",
    "kiln.inventory-export",
    "kiln.rack",
    "kiln.site",
    "kiln.handoff",
    "kiln.rack-image",
    "kiln.rack-firmware",
    "kiln.rack-firmware-update",
    "kiln.rack-topology",
    "kiln.rack-imex",
    "kiln.agent",
    "kiln.image-build",
    "kiln.image-write",
    "kiln.bmc-power",
    "kiln.bmc-boot",
    "kiln.bmc-media",
    "kiln.bmc-firmware",
    "kiln.bmc-info",
    "kiln.bmc-locate",
    "kiln.collective-rank",
];

/// `"kiln.*"` strings in the source that are not document kinds: settings on the kernel
/// command line (`kiln.controller=...`, the deployment's `kiln.deploy=` and `kiln.key=`), the
/// inventory's file name, and the kind of the node-binary manifest `cargo xtask dist` writes and
/// `kiln rack --dist` reads (a file format, described in docs/json-schema.md without being printed).
const NOT_KINDS: &[&str] = &[
    "kiln.controller",
    "kiln.mode",
    "kiln.stall_timeout",
    "kiln.target",
    "kiln.deploy",
    "kiln.key",
    "kiln.db",
    "kiln.dist",
];

const PW: &str = "json-docs-pw";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kiln(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env_remove("KILN_LOG")
        .env("KILN_DB", dir.join("kiln.db"))
        .env("KILN_BMC_PASSWORD", PW)
        .env("RACK_PW", PW)
        .output()
        .expect("kiln runs")
}

/// The document a command printed, with what ran it for messages.
struct Printed {
    what: String,
    doc: Value,
}

/// Runs `args` and parses its stdout as one JSON document (`kiln agent` prints one line).
fn document(dir: &Path, args: &[&str], code: i32) -> Printed {
    let out = kiln(dir, args);
    let what = format!("kiln {}", args.join(" "));
    assert_eq!(out.status.code(), Some(code), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON document ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    Printed { what, doc }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The kinds named in docs/json-schema.md's section headings (`kind: "kiln.x"`).
fn documented_kinds() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/json-schema.md")).expect("read docs/json-schema.md");
    let mut kinds = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("## ")) {
        let mut rest = line;
        while let Some(at) = rest.find("kind: \"") {
            rest = &rest[at + 7..];
            if let Some(end) = rest.find('"') {
                kinds.insert(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    kinds
}

/// Every `"kiln.NAME"` string literal under `src/`.
fn kinds_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                let mut rest = text.as_str();
                while let Some(at) = rest.find("\"kiln.") {
                    let name: String = rest[at + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))
                        .collect();
                    let closes = rest[at + 1 + name.len()..].starts_with('"');
                    if closes && !name.ends_with('.') {
                        found.insert(name);
                    }
                    rest = &rest[at + 1..];
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&repo().join("src"), &mut found);
    found
}

#[test]
fn every_kind_is_documented_and_the_source_prints_no_other() {
    let listed: BTreeSet<String> = KINDS.iter().map(|k| k.to_string()).collect();
    assert_eq!(documented_kinds(), listed, "docs/json-schema.md must have one section per kind, and no other");
    let in_source: BTreeSet<String> =
        kinds_in_source().into_iter().filter(|k| !NOT_KINDS.contains(&k.as_str())).collect();
    let unlisted: Vec<&String> = in_source.difference(&listed).collect();
    assert!(unlisted.is_empty(), "document kinds in src/ that are not listed (and documented): {unlisted:?}");
}

#[test]
fn every_json_output_carries_schema_version_and_a_documented_kind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let fixture = fixture_support::shared("hgx-b200");
    let root = s(&fixture);
    let db = dir.join("kiln.db");
    let db = s(&db);
    let mut printed = Vec::new();

    // Node commands on a snapshot tree, recorded in a database for the readers.
    printed.push(document(dir, &["inspect", "--json", "--root", root], 0));
    let validated = document(dir, &["validate", "--json", "--with-node", "--root", root, "--db", db], 0);
    let inspected = validated.doc["inspected"].clone();
    printed.push(validated);
    printed.push(Printed { what: "kiln validate --with-node: inspected".into(), doc: inspected });
    printed.push(document(dir, &["healthcheck", "--json", "--root", root], 0));
    // One rank of the collective: no NCCL here, so skipped (7).
    printed.push(document(dir, &["nccl-rank", "--json", "--ranks", "1", "--sizes-mib", "1"], 7));
    let burnin = kiln(dir, &["burnin", "--tests", "gemm", "--duration", "1s", "--json"]);
    printed.push(Printed {
        what: "kiln burnin --json".into(),
        doc: serde_json::from_slice(&burnin.stdout).expect("burnin prints its report"),
    });
    printed.push(document(dir, &["report", "--format", "json", "--db", db], 0));
    printed.push(document(dir, &["node", "history", "hgx-b200-01", "--json", "--db", db], 0));
    let gpu = printed[1].doc["inspected"]["gpus"]["gpus"][0]["serial"].as_str().expect("a GPU serial").to_string();
    printed.push(document(dir, &["inventory", "where", &gpu, "--json", "--db", db], 0));
    printed.push(document(dir, &["inventory", "diff", "--node", "hgx-b200-01", "1", "1", "--json", "--db", db], 0));
    printed.push(document(dir, &["inventory", "export", "--format", "json", "--db", db], 0));

    // The rack side, against peers that are not there: a closed SSH port, an scontrol that
    // fails, a deployment whose node never says hello.
    let rack = dir.join("rack.toml");
    std::fs::write(
        &rack,
        "[rack]\nid = \"json-docs\"\n\n[credentials]\nssh_user = \"kiln\"\nknown_hosts = \"known_hosts\"\n\
         bmc_user = \"admin\"\nbmc_password_env = \"RACK_PW\"\n\n\
         [[nodes]]\nname = \"n1\"\naddress = \"127.0.0.1\"\nssh_port = 1\nmacs = [\"52:54:00:00:00:01\"]\n",
    )
    .expect("write rack manifest");
    let rack = s(&rack);
    printed.push(document(dir, &["rack", "status", "--json", "--rack", rack, "--connect-timeout", "1"], 6));
    let rack2 = dir.join("rack2.toml");
    std::fs::write(
        &rack2,
        "[rack]\nid = \"json-docs-2\"\n\n[credentials]\nknown_hosts = \"known_hosts\"\n\n\
         [[nodes]]\nname = \"n2\"\naddress = \"127.0.0.2\"\nssh_port = 1\n",
    )
    .expect("write rack manifest");
    let site =
        document(dir, &["rack", "status", "--json", "--rack", rack, "--rack", s(&rack2), "--connect-timeout", "1"], 6);
    let racks = site.doc["racks"].clone();
    printed.push(site);
    printed.push(Printed { what: "kiln rack status --rack A --rack B: racks[1]".into(), doc: racks[1].clone() });
    printed.push(document(
        dir,
        &["rack", "handoff", "--to", "slurm", "--dry-run", "--json", "--rack", rack, "--db", db, "--scontrol", "false"],
        6,
    ));
    printed.push(document(dir, &["report", "--rack", rack, "--format", "json", "--db", db], 0));
    printed.push(document(
        dir,
        &["rack", "topology", "--rack", rack, "--format", "slurm-block", "--json", "--db", db],
        1,
    ));
    printed.push(document(dir, &["rack", "imex", "--rack", rack, "--dry-run", "--json", "--db", db], 1));
    // An agent with its deployment key (as its boot path gives it) whose controller is gone.
    let cmdline = dir.join("cmdline");
    std::fs::write(&cmdline, format!("kiln.node=n1 kiln.deploy=d1 kiln.key={}\n", "ab".repeat(32))).expect("cmdline");
    printed.push(document(
        dir,
        &["agent", "--controller", "http://127.0.0.1:1", "--wait-for", "1s", "--cmdline", s(&cmdline), "--json"],
        6,
    ));

    // Images: a synthetic one written to a file, then built and deployed as an artifact.
    let raw = dir.join("synth.raw");
    image_support::synth(&raw, 8, 100, 3);
    let disk = dir.join("disk.img");
    printed.push(document(dir, &["image", "write", s(&raw), s(&disk), "--no-direct", "--json"], 0));
    let nowhere = dir.join("no/such/dir/disk.img");
    printed.push(document(dir, &["image", "write", s(&raw), s(&nowhere), "--no-direct", "--json"], 8));
    let mut skipped = BTreeSet::new();
    if image_support::have_qemu_img() {
        let recipe = image_support::test_recipe(dir);
        let out = dir.join("out");
        printed.push(document(dir, &["image", "build", s(&recipe), "--out", s(&out), "--json"], 0));
        let manifest = out.join("kiln-test.manifest.json");
        // The imaging kernel and initrd each node's iPXE script (with its key) would boot.
        for file in ["vmlinuz", "initrd.img"] {
            std::fs::write(out.join(file), b"boot file").expect("boot file");
        }
        printed.push(document(
            dir,
            &[
                "rack",
                "image",
                "--rack",
                rack,
                "--artifact",
                s(&manifest),
                "--boot",
                "none",
                "--pxe-kernel",
                "vmlinuz",
                "--pxe-initrd",
                "initrd.img",
                "--node-timeout",
                "1s",
                "--listen",
                "127.0.0.1:0",
                "--db",
                db,
                "--json",
            ],
            1,
        ));
    } else {
        image_support::skip("qemu-img not installed (Debian package qemu-utils): kiln.image-build, kiln.rack-image");
        skipped.extend(["kiln.image-build".to_string(), "kiln.rack-image".to_string()]);
    }

    // BMC commands against a recorded Redfish tree.
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let url = server.url();
    let bmc = |command: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["bmc".into()];
        args.extend(command.iter().map(|a| a.to_string()));
        args.extend(["--bmc", &url, "--bmc-user", "admin", "--json"].map(String::from));
        args
    };
    for command in [
        &["power", "status"][..],
        &["boot", "pxe"],
        &["media", "status"],
        &["media", "insert", "http://10.0.0.1/boot.iso"],
        &["media", "eject"],
        &["firmware"],
        &["info"],
        &["locate", "status"],
    ] {
        let args = bmc(command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        printed.push(document(dir, &args, 0));
    }

    // A rack firmware check of a node whose BMC is the recorded tree.
    let fw_rack = dir.join("fw-rack.toml");
    std::fs::write(
        &fw_rack,
        format!(
            "[rack]\nid = \"json-fw\"\n\n[credentials]\nbmc_user = \"admin\"\nbmc_password_env = \"RACK_PW\"\n\n\
             [[nodes]]\nname = \"gh\"\naddress = \"127.0.0.1\"\nbmc = \"{url}\"\n"
        ),
    )
    .expect("write rack manifest");
    printed.push(document(
        dir,
        &["rack", "firmware", "check", "--rack", s(&fw_rack), "--recipe", "gh200-recorded", "--db", db, "--json"],
        0,
    ));
    printed.push(document(
        dir,
        &[
            "rack",
            "firmware",
            "update",
            "--rack",
            s(&fw_rack),
            "--recipe",
            "gh200-recorded",
            "--db",
            db,
            "--dry-run",
            "--json",
        ],
        0,
    ));

    let mut seen = BTreeSet::new();
    for p in &printed {
        let version = p.doc["schema_version"].as_u64();
        assert!(version.is_some_and(|v| v >= 1), "{}: no schema_version: {}", p.what, p.doc);
        let kind = p.doc["kind"].as_str().unwrap_or_else(|| panic!("{}: no kind: {}", p.what, p.doc));
        assert!(KINDS.contains(&kind), "{}: kind {kind} is not a listed (documented) kind", p.what);
        seen.insert(kind.to_string());
    }
    let expected: BTreeSet<String> = KINDS.iter().map(|k| k.to_string()).filter(|k| !skipped.contains(k)).collect();
    assert_eq!(seen, expected, "every document kind is printed by some command here");
}

#[test]
fn a_burnin_report_written_before_schema_version_still_reads() {
    let old = serde_json::json!({
        "kind": "kiln.burnin", "version": 1, "kiln_version": "0.1.0", "hostname": "gpu-01",
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:05Z", "duration_s": 5.0,
        "tests_requested": ["host"], "gemm_dtype": "bf16", "platform": "hgx-b200",
        "platform_source": "detected", "gpu_access": {"status": "not_requested"},
        "results": [], "telemetry": [], "findings": [], "verdict": "pass", "incomplete": false
    });
    let report: kiln::burnin::report::BurninReport = serde_json::from_value(old).expect("an old report reads");
    let again = serde_json::to_value(&report).expect("serializes");
    assert_eq!((again["schema_version"].as_u64(), again.get("version")), (Some(1), None));
}
