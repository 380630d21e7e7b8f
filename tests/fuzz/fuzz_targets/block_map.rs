//! Fuzz target `block_map`: see `kiln_fuzz::block_map`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::block_map(data));
