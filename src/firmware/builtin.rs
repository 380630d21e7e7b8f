//! The firmware recipes built into the binary, like the platform specs. `build.rs` embeds every
//! `checks/firmware/*.toml`: adding a file there is all a new recipe needs.

include!(concat!(env!("OUT_DIR"), "/builtin_firmware.rs"));
