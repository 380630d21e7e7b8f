//! Every named fixture tree, inspected (in memory, as `--root` inspects it written out:
//! `tests/fixtures.rs`) and validated against its detected platform: healthy trees pass, and
//! each faulty variant fails with exactly its fault. The reports are snapshot-tested
//! (`INSTA_UPDATE=always` to accept changes).

use kiln::checks::{detect, spec_load, validate, Outcome, Verdict};
use kiln::model::Node;

fn inspect(name: &str) -> Node {
    kiln::hw::fixture::trees::build(name).expect("a named tree").inspect()
}

/// The platform chosen and every finding that is not a pass, one per line.
fn report(name: &str) -> (String, Verdict, String) {
    let node = inspect(name);
    let specs = spec_load::load_set(None).expect("built-in specs load");
    let spec = detect::detect(&specs, &node).expect("a platform is detected");
    let findings = validate(&node, &spec.spec.platform);
    let mut text = format!("platform: {}\nverdict: {}\n", spec.spec.platform.name, Verdict::of(&findings).as_str());
    for f in findings.iter().filter(|f| !matches!(f.outcome, Outcome::Pass | Outcome::Skipped)) {
        text.push_str(&format!(
            "{} {} [{}] expected={} actual={}\n  {}\n  action: {}\n",
            f.outcome.as_str(),
            f.check,
            f.component.label(),
            f.expected.as_deref().unwrap_or("-"),
            f.actual.as_deref().unwrap_or("-"),
            f.message,
            f.action.as_deref().unwrap_or("-"),
        ));
    }
    (spec.spec.platform.name.clone(), Verdict::of(&findings), text)
}

/// The failing or erroring check ids of a fixture, sorted and deduplicated.
fn bad_checks(name: &str) -> Vec<String> {
    let node = inspect(name);
    let specs = spec_load::load_set(None).expect("specs");
    let spec = detect::detect(&specs, &node).expect("detected");
    let mut ids: Vec<String> = validate(&node, &spec.spec.platform)
        .into_iter()
        .filter(|f| matches!(f.outcome, Outcome::Fail | Outcome::Error))
        .map(|f| format!("{}:{}", f.outcome.as_str(), f.check))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn healthy_fixtures_pass_their_detected_platform() {
    for (name, platform) in
        [("hgx-b200", "hgx-b200"), ("gb200-nvl72-tray", "gb200-nvl72-tray"), ("h100-sxm", "h100-sxm")]
    {
        let (p, verdict, text) = report(name);
        assert_eq!(p, platform, "{name} detected as {p}");
        assert_eq!(verdict, Verdict::Pass, "{name}:\n{text}");
    }
}

#[test]
fn each_faulty_fixture_fails_with_exactly_its_fault() {
    let expected: [(&str, &[&str]); 8] = [
        ("hgx-b200-gpu-x8", &["fail:pcie.width"]),
        ("hgx-b200-gpu-gen4", &["fail:pcie.speed"]),
        ("hgx-b200-missing-gpu", &["fail:gpu.count"]),
        ("hgx-b200-aer-fatal", &["fail:aer.fatal"]),
        ("hgx-b200-nvlink-down", &["fail:nvlink.active"]),
        ("hgx-b200-remap-pending", &["fail:gpu.remap_pending"]),
        ("hgx-b200-fabric-incomplete", &["fail:fabric.state"]),
        ("hgx-b200-malformed", &["error:inspect.read_error", "error:pcie.width"]),
    ];
    for (name, checks) in expected {
        assert_eq!(bad_checks(name), checks, "{name}");
    }
}

#[test]
fn faulty_fixture_reports_match_their_snapshots() {
    for name in [
        "hgx-b200-gpu-x8",
        "hgx-b200-gpu-gen4",
        "hgx-b200-missing-gpu",
        "hgx-b200-aer-fatal",
        "hgx-b200-nvlink-down",
        "hgx-b200-remap-pending",
        "hgx-b200-fabric-incomplete",
        "hgx-b200-malformed",
    ] {
        let (_, _, text) = report(name);
        insta::assert_snapshot!(name, text);
    }
}
