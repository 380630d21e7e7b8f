//! The platform specs built into the binary, so kiln can be pushed to a node
//! as one file. `build.rs` embeds every `checks/platforms/*.toml`: adding a
//! file there is all a new platform needs.

include!(concat!(env!("OUT_DIR"), "/builtin_platforms.rs"));
