//! INTERIM: reads only the BMC fields of a rack manifest, until `src/rack/manifest.rs` lands.
//!
//! The real manifest module (written in parallel) owns the format; this
//! loader reads just `[credentials]` and the `[[nodes]]` BMC fields of the
//! agreed TOML and ignores everything else. Replace `load_target` with a call
//! into the manifest module when merging, and delete this file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::target::{
    parse_bmc_url, parse_system_path, read_password, relative_to, BmcTarget, IpmiAddress, PasswordSource, TargetError,
    TlsOptions,
};

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    credentials: Credentials,
    #[serde(default)]
    nodes: Vec<Node>,
}

#[derive(Debug, Default, Deserialize)]
struct Credentials {
    bmc_user: Option<String>,
    bmc_password_env: Option<String>,
    bmc_password_file: Option<PathBuf>,
    bmc_ca_file: Option<PathBuf>,
    bmc_fingerprint: Option<String>,
    #[serde(default)]
    bmc_insecure: bool,
}

#[derive(Debug, Deserialize)]
struct Node {
    name: String,
    bmc: Option<String>,
    bmc_system: Option<String>,
    ipmi: Option<String>,
}

/// The BMC target of node `node` in the manifest at `path`.
pub fn load_target(path: &Path, node: &str) -> Result<BmcTarget, TargetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TargetError::ReadManifest { path: path.to_path_buf(), source })?;
    // toml's message names the line, the column and the field.
    let manifest: Manifest = toml::from_str(&text)
        .map_err(|e| TargetError::ParseManifest { path: path.to_path_buf(), message: e.to_string() })?;
    let field_err = |field: String, why: String| TargetError::ManifestField { path: path.to_path_buf(), field, why };

    let Some(entry) = manifest.nodes.iter().find(|n| n.name == node) else {
        let known: Vec<&str> = manifest.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(TargetError::NoSuchNode {
            path: path.to_path_buf(),
            node: node.to_string(),
            known: if known.is_empty() { "none".into() } else { known.join(", ") },
        });
    };
    let at = |f: &str| format!("nodes[name={node}].{f}");

    let url = entry.bmc.as_deref().ok_or_else(|| field_err(at("bmc"), "missing".into()))?;
    let url = parse_bmc_url(url).map_err(|e| field_err(at("bmc"), e.to_string()))?;
    let system_path = match &entry.bmc_system {
        Some(p) => Some(parse_system_path(p).map_err(|e| field_err(at("bmc_system"), e.to_string()))?),
        None => None,
    };
    let ipmi = match &entry.ipmi {
        Some(a) => Some(IpmiAddress::parse(a).map_err(|e| field_err(at("ipmi"), e.to_string()))?),
        None => None,
    };

    let creds = &manifest.credentials;
    let username = creds.bmc_user.clone().ok_or_else(|| field_err("credentials.bmc_user".into(), "missing".into()))?;
    let source = match (&creds.bmc_password_env, &creds.bmc_password_file) {
        (Some(var), None) => PasswordSource::Env(var.clone()),
        (None, Some(file)) => PasswordSource::File(relative_to(path, file)),
        (Some(_), Some(_)) => {
            return Err(field_err(
                "credentials.bmc_password_env".into(),
                "give bmc_password_env or bmc_password_file, not both".into(),
            ))
        }
        (None, None) => {
            return Err(field_err(
                "credentials".into(),
                "bmc_password_env or bmc_password_file is required (the password itself never goes in a manifest)"
                    .into(),
            ))
        }
    };
    let password = read_password(&source)?;
    let tls = TlsOptions {
        ca_file: creds.bmc_ca_file.as_ref().map(|f| relative_to(path, f)),
        fingerprint: creds.bmc_fingerprint.clone(),
        insecure: creds.bmc_insecure,
    }
    .policy()
    .map_err(|e| field_err("credentials".into(), e.to_string()))?;

    Ok(BmcTarget { node: Some(node.to_string()), url, system_path, username, password, tls, ipmi })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmc::TlsPolicy;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("rack.toml");
        std::fs::write(&path, text).expect("write manifest");
        path
    }

    const GOOD: &str = r#"
[rack]
id = "lab-a"
site = "ignored by this loader"

[credentials]
bmc_user = "admin"
bmc_password_file = "bmc.pw"
bmc_fingerprint = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

[[nodes]]
name = "node01"
address = "10.77.0.11"
bmc = "https://10.77.0.111:8000"
bmc_system = "/redfish/v1/Systems/System_0"
ipmi = "10.77.0.111:623"

[[nodes]]
name = "node02"
bmc = "http://127.0.0.1:8001"
"#;

    #[test]
    fn reads_the_node_and_credentials() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc.pw"), "s3cret\n").expect("write pw");
        let path = write(dir.path(), GOOD);
        let t = load_target(&path, "node01").expect("node01 loads");
        assert_eq!(t.url, "https://10.77.0.111:8000");
        assert_eq!(t.system_path.as_deref(), Some("/redfish/v1/Systems/System_0"));
        assert_eq!(t.username, "admin");
        assert_eq!(t.password.expose(), "s3cret");
        assert!(matches!(t.tls, TlsPolicy::Pinned(_)));
        assert_eq!(t.ipmi.as_ref().map(|i| i.port), Some(623));
        assert_eq!(t.label(), "https://10.77.0.111:8000 (node01)");
        let t2 = load_target(&path, "node02").expect("node02 loads");
        assert!(t2.ipmi.is_none());
    }

    #[test]
    fn unknown_node_lists_the_known_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc.pw"), "s3cret").expect("write pw");
        let err = load_target(&write(dir.path(), GOOD), "node09").expect_err("no such node").to_string();
        assert!(err.contains("node09") && err.contains("node01, node02"), "{err}");
    }

    #[test]
    fn malformed_manifest_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "[credentials]\nbmc_user = \"admin\"\n[[nodes]]\nname = node01\n");
        let err = load_target(&path, "node01").expect_err("bad toml").to_string();
        assert!(err.contains("rack.toml") && err.contains("line 4"), "{err}");
    }

    #[test]
    fn bad_field_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = GOOD.replace("https://10.77.0.111:8000", "10.77.0.111");
        std::fs::write(dir.path().join("bmc.pw"), "s3cret").expect("write pw");
        let err = load_target(&write(dir.path(), &text), "node01").expect_err("bad url").to_string();
        assert!(err.contains("nodes[name=node01].bmc"), "{err}");
    }

    #[test]
    fn password_must_come_from_env_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "[credentials]\nbmc_user = \"admin\"\n[[nodes]]\nname = \"n1\"\nbmc = \"https://x\"\n";
        let err = load_target(&write(dir.path(), text), "n1").expect_err("no password source").to_string();
        assert!(err.contains("bmc_password_env or bmc_password_file"), "{err}");
    }
}
