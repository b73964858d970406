//! Arbitrary frames into IPv4 reassembly: never a panic; every datagram it completes is one
//! unfragmented IPv4 packet as long as its frame, and cutting it again at the size it came in
//! and reassembling those fragments gives the same frame back.
#![no_main]
use aperture_dataplane::flow::defrag::{fragment, Defrag, Step};
use aperture_dataplane::packet::{self, Fragment, Headers};
use libfuzzer_sys::fuzz_target;

fn push(d: &mut Defrag, f: &[u8], now: u64) -> Option<Step> {
    let mut h = Headers::empty();
    packet::parse_into(f, f.len(), &mut h).ok()?;
    (h.fragment != Fragment::No).then(|| d.push(f, f.len(), &h, now))
}

fuzz_target!(|data: &[u8]| {
    let mut d = Defrag::new(4, 4096, 1_000);
    let mut scratch = vec![0u8; d.max_frame()];
    // Frames: a length byte, then that many bytes, behind a fixed Ethernet header.
    let mut rest = data;
    let mut now = 0;
    while let Some((&n, tail)) = rest.split_first() {
        let n = (n as usize).min(tail.len());
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&tail[..n]);
        rest = &tail[n..];
        now += 10;
        let Some(Step::Complete(i)) = push(&mut d, &frame, now) else {
            continue;
        };
        let (whole, largest) = d.take(i).expect("complete");
        let whole = whole.to_vec();
        let total = u16::from_be_bytes([whole[16], whole[17]]) as usize;
        assert_eq!(total + 14, whole.len());
        assert_eq!((whole[20] & 0x3f, whole[21]), (0, 0));
        let mut again = Defrag::new(1, 4096, 1_000);
        let mut frags = Vec::new();
        if fragment(&whole, 14, largest as usize, &mut scratch, |f| {
            frags.push(f.to_vec())
        })
        .is_some()
        {
            assert!(frags.iter().all(|f| f.len() - 14 <= largest as usize));
            let mut last = None;
            for f in &frags {
                last = push(&mut again, f, now);
            }
            if frags.len() > 1 {
                let Some(Step::Complete(j)) = last else {
                    panic!("cut again, not reassembled: {last:?}");
                };
                assert_eq!(again.take(j).expect("complete").0, &whole[..]);
            }
        }
    }
});
