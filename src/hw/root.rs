//! `SysTree`: every sysfs and procfs read goes through one root.
//!
//! The live machine is the tree at `/`; a capture (`kiln capture DIR`) or a
//! hand-built fixture is the same tree under another directory. Paths passed
//! in are relative (`sys/bus/pci/devices`), never absolute.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Read access to a sysfs/procfs tree.
pub trait SysTree: Send + Sync {
    /// Reads a whole file as text.
    fn read(&self, rel: &Path) -> io::Result<String>;
    /// Reads a whole file as bytes (SMBIOS tables under `sys/firmware/dmi/entries`).
    fn read_bytes(&self, rel: &Path) -> io::Result<Vec<u8>>;
    /// Lists the names in a directory, sorted.
    fn list(&self, rel: &Path) -> io::Result<Vec<String>>;
    /// Reads a symlink's target as stored (relative targets stay relative).
    fn read_link(&self, rel: &Path) -> io::Result<PathBuf>;
    /// Resolves every symlink in `rel` and returns the result relative to the
    /// root (`sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0`).
    fn resolve(&self, rel: &Path) -> io::Result<PathBuf>;
    /// Whether a path exists (following symlinks).
    fn exists(&self, rel: &Path) -> bool;
    /// The root directory on disk, for messages and capture.
    fn root(&self) -> &Path;
}

/// A tree rooted at a directory on disk: `/` for the live machine, a capture
/// directory for replay. The two are the same code: replay is exact.
#[derive(Debug, Clone)]
pub struct FsTree {
    root: PathBuf,
}

impl FsTree {
    pub fn live() -> Self {
        FsTree { root: PathBuf::from("/") }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        FsTree { root: root.into() }
    }

    fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The path on disk of `rel`, its symlinks resolved inside the root: a
    /// capture is outside data, and a link in it to `/etc/shadow` or
    /// `../../..` must read the capture's own file (or nothing), never the
    /// host's. On the live machine the root is `/` and the kernel's
    /// resolution is the same.
    fn inside(&self, rel: &Path) -> io::Result<PathBuf> {
        if self.is_live() {
            return Ok(self.root.join(strip_root(rel)));
        }
        Ok(self.root.join(self.resolve(rel)?))
    }

    /// Like `inside`, but the last component is left as it is (for reading
    /// a link itself).
    fn inside_but_last(&self, rel: &Path) -> io::Result<PathBuf> {
        let rel = strip_root(rel);
        match (rel.parent(), rel.file_name()) {
            (Some(parent), Some(name)) if !self.is_live() => Ok(self.inside(parent)?.join(name)),
            _ => self.inside(&rel),
        }
    }
}

/// Drops a leading `/` so that a relative path cannot escape the root by join.
fn strip_root(rel: &Path) -> PathBuf {
    rel.components().filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_))).collect()
}

impl SysTree for FsTree {
    fn read(&self, rel: &Path) -> io::Result<String> {
        crate::input::read_to_string(&self.inside(rel)?, crate::input::Input::SysFile)
    }

    fn read_bytes(&self, rel: &Path) -> io::Result<Vec<u8>> {
        crate::input::read(&self.inside(rel)?, crate::input::Input::SysFile)
    }

    fn list(&self, rel: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.inside(rel)?)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read_link(&self, rel: &Path) -> io::Result<PathBuf> {
        std::fs::read_link(self.inside_but_last(rel)?)
    }

    fn resolve(&self, rel: &Path) -> io::Result<PathBuf> {
        // Resolve by hand, one component at a time, so that absolute link
        // targets are re-rooted and nothing resolves outside the tree.
        let mut out = PathBuf::new();
        let mut pending: Vec<PathBuf> =
            strip_root(rel).components().rev().map(|c| PathBuf::from(c.as_os_str())).collect();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.to_str() {
                Some("..") => {
                    out.pop();
                    continue;
                }
                Some(".") => continue,
                _ => {}
            }
            let candidate = out.join(&part);
            let meta = std::fs::symlink_metadata(self.root.join(&candidate))?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > 64 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = std::fs::read_link(self.root.join(&candidate))?;
                if target.is_absolute() {
                    out = PathBuf::new();
                }
                for c in strip_root(&target).components().rev() {
                    pending.push(PathBuf::from(c.as_os_str()));
                }
            } else {
                out = candidate;
            }
        }
        Ok(out)
    }

    fn exists(&self, rel: &Path) -> bool {
        self.inside(rel).is_ok_and(|p| p.exists())
    }

    fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_follows_relative_and_absolute_links_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0")).expect("mkdir");
        std::fs::create_dir_all(root.join("sys/bus/pci/devices")).expect("mkdir");
        std::os::unix::fs::symlink(
            "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0",
            root.join("sys/bus/pci/devices/0000:01:00.0"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink("/sys/devices/pci0000:00", root.join("sys/abs")).expect("symlink");
        let tree = FsTree::at(root);
        assert_eq!(
            tree.resolve(Path::new("sys/bus/pci/devices/0000:01:00.0")).expect("resolve"),
            PathBuf::from("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0")
        );
        assert_eq!(
            tree.resolve(Path::new("/sys/abs/0000:00:01.0")).expect("resolve"),
            PathBuf::from("sys/devices/pci0000:00/0000:00:01.0")
        );
        assert!(tree.resolve(Path::new("sys/missing")).is_err());
    }

    #[test]
    fn reads_never_leave_the_root_through_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("host");
        std::fs::create_dir_all(outside.join("dir")).expect("mkdir");
        std::fs::write(outside.join("secret"), "host secret\n").expect("write");
        std::fs::write(outside.join("dir/inner"), "host file\n").expect("write");
        let root = dir.path().join("capture");
        std::fs::create_dir_all(root.join("sys/class")).expect("mkdir");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::write(root.join("etc/hostname"), "captured\n").expect("write");
        let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name)).expect("symlink");
        link(&outside.join("secret"), "sys/class/absolute");
        link(Path::new("../../../host/secret"), "sys/class/dotdot");
        link(&outside.join("dir"), "sys/class/dirlink");
        link(Path::new("/etc/hostname"), "sys/class/hostname");
        let tree = FsTree::at(&root);
        for name in ["absolute", "dotdot"] {
            let rel = Path::new("sys/class").join(name);
            let got = tree.read(&rel);
            assert!(got.is_err(), "{name}: read {got:?} from outside the root");
            assert!(!tree.exists(&rel), "{name}");
        }
        assert!(tree.read(Path::new("sys/class/dirlink/inner")).is_err());
        assert!(tree.list(Path::new("sys/class/dirlink")).is_err());
        assert!(tree.read(Path::new("/sys/class/../../../host/secret")).is_err());
        // An absolute link is the capture's own path, as on the machine it came from.
        assert_eq!(tree.read(Path::new("sys/class/hostname")).expect("inside"), "captured\n");
        assert_eq!(tree.read_link(Path::new("sys/class/absolute")).expect("the link itself"), outside.join("secret"));
    }
}
