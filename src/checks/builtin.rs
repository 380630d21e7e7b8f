//! The platform specs built into the binary, so kiln can be pushed to a node
//! as one file. The files live in `checks/platforms/`; add a line here for
//! each new one (a test checks that none is missing).

/// File name and text of each built-in spec, sorted by file name.
pub const PLATFORMS: &[(&str, &str)] = &[
    ("gb200-nvl72-tray.toml", include_str!("../../checks/platforms/gb200-nvl72-tray.toml")),
    ("generic.toml", include_str!("../../checks/platforms/generic.toml")),
    ("h100-sxm.toml", include_str!("../../checks/platforms/h100-sxm.toml")),
    ("hgx-b200.toml", include_str!("../../checks/platforms/hgx-b200.toml")),
];

/// Name of the spec used when no other matches.
pub const FALLBACK: &str = "generic";
