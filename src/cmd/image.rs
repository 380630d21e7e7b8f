//! `kiln image`: build an artifact from a recipe, write an image to a disk,
//! wipe a disk's partition tables.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::cli::{ImageCommand, ImageWriteArgs};
use crate::error::chain;
use crate::exit;
use crate::image::progress::{for_stderr, human};
use crate::image::{
    build, fetch, recipe, synth, wipe, BlockMap, Digest, FileSource, ImageSource, Manifest, StreamSource, Target,
    WriteError, WriteFailure, WriteOptions, WriteReport,
};
use crate::inventory::{ImageWrite, Inventory};
use crate::redact;

/// The most of a block map read from a URL (the agent reads at most as much).
const MAX_BMAP_BYTES: u64 = 64 << 20;

pub fn run(command: &ImageCommand) -> anyhow::Result<i32> {
    match command {
        ImageCommand::Build { recipe, out, node, json } => build_cmd(recipe, out, node.as_deref(), *json),
        ImageCommand::Write(args) => write_cmd(args),
        ImageCommand::Wipe { target } => wipe_cmd(target),
        ImageCommand::PxeConfig(args) => crate::cmd::image_boot::pxe_config(args),
        ImageCommand::Dnsmasq(args) => crate::cmd::image_boot::dnsmasq(args),
        ImageCommand::Serve { dir, listen } => crate::cmd::image_boot::serve(dir, *listen),
        ImageCommand::Synth { path, size_mib, mapped_permille, seed, bmap } => {
            synth::generate(path, size_mib << 20, *mapped_permille, *seed)
                .with_context(|| format!("write synthetic image {}", path.display()))?;
            if let Some(out) = bmap {
                let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
                BlockMap::create(&file, path)?.save(out)?;
            }
            Ok(exit::OK)
        }
    }
}

fn build_cmd(recipe_path: &Path, out: &Path, node: Option<&str>, json_out: bool) -> anyhow::Result<i32> {
    let loaded = match recipe::load(recipe_path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kiln: error: {}", chain(&e));
            if let recipe::RecipeError::Invalid { file, issues } = &e {
                for i in issues.iter().skip(1) {
                    eprintln!(
                        "kiln: error: {}:{}:{}: field `{}`: {}",
                        file.display(),
                        i.line,
                        i.column,
                        i.field,
                        i.message
                    );
                }
            }
            return Ok(exit::BAD_INPUT);
        }
    };
    match build(&loaded, out, node) {
        Ok(a) => {
            let stdout = std::io::stdout();
            let mut o = stdout.lock();
            if json_out {
                writeln!(o, "{}", serde_json::to_string_pretty(&a.manifest).unwrap_or_default())?;
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
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("kiln: error: {}", chain(&e));
            Ok(if e.is_bad_input() {
                exit::BAD_INPUT
            } else if e.is_peer() {
                exit::PEER
            } else {
                exit::INTERNAL
            })
        }
    }
}

/// An image to write: its source, its block map, and the whole image's digest its artifact
/// manifest records (when written from one).
type Opened = (Box<dyn ImageSource>, BlockMap, Option<Digest>);

/// The image source and its block map, from the command line. From an artifact manifest, the
/// block map must be the one the manifest names by digest, local or fetched.
fn open_image(args: &ImageWriteArgs) -> Result<Opened, (i32, String)> {
    let bad = |msg: String| (exit::BAD_INPUT, msg);
    let (image_path, bmap_path, expect_bmap_sha, expect_image_sha) =
        if args.image.to_string_lossy().ends_with(".manifest.json") {
            let m = Manifest::load(&args.image).map_err(|e| bad(chain(&e)))?;
            let (img, map) = m.files(&args.image);
            (img, Some(args.bmap.clone().unwrap_or(map)), Some(m.bmap.sha256), Some(m.image.sha256))
        } else {
            (args.image.clone(), args.bmap.clone(), None, None)
        };
    let map = match &bmap_path {
        Some(p) if is_url(p) => {
            let url = p.to_string_lossy();
            let mut text = String::new();
            fetch::get(&url)
                .map_err(|e| (exit::PEER, chain(&e)))?
                .take(MAX_BMAP_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| (exit::PEER, format!("read block map {}: {e}", redact::userinfo(&url))))?;
            if let Some(want) = expect_bmap_sha {
                let got = Digest::of(text.as_bytes());
                if got != want {
                    return Err(bad(format!(
                        "block map {} has sha256 {got}, its manifest says {want}",
                        redact::userinfo(&url)
                    )));
                }
            }
            Some(BlockMap::parse(&text, p).map_err(|e| bad(chain(&e)))?)
        }
        Some(p) => {
            if let Some(want) = expect_bmap_sha {
                let got = fetch::hash_file(p).map_err(|e| bad(format!("read block map {}: {e}", p.display())))?;
                if got != want {
                    return Err(bad(format!("block map {} has sha256 {got}, its manifest says {want}", p.display())));
                }
            }
            Some(BlockMap::load(p).map_err(|e| bad(chain(&e)))?)
        }
        None => None,
    };
    if is_url(&image_path) {
        let Some(map) = map else {
            return Err((exit::USAGE, "writing from a URL needs --bmap (its size and ranges)".into()));
        };
        let url = image_path.to_string_lossy().into_owned();
        let body = fetch::get(&url).map_err(|e| (exit::PEER, chain(&e)))?;
        return Ok((Box::new(StreamSource::new(body, url)), map, expect_image_sha));
    }
    if image_path == Path::new("-") {
        let Some(map) = map else {
            return Err((exit::USAGE, "writing from standard input needs --bmap (its size and ranges)".into()));
        };
        return Ok((Box::new(StreamSource::new(std::io::stdin(), "standard input")), map, expect_image_sha));
    }
    if same_file(&image_path, &args.target) {
        return Err(bad(format!(
            "image {} and target {} are the same file",
            image_path.display(),
            args.target.display()
        )));
    }
    let source = FileSource::open(&image_path)
        .map_err(|e| bad(chain(&WriteError::OpenSource { name: image_path.display().to_string(), source: e })))?;
    let map = match map {
        Some(m) => m,
        None => BlockMap::scan(source.file(), source.path()).map_err(|e| bad(chain(&e)))?,
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

fn write_cmd(args: &ImageWriteArgs) -> anyhow::Result<i32> {
    let (mut source, map, manifest_sha) = match open_image(args) {
        Ok(x) => x,
        Err((code, msg)) => {
            eprintln!("kiln: error: {msg}");
            return Ok(code);
        }
    };
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
    let mut code = match &result {
        Ok(_) => exit::OK,
        Err(f) if f.error.is_bad_image() => exit::BAD_INPUT,
        Err(_) => exit::TARGET_FAILED,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match &result {
        Ok(r) => {
            for n in &r.notes {
                eprintln!("kiln: note: {n}");
            }
            if args.json {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["outcome"] = json!("ok");
                writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
            } else {
                writeln!(out, "{}", summary(r))?;
            }
        }
        Err(f) => {
            eprintln!("kiln: error: {}", chain(f));
            eprintln!("kiln: {}", f.target);
            if args.json {
                let v = json!({
                    "outcome": "failed",
                    "image": source.name(),
                    "target": args.target,
                    "error": chain(f),
                    "target_state": f.target,
                    "exit_code": code,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
            }
        }
    }
    if let Some(db) = &args.db {
        if let Err(e) = record(db, args, &map, source.name(), &result, elapsed_ms) {
            eprintln!("kiln: error: {}", chain(&e));
            if code == exit::OK {
                eprintln!("kiln: the image was written and verified; only recording it failed");
                code = exit::DATABASE;
            }
        }
    }
    Ok(code)
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

fn wipe_cmd(target: &Path) -> anyhow::Result<i32> {
    // Opening creates a missing file; a wipe must never do that.
    if !target.exists() {
        eprintln!("kiln: error: {} does not exist", target.display());
        return Ok(exit::BAD_INPUT);
    }
    let t = match Target::open(target, false) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kiln: error: {}", chain(&e));
            return Ok(exit::TARGET_FAILED);
        }
    };
    match wipe::wipe(&t, t.size) {
        Ok(()) => {
            println!("wiped the first and last MiB of {}", target.display());
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("kiln: error: wipe {}: {e}", target.display());
            Ok(exit::TARGET_FAILED)
        }
    }
}
