//! Fuzz target: see nixfront::fuzzing::manifest for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nixfront::fuzzing::manifest(data));
