//! Fuzz target `agent_message`: see `kiln_fuzz::agent_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kiln_fuzz::agent_message(data));
