//! Reading what kiln did not write: regular files only, and never more than a cap per kind of input.
//!
//! Every file kiln parses from the user or the machine (sysfs and procfs values, captures, NVML
//! dumps and telemetry recordings, specs, manifests, recipes, block maps, node JSON, password
//! and token files, the kernel command line) is read here. A FIFO would block the open forever
//! and `/dev/zero` never ends, so the file is opened without blocking and refused unless it is a
//! regular file, and at most the kind's cap is read: a larger file is an error naming the cap,
//! never a truncated parse.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A kind of input, with the most kiln reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A sysfs or procfs attribute (most are a page; `/proc/cpuinfo` of a
    /// few hundred CPUs is a few hundred KiB).
    SysFile,
    /// `kiln/unreadable.json` of a capture.
    CaptureIndex,
    /// `kiln/nvml.json` of a capture.
    NvmlDump,
    /// `kiln/telemetry.json` of a capture: burn-in telemetry recorded for replay.
    TelemetryRecording,
    /// A platform spec (`checks/platforms/*.toml`).
    Spec,
    /// A rack manifest.
    RackManifest,
    /// An image recipe (`images/*.toml`).
    Recipe,
    /// A bill of materials (TOML or CSV).
    Bom,
    /// An artifact manifest (`NAME.manifest.json`), or an image's own record.
    ArtifactManifest,
    /// The node-binary manifest of a `cargo xtask dist` directory (`manifest.json`).
    DistManifest,
    /// A block map (`NAME.bmap.json`): one entry per mapped range.
    BlockMap,
    /// A node's JSON (`kiln inspect --json`).
    NodeJson,
    /// A password, token or CA file.
    Secret,
    /// `/proc/cmdline` or a file standing for it.
    KernelCmdline,
    /// dnsmasq's DHCP lease file (one short line per lease).
    DhcpLeases,
    /// An artifact file that is hashed or streamed, not parsed (an image,
    /// a base image): any size, but a regular file.
    Artifact,
}

impl Input {
    /// The most bytes kiln reads of this kind.
    pub fn limit(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            Input::SysFile => 4 * MIB,
            Input::CaptureIndex => 16 * MIB,
            Input::NvmlDump => 64 * MIB,
            Input::TelemetryRecording => 64 * MIB,
            Input::Spec => 4 * MIB,
            Input::RackManifest => 16 * MIB,
            Input::Recipe => MIB,
            Input::Bom => 64 * MIB,
            Input::ArtifactManifest => MIB,
            Input::DistManifest => MIB,
            Input::BlockMap => 64 * MIB,
            Input::NodeJson => 64 * MIB,
            Input::Secret => MIB,
            Input::KernelCmdline => 64 << 10,
            Input::DhcpLeases => 4 * MIB,
            Input::Artifact => u64::MAX,
        }
    }

    /// What the kind is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            Input::SysFile => "sysfs or procfs file",
            Input::CaptureIndex => "capture's list of unreadable files",
            Input::NvmlDump => "NVML dump",
            Input::TelemetryRecording => "telemetry recording",
            Input::Spec => "platform spec",
            Input::RackManifest => "rack manifest",
            Input::Recipe => "image recipe",
            Input::Bom => "bill of materials",
            Input::ArtifactManifest => "artifact manifest",
            Input::DistManifest => "node-binary manifest",
            Input::BlockMap => "block map",
            Input::NodeJson => "node JSON file",
            Input::Secret => "password, token or certificate file",
            Input::KernelCmdline => "kernel command line",
            Input::DhcpLeases => "DHCP lease file",
            Input::Artifact => "image artifact",
        }
    }
}

/// `n` bytes in the largest binary unit that divides it.
fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// What a file that is not a regular file is, for the message.
fn file_type_name(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` (following symlinks) for reading if it is a regular file.
/// The open itself cannot block: a FIFO with no writer is opened and
/// refused, not waited on.
pub fn open_regular(path: &Path, kind: Input) -> io::Result<File> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(not_regular(file_type_name(file_type), kind));
    }
    // Regular files ignore O_NONBLOCK; nothing to undo.
    Ok(file)
}

/// The error for a `kind` input that is `what` (`a directory`, `a FIFO`) instead of a regular
/// file: what `open_regular` refuses, and what a tree held in memory says the same way.
pub fn not_regular(what: &str, kind: Input) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}: kiln reads a {} only from a regular file", kind.name()),
    )
}

/// All of `reader`, at most `kind`'s cap; more is an error, not a truncation.
pub fn read_all(reader: impl Read, kind: Input) -> io::Result<Vec<u8>> {
    let limit = kind.limit();
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {}, the most kiln reads from a {}", size(limit), kind.name()),
        ));
    }
    Ok(bytes)
}

/// Where a file stops being UTF-8 text: the first bad byte, 1-based line and column (in
/// characters), and its offset. Carried inside the `io::Error` of [`read_to_string`], so a
/// caller that names lines (specs, manifests, recipes) can give `file:line:column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not UTF-8 text: line {line}, column {column} (byte {byte}) is not part of a UTF-8 character")]
pub struct NotUtf8 {
    pub line: usize,
    pub column: usize,
    pub byte: usize,
}

impl NotUtf8 {
    /// The position of the first byte of `bytes` that is not UTF-8, when there is one.
    pub fn find(bytes: &[u8]) -> Option<NotUtf8> {
        let byte = std::str::from_utf8(bytes).err()?.valid_up_to();
        // Everything before it is valid, so this cannot fail.
        let before = std::str::from_utf8(&bytes[..byte]).unwrap_or_default();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        Some(NotUtf8 { line, column, byte })
    }

    /// The `NotUtf8` inside an error of [`read_to_string`], if that is what it was.
    pub fn of(e: &io::Error) -> Option<NotUtf8> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<NotUtf8>()).copied()
    }
}

/// `read_all` as UTF-8 text.
pub fn read_all_to_string(reader: impl Read, kind: Input) -> io::Result<String> {
    let bytes = read_all(reader, kind)?;
    if let Some(at) = NotUtf8::find(&bytes) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, at));
    }
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The `*.toml` files directly in `dir`, sorted by name: a directory of specs or recipes loads
/// in the same order everywhere.
pub fn toml_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A regular file's bytes, at most `kind`'s cap.
pub fn read(path: &Path, kind: Input) -> io::Result<Vec<u8>> {
    read_all(open_regular(path, kind)?, kind)
}

/// A regular file's text, at most `kind`'s cap.
pub fn read_to_string(path: &Path, kind: Input) -> io::Result<String> {
    read_all_to_string(open_regular(path, kind)?, kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn regular_files_are_read_whole_up_to_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("cmdline");
        std::fs::write(&p, "quiet kiln.mode=booted\n").expect("write");
        assert_eq!(read_to_string(&p, Input::KernelCmdline).expect("read"), "quiet kiln.mode=booted\n");
        let limit = Input::KernelCmdline.limit() as usize;
        std::fs::write(&p, vec![b'a'; limit]).expect("write");
        assert_eq!(read(&p, Input::KernelCmdline).expect("exactly the cap").len(), limit);
        std::fs::write(&p, vec![b'a'; limit + 1]).expect("write");
        let err = read(&p, Input::KernelCmdline).expect_err("over the cap");
        assert_eq!(err.to_string(), "larger than 64 KiB, the most kiln reads from a kernel command line");
        std::fs::write(&p, b"ok\xff").expect("write");
        assert!(read_to_string(&p, Input::KernelCmdline).expect_err("binary").to_string().contains("byte 2"));
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("c string");
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        let started = Instant::now();
        for (path, what) in
            [(&fifo, "a FIFO"), (&zero, "a character device"), (&dir.path().to_path_buf(), "a directory")]
        {
            let err = read(path, Input::Spec).expect_err("refused");
            assert_eq!(err.to_string(), format!("{what}: kiln reads a platform spec only from a regular file"));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "nothing waited");
    }

    #[test]
    fn streams_are_capped_too() {
        let err = read_all(std::io::repeat(0).take(Input::Recipe.limit() + 10), Input::Recipe).expect_err("capped");
        assert!(err.to_string().contains("1 MiB"), "{err}");
        assert_eq!(read_all(&b"[x]"[..], Input::Recipe).expect("small"), b"[x]");
    }
}
