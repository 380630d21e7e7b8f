//! Fuzz target `artifact_manifest`: see `kiln_fuzz::artifact_manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::artifact_manifest(data));
