//! Where a rack's credentials come from, and reading the BMC password at the moment of use.

use std::path::PathBuf;

use super::Secret;

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

#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    /// Name of an environment variable.
    Env(String),
    /// A file whose content (less a trailing newline) is the password.
    File(PathBuf),
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
    #[error("read BMC password from environment variable {var}: it is not set")]
    EnvMissing { var: String },
    #[error("read BMC password file {}", path.display())]
    FileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read BMC password from {from}: it is empty")]
    Empty { from: String },
}

impl Credentials {
    /// Reads the BMC password now, from the variable or file the manifest
    /// names. Called at each use so a rotated password is picked up and the
    /// secret is held no longer than needed.
    pub fn bmc_password(&self) -> Result<Secret, CredentialError> {
        match &self.bmc_password {
            None => Err(CredentialError::NoSource),
            Some(PasswordSource::Env(var)) => match std::env::var(var) {
                Ok(v) if v.is_empty() => Err(CredentialError::Empty { from: format!("environment variable {var}") }),
                Ok(v) => Ok(Secret::new(v)),
                Err(_) => Err(CredentialError::EnvMissing { var: var.clone() }),
            },
            Some(PasswordSource::File(path)) => {
                let text = crate::input::read_to_string(path, crate::input::Input::Secret)
                    .map_err(|source| CredentialError::FileRead { path: path.clone(), source })?;
                warn_if_readable_by_others(path);
                // Only the line ending is dropped: spaces may be part of a password.
                let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
                let secret = Secret::new(value);
                if secret.expose().is_empty() {
                    return Err(CredentialError::Empty { from: path.display().to_string() });
                }
                Ok(secret)
            }
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "BMC password file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &std::path::Path) {}
