//! Arbitrary flows into the `zoom` App-ID decoder (as the engine feeds it): never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| aperture_dataplane::appid::decoders::exercise("zoom", data));
