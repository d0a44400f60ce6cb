//! Fuzz target: see nixfront::fuzzing::options for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nixfront::fuzzing::options(data));
