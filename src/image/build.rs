//! `kiln image build`: from a recipe to a deployable artifact.
//!
//! The artifact, in the output directory:
//! - `NAME.raw`: the raw disk image (sparse where the image has holes),
//! - `NAME.bmap.json`: its block map (mapped ranges, a SHA-256 per range and
//!   for the whole image),
//! - `NAME.seed/user-data` and `NAME.seed/meta-data`: the NoCloud seed,
//! - `NAME.manifest.json`: recipe, versions, sizes and checksums of all of it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::bmap::{BlockMap, BmapError};
use super::digest::Digest;
use super::fetch;
use super::manifest::{BaseRecord, FileRecord, Manifest, SeedRecord, FORMAT, VERSION};
use super::recipe::LoadedRecipe;
use super::seed::{self, ImageIdentity};
use crate::inventory::{format_timestamp, now};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("create output directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read base image {}", path.display())]
    ReadBase {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "recipe {recipe}: base image {} has sha256 {actual}, the recipe says {expected}",
        file.display()
    )]
    BaseChecksum { recipe: String, file: PathBuf, expected: Digest, actual: Digest },
    #[error(
        "recipe {recipe}: download base image {url} (no network? copy the file next to the recipe and use `path`)"
    )]
    Fetch {
        recipe: String,
        url: String,
        #[source]
        source: Box<super::fetch::FetchError>,
    },
    #[error("run {tool} (is it installed? Debian package qemu-utils)")]
    ToolMissing {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed with {status}: {stderr}")]
    ToolFailed { tool: String, status: String, stderr: String },
    #[error("write {}", path.display())]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("make the block map")]
    Bmap {
        #[source]
        source: BmapError,
    },
    #[error("render the cloud-init seed: {why}")]
    Seed { why: String },
    #[error("recipe {recipe} names no base image (give base.path or base.url)")]
    NoBase { recipe: String },
}

impl BuildError {
    /// True when the recipe or its base image is at fault.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            BuildError::BaseChecksum { .. }
                | BuildError::ReadBase { .. }
                | BuildError::Seed { .. }
                | BuildError::NoBase { .. }
        )
    }

    /// True when a peer (the download server) is at fault.
    pub fn is_peer(&self) -> bool {
        matches!(self, BuildError::Fetch { .. })
    }
}

/// Where the artifact's files went.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub manifest_path: PathBuf,
    pub image_path: PathBuf,
    pub bmap_path: PathBuf,
    pub seed_dir: PathBuf,
    pub manifest: Manifest,
}

/// Build `recipe` into `out_dir`; with `node`, the seed carries that node's
/// hostname.
pub fn build(loaded: &LoadedRecipe, out_dir: &Path, node: Option<&str>) -> Result<Artifact, BuildError> {
    let r = &loaded.recipe;
    std::fs::create_dir_all(out_dir).map_err(|source| BuildError::CreateDir { path: out_dir.to_path_buf(), source })?;

    // 1. The base, verified before use.
    let (base_path, source_name) = match (loaded.base_path(), &r.base.url) {
        (Some(p), _) => {
            fetch::verify_file(&r.name, &p, &r.base.sha256)?;
            let shown = r.base.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            (p, shown)
        }
        (None, Some(url)) => {
            let dest = out_dir.join(format!("{}.base.{}", r.name, r.base.format.qemu_name()));
            fetch::download(&r.name, url, &dest, &r.base.sha256)?;
            (dest, url.clone())
        }
        // `recipe::check` refuses such a recipe; a caller that skipped it gets this.
        (None, None) => return Err(BuildError::NoBase { recipe: r.name.clone() }),
    };
    tracing::info!(recipe = %r.name, base = %base_path.display(), "base image verified");

    // 2. Raw, through qemu-img: it converts qcow2 and leaves zero runs as
    // holes in the output for raw input too, so the block map stays small.
    let image_name = format!("{}.raw", r.name);
    let image_path = out_dir.join(&image_name);
    let partial = out_dir.join(format!("{image_name}.partial"));
    let _ = std::fs::remove_file(&partial);
    qemu_img(&["convert", "-f", r.base.format.qemu_name(), "-O", "raw"], &base_path, &partial)?;
    std::fs::rename(&partial, &image_path)
        .map_err(|source| BuildError::WriteFile { path: image_path.clone(), source })?;

    // 3. Block map with digests.
    let file = File::open(&image_path).map_err(|source| BuildError::WriteFile { path: image_path.clone(), source })?;
    let map = BlockMap::create(&file, &image_path).map_err(|source| BuildError::Bmap { source })?;
    let bmap_name = format!("{}.bmap.json", r.name);
    let bmap_path = out_dir.join(&bmap_name);
    map.save(&bmap_path).map_err(|source| BuildError::Bmap { source })?;
    // `create` always sets the whole-image digest; compute it here otherwise.
    let image_sha256 = match map.image_sha256 {
        Some(d) => d,
        None => fetch::hash_file(&image_path)
            .map_err(|source| BuildError::WriteFile { path: image_path.clone(), source })?,
    };

    // 4. NoCloud seed.
    let identity = ImageIdentity {
        recipe: r.name.clone(),
        image_sha256,
        nvidia_driver: r.nvidia.as_ref().map(|n| n.driver.clone()),
        cuda: r.nvidia.as_ref().map(|n| n.cuda.clone()),
    };
    let seed = seed::render(r, &identity, node).map_err(|why| BuildError::Seed { why })?;
    let seed_name = format!("{}.seed", r.name);
    let seed_dir = out_dir.join(&seed_name);
    std::fs::create_dir_all(&seed_dir).map_err(|source| BuildError::CreateDir { path: seed_dir.clone(), source })?;
    for (name, text) in [("user-data", &seed.user_data), ("meta-data", &seed.meta_data)] {
        let p = seed_dir.join(name);
        std::fs::write(&p, text).map_err(|source| BuildError::WriteFile { path: p, source })?;
    }

    // 5. Manifest.
    let bmap_bytes =
        std::fs::read(&bmap_path).map_err(|source| BuildError::WriteFile { path: bmap_path.clone(), source })?;
    let manifest = Manifest {
        format: FORMAT.to_string(),
        version: VERSION,
        recipe: r.name.clone(),
        description: r.description.clone(),
        arch: r.arch,
        platforms: r.platforms.clone(),
        kernel_cmdline: r.kernel_cmdline.clone(),
        nvidia: r.nvidia.clone(),
        // The manifest travels with the artifact: a base URL's user and password stay out of it.
        base: BaseRecord {
            source: crate::redact::userinfo(&source_name).into_owned(),
            sha256: r.base.sha256,
            format: r.base.format,
        },
        image: FileRecord {
            file: image_name,
            size: map.image_size,
            sha256: image_sha256,
            mapped_bytes: Some(map.mapped_bytes),
        },
        bmap: FileRecord {
            file: bmap_name,
            size: bmap_bytes.len() as u64,
            sha256: Digest::of(&bmap_bytes),
            mapped_bytes: None,
        },
        seed: SeedRecord {
            dir: seed_name,
            user_data_sha256: Digest::of(seed.user_data.as_bytes()),
            meta_data_sha256: Digest::of(seed.meta_data.as_bytes()),
        },
        built_at: format_timestamp(now()),
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let manifest_path = out_dir.join(format!("{}.manifest.json", r.name));
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    std::fs::write(&manifest_path, text)
        .map_err(|source| BuildError::WriteFile { path: manifest_path.clone(), source })?;
    tracing::info!(recipe = %r.name, manifest = %manifest_path.display(), "image built");
    Ok(Artifact { manifest_path, image_path, bmap_path, seed_dir, manifest })
}

fn qemu_img(args: &[&str], input: &Path, output: &Path) -> Result<(), BuildError> {
    let out = Command::new("qemu-img")
        .args(args)
        .arg(input)
        .arg(output)
        .output()
        .map_err(|source| BuildError::ToolMissing { tool: "qemu-img".into(), source })?;
    if !out.status.success() {
        return Err(BuildError::ToolFailed {
            tool: "qemu-img".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}
