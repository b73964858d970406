//! Arbitrary text as dataplane.yaml: never a panic; an error names the file; a config that
//! loads has sizes its own checks accept.
#![no_main]
use aperture_dataplane::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.yaml") {
        Ok(c) => assert!(c.flow_table.capacity >= 1),
        Err(e) => assert!(e.to_string().contains("fuzz.yaml"), "{e}"),
    }
});
