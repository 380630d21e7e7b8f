//! The node-binary directory `cargo xtask dist` writes and `kiln rack --dist DIR` reads: its
//! `manifest.json` (`kind: kiln.dist`, docs/fleet.md "Node binaries") and the checks made on it.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::elf;
use crate::input::Input;

/// The manifest's file name inside a dist directory.
pub const MANIFEST: &str = "manifest.json";
pub const KIND: &str = "kiln.dist";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    schema_version: u32,
    kind: String,
    #[serde(default)]
    #[allow(dead_code)] // Shown to people; kiln does not judge it.
    kiln_version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    git_commit: Option<String>,
    targets: Vec<TargetEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    target: String,
    arch: String,
    binary: FileEntry,
    #[serde(default)]
    compressed: Vec<CompressedEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    path: String,
    bytes: u64,
    sha256: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompressedEntry {
    encoding: Encoding,
    path: String,
    bytes: u64,
    sha256: String,
}

/// How a compressed copy is packed; the node unpacks it with the program of
/// the same name. `gzip` is `Essential` on Debian and Ubuntu and `xz` is on
/// every standard install (busybox has both); `zstd` is on many but not all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Zstd,
    Xz,
    Gzip,
}

impl Encoding {
    /// In the order kiln prefers them when a node can unpack several: zstd
    /// is within a tenth of xz on the wire and unpacks about ten times as
    /// fast (a node's first run waits for it), xz is a quarter smaller than
    /// gzip, and gzip is everywhere.
    pub const ALL: [Encoding; 3] = [Encoding::Zstd, Encoding::Xz, Encoding::Gzip];

    /// The program that unpacks it (`PROGRAM -dc < packed > binary`).
    pub fn program(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Xz => "xz",
        }
    }

    pub fn from_program(name: &str) -> Option<Encoding> {
        Encoding::ALL.into_iter().find(|e| e.program() == name)
    }
}

/// One file of the directory, checked to exist with the manifest's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// The manifest's checksum, compared with the file's when it is hashed.
    pub sha256: String,
}

/// One target of the directory: the binary that runs and its compressed copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistTarget {
    pub target: String,
    /// From the binary's ELF header, and equal to the manifest's `arch`.
    pub arch: String,
    pub binary: DistFile,
    pub compressed: Vec<(Encoding, DistFile)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("{}: read the node-binary manifest (build one with `cargo xtask dist --out DIR`)", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: field `{field}`: {message}", path.display())]
    Field { path: PathBuf, field: String, message: String },
}

/// Reads and checks `DIR/manifest.json`: its kind and version, every path
/// inside DIR, every file present with its size, each binary an ELF
/// executable for the manifest's `arch` (its header is read: a file name
/// proves nothing), one target per architecture. The checksums are compared
/// when the files are hashed (`NodeBinary`), on a thread of their own.
pub fn load(dir: &Path) -> Result<Vec<DistTarget>, DistError> {
    let path = dir.join(MANIFEST);
    let text = crate::input::read_to_string(&path, Input::DistManifest)
        .map_err(|source| DistError::Read { path: path.clone(), source })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| DistError::Parse {
        path: path.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let field = |field: String, message: String| DistError::Field { path: path.clone(), field, message };
    if manifest.kind != KIND {
        return Err(field("kind".into(), format!("{:?}: expected {KIND:?}", manifest.kind)));
    }
    if manifest.schema_version != SCHEMA_VERSION {
        return Err(field(
            "schema_version".into(),
            format!("{}: this kiln reads version {SCHEMA_VERSION}", manifest.schema_version),
        ));
    }
    if manifest.targets.is_empty() {
        return Err(field("targets".into(), "no targets: the directory holds no node binary".into()));
    }
    let mut out: Vec<DistTarget> = Vec::with_capacity(manifest.targets.len());
    for (i, t) in manifest.targets.into_iter().enumerate() {
        let at = |name: &str| format!("targets[{i}].{name}");
        let binary = dist_file(dir, &t.binary.path, t.binary.bytes, &t.binary.sha256)
            .map_err(|m| field(at("binary.path"), m))?;
        let arch = elf::file_arch(&binary.path)
            .map_err(|e| field(at("binary.path"), format!("{}: {}", t.binary.path, crate::error::chain(&e))))?;
        if arch != t.arch {
            return Err(field(
                at("arch"),
                format!("{:?}, but {} is an ELF executable for {arch}", t.arch, t.binary.path),
            ));
        }
        if let Some(first) = out.iter().find(|o| o.arch == arch) {
            return Err(field(at("arch"), format!("a second binary for {arch} (the first is {})", first.target)));
        }
        let mut compressed = Vec::with_capacity(t.compressed.len());
        for (j, c) in t.compressed.into_iter().enumerate() {
            let f = dist_file(dir, &c.path, c.bytes, &c.sha256)
                .map_err(|m| field(format!("targets[{i}].compressed[{j}].path"), m))?;
            compressed.push((c.encoding, f));
        }
        out.push(DistTarget { target: t.target, arch: arch.to_string(), binary, compressed });
    }
    Ok(out)
}

/// A file named by the manifest: relative, inside the directory, present
/// with the size the manifest gives, and a well-formed checksum.
fn dist_file(dir: &Path, rel: &str, bytes: u64, sha256: &str) -> Result<DistFile, String> {
    let p = Path::new(rel);
    if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(format!("{rel:?}: must be a path inside the directory (no `/` at the start, no `..`)"));
    }
    if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{rel}: sha256 {sha256:?} is not 64 hex digits"));
    }
    let path = dir.join(p);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{rel}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{rel}: not a regular file"));
    }
    if meta.len() != bytes {
        return Err(format!(
            "{rel}: {} bytes, the manifest says {bytes}: the directory changed since it was written; \
             run `cargo xtask dist` again",
            meta.len()
        ));
    }
    Ok(DistFile { path, bytes, sha256: sha256.to_ascii_lowercase() })
}

/// Writes dist directories for tests the way the format says: per target a
/// binary (an ELF header for the arch, then `payload`) and its copies packed
/// by the real `gzip` and `xz`, and `manifest.json` listing them.
#[cfg(test)]
pub(crate) mod testdist {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use crate::fleet::elf::test_pie;
    use crate::fleet::local_sha256;

    pub struct TestTarget<'a> {
        pub arch: &'a str,
        pub payload: &'a [u8],
        pub packed: &'a [&'a str],
    }

    /// The binary's bytes: a PIE header for `arch`, then `payload`.
    pub fn binary(arch: &str, payload: &[u8]) -> Vec<u8> {
        let mut b = test_pie(arch);
        b.extend_from_slice(payload);
        b
    }

    fn file_entry(dir: &Path, rel: &str) -> serde_json::Value {
        let p = dir.join(rel);
        let bytes = std::fs::metadata(&p).expect("written").len();
        serde_json::json!({"path": rel, "bytes": bytes, "sha256": local_sha256(&p).expect("hash")})
    }

    /// Writes the targets under `dir` and returns the manifest written.
    pub fn write(dir: &Path, targets: &[TestTarget<'_>]) -> serde_json::Value {
        let mut list = Vec::new();
        for t in targets {
            let triple = crate::fleet::elf::rust_target(t.arch);
            std::fs::create_dir_all(dir.join(&triple)).expect("mkdir");
            let rel = format!("{triple}/kiln");
            std::fs::write(dir.join(&rel), binary(t.arch, t.payload)).expect("write binary");
            let mut packed = Vec::new();
            for program in t.packed {
                let suffix = match *program {
                    "gzip" => "gz",
                    "zstd" => "zst",
                    other => other,
                };
                let prel = format!("{rel}.{suffix}");
                pack(program, &dir.join(&rel), &dir.join(&prel));
                let mut e = file_entry(dir, &prel);
                e["encoding"] = serde_json::json!(program);
                packed.push(e);
            }
            list.push(serde_json::json!({
                "target": triple, "arch": t.arch, "binary": file_entry(dir, &rel), "compressed": packed,
            }));
        }
        let manifest = serde_json::json!({
            "schema_version": 1, "kind": "kiln.dist", "kiln_version": "0.1.0", "targets": list,
        });
        rewrite(dir, &manifest);
        manifest
    }

    pub fn rewrite(dir: &Path, manifest: &serde_json::Value) {
        let text = serde_json::to_string_pretty(manifest).expect("json");
        std::fs::write(dir.join(super::MANIFEST), text).expect("write manifest");
    }

    /// `program -c < from > to`, with the real tool.
    pub fn pack(program: &str, from: &Path, to: &Path) {
        let out = Command::new(program)
            .args(["-c", "-q"])
            .stdin(std::fs::File::open(from).expect("open"))
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(out.status.success(), "{program} failed");
        std::fs::write(to, out.stdout).expect("write packed");
    }

    pub fn path(dir: &Path, arch: &str, suffix: &str) -> PathBuf {
        dir.join(format!("{}/kiln{suffix}", crate::fleet::elf::rust_target(arch)))
    }
}
