//! Where a rack's credentials come from, and reading the BMC password at the moment of use.

use std::path::PathBuf;

use crate::secret::{PasswordError, PasswordSource, Secret};

/// Credential sources from a manifest. It names where secrets are kept
/// (a variable, a file), never the secrets themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub ssh_user: String,
    /// Private key file; the SSH agent is used when absent.
    pub ssh_key: Option<PathBuf>,
    /// OpenSSH known_hosts file holding the nodes' host keys.
    pub known_hosts: PathBuf,
    pub bmc_user: Option<String>,
    pub bmc_password: Option<PasswordSource>,
    pub bmc_tls: BmcTls,
}

/// How the BMC's TLS certificate is trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum BmcTls {
    /// The system's trust store.
    System,
    /// A CA certificate file (PEM).
    CaFile(PathBuf),
    /// A pinned SHA-256 certificate fingerprint, uppercase hex with colons.
    Fingerprint(String),
    /// No verification; only when the manifest says `bmc_insecure = true`.
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("find a BMC password source: the manifest names none (bmc_password_env or bmc_password_file)")]
    NoSource,
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl Credentials {
    /// Reads the BMC password now, from the variable or file the manifest
    /// names. Called at each use so a rotated password is picked up and the
    /// secret is held no longer than needed.
    pub fn bmc_password(&self) -> Result<Secret, CredentialError> {
        let source = self.bmc_password.as_ref().ok_or(CredentialError::NoSource)?;
        Ok(source.read()?)
    }
}
