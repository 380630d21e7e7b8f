//! One controller follows a node's Slurm burn-in job at a time: open-file-description locks
//! (`F_OFD_SETLK`), one byte per node, on one file per rack beside the inventory
//! (`<db>.slurm-<rack>.lock`), held while the jobs are submitted, followed and recorded.
//!
//! Two controllers following the same job would each record its run. Controllers of disjoint
//! nodes of one rack (`--nodes`) go on side by side. The inventory is one SQLite file on one
//! machine, so every controller that records into it runs there and sees the same locks; the
//! kernel drops them when the holder exits, however it ended, so they are never stale and a
//! controller started again after a crash picks the open jobs up at once.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FollowLockError {
    #[error(
        "another kiln is following the Slurm burn-in jobs of {} in rack {rack} (it holds {}); wait for it to \
         finish, leave those nodes out (--nodes), or stop it and run this again to pick the open jobs up",
        nodes.join(", "),
        path.display()
    )]
    Busy { rack: String, path: PathBuf, nodes: Vec<String> },
    #[error("take the Slurm follow lock {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The locks, held until dropped (closing the file releases them).
#[derive(Debug)]
pub struct FollowLock {
    _file: File,
    path: PathBuf,
}

/// The lock's file for `rack` beside the inventory `db`: the rack id with anything but letters,
/// digits, `-`, `_` and `.` replaced, so that an id never names another directory.
pub fn lock_path(db: &Path, rack: &str) -> PathBuf {
    let safe: String =
        rack.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".slurm-{safe}.lock"));
    db.with_file_name(name)
}

/// The byte that stands for `node` in its rack's lock file: FNV-1a of the name, in 2^40 bytes
/// (a range lock needs no file that long), so the same name is the same byte in every run.
fn byte_of(node: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % (1 << 40)) as i64
}

fn range(kind: libc::c_int, node: &str) -> libc::flock {
    // SAFETY: a plain C struct; every field the kernel reads is set below.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = kind as libc::c_short;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    l.l_start = byte_of(node);
    l.l_len = 1;
    l
}

impl FollowLock {
    /// Takes the lock of every node of `nodes` in `rack`, beside `db`, or names the nodes another
    /// controller holds; never waits.
    pub fn acquire(db: &Path, rack: &str, nodes: &[&str]) -> Result<FollowLock, FollowLockError> {
        let path = lock_path(db, rack);
        let io_err = |source| FollowLockError::Io { path: path.clone(), source };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io_err)?;
        let mut held_elsewhere = Vec::new();
        for node in nodes {
            let mut l = range(libc::F_WRLCK, node);
            // SAFETY: fcntl on a descriptor this function owns, with a valid flock struct.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut l) } == 0 {
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => held_elsewhere.push(node.to_string()),
                _ => return Err(io_err(e)),
            }
        }
        if !held_elsewhere.is_empty() {
            // Dropping the file releases the locks this call did take.
            return Err(FollowLockError::Busy { rack: rack.to_string(), path, nodes: held_elsewhere });
        }
        Ok(FollowLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_controller_of_the_same_nodes_is_refused_naming_them_and_other_nodes_go_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("inventory.db");
        let first = FollowLock::acquire(&db, "r07", &["node01", "node04"]).expect("the first controller");
        assert_eq!(first.path(), dir.path().join("inventory.db.slurm-r07.lock"));
        match FollowLock::acquire(&db, "r07", &["node02", "node04"]) {
            Err(e @ FollowLockError::Busy { .. }) => {
                let said = e.to_string();
                assert!(said.contains("jobs of node04 in rack r07") && !said.contains("node02"), "{said}");
            }
            other => panic!("a second lock on node04: {other:?}"),
        }
        // The refused call kept nothing: node02 is free; other nodes and other racks go on.
        let second = FollowLock::acquire(&db, "r07", &["node02", "node03"]).expect("disjoint nodes");
        let other_rack = FollowLock::acquire(&db, "r08", &["node04"]).expect("another rack");
        drop(first);
        let again = FollowLock::acquire(&db, "r07", &["node04"]).expect("free once the first let go");
        drop((second, other_rack, again));
        assert_eq!(lock_path(&db, "../x/r 1"), dir.path().join("inventory.db.slurm-.._x_r_1.lock"));
        assert_eq!(byte_of("node04"), byte_of("node04"));
        assert_ne!(byte_of("node04"), byte_of("node05"));
    }
}
