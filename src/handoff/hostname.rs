//! The name Slurm knows this machine by: the short hostname (`hostname -s`).

/// The kernel's hostname up to the first dot; `None` when it cannot be read
/// or is empty. Read with gethostname(2), which reports the UTS namespace
/// the process runs in.
pub fn short_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, and gethostname
    // writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]);
    let short = name.split('.').next().unwrap_or_default().trim();
    (!short.is_empty()).then(|| short.to_string())
}
