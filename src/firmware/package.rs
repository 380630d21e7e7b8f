//! Firmware packages: checked against the recipe's SHA-256 before anything is sent, staged
//! into a directory kiln owns, served from there for `SimpleUpdate`, and checked again while
//! they are pushed.
//!
//! Staging copies the package while hashing it; a copy whose digest differs is deleted and the
//! package refused. What is served or pushed is that copy, so a file changed in the package
//! directory after the check cannot reach a BMC. The push reads the copy through
//! `VerifiedReader`, which hashes as it goes and fails the read that would deliver the last
//! bytes if the digest does not match: the BMC then never receives a whole package.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::recipe::Package;
use crate::image::serve::{Routes, ServeError, Server};

/// The URL prefix staged packages are served under.
pub const URL_PREFIX: &str = "/firmware/";

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("package {package}: cannot open {}", file.display())]
    Open {
        package: String,
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("package {package}: {} is not a regular file", file.display())]
    NotAFile { package: String, file: PathBuf },
    #[error("package {package}: cannot read {}", file.display())]
    Read {
        package: String,
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("package {package}: {} has SHA-256 {actual}, the recipe pins {expected}; refused", file.display())]
    Checksum { package: String, file: PathBuf, expected: String, actual: String },
    #[error("package {package}: cannot stage it in {}", dir.display())]
    Stage {
        package: String,
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A package checked and copied into the staging directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPackage {
    /// The recipe's package id.
    pub id: String,
    /// The staged copy.
    pub path: PathBuf,
    /// Its file name in the staging directory (and in URLs): `<first 16 hex of sha256>-<name>`.
    pub name: String,
    /// The name of the recipe's file, sent as the multipart file name.
    pub original_name: String,
    pub sha256: String,
    pub len: u64,
}

/// Where a recipe's package file is: absolute, or under `packages_dir`.
pub fn resolve(package: &Package, packages_dir: &Path) -> PathBuf {
    if package.file.is_absolute() {
        package.file.clone()
    } else {
        packages_dir.join(&package.file)
    }
}

/// Check `package` against its recipe and copy it into `staging_dir`. Refused (and nothing left
/// in `staging_dir`) when the file is missing, not a regular file, or its digest differs.
pub fn stage(package: &Package, packages_dir: &Path, staging_dir: &Path) -> Result<StagedPackage, PackageError> {
    let source = resolve(package, packages_dir);
    let id = package.id.clone();
    let open = |source_err| PackageError::Open { package: id.clone(), file: source.clone(), source: source_err };
    let meta = std::fs::metadata(&source).map_err(open)?;
    if !meta.is_file() {
        return Err(PackageError::NotAFile { package: id, file: source });
    }
    let mut input = File::open(&source).map_err(open)?;
    let original_name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| id.clone());
    let expected = package.sha256.to_ascii_lowercase();
    let short: String = expected.chars().take(16).collect();
    let name = format!("{short}-{original_name}");
    let stage_err = |e| PackageError::Stage { package: id.clone(), dir: staging_dir.to_path_buf(), source: e };
    std::fs::create_dir_all(staging_dir).map_err(stage_err)?;
    let path = staging_dir.join(&name);
    let partial = staging_dir.join(format!(".{name}.partial"));
    let mut output = File::create(&partial).map_err(stage_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    let copied: Result<(), PackageError> = (|| {
        loop {
            let n = input.read(&mut buf).map_err(|e| PackageError::Read {
                package: id.clone(),
                file: source.clone(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            output.write_all(&buf[..n]).map_err(stage_err)?;
            len += n as u64;
        }
        output.sync_all().map_err(stage_err)
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        let _ = std::fs::remove_file(&partial);
        return Err(PackageError::Checksum { package: id, file: source, expected, actual });
    }
    std::fs::rename(&partial, &path).map_err(stage_err)?;
    tracing::info!(package = %id, file = %source.display(), bytes = len, "firmware package checked and staged");
    Ok(StagedPackage { id, path, name, original_name, sha256: actual, len })
}

impl StagedPackage {
    /// A reader of the staged copy that checks its length and digest as it is read.
    pub fn open_verified(&self) -> Result<VerifiedReader, PackageError> {
        let file = File::open(&self.path).map_err(|source| PackageError::Open {
            package: self.id.clone(),
            file: self.path.clone(),
            source,
        })?;
        Ok(VerifiedReader { file, hasher: Sha256::new(), expected: self.sha256.clone(), left: self.len })
    }
}

/// Reads exactly the staged length, hashing; the read that reaches the end fails instead of
/// returning its bytes when the digest is not the expected one.
pub struct VerifiedReader {
    file: File,
    hasher: Sha256,
    expected: String,
    left: u64,
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the staged package became shorter while it was sent",
            ));
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        if self.left == 0 {
            let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the staged package changed while it was sent (SHA-256 {actual}, expected {})",
                        self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// Staged packages over HTTP for `SimpleUpdate`: kiln's boot-artifact server with the staging
/// directory mounted under `/firmware/`, nothing else.
pub struct PackageServer {
    server: Server,
}

impl PackageServer {
    pub fn start(staging_dir: &Path, listen: SocketAddr) -> Result<PackageServer, ServeError> {
        let routes = Routes { mounts: vec![(URL_PREFIX.to_string(), staging_dir.to_path_buf())], post: None };
        Ok(PackageServer { server: Server::start_routes(routes, listen)? })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The URL a BMC fetches `staged` from, given the base URL it reaches this server at
    /// (`http://10.0.0.1:8080`).
    pub fn url(base: &str, staged: &StagedPackage) -> String {
        format!("{}{URL_PREFIX}{}", base.trim_end_matches('/'), staged.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::recipe::{Exclusive, Method};

    fn package(file: &str, sha256: &str) -> Package {
        Package {
            id: "bmc_pkg".into(),
            file: file.into(),
            sha256: sha256.into(),
            method: Method::MultipartPush,
            targets: None,
            apply_time: None,
            delay_s: 0,
            one_at_a_time: Exclusive::Bmc,
            task_timeout_s: 60,
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_matching_package_is_staged_and_reads_back_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = vec![7u8; 3 << 20];
        std::fs::write(dir.path().join("bmc.fwpkg"), &bytes).expect("write");
        let staging = dir.path().join("staging");
        let staged = stage(&package("bmc.fwpkg", &sha(&bytes)), dir.path(), &staging).expect("staged");
        assert_eq!((staged.len, staged.original_name.as_str()), (bytes.len() as u64, "bmc.fwpkg"));
        assert!(staged.name.ends_with("-bmc.fwpkg"));
        let mut back = Vec::new();
        staged.open_verified().expect("open").read_to_end(&mut back).expect("read");
        assert_eq!(back, bytes);
    }

    #[test]
    fn a_package_whose_digest_differs_is_refused_and_not_staged() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bmc.fwpkg"), b"tampered").expect("write");
        let staging = dir.path().join("staging");
        let err = stage(&package("bmc.fwpkg", &sha(b"original")), dir.path(), &staging).expect_err("refused");
        assert!(matches!(err, PackageError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("the recipe pins"), "{err}");
        assert_eq!(std::fs::read_dir(&staging).expect("staging").count(), 0, "nothing left behind");
    }

    #[test]
    fn a_missing_package_or_a_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = stage(&package("nope.fwpkg", &sha(b"")), dir.path(), &dir.path().join("s")).expect_err("missing");
        assert!(matches!(err, PackageError::Open { .. }), "{err}");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        let err = stage(&package("d", &sha(b"")), dir.path(), &dir.path().join("s")).expect_err("a directory");
        assert!(matches!(err, PackageError::NotAFile { .. }), "{err}");
    }

    #[test]
    fn a_staged_copy_changed_afterwards_fails_the_last_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = b"firmware image bytes".to_vec();
        std::fs::write(dir.path().join("p.bin"), &bytes).expect("write");
        let staged = stage(&package("p.bin", &sha(&bytes)), dir.path(), &dir.path().join("s")).expect("staged");
        std::fs::write(&staged.path, b"firmware image bytez").expect("tamper");
        let mut reader = staged.open_verified().expect("open");
        let mut back = Vec::new();
        let err = reader.read_to_end(&mut back).expect_err("digest differs");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(back.len() < bytes.len(), "the last bytes were withheld");
    }
}
