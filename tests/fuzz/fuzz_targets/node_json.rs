//! Fuzz target `node_json`: see `kiln_fuzz::node_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::node_json(data));
