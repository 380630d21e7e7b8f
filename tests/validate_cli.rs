//! `kiln validate --node` and `kiln spec` run as a technician would run them:
//! the real binary, its exit codes, its JSON and its error messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kiln::hw::fixture::sample;
use kiln::model::GpuInventory;

/// Node JSON for `--node`: the HGX B200 nodes written from the representative node (healthy,
/// GPU 2 trained at x8, no driver) once per run under the target directory, and the committed
/// plain VM.
fn fixture(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if name == "vm" {
        return Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nodes/vm.json");
    }
    let dir = DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("validate_cli-nodes");
        std::fs::create_dir_all(&dir).expect("create the node directory");
        let healthy = sample::representative();
        let mut x8 = healthy.clone();
        let gpu2: kiln::model::PciAddress = sample::gpu_address(2).parse().expect("address");
        let dev = x8.pci.iter_mut().find(|d| d.address == gpu2).expect("GPU 2");
        dev.link.as_mut().expect("GPU 2 link").current_width = Some(8);
        let mut no_driver = healthy.clone();
        no_driver.gpus = GpuInventory::NotInspected { reason: "no NVIDIA driver".into() };
        for (name, node) in [("hgx-b200-healthy", healthy), ("hgx-b200-gpu2-x8", x8), ("hgx-b200-no-driver", no_driver)]
        {
            let json = serde_json::to_string_pretty(&node).expect("node JSON");
            // Written beside and renamed, so a second run at the same time never reads half a file.
            let part = dir.join(format!("{name}.json.{}", std::process::id()));
            std::fs::write(&part, json).expect("write node JSON");
            std::fs::rename(&part, dir.join(format!("{name}.json"))).expect("rename node JSON");
        }
        dir
    });
    dir.join(format!("{name}.json"))
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(args).env_remove("KILN_CHECKS").output().expect("kiln runs")
}

fn validate_json(node: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let path = fixture(node);
    let mut args = vec!["validate", "--json", "--node", path.to_str().expect("utf8 path")];
    args.extend_from_slice(extra);
    let out = kiln(&args);
    let v = serde_json::from_slice(&out.stdout).expect("validate prints JSON");
    (out.status.code().expect("exit code"), v)
}

#[test]
fn healthy_b200_passes_with_exit_0() {
    let (code, v) = validate_json("hgx-b200-healthy", &[]);
    assert_eq!(code, 0);
    assert_eq!(v["kind"], "kiln.validate");
    assert_eq!(v["platform"], "hgx-b200");
    assert_eq!(v["platform_selection"], "detected");
    assert_eq!(v["verdict"], "pass");
    assert_eq!(v["summary"]["fail"], 0);
}

#[test]
fn gpu_at_x8_fails_with_exit_1_and_one_width_finding() {
    let (code, v) = validate_json("hgx-b200-gpu2-x8", &[]);
    assert_eq!(code, 1);
    let fails: Vec<&serde_json::Value> =
        v["findings"].as_array().expect("findings").iter().filter(|f| f["outcome"] == "fail").collect();
    assert_eq!(fails.len(), 1);
    assert_eq!(fails[0]["check"], "pcie.width");
    assert_eq!(fails[0]["component"]["gpu_index"], 2);
}

#[test]
fn no_driver_on_b200_is_exit_3_not_a_pass() {
    let (code, v) = validate_json("hgx-b200-no-driver", &[]);
    assert_eq!(code, 3);
    assert_eq!(v["verdict"], "error");
}

#[test]
fn plain_vm_passes_generic() {
    let (code, v) = validate_json("vm", &[]);
    assert_eq!((code, v["platform"].as_str()), (0, Some("generic")));
}

#[test]
fn unknown_platform_is_exit_4_and_lists_known_names() {
    let path = fixture("vm");
    let out = kiln(&["validate", "--node", path.to_str().expect("utf8"), "--platform", "dgx-a100"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown platform \"dgx-a100\"; known: gb200-nvl72-tray, generic, h100-sxm, hgx-b200"),
        "{err}"
    );
}

#[test]
fn table_output_leads_with_the_failure() {
    let path = fixture("hgx-b200-gpu2-x8");
    let out = kiln(&["validate", "--node", path.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let first_finding = text.lines().nth(3).expect("a finding line");
    assert!(first_finding.starts_with("fail     pcie.width"), "{text}");
    assert!(text.contains("-> GPU at 0000:52:00.0 trained to x8: reseat the GPU or check riser"), "{text}");
}

#[test]
fn spec_check_names_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\ndescription = \"y\"\n\n[[devices]]\nrole = \"gpu\"\nids = [\"10de:2901\"]\ncount = -8\n",
    )
    .expect("write");
    let out = kiln(&["spec", "check", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:7:9: field `devices[0].count`:"), "{err}");
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/platforms/generic.toml");
    let out = kiln(&["spec", "check", good.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(0));
}
