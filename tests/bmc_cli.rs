//! `kiln bmc ...` end to end: the built binary against the recorded-tree server and the
//! emulator, checking output, exit codes, and that the password never shows.

mod bmc_support;

use std::process::{Command, Output};

use bmc_support::server::RecordedServer;
use bmc_support::skip;
use bmc_support::sushy::{self, Sushy};
use serde_json::Value;

const PW: &str = "cli-secret-pw-42";

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_BMC_PASSWORD", PW)
        .env_remove("KILN_BMC_USER")
        .env_remove("KILN_LOG")
        .output()
        .expect("kiln runs")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_no_password(out: &Output) {
    let (o, e) = text(out);
    assert!(!o.contains(PW) && !e.contains(PW), "password leaked:\n{o}\n{e}");
}

#[test]
fn firmware_json_lists_components() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let out = kiln(&["bmc", "firmware", "--bmc", &server.url(), "--bmc-user", "admin", "--json", "-vv"]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["bmc"], server.url());
    assert_eq!(v["firmware"].as_array().expect("items").len(), 19);
    let gpu = v["components"].as_array().expect("components").iter().find(|c| c["name"] == "HGX_FW_GPU_0").cloned();
    let gpu = gpu.expect("GPU firmware component");
    assert_eq!(gpu["kind"], "firmware");
    assert_eq!(gpu["version"], "96.00.A6.00.01");
}

#[test]
fn trace_logs_carry_no_credentials() {
    use base64::Engine;
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bmc", "info", "--bmc", &server.url(), "--bmc-user", "admin"])
        .env("KILN_BMC_PASSWORD", PW)
        .env("KILN_LOG", "trace")
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("bmc answered"), "trace logging was on: {stderr}");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PW}"));
    assert!(!stderr.contains(PW) && !stderr.contains(&basic), "credentials in the log");
}

#[test]
fn power_reset_through_a_rack_manifest() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("lab.toml");
    std::fs::write(
        &manifest,
        format!(
            "[rack]\nid = \"lab\"\n\n[credentials]\nbmc_user = \"admin\"\nbmc_password_env = \"KILN_BMC_PASSWORD\"\n\n\
             [[nodes]]\nname = \"node01\"\nbmc = \"{}\"\nbmc_system = \"/redfish/v1/Systems/System_0\"\n",
            server.url()
        ),
    )
    .expect("write manifest");
    let m = manifest.to_str().expect("utf-8 path");
    let out = kiln(&["bmc", "power", "reset", "--rack", m, "--node", "node01"]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("node01: power reset accepted; power is now on"), "{:?}", text(&out));
    assert_eq!(server.count("POST", "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset"), 1);

    let out = kiln(&["bmc", "info", "--rack", m, "--node", "node01"]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("chassis serial: 1580624650610"), "{stdout}");
    assert!(stdout.contains("boot override:"), "{stdout}");
}

#[test]
fn bmc_failure_exits_peer_naming_the_bmc() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    server.fail(None, "/redfish/v1/Systems", 500, "internal error in the BMC", None);
    let out = kiln(&["bmc", "power", "status", "--bmc", &server.url(), "--bmc-user", "admin"]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(kiln::exit::PEER));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains(&format!(
            "bmc {}: GET /redfish/v1/Systems answered 500 after 4 tries: internal error in the BMC",
            server.url()
        )),
        "{stderr}"
    );
}

#[test]
fn bad_target_exits_bad_input() {
    let out = kiln(&[
        "bmc",
        "power",
        "status",
        "--bmc",
        "https://10.0.0.1",
        "--bmc-user",
        "admin",
        "--fingerprint",
        "sha256:zz",
    ]);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    let out = kiln(&["bmc", "power", "status", "--rack", "/nonexistent/rack.toml", "--node", "n1"]);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    assert!(text(&out).1.contains("/nonexistent/rack.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bmc", "power", "status", "--bmc", "https://10.0.0.1", "--bmc-user", "admin"])
        .env_remove("KILN_BMC_PASSWORD")
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT));
    assert!(text(&out).1.contains("KILN_BMC_PASSWORD is not set"), "{:?}", text(&out));
}

#[test]
fn insecure_is_announced_in_the_log() {
    // Nothing listens on this port; the warning must come before any attempt.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("https://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bmc", "power", "status", "--bmc", &url, "--bmc-user", "admin", "--insecure"])
        .env("KILN_BMC_PASSWORD", PW)
        .output()
        .expect("kiln runs");
    let (_, stderr) = text(&out);
    assert!(stderr.contains("NOT verified (--insecure)"), "{stderr}");
    assert_eq!(out.status.code(), Some(kiln::exit::PEER));
}

#[test]
fn power_on_and_wait_against_the_emulator() {
    let emulator = match Sushy::start() {
        Ok(s) => s,
        Err(why) => return skip(&format!("sushy-tools emulator unavailable: {why}")),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bmc", "power", "on", "--wait", "20", "--json", "--bmc", &emulator.url, "--bmc-user", sushy::USER])
        .env("KILN_BMC_PASSWORD", sushy::PASSWORD)
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["power"], "on");
    assert_eq!(emulator.get(&emulator.system_path())["PowerState"], "On");
}

#[test]
fn power_over_ipmi_through_the_manifest() {
    use bmc_support::ipmisim::{self, IpmiSim};
    let sim = match IpmiSim::start() {
        Ok(s) => s,
        Err(why) => return skip(&format!("ipmi_sim unavailable: {why}")),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("lab.toml");
    std::fs::write(
        &manifest,
        format!(
            "[credentials]\nbmc_user = \"{}\"\nbmc_password_env = \"IPMI_LAB_PW\"\n\n\
             [[nodes]]\nname = \"node07\"\nbmc = \"https://127.0.0.1:1\"\nipmi = \"127.0.0.1:{}\"\n",
            ipmisim::USER,
            sim.port
        ),
    )
    .expect("write manifest");
    let m = manifest.to_str().expect("utf-8 path");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bmc", "power", "on", "--via", "ipmi", "--rack", m, "--node", "node07", "--json"])
        .env("IPMI_LAB_PW", ipmisim::PASSWORD)
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["power"], "on");
    assert_eq!(sim.host_power(), "1");
    // IPMI cannot list firmware: a clear refusal, exit PEER.
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bmc", "firmware", "--via", "ipmi", "--rack", m, "--node", "node07"])
        .env("IPMI_LAB_PW", ipmisim::PASSWORD)
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(kiln::exit::PEER));
    assert!(text(&out).1.contains("firmware inventory is not supported over IPMI"), "{:?}", text(&out));
}
