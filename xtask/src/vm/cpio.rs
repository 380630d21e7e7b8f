//! A writer for the kernel's initramfs archive format (cpio "newc").
//!
//! Written here rather than by the `cpio` tool so that the archive's contents
//! are exactly what the builder lists (owner root, mtime 0, no host paths) and
//! no extra package is needed. Format: `Documentation/driver-api/early-userspace/buffer-format.rst`.

use std::collections::BTreeSet;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// An archive being built in memory. Parent directories are added on demand.
#[derive(Default)]
pub struct Cpio {
    buf: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
    /// Device numbers for the entry being written (device nodes only).
    rdev: (u32, u32),
}

impl Cpio {
    pub fn new() -> Cpio {
        Cpio { next_ino: 1, ..Cpio::default() }
    }

    /// A directory (and its parents), mode 0755.
    pub fn dir(&mut self, path: &str) {
        let path = path.trim_matches('/');
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
        self.dirs.insert(path.to_string());
        self.entry(path, S_IFDIR | 0o755, 2, &[]);
    }

    /// A regular file with permission bits `perm` (0o755, 0o644).
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.entry(path, S_IFREG | (perm & 0o7777), 1, data);
    }

    /// A symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.entry(path, S_IFLNK | 0o777, 1, target.as_bytes());
    }

    /// A character device node: the kernel opens `/dev/console` in the
    /// initramfs for init's standard streams before anything mounts devtmpfs.
    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        let path = path.trim_matches('/');
        self.parents(path);
        self.rdev = (major, minor);
        self.entry(path, S_IFCHR | 0o600, 1, &[]);
        self.rdev = (0, 0);
    }

    /// The archive with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, &[]);
        self.buf
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, data: &[u8]) {
        let ino = if mode == 0 { 0 } else { self.next_ino };
        self.next_ino += 1;
        // Fields in order: magic, ino, mode, uid, gid, nlink, mtime, filesize,
        // devmajor, devminor, rdevmajor, rdevminor, namesize (with its NUL), check.
        let (rmajor, rminor) = self.rdev;
        let fields = [ino, mode, 0, 0, nlink, 0, data.len() as u32, 0, 0, rmajor, rminor, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// Headers and file data each start on a 4-byte boundary.
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_parents_come_first() {
        let mut c = Cpio::new();
        c.file("a/b/c", 0o644, b"hello");
        c.symlink("bin/sh", "busybox");
        let out = c.finish();
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        let (a, ab, abc) = (text.find("a\0").unwrap(), text.find("a/b\0").unwrap(), text.find("a/b/c\0").unwrap());
        assert!(a < ab && ab < abc, "{text}");
        assert!(text.contains("hello"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
        // The first header: magic, then inode 1, then a directory's mode.
        assert_eq!(&out[..14], b"07070100000001");
        assert_eq!(&out[14..22], format!("{:08X}", S_IFDIR | 0o755).as_bytes());
    }
}
