//! `kiln rack handoff --to slurm --topology PATH`: the topology of the nodes handed off written
//! to PATH atomically (a temporary file beside it, synced, renamed over it), then
//! `scontrol reconfigure` so slurmctld reads it; the form follows the file name and the Slurm
//! version, and what slurm.conf says about topology is read back so a file Slurm would ignore
//! is reported.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scontrol::Scontrol;
use super::topology::{Topology, TopologyFormat};
use super::SlurmError;

/// What kiln asks of Slurm's configuration, behind a narrow trait so the decision is testable;
/// the real backend is [`Scontrol`].
pub trait SlurmConfig {
    /// `(major, minor)` of `scontrol --version` (`slurm 22.05.8`).
    fn version(&self) -> Result<(u32, u32), SlurmError>;
    /// `scontrol show config`'s `(TopologyPlugin, SLURM_CONF)`.
    fn topology_config(&self) -> Result<(Option<String>, Option<PathBuf>), SlurmError>;
    /// `scontrol reconfigure`: slurmctld rereads its files.
    fn reconfigure(&self) -> Result<(), SlurmError>;
}

/// The first Slurm release with topology/block.
const BLOCK_SINCE: (u32, u32) = (23, 11);

/// How the install went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallResult {
    /// Written and slurmctld reconfigured.
    Installed,
    /// The file already held this topology; nothing written, nothing reconfigured.
    AlreadyDone,
    /// A dry run: what would be written.
    WouldDo,
    /// No node handed off is in a verified domain: nothing to write, the file left as it was.
    NothingToInstall,
    Failed,
}

/// The `topology` part of a hand-off's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyInstall {
    pub path: PathBuf,
    pub format: TopologyFormat,
    /// The verified domains written, by block (or switch) name, with their nodes.
    pub domains: Vec<InstalledDomain>,
    pub result: InstallResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why Slurm may not use the file although it was written (the plugin slurm.conf names, or
    /// a file outside slurm.conf's directory).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The file's text (also in a dry run).
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledDomain {
    pub name: String,
    pub clique: String,
    pub nodes: Vec<String>,
}

/// The form for `path`: topology.yaml (`.yaml`, `.yml`) as YAML, else the block form on a Slurm
/// that has topology/block and the tree form on one that does not.
pub fn format_for(path: &Path, version: (u32, u32)) -> TopologyFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => TopologyFormat::SlurmYaml,
        _ if version >= BLOCK_SINCE => TopologyFormat::SlurmBlock,
        _ => TopologyFormat::SlurmTree,
    }
}

/// Writes `text` to `path` so that a reader sees the old file or the new one, never a part:
/// a temporary file in the same directory, synced, made world-readable (slurmctld and every
/// slurmd read it), renamed over `path`, and the directory synced.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "topology".into());
    let temp = dir.join(format!(".{name}.kiln-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Installs `topology` at `path` in `format` (else [`format_for`] the Slurm version), unless
/// `dry_run`, and reconfigures slurmctld when the file changed. Never fails as a whole: a
/// failed step is the result, with its error.
pub fn install(
    topology: &Topology,
    path: &Path,
    format: Option<TopologyFormat>,
    ctl: &dyn SlurmConfig,
    dry_run: bool,
) -> TopologyInstall {
    let domains = topology
        .domains
        .iter()
        .map(|d| InstalledDomain { name: d.name.clone(), clique: d.clique(), nodes: d.nodes.clone() })
        .collect();
    let mut out = TopologyInstall {
        path: path.to_path_buf(),
        format: format.unwrap_or(TopologyFormat::SlurmTree),
        domains,
        result: InstallResult::Failed,
        error: None,
        warnings: Vec::new(),
        text: None,
    };
    let version = match (format, ctl.version()) {
        (Some(_), v) => v.ok(),
        (None, Ok(v)) => Some(v),
        (None, Err(e)) => {
            out.error = Some(format!("choose the topology form: {}", crate::error::chain(&e)));
            return out;
        }
    };
    out.format = format.unwrap_or_else(|| format_for(path, version.unwrap_or((0, 0))));
    if out.format == TopologyFormat::K8sLabels {
        out.error = Some("k8s-labels is not a Slurm topology file".into());
        return out;
    }
    let Some(text) = topology.render(out.format) else {
        out.result = InstallResult::NothingToInstall;
        return out;
    };
    out.text = Some(text.clone());
    out.warnings = warnings(out.format, path, version, ctl);
    if dry_run {
        out.result = InstallResult::WouldDo;
        return out;
    }
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        out.result = InstallResult::AlreadyDone;
        return out;
    }
    if let Err(e) = write_atomically(path, &text) {
        out.error = Some(format!("write {}: {e}", path.display()));
        return out;
    }
    tracing::info!(path = %path.display(), format = out.format.as_str(), "topology written");
    match ctl.reconfigure() {
        Ok(()) => out.result = InstallResult::Installed,
        Err(e) => out.error = Some(format!("written, but {}", crate::error::chain(&e))),
    }
    out
}

/// Why Slurm may not read the file kiln writes: slurm.conf names another topology plugin (or
/// none), the Slurm is too old for the form, or the file is not beside slurm.conf.
fn warnings(format: TopologyFormat, path: &Path, version: Option<(u32, u32)>, ctl: &dyn SlurmConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(v) = version {
        let since = match format {
            TopologyFormat::SlurmBlock => Some((BLOCK_SINCE, "topology/block")),
            TopologyFormat::SlurmYaml => Some(((25, 5), "topology.yaml")),
            _ => None,
        };
        if let Some((want, what)) = since.filter(|(want, _)| v < *want) {
            out.push(format!(
                "Slurm {}.{:02} has no {what} (since {}.{:02}); use --topology-format slurm-tree",
                v.0, v.1, want.0, want.1
            ));
        }
    }
    match ctl.topology_config() {
        Ok((plugin, conf)) => {
            let want = match format {
                TopologyFormat::SlurmBlock => Some("topology/block"),
                TopologyFormat::SlurmTree => Some("topology/tree"),
                _ => None,
            };
            if let Some(want) = want {
                let have = plugin.unwrap_or_else(|| "(none)".into());
                if have != want {
                    out.push(format!(
                        "slurm.conf has TopologyPlugin={have}: Slurm does not use this file until it says {want}"
                    ));
                }
            }
            if let Some(dir) = conf.as_deref().and_then(Path::parent) {
                let here = path.parent().and_then(|p| p.canonicalize().ok());
                if here.is_some() && here != dir.canonicalize().ok() {
                    out.push(format!("Slurm reads its topology file from {}, beside slurm.conf", dir.display()));
                }
            }
        }
        Err(e) => out.push(format!("could not read Slurm's configuration: {}", crate::error::chain(&e))),
    }
    out
}

/// The install as lines a person reads, after the nodes of a hand-off.
pub fn render_text(t: &TopologyInstall) -> String {
    let what = match t.result {
        InstallResult::Installed => "written, slurmctld reconfigured",
        InstallResult::AlreadyDone => "already holds this topology",
        InstallResult::WouldDo => "would be written (dry run)",
        InstallResult::NothingToInstall => "left as it was: no node handed off is in a verified NVLink domain",
        InstallResult::Failed => "FAILED",
    };
    let mut out = format!("topology {} ({}): {what}\n", t.path.display(), t.format.as_str());
    for d in &t.domains {
        out.push_str(&format!("    {}: {} node(s), clique {}\n", d.name, d.nodes.len(), d.clique));
    }
    if let Some(e) = &t.error {
        out.push_str(&format!("    error: {e}\n"));
    }
    for w in &t.warnings {
        out.push_str(&format!("    warning: {w}\n"));
    }
    out
}

/// `slurm 22.05.8` -> (22, 5).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let word = text.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let mut parts = word.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `scontrol show config`'s value of `key` (`TopologyPlugin = topology/tree`).
pub fn config_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_string()).filter(|v| !v.is_empty() && v != "(null)")
    })
}

impl SlurmConfig for Scontrol {
    fn version(&self) -> Result<(u32, u32), SlurmError> {
        let (code, stdout, stderr) = self.run(&["--version"])?;
        let command = "scontrol --version".to_string();
        if code != 0 {
            return Err(SlurmError::Command { command, code, message: stderr.trim().to_string() });
        }
        parse_version(&stdout).ok_or(SlurmError::Command {
            command,
            code,
            message: format!("no version in {stdout:?}"),
        })
    }

    fn topology_config(&self) -> Result<(Option<String>, Option<PathBuf>), SlurmError> {
        let (code, stdout, stderr) = self.run(&["show", "config"])?;
        if code != 0 {
            return Err(SlurmError::Command {
                command: "scontrol show config".into(),
                code,
                message: stderr.trim().to_string(),
            });
        }
        Ok((config_value(&stdout, "TopologyPlugin"), config_value(&stdout, "SLURM_CONF").map(PathBuf::from)))
    }

    fn reconfigure(&self) -> Result<(), SlurmError> {
        let (code, stdout, stderr) = self.run(&["reconfigure"])?;
        if code != 0 {
            let message = if stderr.trim().is_empty() { stdout } else { stderr };
            return Err(SlurmError::Command {
                command: "scontrol reconfigure".into(),
                code,
                message: message.trim().to_string(),
            });
        }
        tracing::info!("slurmctld reconfigured");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::topology::VerifiedDomain;
    use std::cell::Cell;

    struct Fake {
        version: (u32, u32),
        plugin: Option<&'static str>,
        reconfigured: Cell<u32>,
    }

    impl SlurmConfig for Fake {
        fn version(&self) -> Result<(u32, u32), SlurmError> {
            Ok(self.version)
        }
        fn topology_config(&self) -> Result<(Option<String>, Option<PathBuf>), SlurmError> {
            Ok((self.plugin.map(String::from), None))
        }
        fn reconfigure(&self) -> Result<(), SlurmError> {
            self.reconfigured.set(self.reconfigured.get() + 1);
            Ok(())
        }
    }

    fn topo() -> Topology {
        Topology {
            domains: vec![VerifiedDomain {
                name: "r1-7c1e2f3a-1".into(),
                cluster_uuid: "7c1e2f3a-4b5c-4d6e-8f70-81a2b3c4d5e6".into(),
                clique_id: 1,
                racks: vec!["r1".into()],
                nodes: vec!["n1".into(), "n2".into()],
            }],
            left_out: Vec::new(),
        }
    }

    #[test]
    fn the_form_follows_the_file_name_and_the_slurm_version() {
        assert_eq!(format_for(Path::new("/etc/slurm/topology.yaml"), (22, 5)), TopologyFormat::SlurmYaml);
        assert_eq!(format_for(Path::new("/etc/slurm/topology.conf"), (22, 5)), TopologyFormat::SlurmTree);
        assert_eq!(format_for(Path::new("/etc/slurm/topology.conf"), (23, 11)), TopologyFormat::SlurmBlock);
        assert_eq!(format_for(Path::new("topology.conf"), (24, 11)), TopologyFormat::SlurmBlock);
        assert_eq!(parse_version("slurm 22.05.8\n"), Some((22, 5)));
        assert_eq!(parse_version("slurm-wlm 24.11.1"), Some((24, 11)));
        assert_eq!(parse_version("nothing"), None);
        let config = "Configuration data as of ...\nSLURM_CONF              = /etc/slurm/slurm.conf\n\
                      TopologyParam           = (null)\nTopologyPlugin          = topology/tree\n";
        assert_eq!(config_value(config, "TopologyPlugin").as_deref(), Some("topology/tree"));
        assert_eq!(config_value(config, "TopologyParam"), None);
        assert_eq!(config_value(config, "SLURM_CONF").as_deref(), Some("/etc/slurm/slurm.conf"));
    }

    #[test]
    fn an_install_writes_once_reconfigures_once_and_a_dry_run_writes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("topology.conf");
        let ctl = Fake { version: (22, 5), plugin: Some("topology/tree"), reconfigured: Cell::new(0) };
        let dry = install(&topo(), &path, None, &ctl, true);
        assert_eq!(dry.result, InstallResult::WouldDo);
        assert!(!path.exists() && ctl.reconfigured.get() == 0);
        let done = install(&topo(), &path, None, &ctl, false);
        assert_eq!((done.result, done.format), (InstallResult::Installed, TopologyFormat::SlurmTree), "{done:?}");
        assert!(done.warnings.is_empty(), "{:?}", done.warnings);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), done.text.clone().expect("text"));
        assert_eq!(ctl.reconfigured.get(), 1);
        let again = install(&topo(), &path, None, &ctl, false);
        assert_eq!(again.result, InstallResult::AlreadyDone);
        assert_eq!(ctl.reconfigured.get(), 1);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").filter_map(|e| e.ok()).collect();
        assert_eq!(names.len(), 1);
        // Nothing to install leaves the file as it was.
        let none = install(&Topology::default(), &path, None, &ctl, false);
        assert_eq!(none.result, InstallResult::NothingToInstall);
        assert!(path.exists());
    }

    #[test]
    fn a_form_slurm_would_ignore_is_said() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("topology.conf");
        let ctl = Fake { version: (22, 5), plugin: None, reconfigured: Cell::new(0) };
        let out = install(&topo(), &path, Some(TopologyFormat::SlurmBlock), &ctl, true);
        assert!(out.warnings.iter().any(|w| w.contains("has no topology/block")), "{:?}", out.warnings);
        assert!(out.warnings.iter().any(|w| w.contains("TopologyPlugin=(none)")), "{:?}", out.warnings);
    }
}
