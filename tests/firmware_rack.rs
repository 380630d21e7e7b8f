//! `kiln rack firmware check` end to end: the built binary over a rack manifest whose nodes'
//! BMCs are recorded NVIDIA trees served over HTTP and the sushy-tools emulator, an SQLite
//! inventory on disk, and the readers of what it recorded (`kiln report`, `kiln rack handoff`,
//! `kiln node history`).

mod bmc_support;
mod fixture_support;

use std::process::Command;

use bmc_support::rack_cli::{json_of, kiln, manifest, node, s, text};
use bmc_support::server::RecordedServer;
use bmc_support::sushy::{self, Sushy};
use serde_json::{json, Value};

const PW: &str = "fw-rack-secret-77";

const FW_BMC: &str = "/redfish/v1/UpdateService/FirmwareInventory/FW_BMC_0";

#[test]
fn a_rack_check_judges_every_node_records_it_and_a_stale_node_is_held_until_it_is_updated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let current = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let stale = RecordedServer::recorded("gh200", Some(("admin", PW)));
    let mut member = stale.resource(FW_BMC).expect("recorded member");
    member["Version"] = json!("GH200-24.01-1");
    stale.set(FW_BMC, member);
    let rack = manifest(d, None, &[("gh-01", "U02", Some(&current.url())), ("gh-02", "U04", Some(&stale.url()))]);
    let check = |pw: &str| {
        kiln(d, &["rack", "firmware", "check", "--rack", s(&rack), "--recipe", "gh200-recorded", "--json"], pw)
    };

    let out = check(PW);
    assert_eq!(out.status.code(), Some(kiln::exit::CHECK_FAILED), "{:?}", text(&out));
    let doc = json_of(&out);
    assert_eq!((doc["kind"].as_str(), doc["schema_version"].as_u64()), (Some("kiln.rack-firmware"), Some(1)));
    assert_eq!(doc["exit_code"], 1);
    let one = node(&doc, "gh-01");
    assert_eq!(one["status"], "compliant", "{one:#}");
    // Every inventory member the BMC lists is an entry, once (the recording lists one member
    // twice).
    let collection = current.resource("/redfish/v1/UpdateService/FirmwareInventory").expect("collection");
    let members: std::collections::BTreeSet<&str> = collection["Members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["@odata.id"].as_str()?.rsplit('/').next())
        .collect();
    let entries = one["entries"].as_array().expect("entries");
    let places: std::collections::BTreeSet<&str> =
        entries.iter().filter(|e| e["source"] == "redfish-inventory").filter_map(|e| e["place"].as_str()).collect();
    assert_eq!(places, members, "{one:#}");
    assert_eq!(entries.iter().filter(|e| e["source"] == "redfish-inventory").count(), members.len());
    assert!(places.contains("FW_CPLD_0"), "the members the recipe leaves out are listed");
    assert!(entries.iter().any(|e| e["place"] == "FW_CPLD_0" && e["status"] == "not-in-recipe"));
    let two = node(&doc, "gh-02");
    assert_eq!(two["status"], "non-compliant");
    let bmc = two["entries"].as_array().expect("entries").iter().find(|e| e["place"] == "FW_BMC_0").expect("FW_BMC_0");
    assert_eq!((bmc["status"].as_str(), bmc["reported"].as_str()), (Some("older"), Some("GH200-24.01-1")));
    assert_eq!(bmc["pinned"], "GH200-24.05-2");
    assert!(one["run_id"].is_i64() && two["run_id"].is_i64(), "both recorded");

    // The table says the same, one line per node and component.
    let table = kiln(d, &["rack", "firmware", "check", "--rack", s(&rack), "--recipe", "gh200-recorded"], PW);
    let (stdout, _) = text(&table);
    assert!(
        stdout.lines().any(|l| l.starts_with("gh-02") && l.contains("FW_BMC_0") && l.ends_with("older")),
        "{stdout}"
    );
    assert!(stdout.contains("gh-02: non-compliant (recipe gh200-recorded; out of compliance: bmc"), "{stdout}");
    assert!(stdout.contains("gh-01: compliant"), "{stdout}");

    // In the inventory: runs of kind firmware with their verdicts and findings.
    let db = d.join("kiln.db");
    {
        let inv = kiln::inventory::Inventory::open_existing(&db).expect("inventory");
        let row = inv.node("gh-02").expect("query").expect("enrolled");
        let run = inv.latest_firmware_check(row.id).expect("query").expect("a firmware run");
        assert_eq!((run.kind.as_str(), run.verdict), ("firmware", Some(kiln::checks::Verdict::Fail)));
        let findings = inv.run_findings(run.id).expect("findings");
        assert!(findings.iter().any(|f| f.check == "firmware.bmc" && f.outcome == kiln::checks::Outcome::Fail));
        // Kept out of the node-run comparisons.
        assert!(inv.latest_run(row.id).expect("query").is_none());
    }

    // Hand-off keeps the stale node out, naming its firmware.
    let handoff = kiln(
        d,
        &["rack", "handoff", "--to", "slurm", "--dry-run", "--json", "--rack", s(&rack), "--scontrol", "false"],
        PW,
    );
    let h: Value = serde_json::from_slice(&handoff.stdout).expect("handoff JSON");
    let held = h["nodes"].as_array().expect("nodes").iter().find(|n| n["node"] == "gh-02").expect("gh-02").clone();
    assert!(held.to_string().contains("firmware out of compliance: firmware.bmc"), "{held:#}");
    let decision =
        kiln::handoff::decide(&kiln::inventory::Inventory::open_existing(&db).expect("open"), "gh-02").expect("decide");
    assert_eq!(decision.health.name(), "hold", "{decision:?}");

    // The rack report shows the matrix, component x tray.
    let report = kiln(d, &["report", "--rack", s(&rack), "--format", "json"], PW);
    let r: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let matrix = &r["firmware"];
    let row =
        matrix["components"].as_array().expect("components").iter().position(|c| c == "firmware.bmc").expect("bmc row");
    assert_eq!(matrix["trays"][1]["node"], "gh-02");
    assert_eq!(matrix["cells"][row][0]["versions"], json!(["GH200-24.05-2"]));
    assert_eq!(matrix["cells"][row][1]["outcome"], "fail");
    assert!(matrix["cells"][row][1]["versions"].as_array().expect("versions").contains(&json!("GH200-24.01-1")));
    let html_path = d.join("rack.html");
    let html = kiln(d, &["report", "--rack", s(&rack), "--format", "html", "--out", s(&html_path)], PW);
    assert_eq!(html.status.code(), Some(0), "{:?}", text(&html));
    let page = std::fs::read_to_string(&html_path).expect("html");
    assert!(page.contains("<h2>Firmware</h2>") && page.contains("GH200-24.01-1"), "the matrix is drawn");
    let (table, _) = text(&kiln(d, &["report", "--rack", s(&rack)], PW));
    assert!(
        table.contains("firmware (newest check per tray") && table.contains("GH200-24.01-1 / GH200-24.05-2 !"),
        "{table}"
    );

    // Brought up to date (as an update would), the next check passes and the change is kept in
    // the node's history.
    let mut member = stale.resource(FW_BMC).expect("member");
    member["Version"] = json!("GH200-24.05-2");
    stale.set(FW_BMC, member);
    let again = check(PW);
    assert_eq!(again.status.code(), Some(0), "{:?}", text(&again));
    let history = kiln(d, &["node", "history", "gh-02", "--json"], PW);
    let (hist, _) = text(&history);
    assert!(hist.contains("firmware changed: firmware FW_BMC_0: firmware GH200-24.01-1 -> GH200-24.05-2"), "{hist}");

    // The password is nowhere: output, the database, the report.
    for out in [&out, &again, &report, &history] {
        let (o, e) = text(out);
        assert!(!o.contains(PW) && !e.contains(PW), "password leaked");
    }
    assert!(!table.contains(PW) && !stdout.contains(PW));
    let bytes = std::fs::read(&db).expect("db bytes");
    assert!(!bytes.windows(PW.len()).any(|w| w == PW.as_bytes()), "password in the database");
    assert!(!page.contains(PW));
}

#[test]
fn unreachable_and_unconfigured_nodes_are_said_and_the_rest_still_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let dpu = RecordedServer::recorded("nvidia_dpu", Some(("admin", PW)));
    let rack = manifest(
        d,
        None,
        &[
            ("dpu-01", "U10", Some(&dpu.url())),
            ("gone-01", "U11", Some("http://127.0.0.1:1")),
            ("nobmc-01", "U12", None),
        ],
    );
    let out =
        kiln(d, &["rack", "firmware", "check", "--rack", s(&rack), "--recipe", "bluefield3-recorded", "--json"], PW);
    let doc = json_of(&out);
    assert_eq!(node(&doc, "dpu-01")["status"], "compliant", "{doc:#}");
    let gone = node(&doc, "gone-01");
    assert_eq!(gone["status"], "unreachable");
    assert!(gone["problem"].as_str().expect("why").contains("127.0.0.1:1"), "{gone:#}");
    let nobmc = node(&doc, "nobmc-01");
    assert_eq!(nobmc["status"], "not-checked");
    assert!(nobmc["problem"].as_str().expect("why").contains("no Redfish BMC"), "{nobmc:#}");
    assert!(nobmc.get("run_id").is_none(), "nothing recorded for a node not checked");
    assert_eq!(out.status.code(), Some(kiln::exit::PEER), "an unreachable BMC, nothing out of date");

    // An unknown recipe is refused before any BMC is asked anything.
    let before = dpu.requests().len();
    let bad = kiln(d, &["rack", "firmware", "check", "--rack", s(&rack), "--recipe", "nope"], PW);
    assert_eq!(bad.status.code(), Some(kiln::exit::BAD_INPUT), "{:?}", text(&bad));
    assert!(text(&bad).1.contains("no firmware recipe named \"nope\" (known: "), "{:?}", text(&bad));
    assert_eq!(dpu.requests().len(), before);

    // Without --recipe, a node whose platform kiln does not know is not guessed at.
    let guess = kiln(d, &["rack", "firmware", "check", "--rack", s(&rack), "--nodes", "dpu-01", "--json"], PW);
    assert_eq!(guess.status.code(), Some(kiln::exit::CHECK_ERROR), "{:?}", text(&guess));
    let why = node(&json_of(&guess), "dpu-01")["problem"].as_str().expect("why").to_string();
    assert!(why.contains("choose a recipe with --recipe"), "{why}");
}

#[test]
fn in_band_versions_of_the_recorded_inspection_join_the_bmcs_and_the_platform_picks_the_recipe() {
    let Some(emulator) = Sushy::start_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // The node's inspection, recorded as a validate of the HGX B200 snapshot tree.
    let fixture = fixture_support::shared("hgx-b200");
    let validate = kiln(d, &["validate", "--root", s(&fixture), "--db", s(&d.join("kiln.db")), "--json"], PW);
    assert_eq!(validate.status.code(), Some(0), "{:?}", text(&validate));
    let rack = manifest(d, Some("hgx-b200"), &[("hgx-b200-01", "U20", Some(&emulator.url))]);
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["rack", "firmware", "check", "--rack", s(&rack), "--json"])
        .current_dir(d)
        .env("KILN_DB", d.join("kiln.db"))
        .env("RACK_PW", sushy::PASSWORD)
        .env_remove("KILN_CHECKS")
        .output()
        .expect("kiln runs");
    let doc = json_of(&out);
    let n = node(&doc, "hgx-b200-01");
    assert_eq!(n["recipe"], "hgx-b200", "chosen by the recorded platform: {n:#}");
    assert!(n["inband"].as_str().expect("inband").starts_with("run "), "{n:#}");
    let entries = n["entries"].as_array().expect("entries");
    let vbios: Vec<&Value> = entries.iter().filter(|e| e["component"] == "vbios").collect();
    assert_eq!(vbios.len(), 8, "each GPU's VBIOS from the inspection");
    assert!(vbios.iter().all(|e| e["source"] == "inband" && e["reported"].is_string()), "{vbios:#?}");
    // The emulator's manager reports its own firmware version, judged against the pin.
    let bmc = entries.iter().find(|e| e["component"] == "bmc").expect("bmc entry");
    assert_eq!(bmc["source"], "redfish-property");
    assert_ne!(n["status"], "not-checked");
    assert!([0, 1, 3].contains(&out.status.code().unwrap_or(-1)), "{:?}", text(&out));
}
