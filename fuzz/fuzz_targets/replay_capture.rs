//! Arbitrary bytes as a capture file (pcap or pcapng, any link type): the replay front end
//! either converts every frame to Ethernet or returns an error; it never panics.
#![no_main]
use aperture_dataplane::replay::capture;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("aperture-fuzz-capture-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = capture::for_each_frame(&path, |f| {
        // Whatever came out is fed on, as the dataplane would.
        let _ = aperture_dataplane::packet::parse(&f.data, f.orig_len as usize);
        Ok(())
    });
});
