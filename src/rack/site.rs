//! Many racks at once: a site manifest (`inventory/sites/NAME.toml`) listing rack manifests with
//! optional per-rack overrides, or the racks given one by one (`--rack A --rack B`); every node
//! of the site in exactly one rack. The format is documented in docs/fleet.md ("Many racks").

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::location::line_of;
use super::manifest::{syntax_error, ManifestError, RackManifest, RackNode};

/// The racks of one run, each manifest loaded and checked, no node in two of them.
#[derive(Debug, Clone)]
pub struct Site {
    /// The site manifest, when the racks came from one.
    pub path: Option<PathBuf>,
    /// `[site] id`, when given.
    pub id: Option<String>,
    pub racks: Vec<SiteRack>,
}

/// One rack of a site and what the site manifest says about running it.
#[derive(Debug, Clone)]
pub struct SiteRack {
    pub manifest: RackManifest,
    /// At most this many of the rack's nodes at once (else `--per-rack`).
    pub per_rack: Option<usize>,
    /// Seconds a node command may run (else `--timeout`).
    pub timeout: Option<u64>,
    /// Seconds to wait for a node to accept the connection (else `--connect-timeout`).
    pub connect_timeout: Option<u64>,
    /// Where the rack is named: the site manifest's line of its `manifest` (0 for `--rack`).
    line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    #[serde(default)]
    site: RawHeader,
    #[serde(default)]
    racks: Vec<RawRack>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    id: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRack {
    manifest: Spanned<String>,
    per_rack: Option<Spanned<usize>>,
    timeout: Option<Spanned<u64>>,
    connect_timeout: Option<Spanned<u64>>,
}

/// The longest a node command may be given (as `--timeout`: a week).
const MAX_SECONDS: u64 = 7 * 24 * 3600;

impl Site {
    /// Reads the site manifest at `path` and every rack manifest it lists
    /// (relative to the site manifest's directory).
    pub fn load(path: &Path) -> Result<Site, ManifestError> {
        let text = crate::input::read_to_string(path, crate::input::Input::RackManifest)
            .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses site manifest text as if read from `path`, and loads the racks it lists.
    pub fn parse(text: &str, path: &Path) -> Result<Site, ManifestError> {
        let raw: RawSite = toml::from_str(text).map_err(|e| syntax_error(text, path, &e))?;
        let invalid = |span: Option<std::ops::Range<usize>>, field: String, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)).unwrap_or(0),
            field,
            message,
        };
        let id = match raw.site.id {
            Some(id) if id.get_ref().trim().is_empty() => {
                return Err(invalid(Some(id.span()), "site.id".into(), "must not be empty".into()))
            }
            Some(id) => Some(id.into_inner()),
            None => None,
        };
        if raw.racks.is_empty() {
            return Err(invalid(
                None,
                "racks".into(),
                "the site lists no rack ([[racks]] tables with manifest = \"FILE\")".into(),
            ));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut racks = Vec::with_capacity(raw.racks.len());
        for (i, r) in raw.racks.into_iter().enumerate() {
            let field = |name: &str| format!("racks[{i}].{name}");
            if let Some(n) = r.per_rack.as_ref().filter(|n| *n.get_ref() == 0) {
                return Err(invalid(Some(n.span()), field("per_rack"), "must be at least 1".into()));
            }
            for (name, value) in [("timeout", &r.timeout), ("connect_timeout", &r.connect_timeout)] {
                if let Some(v) = value.as_ref().filter(|v| *v.get_ref() == 0 || *v.get_ref() > MAX_SECONDS) {
                    return Err(invalid(
                        Some(v.span()),
                        field(name),
                        format!("{} is not a number of seconds from 1 to {MAX_SECONDS} (a week)", v.get_ref()),
                    ));
                }
            }
            let file = Path::new(r.manifest.get_ref());
            let file = if file.is_absolute() { file.to_path_buf() } else { base.join(file) };
            let manifest = RackManifest::load(&file)
                .map_err(|e| invalid(Some(r.manifest.span()), field("manifest"), rack_error(&e)))?;
            racks.push(SiteRack {
                manifest,
                per_rack: r.per_rack.map(Spanned::into_inner),
                timeout: r.timeout.map(Spanned::into_inner),
                connect_timeout: r.connect_timeout.map(Spanned::into_inner),
                line: line_of(text, r.manifest.span().start),
            });
        }
        let site = Site { path: Some(path.to_path_buf()), id, racks };
        site.check_one_rack_per_node()?;
        Ok(site)
    }

    /// The racks given one by one (`--rack A --rack B`), with nothing overridden.
    pub fn from_racks(paths: &[PathBuf]) -> Result<Site, ManifestError> {
        let racks = paths
            .iter()
            .map(|p| {
                Ok(SiteRack {
                    manifest: RackManifest::load(p)?,
                    per_rack: None,
                    timeout: None,
                    connect_timeout: None,
                    line: 0,
                })
            })
            .collect::<Result<Vec<_>, ManifestError>>()?;
        let site = Site { path: None, id: None, racks };
        site.check_one_rack_per_node()?;
        Ok(site)
    }

    pub fn node_count(&self) -> usize {
        self.racks.iter().map(|r| r.manifest.nodes.len()).sum()
    }

    /// Each rack's nodes named in `names` (in manifest order), or every node when `names` is
    /// empty; a rack none of whose nodes is named gets an empty list. A name in no rack is an
    /// error, never silently dropped.
    pub fn select(&self, names: &[String]) -> Result<Vec<Vec<&RackNode>>, ManifestError> {
        for name in names {
            if !self.racks.iter().any(|r| r.manifest.node(name).is_some()) {
                let all: Vec<&str> =
                    self.racks.iter().flat_map(|r| r.manifest.nodes.iter().map(|n| n.name.as_str())).collect();
                let mut known = all.iter().take(12).copied().collect::<Vec<_>>().join(", ");
                if all.len() > 12 {
                    known.push_str(&format!(", ... ({} nodes in {} racks)", all.len(), self.racks.len()));
                }
                return Err(ManifestError::UnknownNode { path: self.where_named(), name: name.clone(), known });
            }
        }
        Ok(self
            .racks
            .iter()
            .map(|r| r.manifest.nodes.iter().filter(|n| names.is_empty() || names.contains(&n.name)).collect())
            .collect())
    }

    /// The site manifest, else the racks' files, for messages.
    fn where_named(&self) -> PathBuf {
        match &self.path {
            Some(p) => p.clone(),
            None => PathBuf::from(
                self.racks.iter().map(|r| r.manifest.path.display().to_string()).collect::<Vec<_>>().join(" "),
            ),
        }
    }

    /// No rack id, manifest file, node name or SSH address (host and port) in two racks: the
    /// inventory keys nodes by name and rack runs by rack id, and one machine in two racks would
    /// be run twice at once. The error is at the later rack: with a site manifest, the line of
    /// its `manifest` (saying where in the rack file the node is), else the rack file's own line.
    fn check_one_rack_per_node(&self) -> Result<(), ManifestError> {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut files: HashMap<PathBuf, usize> = HashMap::new();
        let mut names: HashMap<&str, (usize, &RackNode)> = HashMap::new();
        let mut addresses: HashMap<(String, u16), (usize, &RackNode)> = HashMap::new();
        for (i, rack) in self.racks.iter().enumerate() {
            let m = &rack.manifest;
            let file = m.path.canonicalize().unwrap_or_else(|_| m.path.clone());
            if let Some(first) = files.insert(file, i) {
                return Err(self.clash(
                    i,
                    None,
                    format!("rack manifest {} is listed twice (first as {})", m.path.display(), self.rack_label(first)),
                ));
            }
            if let Some(first) = ids.insert(m.rack.id.as_str(), i) {
                return Err(self.clash(
                    i,
                    None,
                    format!(
                        "rack id {:?} of {} is also the id of {}: rack runs are recorded by rack id",
                        m.rack.id,
                        m.path.display(),
                        self.rack_label(first)
                    ),
                ));
            }
            for (j, node) in m.nodes.iter().enumerate() {
                if let Some((first, other)) = names.insert(node.name.as_str(), (i, node)) {
                    let message = format!(
                        "node {:?} ({}:{}, nodes[{j}].name) is also in {} ({}:{}): a node belongs to one rack, and \
                         the inventory knows it by its name",
                        node.name,
                        m.path.display(),
                        node.name_line,
                        self.rack_label(first),
                        self.racks[first].manifest.path.display(),
                        other.name_line
                    );
                    return Err(self.clash(i, Some((format!("nodes[{j}].name"), node.name_line)), message));
                }
                let key = (node.address.to_ascii_lowercase(), node.ssh_port);
                if let Some((first, other)) = addresses.insert(key, (i, node)) {
                    let message = format!(
                        "node {:?} ({}:{}, nodes[{j}].address) has the SSH address {}:{} of node {:?} of {} ({}:{}): \
                         one machine belongs to one rack",
                        node.name,
                        m.path.display(),
                        node.address_line,
                        node.address,
                        node.ssh_port,
                        other.name,
                        self.rack_label(first),
                        self.racks[first].manifest.path.display(),
                        other.address_line
                    );
                    return Err(self.clash(i, Some((format!("nodes[{j}].address"), node.address_line)), message));
                }
            }
        }
        Ok(())
    }

    /// `rack "r1" (racks[0])` or `rack "r1"`.
    fn rack_label(&self, i: usize) -> String {
        let id = &self.racks[i].manifest.rack.id;
        match self.path {
            Some(_) => format!("rack {id:?} (racks[{i}])"),
            None => format!("rack {id:?}"),
        }
    }

    /// The error for a clash found at rack `i`: at the site manifest's line of that rack, or
    /// (racks given one by one) at `at`, the field and line in the rack file itself.
    fn clash(&self, i: usize, at: Option<(String, usize)>, message: String) -> ManifestError {
        let rack = &self.racks[i];
        match &self.path {
            Some(site) => ManifestError::Invalid {
                path: site.clone(),
                line: rack.line,
                field: format!("racks[{i}].manifest"),
                message,
            },
            None => {
                let (field, line) = at.unwrap_or_else(|| ("rack.id".to_string(), 0));
                ManifestError::Invalid { path: rack.manifest.path.clone(), line, field, message }
            }
        }
    }
}

/// A rack manifest's error as one line inside the site's (its own file and line first).
fn rack_error(e: &ManifestError) -> String {
    match e {
        ManifestError::Read { path, source } => format!("cannot read rack manifest {}: {source}", path.display()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rack(dir: &Path, file: &str, id: &str, nodes: &[(&str, &str)]) {
        let mut t = format!("[rack]\nid = \"{id}\"\n");
        for (name, address) in nodes {
            t.push_str(&format!("\n[[nodes]]\nname = \"{name}\"\naddress = \"{address}\"\n"));
        }
        std::fs::write(dir.join(file), t).expect("write rack");
    }

    fn site(dir: &Path, text: &str) -> Result<Site, ManifestError> {
        let path = dir.join("site.toml");
        std::fs::write(&path, text).expect("write site");
        Site::load(&path)
    }

    #[test]
    fn racks_resolve_against_the_site_file_and_keep_their_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("racks")).expect("mkdir");
        rack(&dir.path().join("racks"), "r1.toml", "r1", &[("a1", "10.0.0.1"), ("a2", "10.0.0.2")]);
        rack(&dir.path().join("racks"), "r2.toml", "r2", &[("b1", "10.0.1.1")]);
        let s = site(
            dir.path(),
            "[site]\nid = \"hall-3\"\n\n[[racks]]\nmanifest = \"racks/r1.toml\"\nper_rack = 4\n\n\
             [[racks]]\nmanifest = \"racks/r2.toml\"\ntimeout = 1800\n",
        )
        .expect("site loads");
        assert_eq!(s.id.as_deref(), Some("hall-3"));
        assert_eq!(s.racks.len(), 2);
        assert_eq!(s.racks[0].per_rack, Some(4));
        assert_eq!(s.racks[1].timeout, Some(1800));
        assert_eq!(s.node_count(), 3);
        let picked = s.select(&["b1".to_string()]).expect("b1 is a node");
        assert_eq!(picked.iter().map(Vec::len).collect::<Vec<_>>(), [0, 1]);
        let e = s.select(&["zz".to_string()]).expect_err("no such node").to_string();
        assert!(e.contains("no node named \"zz\"") && e.contains("a1, a2, b1"), "{e}");
    }

    #[test]
    fn a_node_in_two_racks_is_refused_at_the_later_racks_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        rack(dir.path(), "r1.toml", "r1", &[("a1", "10.0.0.1"), ("a2", "10.0.0.2")]);
        rack(dir.path(), "r2.toml", "r2", &[("b1", "10.0.1.1"), ("a2", "10.0.1.2")]);
        rack(dir.path(), "r3.toml", "r3", &[("c1", "10.0.0.1")]);
        let by_name = site(dir.path(), "[[racks]]\nmanifest = \"r1.toml\"\n\n[[racks]]\nmanifest = \"r2.toml\"\n")
            .expect_err("a2 twice");
        let text = by_name.to_string();
        assert!(text.contains("site.toml:5: field `racks[1].manifest`"), "{text}");
        assert!(text.contains("node \"a2\"") && text.contains("r2.toml:9, nodes[1].name"), "{text}");
        assert!(text.contains("rack \"r1\" (racks[0])") && text.contains("r1.toml:9"), "{text}");
        let by_address = site(dir.path(), "[[racks]]\nmanifest = \"r1.toml\"\n[[racks]]\nmanifest = \"r3.toml\"\n")
            .expect_err("10.0.0.1 twice");
        let text = by_address.to_string();
        assert!(text.contains("site.toml:4: field `racks[1].manifest`"), "{text}");
        assert!(text.contains("SSH address 10.0.0.1:22 of node \"a1\""), "{text}");
        // Given one by one, the error is in the rack file itself.
        let e = Site::from_racks(&[dir.path().join("r1.toml"), dir.path().join("r2.toml")]).expect_err("a2 twice");
        let text = e.to_string();
        assert!(text.contains("r2.toml:9: field `nodes[1].name`"), "{text}");
        let e = Site::from_racks(&[dir.path().join("r1.toml"), dir.path().join("r1.toml")]).expect_err("listed twice");
        assert!(e.to_string().contains("is listed twice"), "{e}");
    }

    #[test]
    fn a_missing_rack_file_and_bad_fields_name_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        rack(dir.path(), "r1.toml", "r1", &[("a1", "10.0.0.1")]);
        let e = site(dir.path(), "[[racks]]\nmanifest = \"r1.toml\"\n\n[[racks]]\nmanifest = \"gone.toml\"\n")
            .expect_err("missing rack");
        let text = e.to_string();
        assert!(text.contains("site.toml:5: field `racks[1].manifest`: cannot read rack manifest"), "{text}");
        assert!(text.contains("gone.toml"), "{text}");
        let e = site(dir.path(), "[[racks]]\nmanifest = \"r1.toml\"\nper_rack = 0\n").expect_err("zero");
        assert!(e.to_string().contains("site.toml:3: field `racks[0].per_rack`: must be at least 1"), "{e}");
        let e = site(dir.path(), "[[racks]]\nmanifest = \"r1.toml\"\nparallel = 3\n").expect_err("unknown key");
        assert!(e.to_string().contains("site.toml:3: field `racks[0].parallel`"), "{e}");
        let e = site(dir.path(), "[site]\nid = \"s\"\n").expect_err("no racks");
        assert!(e.to_string().contains("field `racks`: the site lists no rack"), "{e}");
        // A rack manifest's own error keeps its file and line inside the site's.
        std::fs::write(dir.path().join("bad.toml"), "[rack]\nid = \"x\"\n\n[[nodes]]\nname = \"n\"\naddress = \"\"\n")
            .expect("write");
        let e = site(dir.path(), "[[racks]]\nmanifest = \"bad.toml\"\n").expect_err("bad rack");
        let text = e.to_string();
        assert!(
            text.contains("site.toml:2: field `racks[0].manifest`:")
                && text.contains("bad.toml:6: field `nodes[0].address`"),
            "{text}"
        );
    }
}
