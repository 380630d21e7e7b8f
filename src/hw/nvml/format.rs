//! Pure conversions from NVML's raw shapes to the model's: UUIDs, fixed-size byte
//! strings, and struct version words. (NVML's bus ids are parsed by `PciAddress::parse`.)

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
