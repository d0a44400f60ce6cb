//! Fuzz target: see nixfront::fuzzing::nixfile for the property it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nixfront::fuzzing::nixfile(data));
