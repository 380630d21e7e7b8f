//! Fuzz target `sysfs_value`: see `kiln_fuzz::sysfs_value`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::sysfs_value(data));
