//! Arbitrary bytes as a server certificate (DER) for the name App-ID reads from TLS 1.2's
//! server flight: never a panic, and a name found lies within the input.
#![no_main]
use aperture_dataplane::appid::decoders::x509;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(name) = x509::server_name(data) {
        let (base, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let at = name.as_ptr() as usize;
        assert!(at >= base && at + name.len() <= end && !name.is_empty());
    }
});
