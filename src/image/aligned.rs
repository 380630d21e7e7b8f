//! Buffers aligned for direct I/O, without unsafe code.
//!
//! O_DIRECT needs the memory address, the file offset and the length to be
//! multiples of the device's logical block size (512 or 4096 bytes). A `Vec`
//! with one alignment's worth of slack always contains an aligned window, so
//! the buffer is the window rather than a custom allocation.

/// The alignment every buffer gets: enough for 4Kn disks and for filesystems
/// with 4 KiB blocks.
pub const ALIGN: usize = 4096;

/// A zero-filled byte buffer whose start is aligned to `ALIGN`.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` bytes (rounded up to `ALIGN`), all zero.
    pub fn new(len: usize) -> Self {
        let len = len.div_ceil(ALIGN).max(1) * ALIGN;
        let storage = vec![0u8; len + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        // `align_offset` may answer usize::MAX when it cannot align; for a
        // byte pointer and a power of two it always can, but stay safe.
        let start = if start < ALIGN { start } else { 0 };
        AlignedBuf { storage, start, len }
    }

    /// Capacity in bytes (a multiple of `ALIGN`).
    pub fn capacity(&self) -> usize {
        self.len
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_aligned_and_sized() {
        for len in [1, 4096, 4097, 1 << 20] {
            let mut b = AlignedBuf::new(len);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert!(b.capacity() >= len && b.capacity() % ALIGN == 0);
            let last = b.capacity() - 1;
            b.as_mut_slice()[last] = 7;
            assert!(b.as_slice()[..b.capacity() - 1].iter().all(|&x| x == 0));
        }
    }
}
