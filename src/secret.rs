//! `Secret` and `PasswordSource`: a credential held in memory that never prints and is zeroed
//! when dropped, and the one place a password is read from where the user keeps it.
//!
//! Both the BMC flags (`--bmc-password-env`, `--bmc-password-file`) and a rack manifest's
//! `bmc_password_env` / `bmc_password_file` name a `PasswordSource`; the password is read at the
//! moment of use, so a rotated password is picked up and the secret is held no longer than needed.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// A password or passphrase. `Debug` and `Display` print `***`, so a secret that ends up in a
/// log line, an error or a report leaks nothing; there is no `Serialize`. The only way to read
/// it is [`Secret::expose`], which the transport calls when it builds the `Authorization` header
/// or the IPMI child's environment. Its bytes are overwritten when it is dropped (`zeroize`), so
/// the password does not linger in freed memory; each clone is zeroed on its own drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value itself, for the one call that sends it to a peer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a password comes from: never the command line or the manifest itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Name of an environment variable.
    Env(String),
    /// A file whose content (less a trailing newline) is the password.
    File(PathBuf),
}

/// Why a password could not be read; names the variable or file, never the value.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("environment variable {var} is not set")]
    EnvUnset { var: String },
    #[error("environment variable {var} is empty")]
    EnvEmpty { var: String },
    #[error("read password file {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("password file {} is empty", path.display())]
    FileEmpty { path: PathBuf },
}

impl PasswordSource {
    /// Reads the password now. A file's trailing newline is dropped (`echo pw > file` writes
    /// one); anything else, spaces included, is part of the password. An empty password is an
    /// error: no BMC accepts one, and an empty file is more likely a mistake than a choice.
    pub fn read(&self) -> Result<Secret, PasswordError> {
        match self {
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(v) if v.is_empty() => Err(PasswordError::EnvEmpty { var: var.clone() }),
                Ok(v) => Ok(Secret::new(v)),
                Err(_) => Err(PasswordError::EnvUnset { var: var.clone() }),
            },
            PasswordSource::File(path) => {
                let text = Zeroizing::new(
                    crate::input::read_to_string(path, crate::input::Input::Secret)
                        .map_err(|source| PasswordError::File { path: path.clone(), source })?,
                );
                warn_if_readable_by_others(path);
                let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
                if value.is_empty() {
                    return Err(PasswordError::FileEmpty { path: path.clone() });
                }
                Ok(Secret::new(value))
            }
        }
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "password file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2-very-secret");
        let shown = format!("{s} {s:?} {s:#?} {:?}", Some(&s));
        assert_eq!(shown, "*** *** *** Some(***)");
        assert_eq!(s.expose(), "hunter2-very-secret");
        assert!(!Secret::default().expose().contains('*'));
    }

    #[test]
    fn a_file_drops_only_the_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, " p@ss word \r\n").expect("write");
        assert_eq!(PasswordSource::File(path.clone()).read().expect("readable").expose(), " p@ss word ");
        std::fs::write(&path, "\n").expect("write");
        let err = PasswordSource::File(path.clone()).read().expect_err("empty");
        assert!(matches!(err, PasswordError::FileEmpty { .. }), "{err}");
        std::fs::remove_file(&path).expect("rm");
        let err = PasswordSource::File(path.clone()).read().expect_err("missing");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn an_unset_variable_is_named() {
        let err = PasswordSource::Env("KILN_TEST_SURELY_UNSET_VAR".into()).read().expect_err("unset");
        assert_eq!(err.to_string(), "environment variable KILN_TEST_SURELY_UNSET_VAR is not set");
    }
}
