//! Fuzz target `rack_manifest`: see `kiln_fuzz::rack_manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::rack_manifest(data));
