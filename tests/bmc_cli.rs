//! `kiln bmc ...` end to end: the built binary against the recorded-tree server and the
//! emulator, checking output, exit codes, and that the password never shows.

mod bmc_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bmc_support::server::RecordedServer;
use bmc_support::skip;
use bmc_support::sushy::{self, Sushy};
use serde_json::Value;

const PW: &str = "cli-secret-pw-42";

/// The kiln binary, its changes logged to a database under the test's
/// target directory (not the repository's inventory/kiln.db).
fn kiln_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_DB", PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bmc_cli.db"));
    c
}

fn kiln(args: &[&str]) -> Output {
    kiln_cmd()
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
fn trace_logs_carry_no_credentials_whatever_the_filter_says() {
    use base64::Engine;
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{PW}"));
    // Every way a filter can ask for the HTTP client's wire log: everything, the client's crates
    // by name, the exact module that prints headers, and after a broad directive.
    for filter in [
        "trace",
        "ureq_proto::util=trace",
        "ureq=trace,ureq_proto=trace",
        "warn,ureq_proto::util=trace,ureq::unversioned=trace",
        "trace,ureq_proto=trace,rustls=trace",
    ] {
        let out = kiln_cmd()
            .args(["bmc", "info", "--bmc", &server.url(), "--bmc-user", "admin"])
            .env("KILN_BMC_PASSWORD", PW)
            .env("KILN_LOG", filter)
            .output()
            .expect("kiln runs");
        assert_eq!(out.status.code(), Some(0), "KILN_LOG={filter}: {:?}", text(&out));
        let (_, stderr) = text(&out);
        if filter.starts_with("trace") {
            assert!(stderr.contains("bmc answered"), "KILN_LOG={filter}: kiln's own trace lines are kept: {stderr}");
        }
        assert!(!stderr.contains(PW), "KILN_LOG={filter}: the password in the log:\n{stderr}");
        // A wire dump splits the header over lines: any piece of it is a leak.
        assert!(!stderr.contains(&basic[..10]), "KILN_LOG={filter}: the basic-auth credentials in the log:\n{stderr}");
        assert!(
            !stderr.to_ascii_lowercase().contains("authorization"),
            "KILN_LOG={filter}: a header in the log:\n{stderr}"
        );
    }
}

/// A one-node rack manifest in `dir` whose node01's BMC is `url`.
fn write_manifest(dir: &Path, url: &str) -> PathBuf {
    let manifest = dir.join("lab.toml");
    std::fs::write(
        &manifest,
        format!(
            "[rack]\nid = \"lab\"\n\n[credentials]\nbmc_user = \"admin\"\nbmc_password_env = \"KILN_BMC_PASSWORD\"\n\n\
             [[nodes]]\nname = \"node01\"\naddress = \"10.77.0.11\"\nbmc = \"{url}\"\n\
             bmc_system = \"/redfish/v1/Systems/System_0\"\n"
        ),
    )
    .expect("write manifest");
    manifest
}

/// The causes of the BMC notes in `node`'s lifecycle history (events by
/// `kiln bmc` that keep the node's state).
fn bmc_notes(db: &Path, node: &str) -> Vec<String> {
    let inv = kiln::inventory::Inventory::open_existing(db).expect("the database exists");
    inv.history(node)
        .expect("history")
        .into_iter()
        .filter(|e| e.actor == "kiln bmc" && e.from.as_ref() == Some(&e.to))
        .map(|e| e.cause)
        .collect()
}

#[test]
fn power_reset_through_a_rack_manifest() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &server.url());
    let m = manifest.to_str().expect("utf-8 path");
    let db = dir.path().join("kiln.db");
    let db_arg = db.to_str().expect("utf-8 path");
    let out = kiln(&["bmc", "power", "reset", "--rack", m, "--node", "node01", "--db", db_arg]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.contains("node01: power reset accepted; power is now on"), "{:?}", text(&out));
    assert_eq!(server.count("POST", "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset"), 1);
    // The destructive action is on record before and after, in the node's history.
    let url = server.url();
    assert_eq!(
        bmc_notes(&db, "node01"),
        vec![
            format!("bmc power.reset requested ({url})"),
            format!("bmc power.reset done ({url}): node01: power reset accepted; power is now on"),
        ]
    );
    let inv = kiln::inventory::Inventory::open_existing(&db).expect("db");
    let node = inv.node("node01").expect("query").expect("enrolled by the event");
    assert_eq!(node.rack.as_deref(), Some("lab"));
    let stored = std::fs::read(&db).expect("read db");
    assert!(!String::from_utf8_lossy(&stored).contains(PW), "no password in the database");

    let out = kiln(&["bmc", "info", "--rack", m, "--node", "node01", "--db", db_arg]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("chassis serial: 1580624650610"), "{stdout}");
    assert!(stdout.contains("boot override:"), "{stdout}");
    assert_eq!(bmc_notes(&db, "node01").len(), 2, "a read logs nothing");
}

#[test]
fn a_refused_change_is_logged_as_failed() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    server.fail(Some("POST"), "ComputerSystem.Reset", 500, "The BMC is busy updating firmware.", None);
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &server.url());
    let db = dir.path().join("kiln.db");
    let out = kiln(&[
        "bmc",
        "power",
        "force-off",
        "--rack",
        manifest.to_str().expect("utf-8"),
        "--node",
        "node01",
        "--db",
        db.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(kiln::exit::PEER), "{:?}", text(&out));
    assert_eq!(server.count("POST", "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset"), 4, "retried");
    let logged = bmc_notes(&db, "node01");
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged[0].starts_with("bmc power.force-off requested"), "{logged:?}");
    assert!(logged[1].starts_with("bmc power.force-off failed"), "{logged:?}");
    assert!(logged[1].contains("answered 500 after 4 tries: The BMC is busy updating firmware."), "{logged:?}");
}

#[test]
fn a_change_that_cannot_be_logged_is_not_sent() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &server.url());
    // A directory where the database file should be: SQLite cannot open it.
    let db = dir.path().join("db-is-a-dir");
    std::fs::create_dir(&db).expect("mkdir");
    let out = kiln(&[
        "bmc",
        "power",
        "reset",
        "--rack",
        manifest.to_str().expect("utf-8"),
        "--node",
        "node01",
        "--db",
        db.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(kiln::exit::DATABASE), "{:?}", text(&out));
    assert!(text(&out).1.contains("not sending power.reset"), "{:?}", text(&out));
    assert_eq!(
        server.count("POST", "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset"),
        0,
        "fail closed: nothing sent"
    );
}

#[test]
fn a_power_change_by_url_needs_a_node_to_log_it_against() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let reset = "/redfish/v1/Systems/System_0/Actions/ComputerSystem.Reset";
    let base =
        ["bmc", "power", "reset", "--bmc", &server.url(), "--bmc-user", "admin", "--db", db.to_str().expect("utf-8")];
    let out = kiln(&base);
    assert_eq!(out.status.code(), Some(kiln::exit::USAGE), "{:?}", text(&out));
    assert!(text(&out).1.contains("name the node (--node N)"), "{:?}", text(&out));
    assert_eq!(server.count("POST", reset), 0, "refused before anything was sent");
    let mut named = base.to_vec();
    named.extend(["--node", "node09"]);
    let out = kiln(&named);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(server.count("POST", reset), 1);
    let notes = bmc_notes(&db, "node09");
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[1].starts_with(&format!("bmc power.reset done ({})", server.url())), "{notes:?}");
}

#[test]
fn firmware_of_a_manifest_node_is_recorded() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &server.url());
    let db = dir.path().join("kiln.db");
    let out = kiln(&[
        "bmc",
        "firmware",
        "--rack",
        manifest.to_str().expect("utf-8"),
        "--node",
        "node01",
        "--db",
        db.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let inv = kiln::inventory::Inventory::open_existing(&db).expect("db");
    let node = inv.node("node01").expect("query").expect("node");
    let run = inv.latest_bmc_firmware(node.id).expect("query").expect("a reading");
    assert_eq!((run.kind.as_str(), run.actor.as_str(), run.exit_code), ("bmc_firmware", "kiln bmc", 0));
    let parts = inv.run_components(run.id).expect("components");
    assert_eq!(parts.len(), 19);
    assert!(parts.iter().all(|c| c.kind == "firmware"));
    let gpu = parts.iter().find(|c| c.address.as_deref() == Some("HGX_FW_GPU_0")).expect("GPU firmware");
    assert_eq!(gpu.firmware.as_deref(), Some("96.00.A6.00.01"));
    assert!(inv.latest_run(node.id).expect("query").is_none(), "not a node run");
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
    let out = kiln_cmd()
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
    let out = kiln_cmd()
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
    let out = kiln_cmd()
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
            "[rack]\nid = \"lab\"\n\n[credentials]\nbmc_user = \"{}\"\nbmc_password_env = \"IPMI_LAB_PW\"\n\n\
             [[nodes]]\nname = \"node07\"\naddress = \"10.77.0.17\"\nbmc = \"https://127.0.0.1:1\"\n\
             ipmi = \"127.0.0.1:{}\"\n",
            ipmisim::USER,
            sim.port
        ),
    )
    .expect("write manifest");
    let m = manifest.to_str().expect("utf-8 path");
    let out = kiln_cmd()
        .args(["bmc", "power", "on", "--via", "ipmi", "--rack", m, "--node", "node07", "--json"])
        .env("IPMI_LAB_PW", ipmisim::PASSWORD)
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["power"], "on");
    assert_eq!(sim.host_power(), "1");
    // IPMI cannot list firmware: a clear refusal, exit PEER.
    let out = kiln_cmd()
        .args(["bmc", "firmware", "--via", "ipmi", "--rack", m, "--node", "node07"])
        .env("IPMI_LAB_PW", ipmisim::PASSWORD)
        .output()
        .expect("kiln runs");
    assert_eq!(out.status.code(), Some(kiln::exit::PEER));
    assert!(text(&out).1.contains("firmware inventory is not supported over IPMI"), "{:?}", text(&out));
}

/// Every file of the database (SQLite's write-ahead log included) holds no `needle`.
fn database_free_of(db: &Path, needle: &str) {
    for suffix in ["", "-wal", "-journal"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle:?} in {}", path.display());
        }
    }
}

#[test]
fn an_image_url_password_is_sent_to_the_bmc_and_shown_or_recorded_nowhere() {
    const ISO_PW: &str = "iso-Pa55-9137";
    let image = format!("http://isouser:{ISO_PW}@10.77.0.5:8080/files/installer.iso");
    let hidden = "http://***@10.77.0.5:8080/files/installer.iso";
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &server.url());
    let (m, db) = (manifest.to_str().expect("utf-8 path"), dir.path().join("kiln.db"));
    let db_arg = db.to_str().expect("utf-8 path");
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut run = |what: &str, args: &[&str], want: i32| -> String {
        let out =
            kiln_cmd().args(args).env("KILN_BMC_PASSWORD", PW).env("KILN_LOG", "info").output().expect("kiln runs");
        let (o, e) = text(&out);
        assert_eq!(out.status.code(), Some(want), "{what}: {o}{e}");
        outputs.push((format!("{what} stdout"), o.clone()));
        outputs.push((format!("{what} stderr (INFO log)"), e));
        o
    };
    let insert = ["bmc", "media", "insert", &image, "--rack", m, "--node", "node01", "--db", db_arg];
    let said = run("media insert", &insert, 0);
    assert!(said.contains(&format!("node01: virtual CD holds {hidden}")), "{said}");
    let json: Value = serde_json::from_str(&run("media insert --json", &[&insert[..], &["--json"]].concat(), 0))
        .expect("JSON on stdout");
    assert_eq!(json["media"]["image"], hidden);
    // A BMC that refuses, repeating the URL in its message: the "failed" note and the error too.
    server.fail(Some("POST"), "InsertMedia", 500, &format!("Failed fetching image {image}"), None);
    run("refused media insert", &insert, exit_peer());

    // The BMC was given the URL as it was written: it may need the credentials to fetch it.
    let bodies: Vec<String> =
        server.requests().into_iter().filter(|r| r.path.ends_with("InsertMedia")).map(|r| r.body).collect();
    assert!(bodies.iter().any(|b| b.contains(ISO_PW)), "the BMC never got the URL: {bodies:?}");

    // The history says what was done, with the URL hidden, before and after.
    let notes = bmc_notes(&db, "node01");
    assert!(notes.iter().any(|n| n.starts_with("bmc media.insert requested") && n.contains(hidden)), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("bmc media.insert done") && n.contains(hidden)), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("bmc media.insert failed") && n.contains(hidden)), "{notes:?}");

    // Every way the inventory is read back.
    let rack = &["--rack", m][..];
    for (what, args) in [
        ("node history", vec!["node", "history", "node01", "--db", db_arg]),
        ("node history --json", vec!["node", "history", "node01", "--json", "--db", db_arg]),
        ("report", vec!["report", "--db", db_arg]),
        ("report json", vec!["report", "--format", "json", "--db", db_arg]),
        ("report csv", vec!["report", "--format", "csv", "--db", db_arg]),
        ("report prometheus", vec!["report", "--format", "prometheus", "--db", db_arg]),
        ("rack report table", [&["report", "--db", db_arg][..], rack].concat()),
        ("rack report json", [&["report", "--format", "json", "--db", db_arg][..], rack].concat()),
        ("rack report html", [&["report", "--format", "html", "--db", db_arg][..], rack].concat()),
        ("rack report csv", [&["report", "--format", "csv", "--db", db_arg][..], rack].concat()),
        ("rack report prometheus", [&["report", "--format", "prometheus", "--db", db_arg][..], rack].concat()),
    ] {
        run(what, &args, 0);
    }
    let history = outputs.iter().find(|(w, _)| w == "node history --json stdout").map(|(_, t)| t.clone());
    assert!(history.is_some_and(|h| h.contains(hidden)), "the history JSON shows the hidden URL");
    for (what, text) in &outputs {
        assert!(!text.contains(ISO_PW), "{what} shows the image URL's password:\n{text}");
        assert!(!text.contains("isouser"), "{what} shows the image URL's user:\n{text}");
    }
    database_free_of(&db, ISO_PW);
    database_free_of(&db, "isouser");
}

fn exit_peer() -> i32 {
    kiln::exit::PEER
}

#[test]
fn locate_on_and_off_through_a_rack_manifest_are_read_back_and_logged() {
    let server = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_manifest(dir.path(), &server.url());
    let m = manifest.to_str().expect("utf-8 path");
    let db = dir.path().join("kiln.db");
    let db_arg = db.to_str().expect("utf-8 path");
    let system = "/redfish/v1/Systems/System_0";
    let lit = |server: &RecordedServer| server.resource(system).expect("system")["LocationIndicatorActive"].clone();
    assert_eq!(lit(&server), Value::Bool(false), "the recording starts with the LED off");

    let out = kiln(&["bmc", "locate", "on", "--rack", m, "--node", "node01", "--db", db_arg, "--json"]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["kind"], "kiln.bmc-locate");
    assert_eq!(v["node"], "node01");
    assert_eq!(v["locate"]["on"], true);
    assert_eq!(v["locate"]["property"], "LocationIndicatorActive");
    assert_eq!(v["locate"]["resource"], system);
    // The BMC itself holds the change, not just kiln's answer.
    assert_eq!(lit(&server), Value::Bool(true));
    assert_eq!(server.count("PATCH", system), 1);

    let status = kiln(&["bmc", "locate", "status", "--rack", m, "--node", "node01", "--db", db_arg]);
    assert_eq!(status.status.code(), Some(0), "{:?}", text(&status));
    assert!(text(&status).0.contains("node01: locate LED on (LocationIndicatorActive = true"), "{:?}", text(&status));
    assert_eq!(server.count("PATCH", system), 1, "status reads only");

    let off = kiln(&["bmc", "locate", "off", "--rack", m, "--node", "node01", "--db", db_arg]);
    assert_eq!(off.status.code(), Some(0), "{:?}", text(&off));
    assert_eq!(lit(&server), Value::Bool(false));
    let url = server.url();
    let notes = bmc_notes(&db, "node01");
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert_eq!(notes[0], format!("bmc locate.on requested ({url})"));
    assert!(notes[1].starts_with(&format!("bmc locate.on done ({url}): node01: locate LED on")), "{notes:?}");
    assert_eq!(notes[2], format!("bmc locate.off requested ({url})"));
    assert!(notes[3].starts_with(&format!("bmc locate.off done ({url}): node01: locate LED off")), "{notes:?}");
}

#[test]
fn locate_on_a_bmc_without_an_indicator_exits_peer_and_says_so() {
    // The recorded BlueField BMC has neither LocationIndicatorActive nor IndicatorLED.
    let server = RecordedServer::recorded("nvidia_dpu", Some(("admin", PW)));
    let out = kiln(&["bmc", "locate", "on", "--bmc", &server.url(), "--bmc-user", "admin"]);
    assert_no_password(&out);
    assert_eq!(out.status.code(), Some(kiln::exit::PEER), "{:?}", text(&out));
    let (_, err) = text(&out);
    assert!(err.contains("neither its chassis nor its system has LocationIndicatorActive or IndicatorLED"), "{err}");
    assert!(server.requests().iter().all(|r| r.method != "PATCH"), "nothing was changed");
}

#[test]
fn locate_against_the_emulator_blinks_its_indicator_led() {
    let emulator = match Sushy::start() {
        Ok(s) => s,
        Err(why) => return skip(&format!("sushy-tools emulator unavailable: {why}")),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kiln.db");
    let run = |word: &str| {
        kiln_cmd()
            .args(["bmc", "locate", word, "--json", "--bmc", &emulator.url, "--bmc-user", sushy::USER, "--node", "n1"])
            .arg("--db")
            .arg(&db)
            .env("KILN_BMC_PASSWORD", sushy::PASSWORD)
            .output()
            .expect("kiln runs")
    };
    let out = run("on");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((v["locate"]["property"].as_str(), v["locate"]["on"].as_bool()), (Some("IndicatorLED"), Some(true)));
    let resource = v["locate"]["resource"].as_str().expect("resource").to_string();
    assert_eq!(emulator.get(&resource)["IndicatorLED"], "Blinking", "the emulator holds the change");
    let out = run("off");
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert_eq!(emulator.get(&resource)["IndicatorLED"], "Off");
}
