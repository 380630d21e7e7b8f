//! A BMC target from a rack manifest node: its Redfish URL, system and IPMI address, with the
//! rack's BMC user, password source and TLS choice.

use std::path::Path;

use super::ipmi::IpmiBmc;
use super::target::{parse_bmc_url, parse_system_path, BmcTarget, IpmiAddress, TargetError};
use super::tls::{Fingerprint, TlsPolicy};
use crate::rack::{BmcTls, RackManifest, RackNode};
use crate::secret::Secret;

/// Reads the manifest at `path` and builds the target of node `node`.
pub fn load_target(path: &Path, node: &str) -> Result<BmcTarget, TargetError> {
    let manifest = RackManifest::load(path).map_err(|source| TargetError::Manifest { source })?;
    target_from_manifest(&manifest, node)
}

/// The BMC target of node `node` of `manifest`. The password is read now,
/// from the variable or file the manifest names. Fields are checked again
/// with the BMC client's stricter rules (a URL with a path, a system path
/// outside `/redfish/v1/`), and a refusal names the node's field.
pub fn target_from_manifest(manifest: &RackManifest, node: &str) -> Result<BmcTarget, TargetError> {
    let entry = node_entry(manifest, node)?;
    let url = entry
        .bmc
        .as_deref()
        .ok_or_else(|| field_err(manifest, node, "bmc", "missing (this node has no Redfish BMC)".into()))?;
    let url = parse_bmc_url(url).map_err(|e| field_err(manifest, node, "bmc", e.to_string()))?;
    let system_path = match &entry.bmc_system {
        Some(p) => Some(parse_system_path(p).map_err(|e| field_err(manifest, node, "bmc_system", e.to_string()))?),
        None => None,
    };
    let ipmi = match &entry.ipmi {
        Some(a) => Some(parse_ipmi(manifest, node, a)?),
        None => None,
    };
    let (username, password) = credentials(manifest, node)?;
    let tls = match &manifest.credentials.bmc_tls {
        BmcTls::System => TlsPolicy::SystemRoots,
        BmcTls::CaFile(p) => TlsPolicy::CaFile(p.clone()),
        // The manifest keeps the fingerprint as bare colon-separated hex.
        BmcTls::Fingerprint(hex) => TlsPolicy::Pinned(
            Fingerprint::parse(&format!("sha256:{hex}")).map_err(|source| TargetError::Tls { source })?,
        ),
        BmcTls::Insecure => TlsPolicy::Insecure,
    };
    Ok(BmcTarget { node: Some(node.to_string()), url, system_path, username, password, tls, ipmi })
}

/// The IPMI client of node `node` of `manifest`, for a node that may have no Redfish BMC: its
/// `ipmi` address with the rack's BMC user and password (read now). A missing or malformed
/// address names the node's `ipmi` field.
pub fn ipmi_from_manifest(manifest: &RackManifest, node: &str) -> Result<IpmiBmc, TargetError> {
    let entry = node_entry(manifest, node)?;
    let address = entry
        .ipmi
        .as_deref()
        .ok_or_else(|| field_err(manifest, node, "ipmi", "missing (this node has no IPMI address)".into()))?;
    let address = parse_ipmi(manifest, node, address)?;
    let (username, password) = credentials(manifest, node)?;
    Ok(IpmiBmc::new(Some(node), address, username, password))
}

fn node_entry<'m>(manifest: &'m RackManifest, node: &str) -> Result<&'m RackNode, TargetError> {
    manifest.node(node).ok_or_else(|| {
        let known: Vec<&str> = manifest.nodes.iter().map(|n| n.name.as_str()).collect();
        TargetError::NoSuchNode { path: manifest.path.clone(), node: node.to_string(), known: known.join(", ") }
    })
}

fn field_err(manifest: &RackManifest, node: &str, field: &str, why: String) -> TargetError {
    TargetError::ManifestField { path: manifest.path.clone(), field: format!("nodes[name={node}].{field}"), why }
}

fn parse_ipmi(manifest: &RackManifest, node: &str, text: &str) -> Result<IpmiAddress, TargetError> {
    IpmiAddress::parse(text).map_err(|e| field_err(manifest, node, "ipmi", e.to_string()))
}

/// The rack's BMC user and the password it names (read now).
fn credentials(manifest: &RackManifest, node: &str) -> Result<(String, Secret), TargetError> {
    let creds = &manifest.credentials;
    let username = creds.bmc_user.clone().ok_or_else(|| TargetError::ManifestField {
        path: manifest.path.clone(),
        field: "credentials.bmc_user".into(),
        why: "missing".into(),
    })?;
    let password = creds.bmc_password().map_err(|source| TargetError::Credential { node: node.to_string(), source })?;
    Ok((username, password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("rack.toml");
        std::fs::write(&path, text).expect("write manifest");
        path
    }

    const GOOD: &str = r#"
[rack]
id = "lab-a"
site = "lab"

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
address = "10.77.0.12"
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
    fn a_ca_file_resolves_beside_the_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc.pw"), "s3cret").expect("write pw");
        let text = GOOD.replace(
            "bmc_fingerprint = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"",
            "bmc_ca_file = \"ca.pem\"",
        );
        let t = load_target(&write(dir.path(), &text), "node01").expect("loads");
        assert_eq!(t.tls, TlsPolicy::CaFile(dir.path().join("ca.pem")));
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
        let path =
            write(dir.path(), "[rack]\nid = \"r\"\n[credentials]\nbmc_user = \"admin\"\n[[nodes]]\nname = node01\n");
        let err = load_target(&path, "node01").expect_err("bad toml");
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.contains("rack.toml:6"), "{chain}");
    }

    #[test]
    fn bad_field_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The manifest accepts any http(s) URL; the BMC client refuses one with a path.
        let text = GOOD.replace("https://10.77.0.111:8000", "https://10.77.0.111:8000/redfish/v1");
        std::fs::write(dir.path().join("bmc.pw"), "s3cret").expect("write pw");
        let err = load_target(&write(dir.path(), &text), "node01").expect_err("bad url").to_string();
        assert!(err.contains("nodes[name=node01].bmc"), "{err}");
    }

    #[test]
    fn an_ipmi_only_node_gets_an_ipmi_client_and_a_bad_address_names_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc.pw"), "s3cret").expect("write pw");
        let text =
            format!("{GOOD}\n[[nodes]]\nname = \"node03\"\naddress = \"10.77.0.13\"\nipmi = \"10.77.0.113:9623\"\n");
        let manifest = RackManifest::load(&write(dir.path(), &text)).expect("manifest loads");
        let bmc = ipmi_from_manifest(&manifest, "node03").expect("node03 has ipmi");
        assert_eq!(crate::bmc::Bmc::label(&bmc), "ipmi 10.77.0.113:9623 (node03)");
        let err = target_from_manifest(&manifest, "node03").expect_err("no Redfish URL").to_string();
        assert!(err.contains("nodes[name=node03].bmc"), "{err}");
        let err = ipmi_from_manifest(&manifest, "node02").expect_err("no ipmi").to_string();
        assert!(err.contains("nodes[name=node02].ipmi"), "{err}");
        let bad = text.replace("10.77.0.113:9623", "10.77.0.113:notaport");
        let manifest = RackManifest::load(&write(dir.path(), &bad)).expect("manifest loads");
        let err = ipmi_from_manifest(&manifest, "node03").expect_err("bad port").to_string();
        assert!(err.contains("nodes[name=node03].ipmi"), "{err}");
    }

    #[test]
    fn password_must_come_from_env_or_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "[rack]\nid = \"r\"\n[credentials]\nbmc_user = \"admin\"\n[[nodes]]\nname = \"n1\"\naddress = \"a\"\nbmc = \"https://x\"\n";
        let err = load_target(&write(dir.path(), text), "n1").expect_err("no password source");
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.contains("bmc_password_env or bmc_password_file"), "{chain}");
    }

    #[test]
    fn a_missing_password_file_names_the_node_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_target(&write(dir.path(), GOOD), "node01").expect_err("no password file");
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.contains("node01") && chain.contains("bmc.pw"), "{chain}");
    }
}
