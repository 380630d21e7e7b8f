//! The hand-built fixture trees a test needs, written by `kiln::hw::fixture::trees` (none is
//! committed): into a temporary directory that goes when the test ends, under a directory the
//! test owns, or into this test binary's directory under `target/tmp`, kept between runs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Named trees on disk, each at `<dir>/NAME` as `cargo xtask fixtures DIR` writes them.
pub struct Trees {
    dir: tempfile::TempDir,
}

impl Trees {
    /// Writes the named trees; panics on a name that is no tree.
    pub fn write(names: &[&str]) -> Trees {
        let dir = tempfile::tempdir().expect("tempdir for fixture trees");
        let mut unique: Vec<&str> = names.to_vec();
        unique.sort_unstable();
        unique.dedup();
        kiln::hw::fixture::trees::write(&unique, dir.path()).expect("write the fixture trees");
        Trees { dir }
    }

    /// The directory holding every tree.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where tree `name` is (written by `write`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `path(name)` as a command-line argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_string()
    }
}

/// Named tree `name` under `<dir>/fixtures/`, written there unless an identical copy is there
/// already: for a test that owns a directory (a temporary one, or the lab's under `target/`,
/// where a copy from an older build of the builder is replaced).
pub fn written(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join("fixtures").join(name);
    let tree = kiln::hw::fixture::trees::build(name).expect("a named fixture tree");
    if !tree.differences(&path).is_ok_and(|d| d.is_empty()) {
        kiln::hw::fixture::trees::write(&[name], &dir.join("fixtures")).expect("write the fixture tree");
    }
    path
}

/// Named tree `name` in this test binary's directory under `target/tmp`, kept between runs and
/// rewritten only when the builder changed: for tests that read trees and never change them.
pub fn shared(name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_writer = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fixtures-{}", env!("CARGO_CRATE_NAME")));
    written(&dir, name)
}
