//! The block map: which ranges of a raw image hold data, with a SHA-256 per
//! range and for the whole image, as JSON next to the image.
//!
//! Everything outside the mapped ranges reads as zeros in the image, so a
//! writer copies only the mapped ranges and makes the rest of the target read
//! as zeros by cheaper means. The whole-image digest equals `sha256sum` of the
//! raw file; a writer that verified every range and zeroed every gap has
//! therefore produced exactly that digest without hashing the zeros.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::digest::Digest;
use super::extents;

/// The `format` field of every block map kiln writes.
pub const FORMAT: &str = "kiln-bmap";
/// The block map version this kiln reads and writes.
pub const VERSION: u32 = 1;
/// Ranges are aligned to this many bytes (the end of the image excepted).
pub const BLOCK_SIZE: u64 = 4096;
/// The longest range a block map holds. Longer extents are split, so each
/// range is one writer buffer and ranges hash independently on several
/// cores; a corrupt image is also caught within 4 MiB of the damage.
pub const MAX_RANGE: u64 = 4 << 20;
/// The largest image kiln writes: 1 PiB, far above any disk an OS image is
/// written to, and far below what file offsets (`i64`) can address, so a
/// size past it is a broken block map, never a disk that is too small.
pub const MAX_IMAGE_SIZE: u64 = 1 << 50;

/// One mapped range `[start, end)` of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedRange {
    pub start: u64,
    pub end: u64,
    /// SHA-256 of the range's bytes; absent in a map scanned on the fly from
    /// a plain sparse file, where the writer computes it while reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
}

impl MappedRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn range(&self) -> Range<u64> {
        self.start..self.end
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockMap {
    pub format: String,
    pub version: u32,
    pub image_size: u64,
    pub block_size: u64,
    pub mapped_bytes: u64,
    /// SHA-256 of the whole raw image, holes included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<Digest>,
    pub ranges: Vec<MappedRange>,
}

#[derive(Debug, thiserror::Error)]
pub enum BmapError {
    #[error("read block map {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse block map {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("block map {}: {field}: {why}", path.display())]
    Invalid { path: PathBuf, field: String, why: String },
    #[error("write block map {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("find the data ranges of {}", path.display())]
    Scan {
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("hash {}", path.display())]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BlockMap {
    /// A map from ranges alone (no digests).
    pub fn from_ranges(image_size: u64, ranges: Vec<Range<u64>>) -> Self {
        let mut split = Vec::with_capacity(ranges.len());
        for r in ranges {
            let mut at = r.start;
            while at < r.end {
                let end = (at + MAX_RANGE).min(r.end);
                split.push(MappedRange { start: at, end, sha256: None });
                at = end;
            }
        }
        let ranges = split;
        BlockMap {
            format: FORMAT.to_string(),
            version: VERSION,
            image_size,
            block_size: BLOCK_SIZE,
            mapped_bytes: ranges.iter().map(MappedRange::len).sum(),
            image_sha256: None,
            ranges,
        }
    }

    /// The data ranges of a plain sparse raw file, without digests: what the
    /// writer uses when it is given no block map.
    pub fn scan(file: &File, path: &Path) -> Result<Self, BmapError> {
        let len = file.metadata().map_err(|source| BmapError::Hash { path: path.to_path_buf(), source })?.len();
        let ranges = extents::data_ranges(file, len, BLOCK_SIZE)
            .map_err(|source| BmapError::Scan { path: path.to_path_buf(), source })?;
        Ok(BlockMap::from_ranges(len, ranges))
    }

    /// Scan a raw image and hash every mapped range and the whole image: the
    /// map `kiln image build` ships. Reads each mapped byte once; holes are
    /// hashed as zeros without being read.
    pub fn create(file: &File, path: &Path) -> Result<Self, BmapError> {
        let mut map = BlockMap::scan(file, path)?;
        let hash_err = |source| BmapError::Hash { path: path.to_path_buf(), source };
        let mut whole = Sha256::new();
        let zeros = vec![0u8; 1 << 20];
        let mut buf = vec![0u8; 4 << 20];
        let mut pos = 0u64;
        for range in &mut map.ranges {
            feed_zeros(&mut whole, &zeros, range.start - pos);
            let mut part = Sha256::new();
            let mut at = range.start;
            while at < range.end {
                let n = ((range.end - at) as usize).min(buf.len());
                file.read_exact_at(&mut buf[..n], at).map_err(hash_err)?;
                part.update(&buf[..n]);
                whole.update(&buf[..n]);
                at += n as u64;
            }
            range.sha256 = Some(Digest::from_hasher(part));
            pos = range.end;
        }
        feed_zeros(&mut whole, &zeros, map.image_size - pos);
        map.image_sha256 = Some(Digest::from_hasher(whole));
        Ok(map)
    }

    /// Read and check a block map file.
    pub fn load(path: &Path) -> Result<Self, BmapError> {
        let text = crate::input::read_to_string(path, crate::input::Input::BlockMap)
            .map_err(|source| BmapError::Read { path: path.to_path_buf(), source })?;
        BlockMap::parse(&text, path)
    }

    /// Parse and check block map text; `path` (a file or URL) names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, BmapError> {
        let map: BlockMap =
            serde_json::from_str(text).map_err(|source| BmapError::Parse { path: path.to_path_buf(), source })?;
        map.check().map_err(|(field, why)| BmapError::Invalid { path: path.to_path_buf(), field, why })?;
        Ok(map)
    }

    /// Write the map as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), BmapError> {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        std::fs::write(path, text).map_err(|source| BmapError::Write { path: path.to_path_buf(), source })
    }

    /// The first impossible thing the map says, as (field, why).
    pub fn check(&self) -> Result<(), (String, String)> {
        let fail = |field: &str, why: String| Err((field.to_string(), why));
        if self.format != FORMAT {
            return fail("format", format!("expected {FORMAT:?}, found {:?}", self.format));
        }
        if self.version != VERSION {
            return fail("version", format!("this kiln reads version {VERSION}, found {}", self.version));
        }
        if self.block_size < 512 || !self.block_size.is_power_of_two() || self.block_size > MAX_RANGE {
            return fail(
                "block_size",
                format!("must be a power of two from 512 to {MAX_RANGE}, found {}", self.block_size),
            );
        }
        if self.image_size > MAX_IMAGE_SIZE {
            return fail(
                "image_size",
                format!("{} bytes is more than kiln writes (at most {MAX_IMAGE_SIZE} bytes, 1 PiB)", self.image_size),
            );
        }
        let mut prev_end = 0;
        for (i, r) in self.ranges.iter().enumerate() {
            let field = format!("ranges[{i}]");
            if r.start >= r.end {
                return fail(&field, format!("empty or reversed range {}..{}", r.start, r.end));
            }
            if r.len() > MAX_RANGE {
                return fail(&field, format!("{} bytes long; ranges are at most {MAX_RANGE} bytes", r.len()));
            }
            if r.start < prev_end {
                return fail(&field, format!("starts at {} inside or before the previous range", r.start));
            }
            if r.end > self.image_size {
                return fail(&field, format!("ends at {} past the image size {}", r.end, self.image_size));
            }
            if r.start % self.block_size != 0 || (r.end % self.block_size != 0 && r.end != self.image_size) {
                return fail(&field, format!("not aligned to the block size {}", self.block_size));
            }
            prev_end = r.end;
        }
        let sum: u64 = self.ranges.iter().map(MappedRange::len).sum();
        if sum != self.mapped_bytes {
            return fail("mapped_bytes", format!("says {} but the ranges add up to {sum}", self.mapped_bytes));
        }
        Ok(())
    }

    /// The unmapped ranges: the image reads as zeros there.
    pub fn gaps(&self) -> Vec<Range<u64>> {
        let mapped: Vec<Range<u64>> = self.ranges.iter().map(MappedRange::range).collect();
        extents::gaps(&mapped, self.image_size)
    }
}

/// Feed `n` zero bytes to `h`, `zeros.len()` at a time.
pub(crate) fn feed_zeros(h: &mut Sha256, zeros: &[u8], mut n: u64) {
    while n > 0 {
        let k = (n as usize).min(zeros.len());
        h.update(&zeros[..k]);
        n -= k as u64;
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sparse_file(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("img.raw");
        let mut image = vec![0u8; 4 << 20];
        for (i, b) in image[8192..20_000].iter_mut().enumerate() {
            *b = (i % 251) as u8 + 1;
        }
        image[(3 << 20) + 5] = 9;
        let f = File::create(&path).expect("create");
        f.set_len(image.len() as u64).expect("set_len");
        f.write_all_at(&image[8192..20_000], 8192).expect("write");
        f.write_all_at(&image[3 << 20..(3 << 20) + 6], 3 << 20).expect("write");
        (path, image)
    }

    #[test]
    fn create_hashes_ranges_and_whole_image_and_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, image) = sparse_file(dir.path());
        let f = File::open(&path).expect("open");
        let map = BlockMap::create(&f, &path).expect("create");
        assert_eq!(map.image_sha256, Some(Digest::of(&image)));
        assert!(map.mapped_bytes < 1 << 20, "{map:?}");
        for r in &map.ranges {
            let bytes = &image[r.start as usize..r.end as usize];
            assert_eq!(r.sha256, Some(Digest::of(bytes)));
        }
        // Everything outside the map is zero in the image.
        for g in map.gaps() {
            assert!(image[g.start as usize..g.end as usize].iter().all(|&b| b == 0));
        }
        let saved = dir.path().join("img.bmap.json");
        map.save(&saved).expect("save");
        assert_eq!(BlockMap::load(&saved).expect("load"), map);
    }

    #[test]
    fn malformed_maps_name_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        let mut map = BlockMap::from_ranges(1 << 20, vec![0..4096, 8192..12288]);
        map.ranges.swap(0, 1);
        map.save(&path).expect("save");
        let err = BlockMap::load(&path).expect_err("unsorted");
        assert!(err.to_string().contains("ranges[1]"), "{err}");

        let mut f = File::create(&path).expect("create");
        f.write_all(b"{\"format\": \"kiln-bmap\", \"colour\": 1}").expect("write");
        let err = BlockMap::load(&path).expect_err("unknown field");
        let chain = format!("{err}: {}", std::error::Error::source(&err).map(|s| s.to_string()).unwrap_or_default());
        assert!(chain.contains("colour"), "{chain}");

        let map = BlockMap { mapped_bytes: 1, ..BlockMap::from_ranges(1 << 20, vec![0..4096]) };
        assert_eq!(map.check().map_err(|e| e.0), Err("mapped_bytes".to_string()));
        let map = BlockMap::from_ranges(1 << 20, vec![100..4096]);
        assert_eq!(map.check().map_err(|e| e.0), Err("ranges[0]".to_string()));
        let mut map = BlockMap::from_ranges(64 << 20, vec![0..(64 << 20)]);
        assert_eq!(map.ranges.len(), 16, "long extents are split");
        map.ranges = vec![MappedRange { start: 0, end: 64 << 20, sha256: None }];
        assert_eq!(map.check().map_err(|e| e.0), Err("ranges[0]".to_string()));
    }
}
