//! Failing closed: zero the places a partition table lives, so a node cannot
//! boot a half-written disk.
//!
//! An MBR and the primary GPT sit in the first MiB; the backup GPT sits in
//! the last MiB of the disk. The image's own last MiB matters too when the
//! disk is larger than the image: an image's backup GPT lies at the end of
//! the image, not of the disk. Zeros are written like data (not discarded):
//! a discard is not guaranteed to read back as zeros on every device.

use std::io;
use std::ops::Range;

use super::target::Target;

/// One MiB: the region at each end that holds partition tables.
pub const TABLE_REGION: u64 = 1 << 20;

/// The ranges to zero on a target of `target_size` bytes holding (part of)
/// an image of `image_size` bytes: the first MiB, the image's last MiB and
/// the target's last MiB, merged, within the target.
pub fn table_ranges(image_size: u64, target_size: u64) -> Vec<Range<u64>> {
    let mut ranges = vec![
        0..TABLE_REGION.min(target_size),
        image_size.min(target_size).saturating_sub(TABLE_REGION)..image_size.min(target_size),
        target_size.saturating_sub(TABLE_REGION)..target_size,
    ];
    ranges.retain(|r| !r.is_empty());
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// Zero the partition-table regions of `target` and flush.
pub fn wipe(target: &Target, image_size: u64) -> io::Result<()> {
    for r in table_ranges(image_size, target.size) {
        target.write_zeros(r)?;
    }
    target.flush()?;
    tracing::info!(target_path = %target.path.display(), "wiped the partition tables of the target");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn regions_cover_both_ends_of_image_and_disk() {
        assert_eq!(table_ranges(10 * MIB, 10 * MIB), vec![0..MIB, 9 * MIB..10 * MIB]);
        assert_eq!(table_ranges(10 * MIB, 100 * MIB), vec![0..MIB, 9 * MIB..10 * MIB, 99 * MIB..100 * MIB]);
        // Small targets: the regions overlap and merge into the whole target.
        assert_eq!(table_ranges(MIB, MIB + 4096), vec![0..MIB + 4096]);
        assert_eq!(table_ranges(4096, 4096), vec![0..4096]);
        assert_eq!(table_ranges(0, 0), Vec::<Range<u64>>::new());
    }
}
