//! Cutting the mapped ranges into the pieces the writer moves: at most one
//! chunk long, and split where the partition-table regions begin and end so
//! that every piece is either wholly deferred or not at all.

use std::ops::Range;

/// One piece of a mapped range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub len: usize,
    /// Inside a partition-table region: written last, after everything else
    /// is verified, so an interrupted write leaves no bootable disk.
    pub deferred: bool,
}

/// The pieces of `range`, in order.
pub fn pieces(range: Range<u64>, deferred: &[Range<u64>], chunk: usize) -> Vec<Piece> {
    let mut cuts = vec![range.start, range.end];
    for z in deferred {
        for edge in [z.start, z.end] {
            if edge > range.start && edge < range.end {
                cuts.push(edge);
            }
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let (start, end) = (w[0], w[1]);
        let in_zone = deferred.iter().any(|z| z.start <= start && end <= z.end);
        let mut at = start;
        while at < end {
            let len = ((end - at) as usize).min(chunk);
            out.push(Piece { offset: at, len, deferred: in_zone });
            at += len as u64;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn splits_at_zone_edges_and_chunk_size() {
        let zones = [0..MIB, 9 * MIB..10 * MIB];
        let p = pieces(MIB / 2..3 * MIB, &zones, 1 << 20);
        let got: Vec<(u64, usize, bool)> = p.iter().map(|p| (p.offset, p.len, p.deferred)).collect();
        assert_eq!(
            got,
            vec![(MIB / 2, (MIB / 2) as usize, true), (MIB, MIB as usize, false), (2 * MIB, MIB as usize, false)]
        );
        let p = pieces(8 * MIB..10 * MIB, &zones, 4 << 20);
        assert_eq!(p.len(), 2);
        assert!(!p[0].deferred && p[1].deferred);
        let total: usize = pieces(0..10 * MIB, &zones, 3 << 20).iter().map(|p| p.len).sum();
        assert_eq!(total as u64, 10 * MIB);
    }
}
