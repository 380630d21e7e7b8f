//! Synthetic raw disk images: deterministic, sparse, with partition-table
//! signatures at both ends. The test image recipe, the tests and the
//! benchmark build from these instead of downloading anything.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Stripes of this size are either wholly mapped or wholly a hole.
pub const STRIPE: u64 = 1 << 20;

/// Which stripes of an image of `stripes` stripes are mapped for a mapped
/// fraction `permille`/1000: spread evenly, the first and last always (they
/// hold the partition tables).
pub fn mapped_stripes(stripes: u64, permille: u32) -> Vec<u64> {
    let p = u64::from(permille.min(1000));
    (0..stripes).filter(|&i| i == 0 || i + 1 == stripes || ((i + 1) * p / 1000) > (i * p / 1000)).collect()
}

/// Write a sparse image of `size` bytes (a multiple of `STRIPE`) at `path`
/// with `permille`/1000 of it mapped with pseudo-random bytes from `seed`.
/// The same arguments always give the same bytes.
pub fn generate(path: &Path, size: u64, permille: u32, seed: u64) -> io::Result<()> {
    if size == 0 || size % STRIPE != 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("size {size} is not a multiple of 1 MiB")));
    }
    let file = File::create(path)?;
    file.set_len(size)?;
    let stripes = size / STRIPE;
    let mut buf = vec![0u8; STRIPE as usize];
    for i in mapped_stripes(stripes, permille) {
        fill(&mut buf, seed ^ (i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        if i == 0 {
            // A protective MBR signature and a GPT header signature at LBA 1,
            // so a wiped first MiB is told apart from a written one.
            buf[510] = 0x55;
            buf[511] = 0xAA;
            buf[512..520].copy_from_slice(b"EFI PART");
        }
        if i + 1 == stripes {
            let at = buf.len() - 512;
            buf[at..at + 8].copy_from_slice(b"EFI PART");
        }
        file.write_all_at(&buf, i * STRIPE)?;
    }
    file.sync_all()
}

/// xorshift64*: fast, deterministic, and never all zeros.
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_percent_is_about_ten_percent() {
        let m = mapped_stripes(4096, 100);
        assert!((409..=412).contains(&m.len()), "{}", m.len());
        assert_eq!(m[0], 0);
        assert_eq!(*m.last().expect("some"), 4095);
        assert_eq!(mapped_stripes(10, 1000).len(), 10);
    }

    #[test]
    fn generation_is_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        generate(&a, 8 << 20, 250, 7).expect("a");
        generate(&b, 8 << 20, 250, 7).expect("b");
        assert_eq!(std::fs::read(&a).expect("read a"), std::fs::read(&b).expect("read b"));
        assert!(generate(&a, 1000, 100, 1).is_err());
    }
}
