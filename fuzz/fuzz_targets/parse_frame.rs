//! Arbitrary bytes into the L2-L4 parser, the tunnel decapsulation and the flow key: never a
//! panic, a parsed frame's offsets stay inside the frame (an inner packet's after its outer
//! one's), and the common-case shortcut parses every frame it takes exactly as the general
//! parser does.
#![no_main]
use aperture_dataplane::flow::FlowKey;
use aperture_dataplane::packet::{self, tunnel, Fragment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks how much longer the "wire" packet claims to be (mbuf chains).
    let (extra, frame) = match data.split_first() {
        Some((e, rest)) => (*e as usize, rest),
        None => (0, data),
    };
    if let (Some(common), general) = packet::parse_each_way(frame, frame.len() + extra) {
        assert_eq!(general, Ok(common));
    }
    if let Ok(h) = packet::parse(frame, frame.len() + extra) {
        assert!(h.l3_offset as usize <= frame.len());
        if h.is_ip() && h.fragment != Fragment::Later {
            assert!(h.l4_offset as usize <= frame.len());
            assert!(h.payload_offset >= h.l4_offset);
            let (k, lo) = FlowKey::from_headers(&h);
            let (src, sport, dst, dport) = k.oriented(lo);
            assert_eq!(
                (src, sport, dst, dport),
                (h.src, h.src_port, h.dst, h.dst_port)
            );
        }
        if tunnel::candidate(&h) {
            if let Ok(Some((inner, t))) = tunnel::decap(frame, &h) {
                assert!(inner.l3_offset >= h.payload_offset);
                assert!(inner.l3_offset as usize <= frame.len());
                assert_eq!(inner.tunnel, t.kind as u8);
                assert!((1..=tunnel::MAX_DEPTH).contains(&t.depth));
                let (k, _) = FlowKey::from_headers(&inner);
                assert_eq!(k.tunnel(), t.kind as u8);
            }
        }
    }
});
