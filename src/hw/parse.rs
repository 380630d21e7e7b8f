//! Parsers for single sysfs and procfs values: hex ids, link speeds, AER files, cpulists.
//!
//! Each takes the file's text (already read) and returns a typed value or a
//! `ParseError` that quotes what it saw, so a `ReadProblem` can name the bad value.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::model::PciAddress;

/// A sysfs or procfs value that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("empty value")]
    Empty,
    #[error("not a hex number: {}", crate::truncate::quote(.0))]
    NotHex(String),
    #[error("not an integer: {}", crate::truncate::quote(.0))]
    NotInteger(String),
    #[error("not a link speed: {}", crate::truncate::quote(.0))]
    NotLinkSpeed(String),
    #[error("not a \"NAME COUNT\" line: {}", crate::truncate::quote(.0))]
    NotCounterLine(String),
    #[error("not a cpu list: {}", crate::truncate::quote(.0))]
    NotCpuList(String),
    #[error("unexpected value: {}", crate::truncate::quote(.0))]
    Unexpected(String),
    #[error("no {field} line")]
    MissingField { field: String },
}

/// Parses `0x10de` (the `vendor`/`device` form) into a 16-bit id.
pub fn hex_u16(text: &str) -> Result<u16, ParseError> {
    let value = hex_u32(text)?;
    u16::try_from(value).map_err(|_| ParseError::NotHex(text.trim().to_string()))
}

/// Parses `0x030200` (the `class` form) or any `0x`-prefixed hex number.
pub fn hex_u32(text: &str) -> Result<u32, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    let digits = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ParseError::NotHex(t.to_string()));
    }
    u32::from_str_radix(digits, 16).map_err(|_| ParseError::NotHex(t.to_string()))
}

/// Parses a plain unsigned decimal integer (`16`, `1056626828`).
pub fn uint(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    if !t.chars().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::NotInteger(t.to_string()));
    }
    t.parse::<u64>().map_err(|_| ParseError::NotInteger(t.to_string()))
}

/// Parses a plain unsigned decimal integer that must fit 32 bits (link width, ids).
pub fn uint32(text: &str) -> Result<u32, ParseError> {
    let value = uint(text)?;
    u32::try_from(value).map_err(|_| ParseError::NotInteger(text.trim().to_string()))
}

/// Parses a signed decimal integer (`-1`, `0`).
pub fn int(text: &str) -> Result<i64, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::NotInteger(t.to_string()));
    }
    t.parse::<i64>().map_err(|_| ParseError::NotInteger(t.to_string()))
}

/// Parses a PCI device's `numa_node`: `-1` means the platform gave no
/// affinity and becomes `None`.
pub fn numa_node(text: &str) -> Result<Option<u32>, ParseError> {
    let value = int(text)?;
    if value == -1 {
        return Ok(None);
    }
    u32::try_from(value).map(Some).map_err(|_| ParseError::NotInteger(text.trim().to_string()))
}

/// Parses a link speed: `32.0 GT/s PCIe` (current kernels), `32 GT/s` (old
/// kernels), `2.5 GT/s PCIe`. `Unknown` (no link trained) becomes `None`.
pub fn link_speed(text: &str) -> Result<Option<f64>, ParseError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    if t.eq_ignore_ascii_case("unknown") {
        return Ok(None);
    }
    let bad = || ParseError::NotLinkSpeed(t.to_string());
    let mut words = t.split_whitespace();
    let number = words.next().ok_or_else(bad)?;
    if words.next() != Some("GT/s") {
        return Err(bad());
    }
    match words.next() {
        None | Some("PCIe") => {}
        Some(_) => return Err(bad()),
    }
    if words.next().is_some() {
        return Err(bad());
    }
    if !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let speed: f64 = number.parse().map_err(|_| bad())?;
    if !speed.is_finite() || speed <= 0.0 {
        return Err(bad());
    }
    Ok(Some(speed))
}

/// Parses an AER counter file: one `NAME COUNT` per line. Names differ across
/// kernels and some contain spaces, so each line splits at its last space.
pub fn aer_counters(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut counters = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, count) = line.rsplit_once(' ').ok_or_else(|| ParseError::NotCounterLine(line.to_string()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(ParseError::NotCounterLine(line.to_string()));
        }
        let count = uint(count).map_err(|_| ParseError::NotCounterLine(line.to_string()))?;
        counters.insert(name.to_string(), count);
    }
    Ok(counters)
}

/// The most CPUs a cpu list may name, counting repeats (Linux numbers at most 8192).
const MAX_CPUS: usize = 1 << 20;

/// Parses a kernel cpu list (`0-55,112-167`, `3`, or empty) into cpu numbers,
/// sorted and without duplicates.
pub fn cpulist(text: &str) -> Result<Vec<u32>, ParseError> {
    let t = text.trim();
    let bad = || ParseError::NotCpuList(t.to_string());
    let mut cpus = Vec::new();
    if t.is_empty() {
        return Ok(cpus);
    }
    for part in t.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo = uint32(lo).map_err(|_| bad())?;
                let hi = uint32(hi).map_err(|_| bad())?;
                // A reversed or absurdly long range is garbage, not a request
                // to allocate billions of entries; so are many ranges that add
                // up to more CPUs than any kernel numbers.
                if lo > hi || (hi - lo) as usize + 1 + cpus.len() > MAX_CPUS {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None if cpus.len() >= MAX_CPUS => return Err(bad()),
            None => cpus.push(uint32(part).map_err(|_| bad())?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Finds `FIELD: N kB` in a meminfo file (`proc/meminfo` or a NUMA node's
/// `meminfo`, whose lines start with `Node 0 `) and returns N in KiB.
pub fn meminfo_kib(text: &str, field: &str) -> Result<u64, ParseError> {
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        if key.split_whitespace().last() != Some(field) {
            continue;
        }
        let value = value.trim();
        let number = value.strip_suffix("kB").unwrap_or(value).trim();
        return uint(number).map_err(|_| ParseError::NotInteger(value.to_string()));
    }
    Err(ParseError::MissingField { field: field.to_string() })
}

/// The PCI addresses among a resolved sysfs path's components, in path order
/// (root port first); `pci0000:15` and other names that are no address are passed over.
pub fn pci_addresses_in_path(path: &std::path::Path) -> Vec<PciAddress> {
    path.components().filter_map(|c| c.as_os_str().to_str()).filter_map(|s| PciAddress::parse(s).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_and_classes() {
        assert_eq!(hex_u16("0x10de\n"), Ok(0x10de));
        assert_eq!(hex_u32("0x030200\n"), Ok(0x030200));
        assert_eq!(hex_u16("0x10000"), Err(ParseError::NotHex("0x10000".into())));
        assert_eq!(hex_u16("0x"), Err(ParseError::NotHex("0x".into())));
        assert_eq!(hex_u16("nvidia"), Err(ParseError::NotHex("nvidia".into())));
        assert_eq!(hex_u16(""), Err(ParseError::Empty));
        assert_eq!(hex_u32("0x+12"), Err(ParseError::NotHex("0x+12".into())));
    }

    #[test]
    fn a_cpu_list_of_many_long_ranges_is_refused_not_allocated() {
        // Seen through the sysfs_value fuzz target, whose runs were slow on long ranges: each
        // range was capped, their sum was not, so 4 MiB of `0-1048575,` asked for 400,000
        // ranges of a million CPUs (1.6 TB).
        let many = "0-1048575,".repeat(64);
        assert_eq!(cpulist(&many), Err(ParseError::NotCpuList(many.trim().to_string())));
        assert_eq!(cpulist("0-1048575").map(|c| c.len()), Ok(MAX_CPUS));
        assert!(cpulist(&"7,".repeat(MAX_CPUS + 1)).is_err());
        assert_eq!(cpulist("0-3,8-11,3"), Ok(vec![0, 1, 2, 3, 8, 9, 10, 11]));
    }

    #[test]
    fn a_huge_bad_value_is_quoted_short() {
        let big = "x".repeat(100_000);
        let shown = hex_u16(&big).expect_err("not hex").to_string();
        assert_eq!(shown, format!("not a hex number: \"{}\"... (100000 bytes)", "x".repeat(80)));
        assert_eq!(hex_u16("nvidia").expect_err("not hex").to_string(), "not a hex number: \"nvidia\"");
    }

    #[test]
    fn link_speeds_new_old_and_unknown() {
        assert_eq!(link_speed("32.0 GT/s PCIe\n"), Ok(Some(32.0)));
        assert_eq!(link_speed("2.5 GT/s PCIe"), Ok(Some(2.5)));
        assert_eq!(link_speed("32 GT/s"), Ok(Some(32.0)));
        assert_eq!(link_speed("16 GT/s\n"), Ok(Some(16.0)));
        assert_eq!(link_speed("Unknown\n"), Ok(None));
        assert_eq!(link_speed("Unknown speed"), Err(ParseError::NotLinkSpeed("Unknown speed".into())));
        assert_eq!(link_speed("32.0 Gb/s"), Err(ParseError::NotLinkSpeed("32.0 Gb/s".into())));
        assert_eq!(link_speed("fast GT/s PCIe"), Err(ParseError::NotLinkSpeed("fast GT/s PCIe".into())));
        assert_eq!(link_speed("-32 GT/s"), Err(ParseError::NotLinkSpeed("-32 GT/s".into())));
        assert_eq!(link_speed("NaN GT/s"), Err(ParseError::NotLinkSpeed("NaN GT/s".into())));
        assert_eq!(link_speed("32.0 GT/s PCIe extra"), Err(ParseError::NotLinkSpeed("32.0 GT/s PCIe extra".into())));
        assert_eq!(link_speed(""), Err(ParseError::Empty));
    }

    #[test]
    fn link_widths_are_plain_integers() {
        assert_eq!(uint32("16\n"), Ok(16));
        assert_eq!(uint32("x16?"), Err(ParseError::NotInteger("x16?".into())));
        assert_eq!(uint32("-1"), Err(ParseError::NotInteger("-1".into())));
        assert_eq!(uint32("99999999999"), Err(ParseError::NotInteger("99999999999".into())));
    }

    #[test]
    fn numa_minus_one_is_none() {
        assert_eq!(numa_node("-1\n"), Ok(None));
        assert_eq!(numa_node("1\n"), Ok(Some(1)));
        assert_eq!(numa_node("-2"), Err(ParseError::NotInteger("-2".into())));
        assert_eq!(numa_node("one"), Err(ParseError::NotInteger("one".into())));
        assert_eq!(numa_node("-"), Err(ParseError::NotInteger("-".into())));
    }

    #[test]
    fn aer_splits_at_last_space() {
        let text = "RxErr 0\nBad TLP 3\nTOTAL_ERR_COR 3\n";
        let map = aer_counters(text).expect("valid aer file");
        assert_eq!(map.get("Bad TLP"), Some(&3));
        assert_eq!(map.get("RxErr"), Some(&0));
        assert_eq!(map.get("TOTAL_ERR_COR"), Some(&3));
        assert_eq!(map.len(), 3);
        assert_eq!(aer_counters(""), Ok(BTreeMap::new()));
        assert_eq!(aer_counters("RxErr\n"), Err(ParseError::NotCounterLine("RxErr".into())));
        assert_eq!(aer_counters("RxErr many\n"), Err(ParseError::NotCounterLine("RxErr many".into())));
        assert_eq!(aer_counters(" 5\n"), Err(ParseError::NotCounterLine("5".into())));
    }

    #[test]
    fn cpulists() {
        assert_eq!(cpulist("0-3,8,10-11\n"), Ok(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(cpulist("\n"), Ok(vec![]));
        assert_eq!(cpulist("3,1,1"), Ok(vec![1, 3]));
        assert_eq!(cpulist("4-2"), Err(ParseError::NotCpuList("4-2".into())));
        assert_eq!(cpulist("0-4294967295"), Err(ParseError::NotCpuList("0-4294967295".into())));
        assert_eq!(cpulist("a-b"), Err(ParseError::NotCpuList("a-b".into())));
        assert_eq!(cpulist("1,,2"), Err(ParseError::NotCpuList("1,,2".into())));
    }

    #[test]
    fn meminfo_fields() {
        let proc = "MemTotal:       2113253656 kB\nMemFree:        2000000000 kB\n";
        assert_eq!(meminfo_kib(proc, "MemTotal"), Ok(2113253656));
        let node = "Node 1 MemTotal:       1056626828 kB\nNode 1 MemFree:  5 kB\n";
        assert_eq!(meminfo_kib(node, "MemTotal"), Ok(1056626828));
        assert_eq!(
            meminfo_kib("MemFree: 1 kB\n", "MemTotal"),
            Err(ParseError::MissingField { field: "MemTotal".into() })
        );
        assert_eq!(meminfo_kib("MemTotal: lots kB\n", "MemTotal"), Err(ParseError::NotInteger("lots kB".into())));
    }

    #[test]
    fn pci_addresses_in_a_resolved_path() {
        let path = std::path::Path::new(
            "sys/devices/pci0000:15/0000:15:01.0/0000:16:00.0/0000:17:02.0/virtio1/nvme/nvme0/0000:1b:00",
        );
        let found: Vec<String> = pci_addresses_in_path(path).iter().map(ToString::to_string).collect();
        assert_eq!(found, ["0000:15:01.0", "0000:16:00.0", "0000:17:02.0"]);
    }
}
