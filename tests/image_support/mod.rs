//! Shared helpers for the image tests: run the real binary, make images,
//! inspect targets, loop devices that detach themselves.

#![allow(dead_code)]

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const MIB: u64 = 1 << 20;

pub fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_LOG")
        .env_remove("KILN_DB")
        .output()
        .expect("kiln runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Print a visible SKIPPED line; under `KILN_REQUIRE_PEERS=1` (CI as root)
/// a missing tool fails instead.
pub fn skip(why: &str) {
    if std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!("required tool unavailable: {why}");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A SKIPPED line that never fails: for what no install step can provide
/// (root, loop devices inside a container).
pub fn skip_always(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

pub fn have_qemu_img() -> bool {
    Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// `qemu-img compare` of two raw images: true when they read the same.
pub fn qemu_compare(a: &Path, b: &Path) -> bool {
    let out = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "raw"])
        .arg(a)
        .arg(b)
        .output()
        .expect("qemu-img runs");
    out.status.success()
}

/// A synthetic image of `mib` MiB with `permille`/1000 mapped.
pub fn synth(path: &Path, mib: u64, permille: u32, seed: u64) {
    kiln::image::synth::generate(path, mib * MIB, permille, seed).expect("synthetic image");
}

pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = File::open(path).expect("open");
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).expect("read");
    buf
}

pub fn size_of(path: &Path) -> u64 {
    let f = File::open(path).expect("open");
    let len = f.metadata().expect("metadata").len();
    if len > 0 {
        return len;
    }
    // A block device reports length 0 in its metadata; seek to its end.
    use std::io::{Seek, SeekFrom};
    let mut f = f;
    f.seek(SeekFrom::End(0)).expect("seek")
}

/// True when the first and last MiB of `path` are all zeros.
pub fn tables_wiped(path: &Path) -> bool {
    let size = size_of(path);
    let head = read_at(path, 0, MIB.min(size) as usize);
    let tail = read_at(path, size.saturating_sub(MIB), MIB.min(size) as usize);
    head.iter().all(|&b| b == 0) && tail.iter().all(|&b| b == 0)
}

/// Bytes the filesystem allocated for `path`.
pub fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").blocks() * 512
}

/// Copy the shipped test recipe and make its base image next to it.
pub fn test_recipe(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/kiln-test.toml");
    let recipe = dir.join("kiln-test.toml");
    std::fs::copy(shipped, &recipe).expect("copy recipe");
    synth(&dir.join("kiln-test.raw"), 32, 100, 1);
    recipe
}

/// A loop device over a file, detached on drop.
pub struct Loop {
    pub dev: PathBuf,
}

impl Loop {
    /// `None` (after a SKIPPED line) when loop devices cannot be used here.
    pub fn attach(backing: &Path) -> Option<Loop> {
        if !Path::new("/dev/loop-control").exists() {
            skip_always("no /dev/loop-control: loop devices are not available");
            return None;
        }
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
            .unwrap_or(false);
        if !root {
            skip_always("not root: losetup needs root");
            return None;
        }
        let out = Command::new("losetup").args(["-f", "--show"]).arg(backing).output();
        match out {
            Ok(o) if o.status.success() => {
                let dev = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string());
                Some(Loop { dev })
            }
            Ok(o) => {
                skip_always(&format!("losetup failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
                None
            }
            Err(e) => {
                skip_always(&format!("losetup not runnable: {e}"));
                None
            }
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}
