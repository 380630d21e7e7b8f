//! Reads and checks a rack manifest (`inventory/racks/*.toml`); the format is documented in docs/fleet.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::credentials::{BmcTls, Credentials};
use super::location::{field_at, line_of};
use crate::checks::bom::{check_nodes, Bom, BomError, BomNode};
use crate::redact;
use crate::secret::PasswordSource;

/// A parsed, checked rack manifest. Relative paths in it are already resolved
/// against the manifest's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct RackManifest {
    /// The file it was read from.
    pub path: PathBuf,
    pub rack: Rack,
    pub credentials: Credentials,
    pub nodes: Vec<RackNode>,
}

/// Where the rack stands and what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rack {
    pub id: String,
    pub site: Option<String>,
    pub row: Option<String>,
    pub position: Option<u32>,
    /// Platform spec name (`hgx-b200`); when absent each node's is detected.
    pub platform: Option<String>,
    /// The bill of materials file the manifest points to (`[rack] bom`), resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bom: Option<PathBuf>,
}

/// One node of the rack: how to reach it over SSH and through its BMC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RackNode {
    pub name: String,
    /// SSH address (IP or DNS name).
    pub address: String,
    pub ssh_port: u16,
    /// BMC base URL for Redfish, `https://10.77.0.111`.
    pub bmc: Option<String>,
    /// Redfish system path, `/redfish/v1/Systems/<id>`, when the BMC has several.
    pub bmc_system: Option<String>,
    /// IPMI fallback address, `host:port`.
    pub ipmi: Option<String>,
    pub macs: Vec<String>,
    pub slot: Option<String>,
    /// The compute tray's index in the rack, as NVML's platform info reports
    /// it (`nvidia-smi -q`, Tray Index); the rack check compares the two.
    pub tray: Option<u32>,
    /// Line of `tray` in the manifest (0 when not known), for errors.
    #[serde(skip)]
    pub tray_line: usize,
    /// Lines of `name` and `address` in the manifest (0 when not known), for errors.
    #[serde(skip)]
    pub name_line: usize,
    #[serde(skip)]
    pub address_line: usize,
    /// Node-side `--root` for the node commands (a snapshot tree, used by the lab).
    pub kiln_root: Option<String>,
    /// The IP the node's IMEX daemon is reached at by its NVLink-domain peers, when that is not
    /// `address` (IMEX on the compute network, SSH on the management one). Checked to be an IP.
    pub imex_address: Option<String>,
    /// What the rack judges the node against beside its platform spec (docs/bom.md): the BOM
    /// file the manifest points to, with the manifest's own `[nodes.bom]` entries; one for the
    /// whole rack, shared by its nodes. `None` when the manifest names no BOM.
    #[serde(skip)]
    pub bom: Option<Arc<Bom>>,
}

impl RackNode {
    /// A node reached at `address` on the SSH port a manifest defaults to,
    /// with nothing else known (for code that builds a rack, and tests).
    pub fn new(name: &str, address: &str) -> RackNode {
        RackNode {
            name: name.into(),
            address: address.into(),
            ssh_port: default_ssh_port(),
            bmc: None,
            bmc_system: None,
            ipmi: None,
            macs: Vec::new(),
            slot: None,
            tray: None,
            tray_line: 0,
            name_line: 0,
            address_line: 0,
            kiln_root: None,
            imex_address: None,
            bom: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("read rack manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: field `{field}`: {message}", at(path, *line))]
    Syntax { path: PathBuf, line: usize, field: String, message: String },
    #[error("{}: field `{field}`: {message}", at(path, *line))]
    Invalid { path: PathBuf, line: usize, field: String, message: String },
    #[error("{}: no node named {name:?} (the rack has {known})", path.display())]
    UnknownNode { path: PathBuf, name: String, known: String },
    /// The BOM file the manifest points to cannot be used.
    #[error(transparent)]
    Bom(#[from] BomError),
}

/// `file:line`, or just `file` when the line is not known (0).
fn at(path: &Path, line: usize) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    rack: RawRack,
    #[serde(default)]
    credentials: RawCredentials,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRack {
    id: Spanned<String>,
    site: Option<String>,
    row: Option<String>,
    position: Option<u32>,
    platform: Option<String>,
    bom: Option<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    ssh_user: Option<String>,
    ssh_key: Option<String>,
    known_hosts: Option<String>,
    bmc_user: Option<String>,
    bmc_password_env: Option<Spanned<String>>,
    bmc_password_file: Option<Spanned<String>>,
    bmc_ca_file: Option<String>,
    bmc_fingerprint: Option<Spanned<String>>,
    bmc_insecure: Option<Spanned<bool>>,
    // Accepted by the parser only so that the refusal can say why, with its line.
    bmc_password: Option<Spanned<toml::Value>>,
    ssh_password: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    address: Spanned<String>,
    #[serde(default = "default_ssh_port")]
    ssh_port: u16,
    bmc: Option<Spanned<String>>,
    bmc_system: Option<String>,
    ipmi: Option<Spanned<String>>,
    #[serde(default)]
    macs: Vec<Spanned<String>>,
    slot: Option<Spanned<String>>,
    tray: Option<Spanned<u32>>,
    kiln_root: Option<String>,
    imex_address: Option<Spanned<String>>,
    bom: Option<Spanned<BomNode>>,
}

fn default_ssh_port() -> u16 {
    22
}

/// A TOML syntax or type error in manifest text read from `path`, at its line and field.
pub(crate) fn syntax_error(text: &str, path: &Path, e: &toml::de::Error) -> ManifestError {
    let offset = e.span().map(|s| s.start).unwrap_or(0);
    let message = e.message().trim().to_string();
    ManifestError::Syntax {
        path: path.to_path_buf(),
        line: if e.span().is_some() { line_of(text, offset) } else { 0 },
        field: field_at(text, offset, &message),
        message,
    }
}

impl RackManifest {
    /// Reads and checks the manifest at `path`.
    pub fn load(path: &Path) -> Result<RackManifest, ManifestError> {
        let text = crate::input::read_to_string(path, crate::input::Input::RackManifest)
            .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses manifest text as if read from `path` (relative paths in it
    /// resolve against `path`'s directory).
    pub fn parse(text: &str, path: &Path) -> Result<RackManifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let invalid = |span: Option<std::ops::Range<usize>>, field: &str, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)).unwrap_or(0),
            field: field.to_string(),
            message,
        };
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        if raw.rack.id.get_ref().trim().is_empty() {
            return Err(invalid(Some(raw.rack.id.span()), "rack.id", "must not be empty".into()));
        }
        let bom_file = raw.rack.bom.as_ref().map(|b| resolve(b.get_ref()));
        let rack = Rack {
            id: raw.rack.id.into_inner(),
            site: raw.rack.site,
            row: raw.rack.row,
            position: raw.rack.position,
            platform: raw.rack.platform,
            bom: bom_file,
        };

        let c = raw.credentials;
        for (field, literal) in
            [("credentials.bmc_password", &c.bmc_password), ("credentials.ssh_password", &c.ssh_password)]
        {
            if let Some(v) = literal {
                return Err(invalid(
                    Some(v.span()),
                    field,
                    "a password must never be written in the manifest; name where it comes from with \
                     bmc_password_env (an environment variable) or bmc_password_file (a file outside the repository)"
                        .into(),
                ));
            }
        }
        let bmc_password = match (c.bmc_password_env, c.bmc_password_file) {
            (Some(_), Some(file)) => {
                return Err(invalid(
                    Some(file.span()),
                    "credentials.bmc_password_file",
                    "give exactly one of bmc_password_env and bmc_password_file, not both".into(),
                ))
            }
            (Some(env), None) => {
                if env.get_ref().trim().is_empty() {
                    return Err(invalid(Some(env.span()), "credentials.bmc_password_env", "must not be empty".into()));
                }
                Some(PasswordSource::Env(env.into_inner()))
            }
            (None, Some(file)) => Some(PasswordSource::File(resolve(file.get_ref()))),
            (None, None) => None,
        };
        let insecure = c.bmc_insecure.as_ref().is_some_and(|b| *b.get_ref());
        let insecure_span = c.bmc_insecure.as_ref().map(|b| b.span());
        let bmc_tls = match (c.bmc_ca_file, c.bmc_fingerprint, insecure) {
            (None, None, false) => BmcTls::System,
            (Some(ca), None, false) => BmcTls::CaFile(resolve(&ca)),
            (None, Some(fp), false) => match normalize_fingerprint(fp.get_ref()) {
                Some(hex) => BmcTls::Fingerprint(hex),
                None => {
                    return Err(invalid(
                        Some(fp.span()),
                        "credentials.bmc_fingerprint",
                        format!("{:?} is not a SHA-256 fingerprint (`sha256:AB:CD:...`, 32 bytes)", fp.get_ref()),
                    ))
                }
            },
            (None, None, true) => BmcTls::Insecure,
            _ => {
                return Err(invalid(
                    insecure_span,
                    "credentials.bmc_insecure",
                    "give at most one of bmc_ca_file, bmc_fingerprint and bmc_insecure = true".into(),
                ))
            }
        };
        let known_hosts = match c.known_hosts {
            Some(k) => resolve(&k),
            None => {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "rack".into());
                base.join(format!("{stem}.known_hosts"))
            }
        };
        let credentials = Credentials {
            ssh_user: c.ssh_user.unwrap_or_else(|| "root".into()),
            ssh_key: c.ssh_key.as_deref().map(resolve),
            known_hosts,
            bmc_user: c.bmc_user,
            bmc_password,
            bmc_tls,
        };

        if raw.nodes.is_empty() {
            return Err(invalid(None, "nodes", "the rack lists no node ([[nodes]] tables)".into()));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        // The manifest's own BOM entries: (index in `nodes`, entry, its span).
        let mut entries: Vec<(usize, BomNode, std::ops::Range<usize>)> = Vec::new();
        for (i, n) in raw.nodes.into_iter().enumerate() {
            let name = n.name.get_ref();
            if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) {
                return Err(invalid(
                    Some(n.name.span()),
                    &format!("nodes[{i}].name"),
                    format!("{name:?} is not a node name (letters, digits, '-', '_', '.')"),
                ));
            }
            if let Some(first) = seen.insert(name.clone(), line_of(text, n.name.span().start)) {
                return Err(invalid(
                    Some(n.name.span()),
                    &format!("nodes[{i}].name"),
                    format!("node {name:?} is listed twice (first at line {first})"),
                ));
            }
            if n.address.get_ref().trim().is_empty() {
                return Err(invalid(
                    Some(n.address.span()),
                    &format!("nodes[{i}].address"),
                    "must not be empty".into(),
                ));
            }
            // A user or password in an address would be printed, logged and recorded with it.
            let with_user = [("address", Some(&n.address)), ("bmc", n.bmc.as_ref()), ("ipmi", n.ipmi.as_ref())];
            for (field, value) in with_user {
                let Some(value) = value else { continue };
                if redact::has_userinfo(value.get_ref()) || (field != "bmc" && value.get_ref().contains('@')) {
                    return Err(invalid(
                        Some(value.span()),
                        &format!("nodes[{i}].{field}"),
                        format!(
                            "{:?} carries a user or password (`user:pass@`), which would be printed, logged and \
                             recorded with it: {}",
                            redact_at(value.get_ref()),
                            where_credentials_go(field)
                        ),
                    ));
                }
            }
            if let Some(bmc) = &n.bmc {
                if !(bmc.get_ref().starts_with("https://") || bmc.get_ref().starts_with("http://")) {
                    return Err(invalid(
                        Some(bmc.span()),
                        &format!("nodes[{i}].bmc"),
                        format!("{:?} is not a BMC base URL (https://host[:port])", redact_at(bmc.get_ref())),
                    ));
                }
            }
            for mac in &n.macs {
                if !is_mac(mac.get_ref()) {
                    return Err(invalid(
                        Some(mac.span()),
                        &format!("nodes[{i}].macs"),
                        format!("{:?} is not a MAC address (aa:bb:cc:dd:ee:ff)", mac.get_ref()),
                    ));
                }
            }
            if let (Some(slot), Some(_)) = (&n.slot, &n.tray) {
                return Err(invalid(
                    Some(slot.span()),
                    &format!("nodes[{i}].slot"),
                    "give slot or tray, not both".into(),
                ));
            }
            if let Some(ip) = &n.imex_address {
                if ip.get_ref().parse::<std::net::IpAddr>().is_err() {
                    return Err(invalid(
                        Some(ip.span()),
                        &format!("nodes[{i}].imex_address"),
                        format!("{:?} is not an IP address: IMEX's nodes_config.cfg lists peers by IP", ip.get_ref()),
                    ));
                }
            }
            let name_line = line_of(text, n.name.span().start);
            let address_line = line_of(text, n.address.span().start);
            if let Some(entry) = n.bom {
                let span = entry.span();
                let mut entry = entry.into_inner();
                if entry.name.as_ref().is_some_and(|other| other != name) {
                    return Err(invalid(
                        Some(span),
                        &format!("nodes[{i}].bom.name"),
                        format!("a node's own entry is named by the node ({name:?}): leave `name` out"),
                    ));
                }
                entry.name = Some(name.clone());
                entries.push((i, entry, span));
            }
            nodes.push(RackNode {
                name_line,
                address_line,
                name: n.name.into_inner(),
                address: n.address.into_inner(),
                ssh_port: n.ssh_port,
                bmc: n.bmc.map(Spanned::into_inner),
                bmc_system: n.bmc_system,
                ipmi: n.ipmi.map(Spanned::into_inner),
                macs: n.macs.into_iter().map(|m| m.into_inner().to_ascii_lowercase()).collect(),
                slot: n.slot.map(Spanned::into_inner),
                tray_line: n.tray.as_ref().map_or(0, |t| line_of(text, t.span().start)),
                tray: n.tray.map(Spanned::into_inner),
                kiln_root: n.kiln_root,
                imex_address: n.imex_address.map(Spanned::into_inner),
                bom: None,
            });
        }
        let bom = rack_bom(text, path, &rack, &nodes, entries)?;
        for n in &mut nodes {
            n.bom = bom.clone();
        }
        let has_bmc = nodes.iter().any(|n| n.bmc.is_some() || n.ipmi.is_some());
        if has_bmc && credentials.bmc_password.is_none() {
            return Err(invalid(
                None,
                "credentials.bmc_password_env",
                "nodes have a BMC but no password source is given: set bmc_password_env or bmc_password_file".into(),
            ));
        }
        Ok(RackManifest { path: path.to_path_buf(), rack, credentials, nodes })
    }

    /// Every node's `tray` is one of the `trays` compute trays (1 to `trays`)
    /// of the rack's NVLink domain; the first that is not is bad input.
    pub fn check_trays(&self, trays: u32) -> Result<(), ManifestError> {
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(tray) = n.tray.filter(|t| *t < 1 || *t > trays) {
                return Err(ManifestError::Invalid {
                    path: self.path.clone(),
                    line: n.tray_line,
                    field: format!("nodes[{i}].tray"),
                    message: format!(
                        "tray {tray} of node {:?} is outside the rack's {trays} compute trays (1-{trays}, from the \
                         platform spec's [nvlink_domain])",
                        n.name
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn node(&self, name: &str) -> Option<&RackNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The nodes named in `names` (in manifest order), or every node when
    /// `names` is empty. An unknown name is an error, not silently dropped.
    pub fn select(&self, names: &[String]) -> Result<Vec<&RackNode>, ManifestError> {
        for name in names {
            if self.node(name).is_none() {
                return Err(ManifestError::UnknownNode {
                    path: self.path.clone(),
                    name: name.clone(),
                    known: self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(self.nodes.iter().filter(|n| names.is_empty() || names.contains(&n.name)).collect())
    }
}

/// The rack's bill of materials: the file `[rack] bom` points to (its entries for this rack,
/// each naming one of the manifest's nodes) and the manifest's own `[nodes.bom]` entries, which
/// are checked as a BOM file's are and placed by their line in the manifest. A node with an
/// entry in both is bad input: one record says what it holds.
fn rack_bom(
    text: &str,
    path: &Path,
    rack: &Rack,
    nodes: &[RackNode],
    entries: Vec<(usize, BomNode, std::ops::Range<usize>)>,
) -> Result<Option<Arc<Bom>>, ManifestError> {
    let own: Vec<BomNode> = entries.iter().map(|(_, e, _)| e.clone()).collect();
    let issues = check_nodes(&own)
        .into_iter()
        .map(|(at, message)| {
            // `node[j]...` of the entries is `nodes[i].bom...` of the manifest.
            let mut segs = at.0.into_iter();
            let j = match (segs.next(), segs.next()) {
                (Some(_), Some(crate::toml_error::PathSeg::Index(j))) => j,
                _ => 0,
            };
            let i = entries.get(j).map_or(0, |(i, _, _)| *i);
            let mut placed = crate::toml_error::FieldPath::root().key("nodes").index(i).key("bom");
            placed.0.extend(segs);
            (placed, message)
        })
        .collect();
    if let Some(first) = crate::toml_error::locate_issues(text, issues).into_iter().next() {
        return Err(ManifestError::Invalid {
            path: path.to_path_buf(),
            line: first.line,
            field: first.field,
            message: first.message,
        });
    }
    let mut bom = match &rack.bom {
        Some(file) => {
            let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            Bom::load_for_rack(file, &rack.id, &known)?
        }
        None if entries.is_empty() => return Ok(None),
        None => Bom::default(),
    };
    for (i, entry, span) in entries {
        let name = entry.name.clone().unwrap_or_default();
        if bom.names(&name) {
            return Err(ManifestError::Invalid {
                path: path.to_path_buf(),
                line: line_of(text, span.start),
                field: format!("nodes[{i}].bom"),
                message: format!(
                    "node {name:?} also has an entry in {}: give what it holds in one place",
                    rack.bom.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
                ),
            });
        }
        bom.node.push(entry);
    }
    Ok(Some(Arc::new(bom)))
}

/// A value shown in an error with whatever precedes its last `@` hidden (URL or not).
fn redact_at(value: &str) -> String {
    match (redact::has_userinfo(value), value.rfind('@')) {
        (true, _) => redact::userinfo(value).into_owned(),
        (false, Some(at)) => format!("{}{}", redact::REDACTED, &value[at..]),
        (false, None) => value.to_string(),
    }
}

/// Where the credentials of a node's `field` come from instead.
fn where_credentials_go(field: &str) -> &'static str {
    match field {
        "address" => {
            "give the SSH user as credentials.ssh_user; SSH authenticates with a key (credentials.ssh_key or the agent)"
        }
        _ => {
            "give the user as credentials.bmc_user and name where the password comes from with \
             credentials.bmc_password_env (an environment variable) or credentials.bmc_password_file (a file outside \
             the repository)"
        }
    }
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `sha256:AB:CD:...` or plain hex (any case, colons optional) to uppercase
/// colon-separated hex; `None` unless it is exactly 32 bytes.
fn normalize_fingerprint(s: &str) -> Option<String> {
    let body = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("SHA256:")).unwrap_or(s);
    let hex: String = body.chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}
