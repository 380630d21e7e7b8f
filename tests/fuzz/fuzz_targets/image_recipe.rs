//! Fuzz target `image_recipe`: see `kiln_fuzz::image_recipe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::image_recipe(data));
