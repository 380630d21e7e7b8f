//! Pure conversions from NVML's raw shapes to the model's: PCI addresses, UUIDs,
//! fixed-size byte strings, and struct version words.

/// Rewrites an NVML bus id (`00000000:1B:00.0`, 8-digit domain, uppercase) into
/// the sysfs form the rest of kiln uses (`0000:1b:00.0`). Returns `None` when the
/// text is not a PCI address, so a caller can say so instead of guessing.
///
/// NVML pads the domain to 8 hex digits; sysfs prints 4 unless the domain needs
/// more, so a domain above 0xffff keeps all its digits.
pub fn normalize_pci_address(bus_id: &str) -> Option<String> {
    let bus_id = bus_id.trim_matches(char::from(0)).trim();
    let (domain, rest) = bus_id.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let domain = parse_hex(domain, 8)?;
    let bus = parse_hex(bus, 2)?;
    let device = parse_hex(device, 2)?;
    let function = parse_hex(function, 1)?;
    if bus > 0xff || device > 0x1f || function > 7 {
        return None;
    }
    Some(format!("{domain:04x}:{bus:02x}:{device:02x}.{function:x}"))
}

/// Parses 1 to `max_digits` hex digits, nothing else (no sign, no `0x`).
fn parse_hex(text: &str, max_digits: usize) -> Option<u32> {
    if text.is_empty() || text.len() > max_digits || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// Formats 16 raw bytes as a lowercase UUID with dashes (8-4-4-4-12), the way
/// NVIDIA tools print the fabric cluster UUID.
pub fn uuid_from_bytes(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Reads a fixed-size, NUL-padded text field (the platform chassis serial).
/// The field need not end in NUL when the text fills it. Returns `None` when it
/// holds no text; bytes that are not printable ASCII are written as `\xNN` so a
/// garbled field stays visible instead of being dropped.
pub fn fixed_text(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text: String = bytes[..end]
        .iter()
        .map(|&b| if b.is_ascii_graphic() || b == b' ' { char::from(b).to_string() } else { format!("\\x{b:02x}") })
        .collect();
    let text = text.trim();
    if text.is_empty() {
        None
    } else {
        Some(text.to_string())
    }
}

/// NVML's versioned-struct word: the struct's size in the low bits and the
/// version in the top byte (`NVML_STRUCT_VERSION` in `nvml.h`).
pub const fn struct_version(size: usize, version: u32) -> u32 {
    (size as u32) | (version << 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvml_bus_id_becomes_sysfs_form() {
        assert_eq!(normalize_pci_address("00000000:1B:00.0").as_deref(), Some("0000:1b:00.0"));
        assert_eq!(normalize_pci_address("00000009:01:00.0").as_deref(), Some("0009:01:00.0"));
        assert_eq!(normalize_pci_address("00000018:01:00.0").as_deref(), Some("0018:01:00.0"));
        assert_eq!(normalize_pci_address("0000:c1:00.1").as_deref(), Some("0000:c1:00.1"));
    }

    #[test]
    fn wide_domain_keeps_its_digits() {
        assert_eq!(normalize_pci_address("00010000:01:00.0").as_deref(), Some("10000:01:00.0"));
    }

    #[test]
    fn trailing_nuls_and_spaces_are_ignored() {
        assert_eq!(normalize_pci_address("00000000:3D:00.0\0\0").as_deref(), Some("0000:3d:00.0"));
    }

    #[test]
    fn garbage_is_not_an_address() {
        for bad in ["", "N/A", "0000:1b:00", "0000:1b.00.0", "000000000:1b:00.0", "0000:1g:00.0", "0000:1b:20.0"] {
            assert_eq!(normalize_pci_address(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_pci_address("0000:1b:00.8"), None);
        assert_eq!(normalize_pci_address("0000:+1:00.0"), None);
    }

    #[test]
    fn uuid_has_dashes_in_the_usual_places() {
        let bytes = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        assert_eq!(uuid_from_bytes(&bytes), "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(uuid_from_bytes(&[0; 16]), "00000000-0000-0000-0000-000000000000");
    }

    #[test]
    fn fixed_text_stops_at_nul_and_keeps_full_fields() {
        assert_eq!(fixed_text(b"1821724000123\0\0\0").as_deref(), Some("1821724000123"));
        assert_eq!(fixed_text(b"ABCDEFGHIJKLMNOP").as_deref(), Some("ABCDEFGHIJKLMNOP"));
        assert_eq!(fixed_text(&[0; 16]), None);
        assert_eq!(fixed_text(b"  \0garbage").as_deref(), None);
        assert_eq!(fixed_text(b"AB\x01C\0").as_deref(), Some("AB\\x01C"));
    }

    #[test]
    fn struct_version_matches_nvml_header_values() {
        // nvml.h: nvmlGpuFabricInfo_v2 = 0x02000024, nvmlGpuFabricInfo_v3 = 0x3000028.
        assert_eq!(struct_version(36, 2), 0x0200_0024);
        assert_eq!(struct_version(40, 3), 0x0300_0028);
    }
}
