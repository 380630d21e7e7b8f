//! Linux block-device ioctls the writer needs, declared through `nix`.
//!
//! These can meet: ENOTTY on something that is not a block device,
//! EOPNOTSUPP or EINVAL where a driver does not implement zeroing, EIO from a
//! failing disk. Callers fall back or report; nothing here panics.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;

// BLKGETSIZE64 = _IOR(0x12, 114, size_t): the device size in bytes.
nix::ioctl_read!(blk_getsize64, 0x12, 114, u64);
// BLKSSZGET = _IO(0x12, 104) with an int out-parameter: logical sector size.
nix::ioctl_read_bad!(blk_sszget, nix::request_code_none!(0x12, 104), nix::libc::c_int);
// BLKZEROOUT = _IO(0x12, 127) taking {start, length}: the kernel guarantees
// the range reads back as zeros afterwards (write-zeroes, or an unmap that
// zeroes deterministically, or plain zero writes done by the kernel itself).
nix::ioctl_write_ptr_bad!(blk_zeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

/// Size in bytes of the block device open as `file`.
pub fn device_size(file: &File) -> Result<u64, Errno> {
    let mut size = 0u64;
    // SAFETY: the fd is open for the duration of the call and `size` is a
    // valid u64 the kernel writes into.
    unsafe { blk_getsize64(file.as_raw_fd(), &mut size) }?;
    Ok(size)
}

/// Logical sector size of the block device open as `file`.
pub fn logical_sector_size(file: &File) -> Result<u32, Errno> {
    let mut size: nix::libc::c_int = 0;
    // SAFETY: as above, `size` is a valid int for the kernel to fill.
    unsafe { blk_sszget(file.as_raw_fd(), &mut size) }?;
    u32::try_from(size).map_err(|_| Errno::EINVAL)
}

/// Zero `[start, start + len)` of the block device with the kernel's
/// guarantee that it reads back as zeros. Both must be multiples of 512.
pub fn zero_out(file: &File, start: u64, len: u64) -> Result<(), Errno> {
    let range = [start, len];
    // SAFETY: `range` lives across the call; the kernel only reads it.
    unsafe { blk_zeroout(file.as_raw_fd(), &range) }?;
    Ok(())
}
