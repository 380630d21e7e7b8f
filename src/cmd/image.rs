//! `kiln image`: build an artifact from a recipe, write an image to a disk,
//! wipe a disk's partition tables.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::cli::{ImageCommand, ImageWriteArgs};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::error::chain;
use crate::exit;
use crate::image::digest::Digest;
use crate::image::fetch::FetchError;
use crate::image::progress::{for_stderr, human};
use crate::image::{
    build, fetch, recipe, synth, wipe, BlockMap, BmapError, FileSource, ImageSource, Manifest, ManifestError,
    StreamSource, Target, WriteError, WriteFailure, WriteOptions, WriteReport,
};
use crate::inventory::{ImageWrite, Inventory};
use crate::notice::{Notice, Notices};
use crate::redact;

pub fn run(command: &ImageCommand, notices: &dyn Notices) -> CmdResult {
    match command {
        ImageCommand::Build { recipe, out, node, json } => build_cmd(recipe, out, node.as_deref(), *json),
        ImageCommand::Write(args) => write_cmd(args, notices),
        ImageCommand::Wipe { target } => wipe_cmd(target),
        ImageCommand::PxeConfig(args) => crate::cmd::image_boot::pxe_config(args),
        ImageCommand::Dnsmasq(args) => crate::cmd::image_boot::dnsmasq(args),
        ImageCommand::Serve { dir, listen } => crate::cmd::image_boot::serve(dir, *listen),
        ImageCommand::Synth { path, size_mib, mapped_permille, seed, bmap } => {
            synth::generate(path, size_mib << 20, *mapped_permille, *seed)
                .with_context(|| format!("write synthetic image {}", path.display()))?;
            if let Some(out) = bmap {
                let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
                BlockMap::create(&file, path).and_then(|m| m.save(out)).map_err(anyhow::Error::from)?;
            }
            Ok(Outcome::ok())
        }
    }
}

fn build_cmd(recipe_path: &Path, out: &Path, node: Option<&str>, json_out: bool) -> CmdResult {
    let loaded = recipe::load(recipe_path)?;
    let a = build(&loaded, out, node)?;
    let mut o = crate::terminal::stdout();
    if json_out {
        let doc = ImageBuildDocument {
            schema_version: IMAGE_SCHEMA_VERSION,
            kind: "kiln.image-build",
            manifest: &a.manifest,
        };
        writeln!(o, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        let m = &a.manifest;
        writeln!(o, "built {} ({})", m.recipe, a.manifest_path.display())?;
        writeln!(
            o,
            "  image  {}  {} ({} mapped)  sha256 {}",
            a.image_path.display(),
            human(m.image.size),
            human(m.image.mapped_bytes.unwrap_or(0)),
            m.image.sha256
        )?;
        writeln!(o, "  bmap   {}", a.bmap_path.display())?;
        writeln!(o, "  seed   {}/{{user-data,meta-data}}", a.seed_dir.display())?;
    }
    Ok(Outcome::ok())
}

/// `schema_version` of the `kiln.image-build` and `kiln.image-write` documents; bumped on any
/// change a consumer could notice.
pub const IMAGE_SCHEMA_VERSION: u32 = 1;

/// `kiln image build --json`: the artifact's manifest (`NAME.manifest.json`, with its own
/// `format` and `version`), its fields beside `schema_version` and `kind`.
#[derive(Debug, Serialize)]
pub struct ImageBuildDocument<'a> {
    pub schema_version: u32,
    pub kind: &'static str,
    #[serde(flatten)]
    pub manifest: &'a Manifest,
}

/// `kiln image write --json`: how the write ended.
#[derive(Debug, Serialize)]
pub struct ImageWriteDocument<'a> {
    pub schema_version: u32,
    pub kind: &'static str,
    #[serde(flatten)]
    pub written: ImageWritten<'a>,
}

impl<'a> ImageWriteDocument<'a> {
    pub fn new(written: ImageWritten<'a>) -> Self {
        ImageWriteDocument { schema_version: IMAGE_SCHEMA_VERSION, kind: "kiln.image-write", written }
    }
}

/// The write's end, tagged by `outcome`.
#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ImageWritten<'a> {
    /// Written and read back: every field of the writer's report.
    Ok(&'a WriteReport),
    /// Failed: the error, what the target holds now, and the exit code kiln gives.
    Failed { image: String, target: &'a Path, error: String, target_state: crate::image::TargetState, exit_code: i32 },
}

/// Why the image to write, or its block map, could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ImageSourceError {
    /// The artifact manifest named as the image (exit 4).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An image or block map URL could not be fetched (exit 6).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A block map URL answered, but its body could not be read (exit 6).
    #[error("read block map {url}")]
    ReadRemoteMap {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// A block map that does not parse, or an image that cannot be scanned for one (exit 4).
    #[error(transparent)]
    Map(#[from] BmapError),
    /// A block map file named by a manifest could not be read to check it (exit 4).
    #[error("read block map {}", path.display())]
    ReadMap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A block map that is not the one its manifest names (exit 4).
    #[error("block map {} has sha256 {got}, its manifest says {want}", path.display())]
    MapMismatch { path: PathBuf, got: Digest, want: Digest },
    /// A block map fetched from a URL that is not the one its manifest names (exit 4).
    #[error("block map {url} has sha256 {got}, its manifest says {want}")]
    RemoteMapMismatch { url: String, got: Digest, want: Digest },
    /// A stream (URL, standard input) without `--bmap` (exit 2).
    #[error("writing from {from} needs --bmap (its size and ranges)")]
    NeedsMap { from: &'static str },
    /// The image is the target (exit 4).
    #[error("image {} and target {} are the same file", image.display(), target.display())]
    SameFile { image: PathBuf, target: PathBuf },
    /// The image file could not be opened (exit 4).
    #[error(transparent)]
    Open(WriteError),
}

impl ImageSourceError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ImageSourceError::Fetch(_) | ImageSourceError::ReadRemoteMap { .. } => exit::PEER,
            ImageSourceError::NeedsMap { .. } => exit::USAGE,
            _ => exit::BAD_INPUT,
        }
    }
}

/// An image to write: its source, its block map, and the whole image's digest its artifact
/// manifest records (when written from one).
type Opened = (Box<dyn ImageSource>, BlockMap, Option<Digest>);

/// The image source and its block map, from the command line. From an artifact manifest, the
/// block map must be the one the manifest names by digest, local or fetched.
fn open_image(args: &ImageWriteArgs) -> Result<Opened, ImageSourceError> {
    let (image_path, bmap_path, expect_bmap_sha, expect_image_sha) =
        if args.image.to_string_lossy().ends_with(".manifest.json") {
            let m = Manifest::load(&args.image)?;
            let (img, map) = m.files(&args.image);
            (img, Some(args.bmap.clone().unwrap_or(map)), Some(m.bmap.sha256), Some(m.image.sha256))
        } else {
            (args.image.clone(), args.bmap.clone(), None, None)
        };
    let map = match &bmap_path {
        Some(p) if is_url(p) => {
            let url = p.to_string_lossy();
            let shown = || redact::userinfo(&url).into_owned();
            let body = fetch::get(&url)?;
            let text = crate::input::read_all_to_string(body, crate::input::Input::BlockMap)
                .map_err(|source| ImageSourceError::ReadRemoteMap { url: shown(), source })?;
            if let Some(want) = expect_bmap_sha {
                let got = Digest::of(text.as_bytes());
                if got != want {
                    return Err(ImageSourceError::RemoteMapMismatch { url: shown(), got, want });
                }
            }
            Some(BlockMap::parse(&text, p)?)
        }
        Some(p) => {
            if let Some(want) = expect_bmap_sha {
                let got =
                    fetch::hash_file(p).map_err(|source| ImageSourceError::ReadMap { path: p.clone(), source })?;
                if got != want {
                    return Err(ImageSourceError::MapMismatch { path: p.clone(), got, want });
                }
            }
            Some(BlockMap::load(p)?)
        }
        None => None,
    };
    if is_url(&image_path) {
        let Some(map) = map else {
            return Err(ImageSourceError::NeedsMap { from: "a URL" });
        };
        let url = image_path.to_string_lossy().into_owned();
        let body = fetch::get(&url)?;
        return Ok((Box::new(StreamSource::new(body, url)), map, expect_image_sha));
    }
    if image_path == Path::new("-") {
        let Some(map) = map else {
            return Err(ImageSourceError::NeedsMap { from: "standard input" });
        };
        return Ok((Box::new(StreamSource::new(std::io::stdin(), "standard input")), map, expect_image_sha));
    }
    if same_file(&image_path, &args.target) {
        return Err(ImageSourceError::SameFile { image: image_path, target: args.target.clone() });
    }
    let source = FileSource::open(&image_path).map_err(|source| {
        ImageSourceError::Open(WriteError::OpenSource { name: image_path.display().to_string(), source })
    })?;
    let map = match map {
        Some(m) => m,
        None => BlockMap::scan(source.file(), source.path())?,
    };
    Ok((Box::new(source), map, expect_image_sha))
}

/// True when both paths exist and are one file (writing an image onto
/// itself would cut it to nothing before reading it).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn is_url(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.starts_with("http://") || s.starts_with("https://")
}

fn write_cmd(args: &ImageWriteArgs, notices: &dyn Notices) -> CmdResult {
    let (mut source, map, manifest_sha) = open_image(args)?;
    let opts = WriteOptions {
        direct: !args.no_direct,
        preserve_on_error: args.preserve_on_error,
        image_sha256: manifest_sha,
        ..Default::default()
    };
    let mut progress = for_stderr(args.json);
    let started = std::time::Instant::now();
    let result = crate::image::write_image(source.as_mut(), &map, &args.target, &opts, progress.as_mut());
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let code = match &result {
        Ok(_) => exit::OK,
        Err(f) if f.error.is_bad_image() => exit::BAD_INPUT,
        Err(_) => exit::TARGET_FAILED,
    };
    let mut out = crate::terminal::stdout();
    match &result {
        Ok(r) => {
            for n in &r.notes {
                notices.notice(Notice::Note(n));
            }
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&ImageWriteDocument::new(ImageWritten::Ok(r)))?)?;
            } else {
                writeln!(out, "{}", summary(r))?;
            }
        }
        Err(f) => {
            if args.json {
                let failed = ImageWritten::Failed {
                    image: source.name(),
                    target: &args.target,
                    error: chain(f),
                    target_state: f.target,
                    exit_code: code,
                };
                writeln!(out, "{}", serde_json::to_string_pretty(&ImageWriteDocument::new(failed))?)?;
            }
        }
    }
    let recorded = match &args.db {
        Some(db) => record(db, args, &map, source.name(), &result, elapsed_ms),
        None => Ok(()),
    };
    // The write's own failure comes first and decides the exit code; a record that failed
    // after a good write gives DATABASE.
    let outcome = match result {
        Ok(_) => Outcome::ok(),
        Err(f) => Outcome::from(CmdError::Write(f)),
    };
    match recorded {
        Ok(()) => Ok(outcome),
        Err(source) if outcome.code() == exit::OK => Err(CmdError::WriteNotRecorded { source, written: true }.into()),
        Err(source) => Ok(outcome.with_error(CmdError::WriteNotRecorded { source, written: false })),
    }
}

fn summary(r: &WriteReport) -> String {
    let sha = r.image_sha256.map(|d| format!(" sha256 {d}")).unwrap_or_default();
    format!(
        "wrote {} to {}: {} of {} mapped, {} ranges verified, {:.1}s ({}/s){sha}",
        r.image,
        r.target.display(),
        human(r.bytes_written),
        human(r.image_size),
        r.ranges_verified,
        r.seconds,
        human((r.bytes_written as f64 / r.seconds.max(1e-9)) as u64),
    )
}

fn record(
    db: &PathBuf,
    args: &ImageWriteArgs,
    map: &BlockMap,
    image: String,
    result: &Result<WriteReport, WriteFailure>,
    elapsed_ms: u64,
) -> Result<(), crate::inventory::InventoryError> {
    let mut inv = Inventory::open(db)?;
    let target = args.target.display().to_string();
    // Only a digest the write proved is recorded: a failed write has none.
    let sha = result.as_ref().ok().and_then(|r| r.image_sha256).map(|d| d.to_string());
    let (ok, written, state, error) = match result {
        Ok(r) => (true, r.bytes_written, None, None),
        Err(f) => (false, 0, Some(f.target.as_str()), Some(chain(f))),
    };
    inv.record_image_write(&ImageWrite {
        hostname: args.node.as_deref(),
        target: &target,
        image: &image,
        image_sha256: sha.as_deref(),
        image_size: map.image_size,
        bytes_written: written,
        duration_ms: elapsed_ms,
        ok,
        target_state: state,
        error: error.as_deref(),
    })?;
    Ok(())
}

fn wipe_cmd(target: &Path) -> CmdResult {
    // Opening creates a missing file; a wipe must never do that.
    if !target.exists() {
        return Err(CmdError::BadInput(format!("{} does not exist", target.display())).into());
    }
    let t = Target::open(target, false).map_err(CmdError::TargetOpen)?;
    wipe::wipe(&t, t.size).map_err(|source| CmdError::Wipe { target: target.to_path_buf(), source })?;
    crate::terminal::println(format_args!("wiped the first and last MiB of {}", target.display()));
    Ok(Outcome::ok())
}
