//! Fuzz target `redfish_reply`: see `kiln_fuzz::redfish_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::redfish_reply(data));
