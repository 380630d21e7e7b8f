//! `BmcTarget`: which BMC to talk to and how (URL, credentials, TLS policy, IPMI address).
//!
//! A target comes from direct flags (`--bmc URL --bmc-user U ...`) or from a
//! rack manifest node (`--rack FILE --node N`); both end here, validated, so
//! the backends never see a half-specified BMC.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::tls::{Fingerprint, TlsError, TlsPolicy};
use crate::secret::{PasswordError, PasswordSource, Secret};

/// Everything needed to reach one BMC.
#[derive(Debug, Clone, Serialize)]
pub struct BmcTarget {
    /// The node's name in the rack manifest, when the target came from one.
    pub node: Option<String>,
    /// `https://10.77.0.111:8000`; `http://` only when written so (emulators).
    pub url: String,
    /// The ComputerSystem to act on, when the BMC has several (`/redfish/v1/Systems/System_0`).
    pub system_path: Option<String>,
    pub username: String,
    #[serde(skip)]
    pub password: Secret,
    pub tls: TlsPolicy,
    /// Where ipmitool reaches the same BMC, for the IPMI fallback.
    pub ipmi: Option<IpmiAddress>,
}

impl BmcTarget {
    /// The BMC in words for messages: `https://10.77.0.111:8000 (node01)`.
    pub fn label(&self) -> String {
        match &self.node {
            Some(node) => format!("{} ({node})", self.url),
            None => self.url.clone(),
        }
    }
}

/// `host:port` of a BMC's IPMI-over-LAN service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpmiAddress {
    pub host: String,
    pub port: u16,
}

impl IpmiAddress {
    /// Parse `host`, `host:port` or `[v6]:port`; the port defaults to 623.
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let bad = |why: &str| TargetError::BadIpmiAddress { value: text.to_string(), why: why.to_string() };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("empty"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad("expected ':port' after ']'")),
            }
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 address has no room for a port.
            (text, None)
        } else {
            match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("port is not a number from 1 to 65535"))?,
            None => 623,
        };
        if port == 0 {
            return Err(bad("port is not a number from 1 to 65535"));
        }
        Ok(IpmiAddress { host: host.to_string(), port })
    }
}

impl fmt::Display for IpmiAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The TLS options as given (flags or manifest fields), before validation.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub fingerprint: Option<String>,
    pub insecure: bool,
}

impl TlsOptions {
    /// At most one of the three may be given; none means the system roots.
    pub fn policy(&self) -> Result<TlsPolicy, TargetError> {
        let given = [self.ca_file.is_some(), self.fingerprint.is_some(), self.insecure];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(TargetError::TlsConflict);
        }
        if let Some(path) = &self.ca_file {
            return Ok(TlsPolicy::CaFile(path.clone()));
        }
        if let Some(fp) = &self.fingerprint {
            return Ok(TlsPolicy::Pinned(Fingerprint::parse(fp).map_err(|source| TargetError::Tls { source })?));
        }
        if self.insecure {
            return Ok(TlsPolicy::Insecure);
        }
        Ok(TlsPolicy::SystemRoots)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("bmc url {value:?} {why}")]
    BadUrl { value: String, why: String },
    #[error("ipmi address {value:?}: {why}")]
    BadIpmiAddress { value: String, why: String },
    #[error("bmc system path {value:?} must start with /redfish/v1/")]
    BadSystemPath { value: String },
    #[error("read the BMC password")]
    Password {
        #[source]
        source: PasswordError,
    },
    #[error("give at most one of a CA file, a pinned fingerprint and --insecure")]
    TlsConflict,
    #[error("bad TLS setting")]
    Tls {
        #[source]
        source: TlsError,
    },
    #[error("no BMC given: use --bmc URL (with --bmc-user and --bmc-password-env) or --rack FILE --node NAME")]
    NoTarget,
    #[error("{what} is required with --bmc")]
    MissingFlag { what: &'static str },
    #[error("load the rack manifest")]
    Manifest {
        #[source]
        source: crate::rack::ManifestError,
    },
    #[error("read the BMC password of node {node}")]
    Credential {
        node: String,
        #[source]
        source: crate::rack::CredentialError,
    },
    #[error("rack manifest {}: no node named {node:?} (nodes: {known})", path.display())]
    NoSuchNode { path: PathBuf, node: String, known: String },
    #[error("rack manifest {}: {field}: {why}", path.display())]
    ManifestField { path: PathBuf, field: String, why: String },
}

/// Check a BMC URL: `https://host[:port]` or, written out, `http://host[:port]`.
pub fn parse_bmc_url(text: &str) -> Result<String, TargetError> {
    // The value is shown in the error: never with the password it may carry.
    let bad =
        |why: &str| TargetError::BadUrl { value: crate::redact::userinfo(text).into_owned(), why: why.to_string() };
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with https:// (or http:// for an emulator)"))?;
    if rest.is_empty() || rest.starts_with(':') {
        return Err(bad("has no host"));
    }
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(bad("must be scheme://host[:port] only (no path, query or user)"));
    }
    Ok(url.to_string())
}

/// Check a configured ComputerSystem path.
pub fn parse_system_path(text: &str) -> Result<String, TargetError> {
    let path = text.trim().trim_end_matches('/');
    if !path.starts_with("/redfish/v1/") || path.contains(char::is_whitespace) {
        return Err(TargetError::BadSystemPath { value: text.to_string() });
    }
    Ok(path.to_string())
}

/// Reads a password from its source now (`PasswordSource::read`), as a target error.
pub fn read_password(source: &PasswordSource) -> Result<Secret, TargetError> {
    source.read().map_err(|source| TargetError::Password { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmc_urls() {
        assert_eq!(parse_bmc_url("https://10.77.0.111:8000/").expect("ok"), "https://10.77.0.111:8000");
        assert_eq!(parse_bmc_url("http://127.0.0.1:8000").expect("ok"), "http://127.0.0.1:8000");
        for bad in ["10.77.0.111", "ftp://x", "https://", "https://x/redfish/v1", "https://admin@x"] {
            assert!(parse_bmc_url(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn ipmi_addresses() {
        assert_eq!(IpmiAddress::parse("10.0.0.5").expect("ok"), IpmiAddress { host: "10.0.0.5".into(), port: 623 });
        assert_eq!(IpmiAddress::parse("bmc01:9001").expect("ok").port, 9001);
        let v6 = IpmiAddress::parse("[fd00::5]:624").expect("ok");
        assert_eq!((v6.host.as_str(), v6.port), ("fd00::5", 624));
        assert_eq!(v6.to_string(), "[fd00::5]:624");
        assert_eq!(IpmiAddress::parse("fd00::5").expect("ok").port, 623);
        for bad in ["", "host:0", "host:99999", "host:abc", ":623", "[fd00::5"] {
            assert!(IpmiAddress::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn tls_options_allow_one_choice() {
        assert_eq!(TlsOptions::default().policy().expect("ok"), TlsPolicy::SystemRoots);
        let both = TlsOptions { ca_file: Some("ca.pem".into()), insecure: true, ..Default::default() };
        assert!(matches!(both.policy(), Err(TargetError::TlsConflict)));
        let pinned = TlsOptions { fingerprint: Some(format!("sha256:{}", "00".repeat(32))), ..Default::default() };
        assert!(matches!(pinned.policy(), Ok(TlsPolicy::Pinned(_))));
        let bad = TlsOptions { fingerprint: Some("sha256:xyz".into()), ..Default::default() };
        assert!(matches!(bad.policy(), Err(TargetError::Tls { .. })));
    }

    #[test]
    fn a_password_that_cannot_be_read_names_its_source() {
        let err = read_password(&PasswordSource::Env("KILN_TEST_SURELY_UNSET_VAR".into())).expect_err("unset");
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(chain, "read the BMC password: environment variable KILN_TEST_SURELY_UNSET_VAR is not set");
    }

    #[test]
    fn label_names_url_and_node() {
        let t = BmcTarget {
            node: Some("node01".into()),
            url: "https://10.77.0.111:8000".into(),
            system_path: None,
            username: "admin".into(),
            password: Secret::new("pw-not-shown"),
            tls: TlsPolicy::SystemRoots,
            ipmi: None,
        };
        assert_eq!(t.label(), "https://10.77.0.111:8000 (node01)");
        assert!(!format!("{t:?}").contains("pw-not-shown"));
        assert!(!serde_json::to_string(&t).expect("json").contains("pw-not-shown"));
    }
}
