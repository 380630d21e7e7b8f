//! Fuzz target `collective_rank`: see `kiln_fuzz::collective_rank`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::collective_rank(data));
