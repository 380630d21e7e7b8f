//! Getting a recipe's base image: a local file, or a download, checked
//! against the recipe's SHA-256 before anything uses it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use ureq::Agent;

use super::build::BuildError;
use super::digest::Digest;

/// SHA-256 of a file, read in 4 MiB blocks.
pub fn hash_file(path: &Path) -> io::Result<Digest> {
    // A FIFO or a device would block or never end.
    let mut f = crate::input::open_regular(path, crate::input::Input::Artifact)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_hasher(h))
}

/// Check that the file at `path` has digest `want`.
pub fn verify_file(recipe: &str, path: &Path, want: &Digest) -> Result<(), BuildError> {
    let got = hash_file(path).map_err(|source| BuildError::ReadBase { path: path.to_path_buf(), source })?;
    if &got != want {
        return Err(BuildError::BaseChecksum {
            recipe: recipe.to_string(),
            file: path.to_path_buf(),
            expected: *want,
            actual: got,
        });
    }
    Ok(())
}

/// Why an HTTP GET failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("set up TLS to fetch {url}")]
    Tls {
        url: String,
        #[source]
        source: crate::bmc::TlsError,
    },
    #[error("GET {url}")]
    Get {
        url: String,
        // Boxed: ureq's error is large, and this travels inside other errors.
        #[source]
        source: Box<ureq::Error>,
    },
}

/// Start a GET of `url` (http or https, system roots) and answer its body.
pub fn get(url: &str) -> Result<Box<dyn Read + Send>, FetchError> {
    let https = url.starts_with("https://");
    let config = Agent::config_builder()
        .https_only(https)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(20)))
        .build();
    let tls = if https {
        Some(
            crate::bmc::client_config(&crate::bmc::TlsPolicy::SystemRoots)
                .map_err(|source| FetchError::Tls { url: crate::redact::userinfo(url).into_owned(), source })?,
        )
    } else {
        None
    };
    let agent = crate::bmc::agent(config, tls);
    let response = agent.get(url).call().map_err(|source| FetchError::Get {
        url: crate::redact::userinfo(url).into_owned(),
        source: Box::new(source),
    })?;
    Ok(Box::new(response.into_body().into_reader()))
}

/// Download `url` to `dest`, hashing while it arrives; a file already there
/// with the right digest is reused. The download lands in `dest.partial` and
/// is renamed only once its digest matched.
pub fn download(recipe: &str, url: &str, dest: &Path, want: &Digest) -> Result<(), BuildError> {
    if dest.is_file() && hash_file(dest).ok().as_ref() == Some(want) {
        tracing::debug!(file = %dest.display(), "base image already downloaded");
        return Ok(());
    }
    let fetch_err = |source| BuildError::Fetch {
        recipe: recipe.to_string(),
        url: crate::redact::userinfo(url).into_owned(),
        source: Box::new(source),
    };
    let mut body = get(url).map_err(fetch_err)?;
    let partial = PathBuf::from(format!("{}.partial", dest.display()));
    let write_err = |source| BuildError::WriteFile { path: partial.clone(), source };
    let mut out = File::create(&partial).map_err(write_err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = body.read(&mut buf).map_err(|e| {
            fetch_err(FetchError::Get {
                url: crate::redact::userinfo(url).into_owned(),
                source: Box::new(ureq::Error::Io(e)),
            })
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(write_err)?;
    }
    out.sync_all().map_err(write_err)?;
    let got = Digest::from_hasher(h);
    if &got != want {
        let _ = std::fs::remove_file(&partial);
        return Err(BuildError::BaseChecksum {
            recipe: recipe.to_string(),
            file: PathBuf::from(url),
            expected: *want,
            actual: got,
        });
    }
    std::fs::rename(&partial, dest).map_err(|source| BuildError::WriteFile { path: dest.to_path_buf(), source })
}
