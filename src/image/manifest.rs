//! The artifact manifest: what was built, from what, with which checksums.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::recipe::{Arch, ImageFormat, NvidiaStack};

/// The `format` field of every manifest kiln writes.
pub const FORMAT: &str = "kiln-image-manifest";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub recipe: String,
    pub description: String,
    pub arch: Arch,
    pub platforms: Vec<String>,
    pub kernel_cmdline: String,
    pub nvidia: Option<NvidiaStack>,
    pub base: BaseRecord,
    pub image: FileRecord,
    pub bmap: FileRecord,
    pub seed: SeedRecord,
    pub built_at: String,
    pub kiln_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseRecord {
    /// The path or URL the recipe named.
    pub source: String,
    pub sha256: Digest,
    pub format: ImageFormat,
}

/// A file of the artifact, named relative to the manifest's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub file: String,
    pub size: u64,
    pub sha256: Digest,
    /// For the image: bytes inside mapped ranges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRecord {
    pub dir: String,
    pub user_data_sha256: Digest,
    pub meta_data_sha256: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("read manifest {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse manifest {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("manifest {}: format {found:?} version {version} is not a kiln image manifest version {VERSION}", path.display())]
    Unsupported { path: PathBuf, found: String, version: u32 },
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = crate::input::read_to_string(path, crate::input::Input::ArtifactManifest)
            .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|source| ManifestError::Parse { path: path.to_path_buf(), source })?;
        if m.format != FORMAT || m.version != VERSION {
            return Err(ManifestError::Unsupported { path: path.to_path_buf(), found: m.format, version: m.version });
        }
        Ok(m)
    }

    /// The raw image and block map paths, resolved next to the manifest.
    pub fn files(&self, manifest_path: &Path) -> (PathBuf, PathBuf) {
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        (dir.join(&self.image.file), dir.join(&self.bmap.file))
    }
}
