//! The firmware recipes built into the binary, like the platform specs. The files live in
//! `checks/firmware/`; add a line here for each new one (a test checks that none is missing).

/// File name and text of each built-in recipe, sorted by file name.
pub const RECIPES: &[(&str, &str)] = &[
    ("bluefield3-recorded.toml", include_str!("../../checks/firmware/bluefield3-recorded.toml")),
    ("gb200-nvl72-compute.toml", include_str!("../../checks/firmware/gb200-nvl72-compute.toml")),
    ("gh200-recorded.toml", include_str!("../../checks/firmware/gh200-recorded.toml")),
    ("hgx-b200.toml", include_str!("../../checks/firmware/hgx-b200.toml")),
];
