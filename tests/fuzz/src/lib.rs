//! What each fuzz target does with its input: one function per parser of outside data. The
//! targets under `fuzz_targets/` call these with libFuzzer's input; `tests/fuzz_regressions.rs`
//! calls them with every committed input under `regressions/`, so CI replays what the fuzzers
//! found without running a fuzzer. A function returns normally for every input: a panic, a hang
//! or an abort is the bug.

use std::path::Path;

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// Every target, by name: `cargo xtask fuzz NAME`.
pub const TARGETS: &[(&str, Target)] = &[
    ("spec", spec),
    ("rack_manifest", rack_manifest),
    ("image_recipe", image_recipe),
    ("firmware_recipe", firmware_recipe),
    ("block_map", block_map),
    ("artifact_manifest", artifact_manifest),
    ("nvml_dump", nvml_dump),
    ("sysfs_value", sysfs_value),
    ("node_json", node_json),
    ("agent_message", agent_message),
    ("redfish_reply", redfish_reply),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A platform spec: parse and check it, then judge a healthy HGX B200 node against it, so the
/// rules see every value a spec can hold.
pub fn spec(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(platform) = kiln::checks::spec_load::parse_spec(t, Path::new("fuzz.toml")) {
        let node = kiln::hw::fixture::sample::hgx_b200_node("fuzz-node");
        let _ = kiln::checks::validate(&node, &platform);
    }
}

/// A rack manifest (`[rack]`, `[[nodes]]`, credentials).
pub fn rack_manifest(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(m) = kiln::rack::RackManifest::parse(t, Path::new("/fuzz/rack.toml")) {
        let names: Vec<String> = m.nodes.iter().map(|n| n.name.clone()).collect();
        let _ = m.select(&names);
    }
}

/// An image recipe (`images/*.toml`), with every hostname pattern rendered.
pub fn image_recipe(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(r) = kiln::image::recipe::parse(t, Path::new("/fuzz/recipe.toml")) {
        let _ = kiln::image::recipe::check(&r);
    }
    let _ = kiln::image::recipe::render_hostname(t, "gpu-a01");
}

/// A firmware recipe (`checks/firmware/*.toml`).
pub fn firmware_recipe(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(r) = kiln::firmware::recipe_load::parse_recipe(t, Path::new("/fuzz/firmware.toml")) {
        let _ = kiln::firmware::recipe_validate::check(&r);
    }
}

/// A block map (`NAME.bmap.json`): parsed, checked, its gaps listed.
pub fn block_map(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(map) = kiln::image::bmap::BlockMap::parse(t, Path::new("/fuzz/image.bmap.json")) {
        if map.check().is_ok() {
            let _ = map.gaps();
        }
    }
}

/// An artifact manifest (`NAME.manifest.json`).
pub fn artifact_manifest(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(m) = serde_json::from_str::<kiln::image::manifest::Manifest>(t) {
        let _ = m.files(Path::new("/fuzz/image.manifest.json"));
    }
}

/// An NVML dump (`kiln/nvml.json`) and a telemetry recording (`kiln/telemetry.json`), read as
/// a capture's are; a dump that parses is judged against every built-in spec.
pub fn nvml_dump(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = kiln::json_error::from_str::<kiln::hw::nvml::TelemetryRecording>(t);
    let Ok(gpus) = kiln::json_error::from_str::<kiln::model::GpuInventory>(t) else { return };
    for gpu in gpus.gpus() {
        let _ = kiln::hw::nvml::counters_of(gpu);
    }
    let mut node = kiln::hw::fixture::sample::hgx_b200_node("fuzz-node");
    node.gpus = gpus;
    if let Ok(specs) = kiln::checks::spec_load::load_builtin() {
        for s in &specs {
            let _ = kiln::checks::validate(&node, &s.platform);
        }
    }
}

/// One sysfs or procfs value, through every parser of `hw::parse`.
pub fn sysfs_value(data: &[u8]) {
    let Some(t) = text(data) else { return };
    use kiln::hw::parse;
    let _ = parse::hex_u16(t);
    let _ = parse::hex_u32(t);
    let _ = parse::uint(t);
    let _ = parse::uint32(t);
    let _ = parse::int(t);
    let _ = parse::numa_node(t);
    let _ = parse::link_speed(t);
    let _ = parse::aer_counters(t);
    let _ = parse::cpulist(t);
    let _ = parse::meminfo_kib(t, "MemTotal");
    let _ = kiln::model::PciAddress::parse(t);
    let _ = parse::pci_addresses_in_path(Path::new(t));
}

/// A node's JSON (`kiln inspect --json`, `validate --node`), judged against every built-in spec
/// when it reads.
pub fn node_json(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(node) = kiln::json_error::from_str::<kiln::model::Node>(t) else { return };
    if let Ok(specs) = kiln::checks::spec_load::load_builtin() {
        for s in &specs {
            let _ = kiln::checks::validate(&node, &s.platform);
        }
    }
}

/// A message an imaging agent sends the deploy controller: hello, result, booted report.
pub fn agent_message(data: &[u8]) {
    use kiln::deploy::protocol::{AgentResult, BootedReport, Hello};
    let _ = Hello::parse(data);
    let _ = AgentResult::parse(data);
    let _ = BootedReport::parse(data);
}

/// What kiln reads out of a BMC's reply on its own: the Redfish error message, task and power
/// states. (Replies read while driving a BMC are judged in `tests/bmc_*.rs` against emulators.)
pub fn redfish_reply(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = kiln::bmc::redfish_message(t);
    let _ = kiln::bmc::TaskState::from_redfish(t);
    let _ = kiln::bmc::PowerState::from_redfish(t);
}
