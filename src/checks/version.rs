//! Comparing firmware and driver versions written as dotted numbers.

use std::cmp::Ordering;

/// How the segments of a version are read. VBIOS versions are hex
/// (`96.00.5E.00.01`); drivers, NIC firmware and most BIOSes are decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Radix {
    Decimal,
    Hex,
}

/// The numeric segments of a version: the first whitespace-separated word,
/// split at `.`, `-` and `_`. `28.39.1002 (MT_0000000838)` gives
/// `[28, 39, 1002]`. `None` when a segment is not a number in `radix`.
pub fn segments(version: &str, radix: Radix) -> Option<Vec<u64>> {
    let word = version.split_whitespace().next()?;
    let word = word.strip_prefix('v').unwrap_or(word);
    let base = match radix {
        Radix::Decimal => 10,
        Radix::Hex => 16,
    };
    word.split(['.', '-', '_']).map(|s| if s.is_empty() { None } else { u64::from_str_radix(s, base).ok() }).collect()
}

/// Compares two versions segment by segment; a missing trailing segment
/// counts as 0 (`570.124` == `570.124.0`). `None` when either is not numeric.
pub fn compare(a: &str, b: &str, radix: Radix) -> Option<Ordering> {
    let (a, b) = (segments(a, radix)?, segments(b, radix)?);
    let n = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    Some((0..n).map(|i| at(&a, i).cmp(&at(&b, i))).find(|o| *o != Ordering::Equal).unwrap_or(Ordering::Equal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically_not_as_text() {
        assert_eq!(compare("570.124.06", "570.86.10", Radix::Decimal), Some(Ordering::Greater));
        assert_eq!(compare("570.124", "570.124.0", Radix::Decimal), Some(Ordering::Equal));
        assert_eq!(compare("28.39.1002 (MT_0000000838)", "28.40.1000", Radix::Decimal), Some(Ordering::Less));
    }

    #[test]
    fn vbios_segments_are_hex() {
        assert_eq!(compare("96.00.5E.00.01", "96.00.30.00.01", Radix::Hex), Some(Ordering::Greater));
        assert_eq!(compare("96.00.5E.00.01", "96.00.30.00.01", Radix::Decimal), None);
    }

    #[test]
    fn non_numeric_versions_do_not_compare() {
        assert_eq!(compare("C1.00.G3", "1.0", Radix::Decimal), None);
        assert_eq!(compare("", "1.0", Radix::Decimal), None);
    }
}
