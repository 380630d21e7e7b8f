//! DIMMs from SMBIOS: every memory device (type 17) under `sys/firmware/dmi/entries`, parsed
//! from its raw table (DMTF DSP0134: "Memory Device (Type 17)").

use std::path::Path;

use super::probe::{is_permission_denied, Probe};
use crate::model::Dimm;

const ENTRIES: &str = "sys/firmware/dmi/entries";
/// SMBIOS structure type of a memory device.
const MEMORY_DEVICE: u8 = 17;

/// Every memory device the firmware lists, in table order (`17-0`, `17-1`, ...). The tables
/// are readable by root only: unprivileged, the list is empty without a problem. A table that
/// does not parse is a problem naming its file, and the others are still read.
pub fn read_dimms(probe: &mut Probe) -> Vec<Dimm> {
    let mut names: Vec<(u32, String)> = probe
        .list(Path::new(ENTRIES), None)
        .into_iter()
        .filter_map(|n| {
            let instance = n.strip_prefix("17-")?.parse::<u32>().ok()?;
            Some((instance, n))
        })
        .collect();
    names.sort();
    let mut dimms = Vec::new();
    for (_, name) in names {
        let rel = Path::new(ENTRIES).join(&name).join("raw");
        let Some(raw) = probe.bytes_tolerating(&rel, None, is_permission_denied) else { continue };
        match parse_memory_device(&raw) {
            Ok(d) => dimms.push(d),
            Err(why) => probe.problem(&rel, None, format!("not an SMBIOS memory device: {why}")),
        }
    }
    dimms
}

/// A type 17 structure: its formatted area, then its strings (each NUL-terminated, the set
/// ended by a second NUL).
pub fn parse_memory_device(raw: &[u8]) -> Result<Dimm, String> {
    let header = raw.get(..4).ok_or_else(|| format!("{} bytes, shorter than a structure header", raw.len()))?;
    if header[0] != MEMORY_DEVICE {
        return Err(format!("structure type {}, not {MEMORY_DEVICE}", header[0]));
    }
    let length = usize::from(header[1]);
    // Through the part number (offset 0x1A): SMBIOS 2.3 and later.
    if length < 0x1B || raw.len() < length {
        return Err(format!("formatted length {length} of {} bytes: too short for SMBIOS 2.3", raw.len()));
    }
    let formatted = &raw[..length];
    let strings: Vec<String> = raw[length..]
        .split(|b| *b == 0)
        .take_while(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).trim().to_string())
        .collect();
    let string = |offset: usize| -> Option<String> {
        let index = usize::from(*formatted.get(offset)?);
        let s = strings.get(index.checked_sub(1)?)?;
        (!s.is_empty() && !is_placeholder(s)).then(|| s.clone())
    };
    let word = |offset: usize| -> Option<u16> {
        Some(u16::from_le_bytes([*formatted.get(offset)?, *formatted.get(offset + 1)?]))
    };
    let dword = |offset: usize| -> Option<u32> {
        let b = formatted.get(offset..offset + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    const MIB: u64 = 1 << 20;
    let size_bytes = match word(0x0C) {
        Some(0) => Some(0),
        Some(0xFFFF) | None => None,
        // The size is in the extended field (SMBIOS 2.7), in MiB.
        Some(0x7FFF) => dword(0x1C).map(|mib| u64::from(mib & 0x7FFF_FFFF) * MIB),
        Some(s) if s & 0x8000 != 0 => Some(u64::from(s & 0x7FFF) * 1024),
        Some(s) => Some(u64::from(s) * MIB),
    };
    let locator = string(0x10).unwrap_or_else(|| format!("handle 0x{:04x}", word(0x02).unwrap_or(0)));
    Ok(Dimm {
        locator,
        bank_locator: string(0x11),
        size_bytes,
        memory_type: formatted.get(0x12).and_then(|t| memory_type(*t)).map(str::to_string),
        speed_mts: word(0x15).filter(|s| *s != 0 && *s != 0xFFFF).map(u32::from),
        manufacturer: string(0x17),
        serial: string(0x18),
        part_number: string(0x1A),
    })
}

/// A type 17 structure (SMBIOS 3.x length) describing `d`, as firmware writes it: what the
/// fixture builder puts under `sys/firmware/dmi/entries`, and what `parse_memory_device` reads
/// back whole. An empty slot (`size_bytes` 0) gets `NO DIMM` strings, as many boards write.
pub fn encode_memory_device(handle: u16, d: &Dimm) -> Vec<u8> {
    let mut raw = vec![0u8; 0x54];
    raw[0] = MEMORY_DEVICE;
    raw[1] = 0x54;
    raw[2..4].copy_from_slice(&handle.to_le_bytes());
    let mib = d.size_bytes.map(|b| b >> 20);
    let size_word: u16 = match mib {
        None => 0xFFFF,
        Some(m) if m >= 0x7FFF => 0x7FFF,
        Some(m) => m as u16,
    };
    raw[0x0C..0x0E].copy_from_slice(&size_word.to_le_bytes());
    if size_word == 0x7FFF {
        let ext = mib.map_or(0, |m| m.min(0x7FFF_FFFF) as u32);
        raw[0x1C..0x20].copy_from_slice(&ext.to_le_bytes());
    }
    raw[0x12] = match d.memory_type.as_deref() {
        Some("DDR4") => 0x1A,
        Some("DDR5") => 0x22,
        Some("LPDDR5") => 0x23,
        _ => 0x02,
    };
    raw[0x15..0x17].copy_from_slice(&(d.speed_mts.unwrap_or(0) as u16).to_le_bytes());
    let empty = d.size_bytes == Some(0);
    let mut strings: Vec<String> = Vec::new();
    let mut put = |raw: &mut Vec<u8>, offset: usize, value: Option<&str>| {
        let value = if empty { Some("NO DIMM") } else { value };
        if let Some(v) = value {
            strings.push(v.to_string());
            raw[offset] = strings.len() as u8;
        }
    };
    put(&mut raw, 0x10, Some(&d.locator));
    put(&mut raw, 0x11, d.bank_locator.as_deref());
    put(&mut raw, 0x17, d.manufacturer.as_deref());
    put(&mut raw, 0x18, d.serial.as_deref());
    put(&mut raw, 0x1A, d.part_number.as_deref());
    if empty {
        // The locator is the slot's own name even when it is empty.
        strings[0] = d.locator.clone();
    }
    for s in &strings {
        raw.extend_from_slice(s.as_bytes());
        raw.push(0);
    }
    if strings.is_empty() {
        raw.push(0);
    }
    raw.push(0);
    raw
}

/// What firmware writes into the strings of an empty slot.
fn is_placeholder(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    matches!(l.as_str(), "not specified" | "unknown" | "no dimm" | "none" | "n/a" | "[empty]" | "empty")
        || l.starts_with("nodimm")
        || s.chars().all(|c| c == '0' || c == 'F' || c == ' ')
}

/// DSP0134 table "Memory Device — Type".
fn memory_type(code: u8) -> Option<&'static str> {
    Some(match code {
        0x12 => "DDR",
        0x13 => "DDR2",
        0x18 => "DDR3",
        0x1A => "DDR4",
        0x1B => "LPDDR",
        0x1C => "LPDDR2",
        0x1D => "LPDDR3",
        0x1E => "LPDDR4",
        0x20 => "HBM",
        0x21 => "HBM2",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        0x24 => "HBM3",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type 17 structure of SMBIOS 3.x length (0x54) with these strings.
    pub(crate) fn table(size_word: u16, extended_mib: u32, strings: &[&str]) -> Vec<u8> {
        let mut raw = vec![0u8; 0x54];
        raw[0] = 17;
        raw[1] = 0x54;
        raw[2..4].copy_from_slice(&0x1100u16.to_le_bytes());
        raw[0x0C..0x0E].copy_from_slice(&size_word.to_le_bytes());
        raw[0x10] = 1; // locator
        raw[0x11] = 2; // bank
        raw[0x12] = 0x22; // DDR5
        raw[0x15..0x17].copy_from_slice(&5600u16.to_le_bytes());
        raw[0x17] = 3; // manufacturer
        raw[0x18] = 4; // serial
        raw[0x1A] = 5; // part number
        raw[0x1C..0x20].copy_from_slice(&extended_mib.to_le_bytes());
        for s in strings {
            raw.extend_from_slice(s.as_bytes());
            raw.push(0);
        }
        raw.push(0);
        raw
    }

    #[test]
    fn a_populated_slot_reads_with_its_strings_and_size() {
        let raw = table(0x7FFF, 65_536, &["CPU0_DIMM_A1", "P0_NODE0", "Samsung", "80CE01234567", "M321R8GA0BB0-CQK"]);
        let d = parse_memory_device(&raw).expect("parses");
        assert_eq!(d.locator, "CPU0_DIMM_A1");
        assert_eq!(d.bank_locator.as_deref(), Some("P0_NODE0"));
        assert_eq!(d.size_bytes, Some(64 << 30));
        assert_eq!((d.memory_type.as_deref(), d.speed_mts), (Some("DDR5"), Some(5600)));
        assert_eq!(d.serial.as_deref(), Some("80CE01234567"));
        assert_eq!(d.part_number.as_deref(), Some("M321R8GA0BB0-CQK"));
        assert!(d.populated());
    }

    #[test]
    fn sizes_in_mib_kib_and_empty_slots() {
        let mib = table(16_384, 0, &["A", "B", "x", "1", "p"]);
        assert_eq!(parse_memory_device(&mib).expect("parses").size_bytes, Some(16 << 30));
        let kib = table(0x8000 | 512, 0, &["A", "B", "x", "1", "p"]);
        assert_eq!(parse_memory_device(&kib).expect("parses").size_bytes, Some(512 << 10));
        let empty = table(0, 0, &["CPU0_DIMM_B2", "P0_NODE0", "NO DIMM", "NO DIMM", "NO DIMM"]);
        let d = parse_memory_device(&empty).expect("parses");
        assert!(!d.populated());
        assert_eq!((d.serial, d.manufacturer), (None, None));
    }

    #[test]
    fn an_encoded_device_reads_back_whole() {
        let d = Dimm {
            locator: "CPU1_DIMM_H2".into(),
            bank_locator: Some("P1_NODE1".into()),
            size_bytes: Some(64 << 30),
            memory_type: Some("DDR5".into()),
            speed_mts: Some(5600),
            manufacturer: Some("Samsung".into()),
            serial: Some("80CE0A1B2C3D".into()),
            part_number: Some("M321R8GA0BB0-CQK".into()),
        };
        assert_eq!(parse_memory_device(&encode_memory_device(0x1100, &d)).expect("parses"), d);
        let empty = Dimm { locator: "CPU1_DIMM_H1".into(), size_bytes: Some(0), ..Dimm::default() };
        let back = parse_memory_device(&encode_memory_device(0x1101, &empty)).expect("parses");
        assert_eq!((back.locator.as_str(), back.populated(), back.serial), ("CPU1_DIMM_H1", false, None));
    }

    #[test]
    fn garbage_is_an_error_not_a_dimm() {
        assert!(parse_memory_device(&[17, 4]).is_err());
        assert!(parse_memory_device(&[1, 0x1B, 0, 0]).expect_err("type 1").contains("type 1"));
        let mut short = table(1024, 0, &["A"]);
        short.truncate(0x10);
        assert!(parse_memory_device(&short).expect_err("truncated").contains("too short"));
    }
}
