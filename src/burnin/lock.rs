//! One burn-in per node: an exclusive lock held for the whole run and inherited by the stress-ng it starts.
//!
//! The lock is an `flock` on a file that stays in place (`/var/lib/kiln/burnin.lock`,
//! or `KILN_BURNIN_LOCK`). The kernel releases it when the last process holding the
//! open file goes away, whatever killed it, so a lock is never stale. stress-ng
//! inherits the open file (`host.rs` clears close-on-exec on it), so a stress-ng that
//! outlived its kiln (one started by an older kiln, or one the parent-death signal
//! could not reach) still holds the lock, and the next burn-in refuses to run beside
//! it instead of measuring a node that is already loaded.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Overrides where the lock lives (tests, or a node whose `/var/lib` is read-only).
pub const LOCK_ENV: &str = "KILN_BURNIN_LOCK";
/// Where the lock lives by default: beside the kiln binary `kiln rack` pushes.
pub const DEFAULT_LOCK_PATH: &str = "/var/lib/kiln/burnin.lock";
/// How long a new burn-in waits for a run that is being killed to let go: a
/// stress-ng that held most of the memory can take seconds to exit.
const GRACE: Duration = Duration::from_secs(3);

/// The raw descriptor of the lock this process holds, or -1. `host.rs` hands it
/// to stress-ng; a static because the lock is per process, like the node it guards.
static HELD_FD: AtomicI32 = AtomicI32::new(-1);

/// The descriptor of the lock held by this process's burn-in, if any.
pub fn held_fd() -> Option<i32> {
    let fd = HELD_FD.load(Ordering::SeqCst);
    (fd >= 0).then_some(fd)
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("open the burn-in lock {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the burn-in lock {} is not a regular file; remove it", path.display())]
    NotAFile { path: PathBuf },
    #[error("take the burn-in lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}", busy_message(path, holders, *recorded_pid))]
    Busy {
        path: PathBuf,
        /// The processes that hold the lock open.
        holders: Vec<Holder>,
        /// The pid the holding kiln wrote into the lock file.
        recorded_pid: Option<u32>,
    },
}

/// A process that has the lock file open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The command name (`/proc/PID/comm`).
    pub name: String,
    pub group: Option<u32>,
}

fn busy_message(path: &Path, holders: &[Holder], recorded_pid: Option<u32>) -> String {
    if holders.is_empty() {
        return format!(
            "another burn-in holds {} (its processes could not be listed: not root?); wait for it to finish or stop it",
            path.display()
        );
    }
    // stress-ng's workers (`stress-ng-cpu`, `stress-ng-vm`, one per CPU) are
    // counted, not listed.
    let workers = holders.iter().filter(|h| h.name.starts_with("stress-ng-")).count();
    let mut named: Vec<String> = holders
        .iter()
        .filter(|h| !h.name.starts_with("stress-ng-"))
        .map(|h| format!("{} (pid {})", h.name, h.pid))
        .collect();
    if workers > 0 {
        named.push(format!("{workers} stress-ng worker(s)"));
    }
    let list = named.join(", ");
    if let Some(pid) = recorded_pid.filter(|pid| holders.iter().any(|h| h.pid == *pid)) {
        return format!(
            "another burn-in is running on this node: {list} hold {}; wait for it to finish or stop it (kill {pid})",
            path.display()
        );
    }
    let left_by = match recorded_pid {
        Some(pid) => format!("left by kiln pid {pid}, which has exited"),
        None => "left by an earlier burn-in".to_string(),
    };
    let mut groups: Vec<u32> = holders.iter().filter_map(|h| h.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let stop = if groups.is_empty() {
        let pids: Vec<String> = holders.iter().map(|h| h.pid.to_string()).collect();
        format!("kill {}", pids.join(" "))
    } else {
        let g: Vec<String> = groups.iter().map(|g| format!("-{g}")).collect();
        format!("kill -- {}", g.join(" "))
    };
    format!(
        "a burn-in left running is still loading this node: {list} ({left_by}) hold {}; stop it ({stop}) before burning in again",
        path.display()
    )
}

/// The lock held for one burn-in; released when dropped (or when kiln dies).
#[derive(Debug)]
pub struct BurninLock {
    file: File,
    path: PathBuf,
}

impl BurninLock {
    /// Takes the lock at `KILN_BURNIN_LOCK`, else `DEFAULT_LOCK_PATH`; a user who
    /// cannot write `/var/lib/kiln` gets a lock of their own in the temporary directory.
    pub fn acquire() -> Result<BurninLock, LockError> {
        match std::env::var_os(LOCK_ENV) {
            Some(p) => BurninLock::acquire_at(Path::new(&p)),
            None => match BurninLock::acquire_at(Path::new(DEFAULT_LOCK_PATH)) {
                Err(LockError::Open { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {
                    // SAFETY: getuid has no preconditions and cannot fail.
                    let uid = unsafe { libc::getuid() };
                    BurninLock::acquire_at(&std::env::temp_dir().join(format!("kiln-burnin-{uid}.lock")))
                }
                other => other,
            },
        }
    }

    /// Takes the lock at `path`, waiting up to `GRACE` for a run that is letting go.
    pub fn acquire_at(path: &Path) -> Result<BurninLock, LockError> {
        let open_err = |source| LockError::Open { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        // No symlink is followed: the lock may live in a shared directory, and
        // kiln writes its pid into the file.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(open_err)?;
        if !file.metadata().map_err(open_err)?.is_file() {
            return Err(LockError::NotAFile { path: path.to_path_buf() });
        }
        let started = Instant::now();
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LockError::Lock { path: path.to_path_buf(), source: e });
            }
            if started.elapsed() >= GRACE {
                let mut text = String::new();
                let _ = (&file).take(64).read_to_string(&mut text);
                let recorded_pid = text.split_whitespace().next().and_then(|p| p.parse().ok());
                return Err(LockError::Busy { path: path.to_path_buf(), holders: holders_of(&file), recorded_pid });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // A kiln from before this lock left its stress-ng without one: find it by
        // the file names that kiln gave stress-ng's metrics.
        let legacy = legacy_leftovers(&std::env::temp_dir());
        if !legacy.is_empty() {
            let recorded_pid = legacy.iter().find_map(|(_, pid)| *pid);
            let holders = legacy.into_iter().map(|(h, _)| h).collect();
            return Err(LockError::Busy { path: path.to_path_buf(), holders, recorded_pid });
        }
        // The pid is for the message a second burn-in prints; the lock is the flock.
        let stamp =
            file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(e) = stamp {
            tracing::warn!(lock = %path.display(), "could not write the pid into the burn-in lock: {e}");
        }
        HELD_FD.store(file.as_raw_fd(), Ordering::SeqCst);
        Ok(BurninLock { file, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BurninLock {
    fn drop(&mut self) {
        // Only forget the descriptor if it is still ours; closing the file unlocks.
        let _ = HELD_FD.compare_exchange(self.file.as_raw_fd(), -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// The processes with `file` open, read from `/proc/*/fd`. Others' descriptors are listed only for root; for anyone
/// else the list may be short or empty, and the message says so.
fn holders_of(file: &File) -> Vec<Holder> {
    let Ok(meta) = file.metadata() else { return Vec::new() };
    let (dev, ino) = (meta.dev(), meta.ino());
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let holds =
            fds.flatten().any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino));
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_string();
            // The fifth field of /proc/PID/stat, after the parenthesised name.
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let group = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse().ok());
            out.push(Holder { pid, name, group });
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// stress-ng processes an older kiln started and left behind: their
/// `--yaml` names `kiln-stress-ng-PID.yaml` in `temp_dir` (as that kiln did)
/// and their parent is not a kiln any more (it died; they were re-parented).
/// Answers each with the pid of the kiln that started it.
fn legacy_leftovers(temp_dir: &Path) -> Vec<(Holder, Option<u32>)> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_string();
        if name != "stress-ng" {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let Some(yaml) =
            args.windows(2).find(|w| w[0] == b"--yaml").map(|w| Path::new(std::ffi::OsStr::from_bytes(w[1])))
        else {
            continue;
        };
        let file = yaml.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(kiln_pid) = file.strip_prefix("kiln-stress-ng-").and_then(|r| r.strip_suffix(".yaml")) else {
            continue;
        };
        if yaml.parent() != Some(temp_dir) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
        let parent: Option<u32> = fields.get(1).and_then(|p| p.parse().ok());
        let parent_is_kiln = parent
            .is_some_and(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "kiln"));
        if parent_is_kiln {
            continue;
        }
        let group = fields.get(2).and_then(|g| g.parse().ok());
        out.push((Holder { pid, name, group }, kiln_pid.parse().ok()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/burnin.lock");
        let held = BurninLock::acquire_at(&path).expect("first lock");
        assert_eq!(held_fd(), Some(held.file.as_raw_fd()));
        // A second open file description conflicts with the first even in one process.
        let err = BurninLock::acquire_at(&path).expect_err("second lock refused");
        let LockError::Busy { recorded_pid, .. } = &err else { panic!("busy: {err}") };
        assert_eq!(*recorded_pid, Some(std::process::id()));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        drop(held);
        assert_eq!(held_fd(), None);
        BurninLock::acquire_at(&path).expect("free again once dropped");
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me\n").expect("write");
        let path = dir.path().join("burnin.lock");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        assert!(matches!(BurninLock::acquire_at(&path), Err(LockError::Open { .. })));
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep me\n");
    }

    #[test]
    fn busy_messages_say_what_to_stop() {
        let path = Path::new("/var/lib/kiln/burnin.lock");
        let holder = |pid, name: &str, group| Holder { pid, name: name.into(), group };
        let stress = [holder(11, "stress-ng", Some(11)), holder(12, "stress-ng-vm", Some(11))];
        let running = busy_message(path, &[&[holder(10, "kiln", Some(10))][..], &stress].concat(), Some(10));
        assert!(running.contains("another burn-in is running") && running.contains("kill 10"), "{running}");
        assert!(running.contains("stress-ng (pid 11), 1 stress-ng worker(s)"), "{running}");
        let left = busy_message(path, &stress, Some(10));
        assert!(left.contains("left by kiln pid 10, which has exited") && left.contains("kill -- -11"), "{left}");
    }
}
