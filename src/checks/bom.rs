//! The expected inventory (bill of materials): what a node, or every node of a platform, should
//! hold (serials by place, counts and sizes), read from TOML or from CSV a site exports from its
//! asset system, and judged against an inspected node as findings with the place and the action
//! (docs/bom.md).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::spec_error::SpecIssue;
use super::{Component, Finding, Outcome, Severity};
use crate::inventory::{components_of, ComponentRecord};
use crate::model::{MachineIdentity, Node};
use crate::toml_error::{from_str_located, locate_issues, FieldPath, Located};

/// Counts and sizes a node should have; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expected {
    /// A text the CPU model must contain (case, `(R)` and `(TM)` do not matter).
    pub cpu_model: Option<String>,
    pub cpu_sockets: Option<u32>,
    /// The populated DIMMs' sizes added up, in GiB.
    pub memory_gib: Option<u64>,
    pub dimm_count: Option<usize>,
    /// The size of every populated DIMM, in GiB.
    pub dimm_size_gib: Option<u64>,
    pub gpu_count: Option<usize>,
    pub nic_count: Option<usize>,
    pub nvme_count: Option<usize>,
    /// The smallest an NVMe namespace may be, in GB (10^9 bytes, as drives are sold).
    pub nvme_min_gb: Option<u64>,
}

/// One part the BOM expects at a place.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedPart {
    /// `gpu`, `dimm`, `nic`, `dpu`, `nvme`, `disk`, `nvswitch`.
    pub kind: String,
    /// Where: a GPU's NVML index (`gpu3`), a PCI slot (`4`), a DIMM slot (`CPU0_DIMM_A1`) or a
    /// PCI address (`0000:61:00.0`).
    pub place: String,
    pub serial: String,
}

/// What one node should hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BomNode {
    /// The node's name (its manifest name or hostname).
    pub name: Option<String>,
    /// Its DMI system serial: names the node, and is checked.
    pub system_serial: Option<String>,
    #[serde(flatten)]
    pub expected: Expected,
    #[serde(default)]
    pub parts: Vec<ExpectedPart>,
}

/// What every node of a platform should hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BomPlatform {
    /// The platform spec's name (`hgx-b200`).
    pub name: String,
    #[serde(flatten)]
    pub expected: Expected,
}

/// A whole BOM file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bom {
    #[serde(default)]
    pub platform: Vec<BomPlatform>,
    #[serde(default)]
    pub node: Vec<BomNode>,
}

#[derive(Debug, thiserror::Error)]
pub enum BomError {
    #[error("cannot read bill of materials {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: field `{field}`: {message}", file.display())]
    Parse { file: PathBuf, line: usize, column: usize, field: String, message: String },
    #[error("{}:{}{}", file.display(), issues.first().map(ToString::to_string).unwrap_or_default(), more(issues))]
    Invalid { file: PathBuf, issues: Vec<SpecIssue> },
}

fn more(issues: &[SpecIssue]) -> String {
    match issues.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    }
}

const KINDS: &[&str] = &["gpu", "dimm", "nic", "dpu", "nvme", "disk", "nvswitch"];

/// The rack a BOM is read for: its id and its manifest's node names.
struct Scope<'a> {
    rack: &'a str,
    known: &'a [&'a str],
}

impl Scope<'_> {
    /// Why a node name of the BOM is not one of the rack's, if it is not.
    fn unknown(&self, name: &str) -> Option<String> {
        let place = match name.split_once('/') {
            Some((rack, _)) if rack != self.rack => return None,
            Some((_, place)) => place,
            None => name,
        };
        (!self.known.contains(&place)).then(|| {
            format!("node {name:?} is not in rack {}'s manifest (it has {})", self.rack, self.known.join(", "))
        })
    }
}

impl Bom {
    /// Reads a BOM: TOML, or CSV when the file name ends in `.csv`.
    pub fn load(path: &Path) -> Result<Bom, BomError> {
        Self::read(path, None)
    }

    /// Reads the BOM a rack manifest points to, as rack `rack` with the manifest's node names
    /// `known` sees it: a node named `RACK/NAME` belongs to that rack (a site-wide BOM names its
    /// nodes so, and the other racks' entries are left out), a plain name is one of this rack's
    /// nodes. A name of this rack that the manifest lacks is an issue at its line and field,
    /// beside every other issue of the file. The entries kept carry the manifest names.
    pub fn load_for_rack(path: &Path, rack: &str, known: &[&str]) -> Result<Bom, BomError> {
        let mut bom = Self::read(path, Some(&Scope { rack, known }))?;
        bom.node.retain_mut(|n| match n.name.take() {
            Some(name) => match name.split_once('/') {
                Some((r, place)) if r == rack => {
                    n.name = Some(place.to_string());
                    true
                }
                Some(_) => false,
                None => {
                    n.name = Some(name);
                    true
                }
            },
            None => true,
        });
        Ok(bom)
    }

    fn read(path: &Path, scope: Option<&Scope<'_>>) -> Result<Bom, BomError> {
        let text = crate::input::read_to_string(path, crate::input::Input::Bom)
            .map_err(|source| BomError::Read { file: path.to_path_buf(), source })?;
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            parse_csv(&text, path, scope)
        } else {
            parse_toml(&text, path, scope)
        }
    }

    /// Whether the BOM has an entry named `name`.
    pub fn names(&self, name: &str) -> bool {
        self.node.iter().any(|n| n.name.as_deref() == Some(name))
    }

    /// The node entry for a node of this name or system serial.
    fn node_entry(&self, name: &str, serial: Option<&str>) -> Option<&BomNode> {
        self.node
            .iter()
            .find(|n| n.name.as_deref() == Some(name) || (serial.is_some() && n.system_serial.as_deref() == serial))
    }

    /// Judges `node` (called `name`, judged against platform `platform`) against what the BOM
    /// expects of it: its own entry, over its platform's.
    pub fn judge(&self, node: &Node, name: &str, platform: &str) -> Vec<Finding> {
        let identity = MachineIdentity::of(node);
        let entry = self.node_entry(name, identity.system_serial.as_deref());
        let by_platform = self.platform.iter().find(|p| p.name == platform);
        if entry.is_none() && by_platform.is_none() {
            return vec![Finding::new(
                "bom.node",
                Outcome::Skipped,
                Severity::Info,
                Component::node(),
                format!("the bill of materials lists neither {name} nor platform {platform}"),
            )];
        }
        let mut expected = by_platform.map(|p| p.expected.clone()).unwrap_or_default();
        if let Some(e) = entry {
            expected = merge(expected, &e.expected);
        }
        let parts = components_of(node);
        let mut out = Vec::new();
        if let Some(want) = entry.and_then(|e| e.system_serial.as_deref()) {
            let got = identity.system_serial.as_deref();
            out.push(system_finding(want, got));
        }
        counts(&expected, node, &parts, &mut out);
        for part in entry.map(|e| e.parts.as_slice()).unwrap_or_default() {
            out.push(part_finding(part, &parts));
        }
        out
    }
}

fn merge(base: Expected, over: &Expected) -> Expected {
    Expected {
        cpu_model: over.cpu_model.clone().or(base.cpu_model),
        cpu_sockets: over.cpu_sockets.or(base.cpu_sockets),
        memory_gib: over.memory_gib.or(base.memory_gib),
        dimm_count: over.dimm_count.or(base.dimm_count),
        dimm_size_gib: over.dimm_size_gib.or(base.dimm_size_gib),
        gpu_count: over.gpu_count.or(base.gpu_count),
        nic_count: over.nic_count.or(base.nic_count),
        nvme_count: over.nvme_count.or(base.nvme_count),
        nvme_min_gb: over.nvme_min_gb.or(base.nvme_min_gb),
    }
}

fn system_finding(want: &str, got: Option<&str>) -> Finding {
    let component = Component { kind: "system".into(), serial: got.map(str::to_string), ..Component::default() };
    match got {
        Some(g) if g == want => {
            Finding::new("bom.system", Outcome::Pass, Severity::Info, component, "system serial as the BOM lists")
        }
        Some(g) => Finding::new(
            "bom.system",
            Outcome::Fail,
            Severity::Critical,
            component,
            format!("this is machine serial {g}; the bill of materials expects {want} here"),
        )
        .expected(want)
        .actual(g)
        .action("check that this is the machine the asset record says (the chassis label); correct the record or the cabling"),
        None => Finding::new(
            "bom.system",
            Outcome::Error,
            Severity::Warning,
            component,
            "the system serial could not be read (DMI needs root)",
        )
        .expected(want)
        .action("run as root so that DMI serials can be read"),
    }
}

/// A count or size check: pass when equal, fail naming both.
fn count_finding(
    check: &str,
    kind: &str,
    what: &str,
    want: impl ToString,
    got: impl ToString,
    action: &str,
) -> Finding {
    let (want, got) = (want.to_string(), got.to_string());
    let component = Component { kind: kind.into(), ..Component::default() };
    if want == got {
        Finding::new(check, Outcome::Pass, Severity::Info, component, format!("{what}: {got}, as the BOM lists"))
    } else {
        Finding::new(
            check,
            Outcome::Fail,
            Severity::Critical,
            component,
            format!("{what}: {got}; the bill of materials expects {want}"),
        )
        .expected(want)
        .actual(got)
        .action(action)
    }
}

fn counts(e: &Expected, node: &Node, parts: &[ComponentRecord], out: &mut Vec<Finding>) {
    let count = |kind: &str| parts.iter().filter(|p| p.kind == kind).count();
    let dimms: Vec<&crate::model::Dimm> = node.memory.dimms.iter().filter(|d| d.populated()).collect();
    const GIB: u64 = 1 << 30;
    if let Some(want) = &e.cpu_model {
        let got = node.cpus.model.clone().unwrap_or_default();
        let component = Component { kind: "cpu".into(), name: Some(got.clone()), ..Component::default() };
        out.push(if plain(&got).contains(&plain(want)) {
            Finding::new("bom.cpu_model", Outcome::Pass, Severity::Info, component, format!("CPU {got}"))
        } else {
            Finding::new(
                "bom.cpu_model",
                Outcome::Fail,
                Severity::Critical,
                component,
                format!("CPU {got}; the bill of materials expects {want}"),
            )
            .expected(want)
            .actual(&got)
            .action("fit the CPUs the BOM lists, or correct the BOM")
        });
    }
    if let Some(want) = e.cpu_sockets {
        out.push(count_finding(
            "bom.cpu_sockets",
            "cpu",
            "CPU sockets",
            want,
            node.cpus.sockets,
            "seat the missing CPU",
        ));
    }
    if let Some(want) = e.gpu_count {
        out.push(count_finding(
            "bom.gpu_count",
            "gpu",
            "GPUs",
            want,
            count("gpu"),
            "reseat or replace the missing GPU",
        ));
    }
    if let Some(want) = e.nic_count {
        out.push(count_finding("bom.nic_count", "nic", "NICs", want, count("nic"), "fit or reseat the missing NIC"));
    }
    if let Some(want) = e.nvme_count {
        out.push(count_finding(
            "bom.nvme_count",
            "nvme",
            "NVMe drives",
            want,
            count("nvme"),
            "fit or reseat the drive",
        ));
    }
    if let Some(min) = e.nvme_min_gb {
        for p in parts.iter().filter(|p| p.kind == "nvme") {
            let bytes = p.extra.get("size_bytes").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let gb = bytes / 1_000_000_000;
            if gb < min {
                out.push(
                    Finding::new(
                        "bom.nvme_size",
                        Outcome::Fail,
                        Severity::Warning,
                        part_component(p),
                        format!("{}: {gb} GB; the bill of materials expects at least {min} GB", p.label()),
                    )
                    .expected(format!(">= {min} GB"))
                    .actual(format!("{gb} GB"))
                    .action(format!("replace the drive at {} with one of the listed capacity", p.label())),
                );
            }
        }
    }
    let wants_dimms = e.dimm_count.is_some() || e.dimm_size_gib.is_some() || e.memory_gib.is_some();
    if wants_dimms && node.memory.dimms.is_empty() {
        out.push(Finding::new(
            "bom.dimms",
            Outcome::Error,
            Severity::Warning,
            Component { kind: "memory".into(), ..Component::default() },
            "no SMBIOS memory device table was read (it needs root), so DIMMs cannot be checked",
        ));
        return;
    }
    if let Some(want) = e.dimm_count {
        let empty: Vec<&str> =
            node.memory.dimms.iter().filter(|d| !d.populated()).map(|d| d.locator.as_str()).collect();
        let action = if empty.is_empty() {
            "fit the DIMMs the BOM lists".to_string()
        } else {
            format!("check the empty slot(s): {}", empty.join(", "))
        };
        out.push(count_finding("bom.dimm_count", "dimm", "DIMMs", want, dimms.len(), &action));
    }
    if let Some(want) = e.dimm_size_gib {
        for d in dimms.iter().filter(|d| d.size_bytes.map(|b| b / GIB) != Some(want)) {
            let got = d.size_bytes.map_or("unknown".to_string(), |b| format!("{} GiB", b / GIB));
            out.push(
                Finding::new(
                    "bom.dimm_size",
                    Outcome::Fail,
                    Severity::Warning,
                    dimm_component(d),
                    format!("DIMM in slot {}: {got}; the bill of materials expects {want} GiB", d.locator),
                )
                .expected(format!("{want} GiB"))
                .actual(got)
                .action(format!("replace the DIMM in slot {} with a {want} GiB module", d.locator)),
            );
        }
    }
    if let Some(want) = e.memory_gib {
        let got: u64 = dimms.iter().filter_map(|d| d.size_bytes).sum::<u64>() / GIB;
        out.push(count_finding(
            "bom.memory",
            "memory",
            "memory in DIMMs (GiB)",
            want,
            got,
            "find the missing or wrong DIMMs (the dimm findings name their slots)",
        ));
    }
}

/// A CPU model as compared: lower case, without `(R)` and `(TM)`, single spaces
/// (`INTEL(R) XEON(R) PLATINUM 8570` is `intel xeon platinum 8570`).
fn plain(model: &str) -> String {
    let lower = model.to_lowercase().replace("(r)", " ").replace("(tm)", " ");
    lower.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn dimm_component(d: &crate::model::Dimm) -> Component {
    Component {
        kind: "dimm".into(),
        slot: Some(d.locator.clone()),
        serial: d.serial.clone(),
        name: d.part_number.clone(),
        ..Component::default()
    }
}

fn part_component(p: &ComponentRecord) -> Component {
    p.finding_component()
}

/// Whether `place` (as a BOM writes it) names where `part` sits.
fn at_place(part: &ComponentRecord, place: &str) -> bool {
    let place = place.trim();
    let index = part.extra.get("index").and_then(serde_json::Value::as_u64);
    let by_index = part.kind == "gpu" && index.is_some_and(|i| place.eq_ignore_ascii_case(&format!("gpu{i}")));
    let by_slot = part.slot.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(place));
    let by_address = part.address.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(place));
    by_index || by_slot || by_address
}

fn part_finding(want: &ExpectedPart, parts: &[ComponentRecord]) -> Finding {
    let found = parts.iter().find(|p| p.kind == want.kind && at_place(p, &want.place));
    match found {
        None => Finding::new(
            "bom.missing",
            Outcome::Fail,
            Severity::Critical,
            Component {
                kind: want.kind.clone(),
                slot: Some(want.place.clone()),
                serial: Some(want.serial.clone()),
                ..Component::default()
            },
            format!("no {} at {}; the bill of materials expects serial {} there", want.kind, want.place, want.serial),
        )
        .expected(&want.serial)
        .actual("absent")
        .action(format!("fit or reseat the {} at {} (serial {})", want.kind, want.place, want.serial)),
        Some(p) if p.serial.as_deref() == Some(want.serial.as_str()) => Finding::new(
            "bom.serial",
            Outcome::Pass,
            Severity::Info,
            part_component(p),
            format!("{}: serial {} as the BOM lists", p.label(), want.serial),
        ),
        Some(p) => {
            let got = p.serial.clone().unwrap_or_else(|| "unreadable".into());
            Finding::new(
                "bom.serial",
                Outcome::Fail,
                Severity::Critical,
                part_component(p),
                format!("{}: serial {got}; the bill of materials expects {}", p.label(), want.serial),
            )
            .expected(&want.serial)
            .actual(&got)
            .action(format!(
                "the {} at {} is not the one the asset record lists: put serial {} back, or record the swap",
                want.kind,
                p.label(),
                want.serial
            ))
        }
    }
}

fn parse_toml(text: &str, file: &Path, scope: Option<&Scope<'_>>) -> Result<Bom, BomError> {
    let bom: Bom = from_str_located(text).map_err(|Located { line, column, field, message }| BomError::Parse {
        file: file.to_path_buf(),
        line,
        column,
        field,
        message,
    })?;
    let issues: Vec<SpecIssue> = locate_issues(text, check(&bom, scope))
        .into_iter()
        .map(|l| SpecIssue { line: l.line, column: l.column, field: l.field, message: l.message })
        .collect();
    if issues.is_empty() {
        Ok(bom)
    } else {
        Err(BomError::Invalid { file: file.to_path_buf(), issues })
    }
}

/// What a BOM that parses may still get wrong: a node listed twice, a node named by nothing,
/// two parts at one place, one serial twice, an empty serial, an unknown kind.
fn check(bom: &Bom, scope: Option<&Scope<'_>>) -> Vec<(FieldPath, String)> {
    let mut issues = check_nodes(&bom.node);
    let root = FieldPath::root();
    for (i, n) in bom.node.iter().enumerate() {
        if let Some(why) = scope.zip(n.name.as_deref()).and_then(|(s, name)| s.unknown(name)) {
            issues.push((root.key("node").index(i).key("name"), why));
        }
    }
    for (i, p) in bom.platform.iter().enumerate() {
        if bom.platform[..i].iter().any(|q| q.name == p.name) {
            issues.push((root.key("platform").index(i).key("name"), format!("platform {:?} is listed twice", p.name)));
        }
    }
    issues
}

/// What a list of node entries may get wrong, each issue at `node[i]...`: a node listed twice or
/// named by nothing, two parts at one place, one serial twice, an empty serial or place, an
/// unknown kind. (A rack manifest's own entries are checked so too, under its `nodes[i].bom`.)
pub(crate) fn check_nodes(nodes: &[BomNode]) -> Vec<(FieldPath, String)> {
    let mut issues = Vec::new();
    let root = FieldPath::root();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut serials: HashMap<String, String> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let at = root.key("node").index(i);
        let keys: Vec<String> = n.name.iter().chain(n.system_serial.iter()).cloned().collect();
        if keys.is_empty() {
            issues.push((at.clone(), "a node needs a `name` or a `system_serial`".into()));
        }
        for k in keys {
            if let Some(first) = names.insert(k.clone(), i) {
                issues.push((at.key("name"), format!("node {k:?} is listed twice (also node {})", first + 1)));
            }
        }
        let mut places: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (j, part) in n.parts.iter().enumerate() {
            let pat = at.key("parts").index(j);
            if !KINDS.contains(&part.kind.as_str()) {
                issues.push((pat.key("kind"), format!("unknown kind {:?}; one of {}", part.kind, KINDS.join(", "))));
            }
            if part.serial.trim().is_empty() {
                issues.push((pat.key("serial"), "an empty serial".into()));
            }
            if part.place.trim().is_empty() {
                issues.push((pat.key("place"), "an empty place".into()));
            }
            if places.insert((part.kind.clone(), part.place.to_lowercase()), j).is_some() {
                issues.push((pat.key("place"), format!("two {} parts at {}", part.kind, part.place)));
            }
            let owner = format!("node {} part {}", i + 1, j + 1);
            if let Some(first) = serials.insert(part.serial.clone(), owner) {
                issues.push((pat.key("serial"), format!("serial {} is listed twice (also {first})", part.serial)));
            }
        }
    }
    issues
}

/// The CSV form: a header naming at least `node`, `kind`, `place` and `serial` (in any order;
/// other columns are ignored), then one part per line. Nodes are named or system-serialed as in
/// TOML; a `kind` of `system` gives the node's system serial.
fn parse_csv(text: &str, file: &Path, scope: Option<&Scope<'_>>) -> Result<Bom, BomError> {
    let issue = |line: usize, field: &str, message: String| SpecIssue { line, column: 1, field: field.into(), message };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let Some((_, header)) = lines.next() else {
        return Err(BomError::Invalid { file: file.into(), issues: vec![issue(1, "header", "an empty file".into())] });
    };
    let columns: Vec<String> = split_csv(header).into_iter().map(|c| c.trim().to_lowercase()).collect();
    let col = |name: &str| columns.iter().position(|c| c == name);
    let (Some(node_at), Some(kind_at), Some(place_at), Some(serial_at)) =
        (col("node"), col("kind"), col("place"), col("serial"))
    else {
        return Err(BomError::Invalid {
            file: file.into(),
            issues: vec![issue(1, "header", format!("needs the columns node, kind, place and serial; has {header:?}"))],
        });
    };
    let mut bom = Bom::default();
    let mut issues = Vec::new();
    let mut serials: HashMap<String, usize> = HashMap::new();
    let mut places: HashMap<(String, String, String), usize> = HashMap::new();
    for (n, line) in lines {
        let line_no = n + 1;
        let cells = split_csv(line);
        let cell = |i: usize| cells.get(i).map(|c| c.trim().to_string()).unwrap_or_default();
        let (node, kind, place, serial) = (cell(node_at), cell(kind_at), cell(place_at), cell(serial_at));
        if node.is_empty() {
            issues.push(issue(line_no, "node", "an empty node".into()));
            continue;
        }
        if let Some(why) = scope.and_then(|s| s.unknown(&node)) {
            if !bom.names(&node) {
                issues.push(issue(line_no, "node", why));
            }
        }
        if serial.is_empty() {
            issues.push(issue(line_no, "serial", "an empty serial".into()));
            continue;
        }
        let entry = match bom.node.iter_mut().position(|e| e.name.as_deref() == Some(&node)) {
            Some(i) => &mut bom.node[i],
            None => {
                bom.node.push(BomNode { name: Some(node.clone()), ..BomNode::default() });
                let last = bom.node.len() - 1;
                &mut bom.node[last]
            }
        };
        if kind == "system" {
            if entry.system_serial.is_some() {
                issues.push(issue(line_no, "kind", format!("node {node} has a second system serial")));
            }
            entry.system_serial = Some(serial);
            continue;
        }
        if !KINDS.contains(&kind.as_str()) {
            issues.push(issue(line_no, "kind", format!("unknown kind {kind:?}; one of system, {}", KINDS.join(", "))));
            continue;
        }
        if place.is_empty() {
            issues.push(issue(line_no, "place", "an empty place".into()));
            continue;
        }
        if let Some(first) = places.insert((node.clone(), kind.clone(), place.to_lowercase()), line_no) {
            issues.push(issue(line_no, "place", format!("a second {kind} at {place} of node {node} (line {first})")));
        }
        if let Some(first) = serials.insert(serial.clone(), line_no) {
            issues.push(issue(line_no, "serial", format!("serial {serial} is listed twice (line {first})")));
        }
        entry.parts.push(ExpectedPart { kind, place, serial });
    }
    if issues.is_empty() {
        Ok(bom)
    } else {
        Err(BomError::Invalid { file: file.into(), issues })
    }
}

/// One CSV line's cells, RFC 4180 quoting (`"a ""b"""`).
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(s) = cells.last_mut() {
                    s.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => {
                if let Some(s) = cells.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(e: BomError) -> Vec<String> {
        match e {
            BomError::Invalid { issues, .. } => issues.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }

    #[test]
    fn duplicates_and_empty_serials_are_placed_by_line_and_field() {
        let text = "[[node]]\nname = \"a\"\nparts = [\n  { kind = \"gpu\", place = \"gpu0\", serial = \"S1\" },\n  \
                    { kind = \"gpu\", place = \"gpu0\", serial = \"S2\" },\n  { kind = \"dimm\", place = \"A1\", serial = \"\" },\n]\n\n\
                    [[node]]\nname = \"a\"\n";
        let got = issues(parse_toml(text, Path::new("bom.toml"), None).expect_err("invalid"));
        assert!(got.iter().any(|i| i.contains("two gpu parts at gpu0")), "{got:?}");
        assert!(got.iter().any(|i| i.contains("field `node[0].parts[2].serial`: an empty serial")), "{got:?}");
        assert!(got.iter().any(|i| i.starts_with("10:") && i.contains("node \"a\" is listed twice")), "{got:?}");
    }

    #[test]
    fn counts_and_sizes_fail_with_the_slots_they_concern() {
        let mut node = crate::hw::fixture::sample::hgx_b200_node("gpu-a01");
        let dimm = |slot: &str, gib: u64| crate::model::Dimm {
            locator: slot.into(),
            size_bytes: Some(gib << 30),
            serial: Some(format!("S-{slot}")),
            ..Default::default()
        };
        node.memory.dimms = vec![dimm("A1", 64), dimm("A2", 32), dimm("B1", 0)];
        let bom = Bom {
            platform: vec![BomPlatform {
                name: "hgx-b200".into(),
                expected: Expected {
                    cpu_model: Some("xeon platinum 8570".into()),
                    cpu_sockets: Some(2),
                    dimm_count: Some(3),
                    dimm_size_gib: Some(64),
                    memory_gib: Some(192),
                    gpu_count: Some(8),
                    ..Expected::default()
                },
            }],
            node: Vec::new(),
        };
        let findings = bom.judge(&node, "gpu-a01", "hgx-b200");
        let failed: Vec<(&str, String)> = findings
            .iter()
            .filter(|f| f.outcome == Outcome::Fail)
            .map(|f| (f.check.as_str(), f.actual.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            failed,
            [
                ("bom.dimm_count", "2".to_string()),
                ("bom.dimm_size", "32 GiB".to_string()),
                ("bom.memory", "96".to_string())
            ],
            "{findings:#?}"
        );
        let count = findings.iter().find(|f| f.check == "bom.dimm_count").and_then(|f| f.action.clone());
        assert_eq!(count.as_deref(), Some("check the empty slot(s): B1"));
        let size = findings.iter().find(|f| f.check == "bom.dimm_size").expect("size finding");
        assert_eq!(size.component.label(), "dimm slot A2");
        // Another platform's node is not judged by this BOM, and says so.
        let other = bom.judge(&node, "gpu-a01", "gb200-nvl72");
        assert_eq!((other.len(), other[0].outcome), (1, Outcome::Skipped));
    }

    #[test]
    fn a_malformed_serial_list_is_a_parse_error_with_its_field() {
        let text = "[[node]]\nname = \"a\"\nparts = [ { kind = \"gpu\", place = \"gpu0\", serial = 42 } ]\n";
        let err = parse_toml(text, Path::new("bom.toml"), None).expect_err("a number is no serial");
        let s = err.to_string();
        assert!(s.starts_with("bom.toml:3:") && s.contains("serial"), "{s}");
    }

    #[test]
    fn csv_rows_become_nodes_and_bad_rows_name_their_line() {
        let ok =
            "node,kind,place,serial\ntray03,system,,1654225000123\ntray03,gpu,gpu2,S2\ntray03,dimm,CPU0_DIMM_A1,D1\n";
        let bom = parse_csv(ok, Path::new("bom.csv"), None).expect("parses");
        assert_eq!(bom.node.len(), 1);
        assert_eq!(bom.node[0].system_serial.as_deref(), Some("1654225000123"));
        assert_eq!(bom.node[0].parts.len(), 2);
        let bad = "serial,node,kind,place\nS1,tray03,gpu,gpu0\nS1,tray04,gpu,gpu0\nS3,tray03,fan,1\n";
        let got = issues(parse_csv(bad, Path::new("bom.csv"), None).expect_err("invalid"));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("3:1: field `serial`: serial S1 is listed twice (line 2)"), "{got:?}");
        assert!(got[1].starts_with("4:1: field `kind`: unknown kind \"fan\""), "{got:?}");
        assert!(parse_csv("node,serial\nx,y\n", Path::new("b.csv"), None).is_err(), "columns missing");
    }
}
