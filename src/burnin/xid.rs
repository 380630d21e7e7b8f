//! The Xid catalog (`checks/xid.toml`): what each Xid means and what a technician does about it.

use serde::Deserialize;

/// The catalog kiln ships.
pub const BUILTIN: &str = include_str!("../../checks/xid.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XidSeverity {
    /// Fails a burn-in.
    Fatal,
    /// Reported, does not fail on its own.
    Warning,
    /// Usually a program's fault; reported.
    Application,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XidEntry {
    pub code: u64,
    pub name: String,
    pub severity: XidSeverity,
    pub action: String,
}

#[derive(Debug, thiserror::Error)]
pub enum XidCatalogError {
    #[error("parsing the Xid catalog {file}")]
    Parse {
        file: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("Xid catalog {file}: Xid {code} is listed twice")]
    Duplicate { file: String, code: u64 },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    xid: Vec<XidEntry>,
}

#[derive(Debug, Clone)]
pub struct XidCatalog {
    entries: Vec<XidEntry>,
}

impl XidCatalog {
    pub fn parse(file: &str, text: &str) -> Result<Self, XidCatalogError> {
        let parsed: CatalogFile =
            toml::from_str(text).map_err(|e| XidCatalogError::Parse { file: file.to_string(), source: Box::new(e) })?;
        let mut entries = parsed.xid;
        entries.sort_by_key(|e| e.code);
        for w in entries.windows(2) {
            if w[0].code == w[1].code {
                return Err(XidCatalogError::Duplicate { file: file.to_string(), code: w[0].code });
            }
        }
        Ok(XidCatalog { entries })
    }

    pub fn builtin() -> Result<Self, XidCatalogError> {
        XidCatalog::parse("checks/xid.toml", BUILTIN)
    }

    pub fn get(&self, code: u64) -> Option<&XidEntry> {
        self.entries.binary_search_by_key(&code, |e| e.code).ok().map(|i| &self.entries[i])
    }

    /// Whether an Xid fails a burn-in. An Xid missing from the catalog is
    /// treated as fatal: during a burn-in only kiln runs, and an Xid nobody
    /// has classified is not evidence of health.
    pub fn is_fatal(&self, code: u64) -> bool {
        self.get(code).is_none_or(|e| e.severity == XidSeverity::Fatal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_holds_dcgm_and_azure_fatal_sets() {
        let c = XidCatalog::builtin().expect("catalog parses");
        for code in [48, 74, 79, 95, 119, 120, 140] {
            assert!(c.is_fatal(code), "DCGM always fails Xid {code}");
        }
        for code in [56, 57, 58, 62, 63, 64, 65, 68, 69, 73, 80, 81, 92] {
            assert!(c.is_fatal(code), "Azure fails Xid {code}");
        }
        for code in 144..=150 {
            assert!(c.is_fatal(code), "NVLink 5 Xid {code}");
        }
        assert!(!c.is_fatal(13), "Xid 13 is usually an application fault");
        assert!(!c.is_fatal(94), "a contained ECC error is a warning");
        assert!(c.is_fatal(9999), "an unknown Xid is not evidence of health");
        assert!(c.get(79).expect("79").action.contains("reboot"));
        assert!(c.get(95).expect("95").action.contains("reset the GPU"));
    }

    #[test]
    fn duplicates_and_bad_severity_are_errors() {
        let dup = "[[xid]]\ncode = 1\nname = \"a\"\nseverity = \"fatal\"\naction = \"x\"\n".repeat(2);
        assert!(matches!(XidCatalog::parse("t.toml", &dup), Err(XidCatalogError::Duplicate { code: 1, .. })));
        let bad = "[[xid]]\ncode = 1\nname = \"a\"\nseverity = \"awful\"\naction = \"x\"\n";
        let e = XidCatalog::parse("t.toml", bad).expect_err("bad severity");
        assert!(matches!(e, XidCatalogError::Parse { .. }));
    }
}
