//! Firmware version strings as a recipe reads them: one scheme per component, a parse that can
//! fail, and an order.
//!
//! NVIDIA's parts write versions in several shapes: hex segments for VBIOS (`96.00.A6.00.01`),
//! decimal segments behind a product prefix for BMCs (`GH200-24.05-2`), dotted decimals for
//! NICs (`28.39.1002 (MT_0000000838)`), SemVer with pre-releases (`1.2.3-rc1`), build tags
//! (`01.03.0136.0000_n01`) and opaque strings (`buildbrain-gcid-35803827`). No crate reads hex
//! segments or vendor prefixes, so each recipe component names its scheme:
//!
//! - `dotted`: decimal numbers separated by `.`, `-` or `_`; a leading `v` and anything after
//!   the first blank are ignored (`28.39.1002 (MT_0000000838)` is `28.39.1002`). A missing
//!   trailing segment counts as 0 (`570.124` equals `570.124.0`).
//! - `hex`: the same with hexadecimal segments (`96.00.5E.00.01` < `96.00.A6.00.01`).
//! - `semver`: Semantic Versioning 2.0 through the `semver` crate (`1.2.3-rc1` < `1.2.3`).
//! - `debian`: Debian's version order (deb-version(7), without epoch or revision): runs of
//!   non-digits compare as text (letters before other characters, `~` before everything, even
//!   the end), runs of digits as numbers. It orders build tags such as `01.03.0136.0000_n01`.
//! - `exact`: an opaque string; equal (ignoring surrounding blanks) or different, never older or
//!   newer.
//!
//! Every scheme may be given a `prefix` the version must start with (`GH200-`); a version
//! without it is not of that product and does not parse. A version that does not parse is
//! `unreadable`, never compliant: a wrong shape often means the wrong part or a BMC error text
//! (`no valid golden_image_arm!!!!`).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checks::version::{segments, Radix};

/// How a component's versions are read and ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Dotted,
    Hex,
    Semver,
    Debian,
    Exact,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Dotted => "dotted",
            Scheme::Hex => "hex",
            Scheme::Semver => "semver",
            Scheme::Debian => "debian",
            Scheme::Exact => "exact",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version read under a scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Segments(Vec<u64>),
    Semver(semver::Version),
    Debian(String),
    Exact(String),
}

/// Read `text` under `scheme`, after removing surrounding blanks and `prefix`. `Err` says why
/// it is not such a version, in words for a finding.
pub fn parse(scheme: Scheme, prefix: Option<&str>, text: &str) -> Result<Version, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the version is empty".to_string());
    }
    let rest = match prefix {
        Some(p) => {
            trimmed.strip_prefix(p).ok_or_else(|| format!("{trimmed:?} does not start with {p:?}"))?.trim_start()
        }
        None => trimmed,
    };
    let not = |what: &str| format!("{trimmed:?} is not {what}");
    match scheme {
        Scheme::Dotted => {
            segments(rest, Radix::Decimal).map(Version::Segments).ok_or_else(|| not("a dotted decimal version"))
        }
        Scheme::Hex => segments(rest, Radix::Hex).map(Version::Segments).ok_or_else(|| not("a dotted hex version")),
        Scheme::Semver => {
            let word = rest.strip_prefix('v').unwrap_or(rest);
            semver::Version::parse(word).map(Version::Semver).map_err(|e| format!("{} ({e})", not("a SemVer version")))
        }
        Scheme::Debian => {
            if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(not("one word"))
            } else if !rest.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                Err(not("a version that starts with a letter or digit"))
            } else {
                Ok(Version::Debian(rest.to_string()))
            }
        }
        Scheme::Exact => Ok(Version::Exact(rest.to_string())),
    }
}

/// The order of two versions of one scheme: `None` when they cannot be ordered (two different
/// `exact` versions, or versions of different schemes).
pub fn compare(a: &Version, b: &Version) -> Option<Ordering> {
    match (a, b) {
        (Version::Segments(x), Version::Segments(y)) => {
            let n = x.len().max(y.len());
            let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
            Some((0..n).map(|i| at(x, i).cmp(&at(y, i))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal))
        }
        // SemVer's own precedence: build metadata is ignored, pre-releases sort first.
        (Version::Semver(x), Version::Semver(y)) => Some(x.cmp_precedence(y)),
        (Version::Debian(x), Version::Debian(y)) => Some(debian_order(x, y)),
        (Version::Exact(x), Version::Exact(y)) => (x == y).then_some(Ordering::Equal),
        _ => None,
    }
}

/// Debian's order of upstream versions (deb-version(7)): alternate runs of non-digits, compared
/// character by character with [`char_weight`], and runs of digits, compared as numbers.
fn debian_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        let (text_a, rest_a) = split_run(a, |c| !c.is_ascii_digit());
        let (text_b, rest_b) = split_run(b, |c| !c.is_ascii_digit());
        let n = text_a.len().max(text_b.len());
        for i in 0..n {
            let o = char_weight(text_a.get(i).copied()).cmp(&char_weight(text_b.get(i).copied()));
            if o.is_ne() {
                return o;
            }
        }
        let (digits_a, rest_a) = split_run(rest_a, |c| c.is_ascii_digit());
        let (digits_b, rest_b) = split_run(rest_b, |c| c.is_ascii_digit());
        let o = numeric_order(digits_a, digits_b);
        if o.is_ne() {
            return o;
        }
        (a, b) = (rest_a, rest_b);
    }
    Ordering::Equal
}

fn split_run(s: &[u8], take: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().position(|c| !take(*c)).unwrap_or(s.len());
    s.split_at(n)
}

/// Digit runs of any length, compared as numbers without overflowing: leading zeros dropped,
/// then the longer run is the larger, then text order.
fn numeric_order(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &[u8]| -> usize { s.iter().position(|c| *c != b'0').unwrap_or(s.len()) };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// deb-version(7): `~` sorts before anything, even the end of the run; then the end; then
/// letters; then every other character, by its code.
fn char_weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn cmp(scheme: Scheme, prefix: Option<&str>, a: &str, b: &str) -> Option<Ordering> {
        let a = parse(scheme, prefix, a).expect("a parses");
        let b = parse(scheme, prefix, b).expect("b parses");
        compare(&a, &b)
    }

    #[test]
    fn vbios_is_ordered_by_hex_segments_and_padding_is_ignored() {
        assert_eq!(cmp(Scheme::Hex, None, "96.00.A6.00.01  ", "96.00.A6.00.01"), Some(Equal));
        assert_eq!(cmp(Scheme::Hex, None, "96.00.5E.00.01", "96.00.A6.00.01"), Some(Less));
        assert_eq!(cmp(Scheme::Hex, None, "96.00.a6.00.01", "96.00.A6.00.01"), Some(Equal));
        assert!(parse(Scheme::Dotted, None, "96.00.A6.00.01").is_err(), "hex digits are not decimal");
    }

    #[test]
    fn a_product_prefix_must_be_present() {
        assert_eq!(cmp(Scheme::Dotted, Some("GH200-"), "GH200-24.05-2", "GH200-24.09-1"), Some(Less));
        assert_eq!(cmp(Scheme::Dotted, Some("GH200-BMC"), "GH200-BMC 24.09-1", "GH200-BMC 24.09-1"), Some(Equal));
        let err = parse(Scheme::Dotted, Some("GH200-"), "BF-24.07-14").expect_err("another product");
        assert!(err.contains("does not start with \"GH200-\""), "{err}");
    }

    #[test]
    fn dotted_ignores_a_trailing_comment_and_missing_zeros() {
        assert_eq!(cmp(Scheme::Dotted, None, "28.39.1002 (MT_0000000838)", "28.40.1000"), Some(Less));
        assert_eq!(cmp(Scheme::Dotted, None, "570.124", "570.124.0"), Some(Equal));
        assert_eq!(cmp(Scheme::Dotted, None, "570.124.06", "570.86.10"), Some(Greater));
    }

    #[test]
    fn semver_sorts_pre_releases_first() {
        assert_eq!(cmp(Scheme::Semver, None, "1.2.3-rc1", "1.2.3"), Some(Less));
        // SemVer compares "rc2" and "rc10" as text; numeric identifiers compare as numbers.
        assert_eq!(cmp(Scheme::Semver, None, "v1.2.3-rc.2", "1.2.3-rc.10"), Some(Less));
        assert_eq!(cmp(Scheme::Semver, None, "1.2.3+build7", "1.2.3"), Some(Equal));
        assert!(parse(Scheme::Semver, None, "1.2").is_err());
    }

    #[test]
    fn debian_order_reads_build_tags() {
        assert_eq!(cmp(Scheme::Debian, None, "01.03.0136.0000_n01", "01.03.0136.0000_n02"), Some(Less));
        assert_eq!(cmp(Scheme::Debian, None, "01.03.0137.0000_n01", "01.03.0136.0000_n09"), Some(Greater));
        assert_eq!(cmp(Scheme::Debian, None, "G530.0225.00.02", "G530.0225.00.02"), Some(Equal));
        // `~` before the end, letters before punctuation, numbers as numbers.
        assert_eq!(cmp(Scheme::Debian, None, "1.0~rc1", "1.0"), Some(Less));
        assert_eq!(cmp(Scheme::Debian, None, "1.0a", "1.0+"), Some(Less));
        assert_eq!(cmp(Scheme::Debian, None, "1.10", "1.9"), Some(Greater));
        assert_eq!(cmp(Scheme::Debian, None, "1.000000000000000000000000001", "1.2"), Some(Less));
        assert!(parse(Scheme::Debian, None, "no valid golden_image_arm!!!!").is_err());
    }

    #[test]
    fn exact_versions_are_equal_or_unordered() {
        assert_eq!(cmp(Scheme::Exact, None, " buildbrain-gcid-35803827 ", "buildbrain-gcid-35803827"), Some(Equal));
        assert_eq!(cmp(Scheme::Exact, None, "buildbrain-gcid-35803827", "buildbrain-gcid-35803828"), None);
    }

    #[test]
    fn empty_and_malformed_versions_do_not_parse() {
        for scheme in [Scheme::Dotted, Scheme::Hex, Scheme::Semver, Scheme::Debian, Scheme::Exact] {
            assert!(parse(scheme, None, "   ").is_err(), "{scheme}");
        }
        assert!(parse(Scheme::Dotted, None, "0..1").is_err());
        assert!(parse(Scheme::Hex, None, "0.3G").is_err());
    }
}
