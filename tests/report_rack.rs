//! `kiln report --rack`: HTML, Prometheus, CSV and the RMA parts list over a populated inventory.

mod report_support;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use kiln::inventory::Inventory;
use kiln::rack::RackManifest;
use kiln::report::{build_rack_report, render_html, render_prometheus};
use report_support::{build, burnin, Scenario};

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

fn kiln(s: &Scenario, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["report", "--rack", &path_str(&s.manifest), "--db", &path_str(&s.db)])
        .args(args)
        .output()
        .expect("run kiln report");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn library_report(s: &Scenario) -> kiln::report::RackReport {
    let inv = Inventory::open_existing(&s.db).expect("open");
    let manifest = RackManifest::load(&s.manifest).expect("manifest");
    build_rack_report(&inv, Some(&manifest), time::OffsetDateTime::now_utc(), &burnin).expect("build")
}

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A parser for the Prometheus text format (0.0.4) strict enough to catch
/// what node_exporter's textfile collector would reject: unknown comment
/// kinds, a sample before its family's TYPE, a family split in two, bad
/// names, bad escapes, unparsable values, and the same series twice.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let name_ok = |n: &str| {
        let mut chars = n.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut seen_series = HashSet::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("line {}: {line}", i + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name) = (parts.next().expect("kind"), parts.next().expect(&at));
            assert!(name_ok(name), "{at}");
            match kind {
                "HELP" => {
                    let help = parts.next().unwrap_or_default();
                    assert!(!help.contains('\n'));
                    if let Some(prev) = current.replace(name.to_string()) {
                        if prev != name {
                            finished.insert(prev);
                        }
                    }
                    assert!(!finished.contains(name), "family {name} split: {at}");
                }
                "TYPE" => {
                    assert_eq!(parts.next(), Some("gauge"), "{at}");
                    assert!(typed.insert(name.to_string()), "TYPE twice: {at}");
                }
                _ => panic!("unknown comment {at}"),
            }
            continue;
        }
        let (name, rest) = line.split_at(line.find(['{', ' ']).expect(&at));
        assert!(name_ok(name), "{at}");
        assert!(typed.contains(name) && current.as_deref() == Some(name), "sample outside its family: {at}");
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut j = 0;
            loop {
                if body[j..].starts_with('}') {
                    rest = &body[j + 1..];
                    break;
                }
                let eq = body[j..].find('=').expect(&at) + j;
                let key = body[j..eq].to_string();
                assert!(name_ok(&key), "{at}");
                assert!(body[eq + 1..].starts_with('"'), "{at}");
                let mut value = String::new();
                let mut chars = body[eq + 2..].chars();
                let mut used = eq + 2;
                loop {
                    let c = chars.next().expect(&at);
                    used += c.len_utf8();
                    match c {
                        '\\' => {
                            let e = chars.next().expect(&at);
                            used += e.len_utf8();
                            value.push(match e {
                                'n' => '\n',
                                '\\' => '\\',
                                '"' => '"',
                                _ => panic!("bad escape \\{e}: {at}"),
                            });
                        }
                        '"' => break,
                        '\n' => panic!("raw newline: {at}"),
                        c => value.push(c),
                    }
                }
                assert!(labels.insert(key, value).is_none(), "label twice: {at}");
                j = used;
                if body[j..].starts_with(',') {
                    j += 1;
                }
            }
        }
        let value_text = rest.trim();
        let value: f64 = match value_text {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {at}")),
        };
        assert!(seen_series.insert(format!("{name}{labels:?}")), "series twice: {at}");
        out.push((name.to_string(), labels, value));
    }
    out
}

fn find<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|(n, l, _)| n == name && want.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

#[test]
fn prometheus_output_parses_back_with_the_states_verdicts_and_figures() {
    let s = build();
    let text = render_prometheus(&library_report(&s));
    let samples = parse_exposition(&text);
    let state = |node: &str, st: &str| find(&samples, "kiln_node_state", &[("node", node), ("state", st)])[0].2;
    assert_eq!(state("a07-n01", "handed_off"), 1.0);
    assert_eq!(state("a07-n01", "ready"), 0.0);
    assert_eq!(state("a07-n03", "failed"), 1.0);
    assert_eq!(state("a07-n04", "quarantined"), 1.0);
    assert_eq!(state("a07-n05", "unknown"), 1.0);
    for node in ["a07-n01", "a07-n02", "a07-n03", "a07-n04", "a07-n05"] {
        let one_hot: f64 = find(&samples, "kiln_node_state", &[("node", node)]).iter().map(|s| s.2).sum();
        assert_eq!(one_hot, 1.0, "{node}");
    }
    let check =
        find(&samples, "kiln_check_outcome", &[("node", "a07-n03"), ("check", "pcie.width"), ("outcome", "fail")]);
    assert_eq!(check[0].2, 1.0);
    let verdict = find(&samples, "kiln_run_verdict", &[("node", "a07-n03"), ("kind", "validate"), ("verdict", "fail")]);
    assert_eq!(verdict[0].2, 1.0);
    let gemm = find(&samples, "kiln_burnin_figure", &[("node", "a07-n03"), ("figure", "gemm_tflops"), ("gpu", "5")]);
    assert!(gemm[0].2 < 700.0, "the throttling GPU: {gemm:?}");
    assert_eq!(find(&samples, "kiln_rma_parts", &[("node", "a07-n03")])[0].2, 2.0);
    assert_eq!(find(&samples, "kiln_component_changes", &[("node", "a07-n02")])[0].2, 2.0);
    assert!(!find(&samples, "kiln_burnin_outlier_deviation_percent", &[("node", "a07-n03")]).is_empty());
    assert!(samples.iter().all(|(_, l, _)| l.get("rack").map(String::as_str) == Some("sjc1-a07")));
}

#[test]
fn the_exposition_parser_rejects_what_it_should() {
    let bad = [
        "kiln_x{a=\"1\"} 1\n",                                                          // no TYPE
        "# HELP kiln_x h\n# TYPE kiln_x gauge\nkiln_x{a=\"\\q\"} 1\n",                  // bad escape
        "# HELP kiln_x h\n# TYPE kiln_x gauge\nkiln_x{a=\"1\"} one\n",                  // bad value
        "# HELP kiln_x h\n# TYPE kiln_x gauge\nkiln_x{a=\"1\"} 1\nkiln_x{a=\"1\"} 2\n", // twice
    ];
    for text in bad {
        assert!(std::panic::catch_unwind(|| parse_exposition(text)).is_err(), "accepted: {text}");
    }
    let good = "# HELP kiln_x h\n# TYPE kiln_x gauge\nkiln_x{a=\"q\\\"\\\\\\n\"} 1.5\n";
    assert_eq!(parse_exposition(good)[0].1["a"], "q\"\\\n");
    assert_eq!(kiln::report::label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn parts_csv_names_each_failed_part_with_serial_place_and_evidence() {
    let s = build();
    let (code, out, err) = kiln(&s, &["--format", "csv", "--parts"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], kiln::report::PARTS_CSV_COLUMNS.join(","));
    assert_eq!(lines.len(), 3, "GPU 3 and NIC 6 of a07-n03: {out}");
    let gpu = lines.iter().find(|l| l.contains(",gpu,")).expect("gpu row");
    let serial = kiln::hw::fixture::sample::gpu_serial("a07-n03", 3);
    for want in [
        "sjc1-a07",
        "a07-n03",
        "U22",
        &kiln::hw::fixture::sample::gpu_address(3),
        serial.as_str(),
        "trained at x8",
        "reseat GPU 3",
    ] {
        assert!(gpu.contains(want), "{want} missing in {gpu}");
    }
    let nic = lines.iter().find(|l| l.contains(",nic,")).expect("nic row");
    assert!(nic.contains("port 1 is down (expected up, actual down)"), "{nic}");
    // --parts only makes sense as CSV.
    assert_eq!(kiln(&s, &["--format", "html", "--parts"]).0, kiln::exit::USAGE);
}

#[test]
fn rack_csv_table_and_json_list_every_manifest_node() {
    let s = build();
    let (code, csv, _) = kiln(&s, &["--format", "csv"]);
    assert_eq!(code, 0);
    assert_eq!(csv.lines().count(), 6);
    assert!(csv.lines().any(|l| l.starts_with("sjc1-a07,a07-n05,U42,unknown,")), "{csv}");
    let (_, table, _) = kiln(&s, &[]);
    assert!(
        table.contains("a07-n03") && table.contains("pcie.width net.link") && table.contains("2 part(s)"),
        "{table}"
    );
    let (_, json, _) = kiln(&s, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["kind"], "kiln.rack_report");
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(5));
    assert_eq!(v["nodes"][4]["record"], serde_json::Value::Null);
    // Pipelines get the locate command of every node with a BMC.
    let locate = v["nodes"][2]["locate"].as_str().expect("n03 has a BMC");
    assert_eq!(locate, format!("kiln bmc locate on --rack {} --node a07-n03", path_str(&s.manifest)));
    assert!(v["nodes"][1].get("locate").is_none(), "n02 has no BMC");
}

#[test]
fn html_is_one_self_contained_file() {
    let s = build();
    let out = s.dir.path().join("rack.html");
    let (code, _, err) = kiln(&s, &["--format", "html", "--out", &path_str(&out)]);
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&out).expect("written");
    let lower = html.to_ascii_lowercase();
    for banned in ["<script", "<link", "src=", "url(", "@import", "href=\"http"] {
        assert!(!lower.contains(banned), "{banned} in the report");
    }
    for node in ["a07-n01", "a07-n02", "a07-n03", "a07-n04", "a07-n05"] {
        assert!(html.contains(&format!("id=\"node-{node}\"")), "{node} section");
        assert!(html.contains(&format!("href=\"#node-{node}\"")), "{node} link");
    }
    assert!(html.contains("No burn-in recorded"), "the CLI has no burn-in tables yet");
    assert!(html.contains("1650924060999") && html.contains("(part swapped)"), "n02's swap is shown");
    assert!(html.contains("reseat GPU 3 in its tray"));
    assert!(html.contains("suspect tray: smoke smell"));
    // The failing node with a BMC gets the command that lights its tray's locate LED; the
    // passing one with a BMC does not, nor does the failing one without a BMC.
    let locate = |node: &str| format!("kiln bmc locate on --rack {} --node {node}", path_str(&s.manifest));
    assert!(html.contains(&locate("a07-n03")), "n03 failed and has a BMC");
    assert!(!html.contains(&locate("a07-n01")), "n01 is handed off: nothing to find");
    assert_eq!(html.matches("kiln bmc locate on").count(), 2, "n03's row and n03's section");
    // With burn-in data the charts are inline SVG.
    let full = render_html(&library_report(&s));
    assert!(full.matches("<svg").count() >= 15, "three line charts, a heatmap and bars per node with burn-in");
    assert!(full.contains("gemm_tflops") && full.contains("far from the rack median"));
    // The HTML format needs a manifest.
    let bare = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["report", "--format", "html", "--db", &path_str(&s.db)])
        .output()
        .expect("run");
    assert_eq!(bare.status.code(), Some(kiln::exit::USAGE));
}

#[test]
fn a_racks_report_shows_its_own_node_when_another_rack_has_one_of_that_name() {
    let s = build();
    // Rack sjc1-a08 has an a07-n03 too: another machine, passing, recorded after this rack's.
    let mut other = kiln::hw::fixture::sample::hgx_b200_node("a07-n03");
    other.dmi.product_serial = Some("1654225999001".into());
    other.dmi.product_uuid = Some("6e1f0c2a-3b4d-4e5f-8a9b-000000999001".into());
    other.dmi.board_serial = Some("1654225999001B".into());
    {
        let mut inv = Inventory::open(&s.db).expect("open");
        let run = kiln::inventory::RunRecord {
            name: Some("a07-n03"),
            rack: Some("sjc1-a08"),
            platform: Some("hgx-b200"),
            verdict: Some(kiln::checks::Verdict::Pass),
            ..kiln::inventory::RunRecord::new(kiln::lifecycle::RunKind::Validate, &other, "kiln rack validate")
        };
        inv.record_run(&run).expect("record");
    }
    let report = library_report(&s);
    let n03 = report.nodes.iter().find(|n| n.name == "a07-n03").expect("n03 in the report");
    let record = n03.record.as_ref().expect("n03 is recorded");
    assert_eq!(record.rack.as_deref(), Some("sjc1-a07"), "this rack's a07-n03, not sjc1-a08's");
    assert_eq!(record.state.name(), "failed", "{:?}", record.state);
}
