//! Which kiln binary a node gets: one per CPU architecture (from `--dist DIR`), or one file (the
//! running kiln, or `--node-binary`), each checked against its ELF header and hashed once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::dist::{self, DistError, Encoding};
use super::elf;
use super::transport::TransportError;

/// Where kiln lives on the nodes by default.
pub const DEFAULT_REMOTE_PATH: &str = "/var/lib/kiln/bin/kiln";

/// Where the binaries pushed to the nodes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// The kiln that is running (no `--dist`, no `--node-binary`).
    Running(PathBuf),
    /// `--node-binary FILE`.
    File(PathBuf),
    /// `--dist DIR`: one binary per architecture.
    Dist(PathBuf),
}

/// The kiln binaries to keep on the nodes, at most one per architecture,
/// and the path they live at there.
#[derive(Debug, Clone)]
pub struct RemoteBinary {
    pub remote_path: String,
    pub source: BinarySource,
    binaries: Vec<NodeBinary>,
}

/// One binary for one architecture: the file that runs on the node and the
/// compressed copies of it that may travel instead.
#[derive(Debug, Clone)]
pub struct NodeBinary {
    /// The file that runs on the node; its SHA-256 is what nodes are checked against.
    pub local: PathBuf,
    /// From `local`'s ELF header (`x86_64`, `aarch64`).
    pub arch: String,
    pub bytes: u64,
    /// Compressed copies, in the order `Encoding::ALL` prefers them.
    pub packed: Vec<Packed>,
    hash: Arc<LocalHash>,
}

/// A compressed copy of a binary that unpacks to exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub encoding: Encoding,
    pub path: PathBuf,
    pub bytes: u64,
}

/// What goes over the wire to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire<'a> {
    pub path: &'a Path,
    pub bytes: u64,
    /// `None`: the binary itself.
    pub encoding: Option<Encoding>,
}

/// The local checksums, computed on a thread started with the binary so
/// that hashing overlaps the SSH connections.
#[derive(Debug)]
struct LocalHash {
    value: OnceLock<Result<String, String>>,
    job: Mutex<Option<JoinHandle<Result<String, String>>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("find the running kiln")]
    CurrentExe(#[source] std::io::Error),
    #[error("read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a binary kiln can push", path.display())]
    NotExecutable {
        path: PathBuf,
        #[source]
        source: elf::ElfError,
    },
    #[error(transparent)]
    Dist(#[from] DistError),
}

impl RemoteBinary {
    /// `local` (default: this running kiln) for nodes of the architecture
    /// its ELF header names, kept at `remote_path` on each node.
    pub fn new(local: Option<&Path>, remote_path: &str) -> Result<RemoteBinary, BinaryError> {
        let (local, source) = match local {
            Some(p) => (p.to_path_buf(), BinarySource::File(p.to_path_buf())),
            None => {
                let exe = std::env::current_exe().map_err(BinaryError::CurrentExe)?;
                (exe.clone(), BinarySource::Running(exe))
            }
        };
        let arch = arch_of_file(&local)?;
        let bytes =
            std::fs::metadata(&local).map_err(|source| BinaryError::Read { path: local.clone(), source })?.len();
        let binary = NodeBinary::start(local, arch, bytes, Vec::new(), None);
        Ok(RemoteBinary { remote_path: remote_path.to_string(), source, binaries: vec![binary] })
    }

    /// A file taken to be for `arch` without reading its header: the
    /// fan-out's unit tests push shell scripts that stand in for kiln.
    #[cfg(test)]
    pub(crate) fn unchecked(local: &Path, arch: &str, remote_path: &str) -> RemoteBinary {
        let bytes = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        let binary = NodeBinary::start(local.to_path_buf(), arch.to_string(), bytes, Vec::new(), None);
        RemoteBinary {
            remote_path: remote_path.to_string(),
            source: BinarySource::File(local.to_path_buf()),
            binaries: vec![binary],
        }
    }

    /// Every binary of a `cargo xtask dist` directory (`DIR/manifest.json`),
    /// one per architecture; a node gets the one for the architecture it reports.
    pub fn from_dist(dir: &Path, remote_path: &str) -> Result<RemoteBinary, BinaryError> {
        let targets = dist::load(dir)?;
        let binaries = targets
            .into_iter()
            .map(|t| {
                let mut packed: Vec<(Packed, String)> = t
                    .compressed
                    .into_iter()
                    .map(|(encoding, f)| (Packed { encoding, path: f.path, bytes: f.bytes }, f.sha256))
                    .collect();
                packed.sort_by_key(|(p, _)| p.encoding);
                NodeBinary::start(t.binary.path, t.arch, t.binary.bytes, packed, Some(t.binary.sha256))
            })
            .collect();
        Ok(RemoteBinary {
            remote_path: remote_path.to_string(),
            source: BinarySource::Dist(dir.to_path_buf()),
            binaries,
        })
    }

    pub fn binaries(&self) -> &[NodeBinary] {
        &self.binaries
    }

    /// The binary for a node whose `uname -m` is `uname_m`. The node's
    /// architecture is compared with each binary's ELF header, never with
    /// the controller's: an x86 controller drives aarch64 trays.
    pub fn for_node(&self, node: &str, uname_m: &str) -> Result<&NodeBinary, TransportError> {
        let arch = elf::node_arch(uname_m);
        if let Some(b) = self.binaries.iter().find(|b| b.arch == arch) {
            return Ok(b);
        }
        // A node that would not say (no `uname`) gets the one binary there
        // is; with several, there is nothing to choose by.
        if arch.is_empty() && !matches!(self.source, BinarySource::Dist(_)) {
            if let [only] = self.binaries.as_slice() {
                return Ok(only);
            }
        }
        Err(match &self.source {
            BinarySource::Dist(dir) => TransportError::NoBinaryForArch {
                node: node.to_string(),
                node_arch: arch.clone(),
                dir: dir.clone(),
                has: self.binaries.iter().map(|b| b.arch.as_str()).collect::<Vec<_>>().join(", "),
            },
            BinarySource::Running(path) | BinarySource::File(path) => TransportError::WrongArch {
                node: node.to_string(),
                node_arch: arch.clone(),
                binary: path.clone(),
                binary_arch: self.binaries.first().map(|b| b.arch.clone()).unwrap_or_default(),
            },
        })
    }

    /// `(arch, sha256)` of every binary whose checksum is known (waits for
    /// the hashing); a binary that could not be hashed is left out, so its
    /// nodes take the slow path, where the error is reported.
    pub(crate) fn expected(&self) -> Vec<(&str, &str)> {
        self.binaries.iter().filter_map(|b| b.sha256().ok().map(|h| (b.arch.as_str(), h))).collect()
    }
}

impl NodeBinary {
    fn start(
        local: PathBuf,
        arch: String,
        bytes: u64,
        packed: Vec<(Packed, String)>,
        want: Option<String>,
    ) -> NodeBinary {
        let (path, copies) = (local.clone(), packed.clone());
        let job = std::thread::spawn(move || hash_and_compare(&path, want.as_deref(), &copies));
        NodeBinary {
            local,
            arch,
            bytes,
            packed: packed.into_iter().map(|(p, _)| p).collect(),
            hash: Arc::new(LocalHash { value: OnceLock::new(), job: Mutex::new(Some(job)) }),
        }
    }

    /// Lowercase hex SHA-256 of `local`; waits for the hashing thread. An
    /// error when a file cannot be read or does not match its manifest.
    pub fn sha256(&self) -> Result<&str, String> {
        let value = self.hash.value.get_or_init(|| {
            let job = self.hash.job.lock().ok().and_then(|mut j| j.take());
            match job.map(|j| j.join()) {
                Some(Ok(r)) => r,
                Some(Err(_)) | None => Err(format!("hash {}: the hashing thread failed", self.local.display())),
            }
        });
        value.as_deref().map_err(Clone::clone)
    }

    /// What to send to a node that can unpack `unpack`: the first copy in
    /// `Encoding::ALL`'s order that it can unpack, else the binary itself.
    pub fn wire_for(&self, unpack: &[Encoding]) -> Wire<'_> {
        match self.packed.iter().find(|p| unpack.contains(&p.encoding)) {
            Some(p) => Wire { path: &p.path, bytes: p.bytes, encoding: Some(p.encoding) },
            None => Wire { path: &self.local, bytes: self.bytes, encoding: None },
        }
    }
}

fn arch_of_file(path: &Path) -> Result<String, BinaryError> {
    elf::file_arch(path).map(str::to_string).map_err(|e| match e {
        elf::FileArchError::Read(source) => BinaryError::Read { path: path.to_path_buf(), source },
        elf::FileArchError::Elf(source) => BinaryError::NotExecutable { path: path.to_path_buf(), source },
    })
}

/// The binary's checksum, after comparing it and every compressed copy's
/// with what the manifest says (`want`, and the second of each pair).
fn hash_and_compare(local: &Path, want: Option<&str>, packed: &[(Packed, String)]) -> Result<String, String> {
    let stale = |path: &Path, got: &str, want: &str| {
        format!(
            "{}: sha256 {got}, but the manifest says {want}: the file changed after `cargo xtask dist` wrote \
             the manifest; run it again",
            path.display()
        )
    };
    let got = local_sha256(local).map_err(|e| format!("read {}: {e}", local.display()))?;
    if let Some(w) = want {
        if got != w {
            return Err(stale(local, &got, w));
        }
    }
    for (p, w) in packed {
        let h = local_sha256(&p.path).map_err(|e| format!("read {}: {e}", p.path.display()))?;
        if &h != w {
            return Err(stale(&p.path, &h, w));
        }
    }
    Ok(got)
}

/// SHA-256 of a local file, lowercase hex.
pub fn local_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = crate::input::open_regular(path, crate::input::Input::Artifact)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::dist::testdist::{self, TestTarget};

    fn mixed_rack_dist(dir: &Path) {
        testdist::write(
            dir,
            &[
                TestTarget { arch: "x86_64", payload: b"kiln for x86", packed: &["gzip", "xz"] },
                TestTarget { arch: "aarch64", payload: b"kiln for grace", packed: &["gzip"] },
            ],
        );
    }

    #[test]
    fn each_node_gets_the_binary_for_the_architecture_it_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        mixed_rack_dist(dir.path());
        let set = RemoteBinary::from_dist(dir.path(), DEFAULT_REMOTE_PATH).expect("dist");
        let grace = set.for_node("tray01", "aarch64\n").expect("aarch64 binary");
        assert_eq!(grace.local, testdist::path(dir.path(), "aarch64", ""));
        assert_eq!(grace.arch, "aarch64");
        assert_eq!(set.for_node("tray02", "arm64").expect("alias").arch, "aarch64");
        let hgx = set.for_node("hgx01", "x86_64").expect("x86 binary");
        assert_eq!(hgx.local, testdist::path(dir.path(), "x86_64", ""));
        assert_eq!(hgx.sha256().expect("hash"), local_sha256(&hgx.local).expect("hash"));
        // The guard knows both checksums, each under its architecture.
        let expected = set.expected();
        assert_eq!(expected.len(), 2);
        assert!(expected.contains(&("aarch64", grace.sha256().expect("hash"))));
    }

    #[test]
    fn a_node_whose_architecture_the_directory_lacks_fails_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        mixed_rack_dist(dir.path());
        let set = RemoteBinary::from_dist(dir.path(), DEFAULT_REMOTE_PATH).expect("dist");
        let e = set.for_node("rv01", "riscv64").expect_err("no riscv64 binary");
        let text = e.to_string();
        assert!(matches!(&e, TransportError::NoBinaryForArch { node_arch, .. } if node_arch == "riscv64"), "{e:?}");
        assert!(text.starts_with("rv01: "), "{text}");
        assert!(text.contains("no kiln for riscv64 (it has x86_64, aarch64)"), "{text}");
        assert!(text.contains("cargo xtask dist --target riscv64gc-unknown-linux-gnu"), "{text}");
    }

    #[test]
    fn one_binary_is_checked_against_its_elf_header_not_this_machine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let grace = dir.path().join("kiln-grace");
        std::fs::write(&grace, testdist::binary("aarch64", b"payload")).expect("write");
        // Pushed from any controller, an aarch64 binary is right for an
        // aarch64 node and wrong for an x86 one.
        let set = RemoteBinary::new(Some(&grace), DEFAULT_REMOTE_PATH).expect("binary");
        assert_eq!(set.binaries()[0].arch, "aarch64");
        assert_eq!(set.for_node("tray01", "aarch64").expect("right arch").local, grace);
        let e = set.for_node("hgx01", "x86_64").expect_err("wrong arch");
        let text = e.to_string();
        assert!(text.contains("the node is x86_64 and"), "{text}");
        assert!(text.contains("kiln-grace is built for aarch64"), "{text}");
        assert!(text.contains("--dist DIR"), "{text}");
        // A file named for one architecture but built for another is taken
        // for what its header says.
        let named = dir.path().join("kiln-aarch64");
        std::fs::write(&named, testdist::binary("x86_64", b"payload")).expect("write");
        let set = RemoteBinary::new(Some(&named), DEFAULT_REMOTE_PATH).expect("binary");
        assert_eq!(set.binaries()[0].arch, "x86_64");
        // A script is not a binary kiln can push.
        let script = dir.path().join("install-kiln.sh");
        std::fs::write(&script, b"#!/bin/sh\n").expect("write");
        let e = RemoteBinary::new(Some(&script), DEFAULT_REMOTE_PATH).expect_err("not ELF");
        assert!(crate::error::chain(&e).contains("not an ELF file"), "{e}");
    }

    #[test]
    fn the_preferred_copy_the_node_can_unpack_travels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let payload = "kiln ".repeat(20_000);
        testdist::write(
            dir.path(),
            &[TestTarget { arch: "x86_64", payload: payload.as_bytes(), packed: &["gzip", "xz", "zstd"] }],
        );
        let set = RemoteBinary::from_dist(dir.path(), DEFAULT_REMOTE_PATH).expect("dist");
        let b = set.for_node("n", "x86_64").expect("binary");
        let order: Vec<Encoding> = b.packed.iter().map(|p| p.encoding).collect();
        assert_eq!(order, Encoding::ALL, "in the order of preference, whatever the manifest's");
        let all = b.wire_for(&[Encoding::Gzip, Encoding::Xz, Encoding::Zstd]);
        assert_eq!(
            (all.encoding, all.path),
            (Some(Encoding::Zstd), testdist::path(dir.path(), "x86_64", ".zst").as_path())
        );
        assert_eq!(b.wire_for(&[Encoding::Gzip, Encoding::Xz]).encoding, Some(Encoding::Xz));
        let gz = b.wire_for(&[Encoding::Gzip]);
        assert_eq!(
            (gz.encoding, gz.path),
            (Some(Encoding::Gzip), testdist::path(dir.path(), "x86_64", ".gz").as_path())
        );
        assert!(gz.bytes < b.bytes, "packed is smaller");
        let none = b.wire_for(&[]);
        assert_eq!((none.encoding, none.path, none.bytes), (None, b.local.as_path(), b.bytes));
    }

    /// Loads a directory whose manifest was changed by `edit`, expecting an error.
    fn refused(edit: impl FnOnce(&Path, &mut serde_json::Value)) -> String {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut m = testdist::write(
            dir.path(),
            &[
                TestTarget { arch: "x86_64", payload: b"x", packed: &["gzip"] },
                TestTarget { arch: "aarch64", payload: b"a", packed: &[] },
            ],
        );
        edit(dir.path(), &mut m);
        testdist::rewrite(dir.path(), &m);
        let e = RemoteBinary::from_dist(dir.path(), DEFAULT_REMOTE_PATH).expect_err("refused");
        crate::error::chain(&e)
    }

    #[test]
    fn a_bad_manifest_is_refused_naming_the_field() {
        let e = refused(|_, m| m["kind"] = "kiln.rack".into());
        assert!(e.ends_with("manifest.json: field `kind`: \"kiln.rack\": expected \"kiln.dist\""), "{e}");
        let e = refused(|_, m| m["schema_version"] = 2.into());
        assert!(e.contains("field `schema_version`: 2: this kiln reads version 1"), "{e}");
        let e = refused(|_, m| m["targets"][1]["arch"] = "x86_64".into());
        assert!(e.contains("field `targets[1].arch`: \"x86_64\", but aarch64-unknown-linux-gnu/kiln is an ELF executable for aarch64"), "{e}");
        let e = refused(|_, m| m["targets"][0]["binary"]["path"] = "../kiln".into());
        assert!(e.contains("field `targets[0].binary.path`: \"../kiln\": must be a path inside the directory"), "{e}");
        let e = refused(|_, m| m["targets"][0]["binary"]["path"] = "/usr/bin/kiln".into());
        assert!(e.contains("must be a path inside the directory"), "{e}");
        let e = refused(|_, m| m["targets"][0]["compressed"][0]["bytes"] = 1.into());
        assert!(e.contains("field `targets[0].compressed[0].path`"), "{e}");
        assert!(e.contains("the manifest says 1"), "{e}");
        let e = refused(|_, m| m["targets"][0]["compressed"][0]["encoding"] = "lz4".into());
        assert!(e.contains("manifest.json:"), "{e}");
        assert!(e.contains("unknown variant `lz4`"), "{e}");
        let e = refused(|_, m| m["targets"][0]["extra"] = 1.into());
        assert!(e.contains("unknown field `extra`"), "{e}");
        let e = refused(|dir, m| {
            // Both entries the same x86 file: one architecture twice.
            m["targets"][1] = m["targets"][0].clone();
            let _ = dir;
        });
        assert!(e.contains("field `targets[1].arch`: a second binary for x86_64"), "{e}");
        let e = refused(|dir, m| {
            std::fs::write(testdist::path(dir, "aarch64", ""), b"#!/bin/sh\n").expect("write");
            m["targets"][1]["binary"]["bytes"] = 10.into();
        });
        assert!(e.contains("aarch64-unknown-linux-gnu/kiln: not an ELF file"), "{e}");
        let e = refused(|_, m| m["targets"] = serde_json::json!([]));
        assert!(e.contains("no targets"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let e = RemoteBinary::from_dist(dir.path(), DEFAULT_REMOTE_PATH).expect_err("no manifest");
        assert!(crate::error::chain(&e).contains("cargo xtask dist --out DIR"), "{e}");
    }

    #[test]
    fn a_file_changed_after_the_manifest_was_written_is_not_pushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        testdist::write(dir.path(), &[TestTarget { arch: "x86_64", payload: b"v1", packed: &["gzip"] }]);
        // Same size, other bytes: only the checksum tells.
        let bin = testdist::path(dir.path(), "x86_64", "");
        std::fs::write(&bin, testdist::binary("x86_64", b"v2")).expect("rewrite");
        let set = RemoteBinary::from_dist(dir.path(), DEFAULT_REMOTE_PATH).expect("sizes still match");
        let e = set.for_node("n", "x86_64").expect("binary").sha256().expect_err("stale");
        assert!(e.contains("x86_64-unknown-linux-gnu/kiln: sha256 ") && e.contains("run it again"), "{e}");
        assert!(set.expected().is_empty(), "a binary that does not match is never what a node should have");
    }
}
