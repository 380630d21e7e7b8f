//! Fuzz target `nvml_dump`: see `kiln_fuzz::nvml_dump`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::nvml_dump(data));
