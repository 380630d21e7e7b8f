//! Fuzz target `firmware_recipe`: see `kiln_fuzz::firmware_recipe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::firmware_recipe(data));
