//! Bad input never hangs or panics kiln: FIFOs, `/dev/zero` and oversized files where kiln
//! expects a file, table cells wider than the formatter allows, sizes past what a disk holds.
//!
//! Through the real binary. Every command must end within a deadline (a hang is killed and
//! fails the test), with a documented exit code and a message naming the file or field.

mod fixture_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::exit;

const DEADLINE: Duration = Duration::from_secs(30);

fn kiln_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kiln"))
}

fn fixture(name: &str) -> PathBuf {
    fixture_support::shared(name)
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs kiln with `args`, killing it and failing the test past `DEADLINE`.
fn kiln(args: &[&str], cwd: &Path) -> Ran {
    let mut child = Command::new(kiln_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("KILN_DB")
        .env("KILN_BURNIN_LOCK", cwd.join("burnin.lock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln");
    // Read both pipes as kiln writes them: a full pipe would stall it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kiln {args:?} hung: killed after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let ran =
        Ran { code: status.code(), stdout: stdout.join().expect("stdout"), stderr: stderr.join().expect("stderr") };
    assert!(!ran.stderr.contains("panicked"), "kiln {args:?} panicked: {}", ran.stderr);
    ran
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf-8 path")).expect("c string");
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

fn replace_with_fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    mkfifo(path);
}

fn replace_with_dev_zero(path: &Path) {
    let _ = std::fs::remove_file(path);
    // The device itself, in the tree: a link to the host's /dev/zero resolves inside the root
    // (hw::root), so it would read as missing, not as a device.
    let made = std::process::Command::new("mknod").arg(path).args(["c", "1", "5"]).status();
    assert!(made.is_ok_and(|s| s.success()), "mknod {} (run the tests as root)", path.display());
}

/// The healthy HGX B200 tree written into `dir`, for a test to spoil.
fn copy_tree(dir: &Path) -> PathBuf {
    fixture_support::written(dir, "hgx-b200")
}

const WIDTH: &str = "sys/bus/pci/devices/0000:2a:00.0/current_link_width";
const SERIAL: &str = "sys/class/dmi/id/product_serial";

/// A `--root` tree with a FIFO, a `/dev/zero` link and a 5 MiB `/proc/cpuinfo`.
fn poisoned_tree(dir: &Path) -> PathBuf {
    let root = copy_tree(dir);
    let width = std::fs::canonicalize(root.join(WIDTH)).expect("resolve the link width");
    replace_with_fifo(&width);
    let serial = std::fs::canonicalize(root.join(SERIAL)).expect("resolve the serial");
    replace_with_dev_zero(&serial);
    std::fs::write(root.join("proc/cpuinfo"), "processor\t: 0\n".repeat(400_000)).expect("a huge cpuinfo");
    root
}

fn problem_paths(node_json: &str) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(node_json).expect("inspect --json prints JSON");
    v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| (p["path"].as_str().unwrap_or("").to_string(), p["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn inspect_and_validate_finish_on_a_tree_with_a_fifo_and_dev_zero_and_name_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = poisoned_tree(dir.path());
    let root_s = root.to_str().expect("utf-8");
    let out = kiln(&["inspect", "--json", "--root", root_s], dir.path());
    assert_eq!(out.code, Some(exit::OK), "inspection never aborts on one bad file: {}", out.stderr);
    let problems = problem_paths(&out.stdout);
    let said = |path: &str| problems.iter().find(|(p, _)| p == path).map(|(_, m)| m.clone());
    assert!(said(WIDTH).is_some_and(|m| m.contains("a FIFO")), "{problems:?}");
    assert!(said(SERIAL).is_some_and(|m| m.contains("a character device")), "{problems:?}");
    assert!(said("proc/cpuinfo").is_some_and(|m| m.contains("larger than 4 MiB")), "{problems:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["gpus"]["gpus"].as_array().map(Vec::len), Some(8), "the rest was still read");

    let out = kiln(&["validate", "--root", root_s, "--platform", "hgx-b200"], dir.path());
    assert!(matches!(out.code, Some(exit::CHECK_FAILED | exit::CHECK_ERROR)), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(WIDTH) && out.stdout.contains("a FIFO"), "{}", out.stdout);

    let dest = dir.path().join("capture");
    let out = kiln(&["capture", dest.to_str().expect("utf-8"), "--root", root_s], dir.path());
    assert!(out.code.is_some(), "capture ends: {}", out.stderr);
}

#[test]
fn a_capture_whose_own_files_are_fifos_or_dev_zero_is_refused_naming_them() {
    for (file, poison) in [
        ("kiln/nvml.json", replace_with_fifo as fn(&Path)),
        ("kiln/nvml.json", replace_with_dev_zero),
        ("kiln/unreadable.json", replace_with_fifo),
        ("kiln/unreadable.json", replace_with_dev_zero),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = copy_tree(dir.path());
        poison(&root.join(file));
        let out = kiln(&["inspect", "--json", "--root", root.to_str().expect("utf-8")], dir.path());
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains(file) && all.contains("regular file"), "{file}: exit {:?}: {all}", out.code);
    }
}

/// A file kiln parses from the user, in place of which a FIFO, a `/dev/zero`
/// link and an oversized regular file are given: exit 4 naming the file.
#[test]
fn user_files_that_are_fifos_devices_or_huge_are_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let img = d.join("img.raw");
    std::fs::write(&img, vec![7u8; 8192]).expect("image");
    let target = d.join("target.raw");
    // (what, command with {} for the file, cap of the kind)
    let cases: [(&str, Vec<&str>, u64); 6] = [
        ("platform spec", vec!["validate", "--root", "ROOT", "--spec", "{}"], 4 << 20),
        ("rack manifest", vec!["rack", "status", "--rack", "{}"], 16 << 20),
        ("image recipe", vec!["image", "build", "{}", "--out", "OUT"], 1 << 20),
        ("block map", vec!["image", "write", "--bmap", "{}", "IMG", "TARGET"], 64 << 20),
        ("artifact manifest", vec!["image", "write", "{}.manifest.json", "TARGET"], 1 << 20),
        ("node JSON file", vec!["validate", "--node", "{}", "--platform", "hgx-b200"], 64 << 20),
    ];
    let root = fixture("hgx-b200");
    let mut tried = 0;
    for (what, args, cap) in cases {
        for variant in ["fifo", "zero", "huge"] {
            let name = format!("{}-{variant}", what.replace(' ', "-"));
            let file = if args.iter().any(|a| a.ends_with(".manifest.json")) {
                d.join(format!("{name}.manifest.json"))
            } else {
                d.join(&name)
            };
            match variant {
                "fifo" => replace_with_fifo(&file),
                "zero" => replace_with_dev_zero(&file),
                _ => std::fs::write(&file, vec![b' '; cap as usize + 1]).expect("write a file one byte over the cap"),
            }
            let stem = d.join(&name);
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    a.replace("{}.manifest.json", file.to_str().expect("utf-8"))
                        .replace("{}", stem.to_str().expect("utf-8"))
                        .replace("ROOT", root.to_str().expect("utf-8"))
                        .replace("OUT", d.join("out").to_str().expect("utf-8"))
                        .replace("IMG", img.to_str().expect("utf-8"))
                        .replace("TARGET", target.to_str().expect("utf-8"))
                })
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = kiln(&args, d);
            let expected = if variant == "huge" { "larger than" } else { "regular file" };
            assert_eq!(out.code, Some(exit::BAD_INPUT), "{what} {variant}: {}", out.stderr);
            assert!(
                out.stderr.contains(file.to_str().expect("utf-8")),
                "{what} {variant} names the file: {}",
                out.stderr
            );
            assert!(out.stderr.contains(expected), "{what} {variant}: {}", out.stderr);
            if variant == "huge" {
                let mib = format!("{} MiB", cap >> 20);
                assert!(out.stderr.contains(&mib), "{what}: the cap is {mib}: {}", out.stderr);
            }
            assert!(!target.exists(), "{what} {variant}: the target was not touched");
            std::fs::remove_file(&file).expect("clean up");
            tried += 1;
        }
    }
    assert_eq!(tried, 18);
}

/// A node name of 70,000 characters: wider than `format!` can pad (65,535).
fn wide_manifest(dir: &Path) -> PathBuf {
    let path = dir.join("rack.toml");
    std::fs::write(dir.join("known_hosts"), "").expect("known_hosts");
    let wide = "n".repeat(70_000);
    let text = format!(
        "[rack]\nid = \"r1\"\n\n[credentials]\nssh_user = \"root\"\nknown_hosts = \"known_hosts\"\n\n\
         [[nodes]]\nname = \"{wide}\"\naddress = \"127.0.0.1\"\nssh_port = 1\n\n\
         [[nodes]]\nname = \"b\"\naddress = \"127.0.0.1\"\nssh_port = 1\n"
    );
    std::fs::write(&path, text).expect("manifest");
    path
}

#[test]
fn table_cells_wider_than_the_formatter_allows_do_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = wide_manifest(dir.path());
    let rack_s = rack.to_str().expect("utf-8");
    let out = kiln(&["rack", "status", "--rack", rack_s, "--connect-timeout", "1"], dir.path());
    assert_eq!(out.code, Some(exit::PEER), "both nodes unreachable: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with(&"n".repeat(70_000))), "the wide name is printed whole");
    let b = lines.iter().find(|l| l.starts_with("b ")).expect("row of node b");
    assert!(b.len() < 300, "the narrow row is not padded to the wide cell: {} chars", b.len());

    let db = dir.path().join("kiln.db");
    let out = kiln(
        &["validate", "--root", fixture("hgx-b200").to_str().expect("utf-8"), "--db", db.to_str().expect("utf-8")],
        dir.path(),
    );
    assert!(out.code.is_some());
    let out = kiln(&["report", "--rack", rack_s, "--db", db.to_str().expect("utf-8")], dir.path());
    assert_eq!(out.code, Some(exit::OK), "{}", out.stderr);
    assert!(out.stdout.contains(&"n".repeat(70_000)), "the wide name is in the report");
}

#[test]
fn an_image_size_past_any_disk_is_bad_input_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("img.raw"), vec![7u8; 8192]).expect("image");
    let target = d.join("target.raw");
    for (field, image_size, block_size) in
        [("image_size", 1u128 << 63, 4096u128), ("image_size", u64::MAX as u128, 4096), ("block_size", 8192, 1 << 62)]
    {
        let map = format!(
            r#"{{"format":"kiln-bmap","version":1,"block_size":{block_size},"image_size":{image_size},"mapped_bytes":8192,"ranges":[{{"start":0,"end":8192}}]}}"#
        );
        std::fs::write(d.join("m.bmap.json"), map).expect("bmap");
        let out = kiln(&["image", "write", "--bmap", "m.bmap.json", "img.raw", "target.raw"], d);
        assert_eq!(out.code, Some(exit::BAD_INPUT), "{field} {image_size}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("{field}:")) && out.stderr.contains("m.bmap.json"), "{}", out.stderr);
        assert!(!target.exists(), "nothing written, nothing wiped");
    }
}

#[test]
fn durations_and_timeouts_past_a_week_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = wide_manifest(dir.path());
    let rack_s = rack.to_str().expect("utf-8");
    for args in [
        vec!["burnin", "--tests", "host", "--duration", "18446744073709551615s"],
        vec!["burnin", "--tests", "host", "--duration", "99999999999999999999h"],
        vec!["rack", "status", "--rack", rack_s, "--timeout", "18446744073709551615"],
        vec!["rack", "status", "--rack", rack_s, "--connect-timeout", "18446744073709551615"],
        vec!["rack", "status", "--rack", rack_s, "--timeout", "0"],
    ] {
        let out = kiln(&args, dir.path());
        assert_eq!(out.code, Some(exit::USAGE), "{args:?}: {}", out.stderr);
    }
}
