//! Zoom's own media transport over UDP, on its ports 8801-8810 (the format is Zoom's and
//! undocumented: the port range is required). A session opens with the client's packet of
//! type 1 and the server's of type 2 repeating the 16-byte session id at bytes 3-18 (kept in
//! scratch): `Certain` then, `NotYet` before.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Zoom;

const PORTS: std::ops::RangeInclusive<u16> = 8801..=8810;
const ID: std::ops::Range<usize> = 3..19;
const OPEN: u8 = 1;
const ACCEPT: u8 = 2;

impl Decoder for Zoom {
    fn name(&self) -> &'static str {
        "zoom"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[8801, 8802]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp || !PORTS.contains(&ctx.server.1) {
            return Probe::NotMe;
        }
        let (Some(&kind), Some(id)) = (data.first(), data.get(ID)) else {
            return Probe::NotMe;
        };
        if id == [0; 16] {
            return Probe::NotMe;
        }
        match (ctx.dir, kind) {
            (Dir::Orig, OPEN) => {
                scratch.copy_from_slice(id);
                Probe::NotYet
            }
            (Dir::Reply, ACCEPT) if scratch[..] == *id => {
                Probe::Match(Proto::Zoom, Confidence::Certain)
            }
            _ if *scratch != [0; 16] => Probe::NotYet,
            _ => Probe::NotMe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn open_and_accept_with_the_same_session() {
        // zoom.pcap, 192.168.1.117:58327 <-> 109.94.160.99:8801.
        let o = ctx(Transport::Udp, Dir::Orig, 58327, 8801);
        let r = ctx(Transport::Udp, Dir::Reply, 58327, 8801);
        let open = hex("0100027d464d35fffda234495d0d6d3b51e8960000000000000002007a002a00");
        let accept = hex("0200017d464d35fffda234495d0d6d3b51e896005a0e3e007a002a0000000000");
        let mut s = [0u8; 16];
        let mut ev = Evidence::default();
        assert_eq!(Zoom.probe(&open, &o, &mut s, &mut ev), Probe::NotYet);
        assert_eq!(
            Zoom.probe(&accept, &r, &mut s, &mut ev),
            Probe::Match(Proto::Zoom, Confidence::Certain)
        );
        let mut other = accept.clone();
        other[5] ^= 1;
        let mut s = [0u8; 16];
        assert_eq!(Zoom.probe(&open, &o, &mut s, &mut ev), Probe::NotYet);
        assert_eq!(Zoom.probe(&other, &r, &mut s, &mut ev), Probe::NotYet);
        let elsewhere = ctx(Transport::Udp, Dir::Orig, 58327, 8800);
        assert_eq!(
            Zoom.probe(&open, &elsewhere, &mut [0; 16], &mut ev),
            Probe::NotMe
        );
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Zoom, &[Proto::Zoom], &[]);
        assert!(m.get(&Proto::Zoom).is_some_and(|n| *n >= 5), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut s = [0u8; 16];
            for dir in [Dir::Orig, Dir::Reply] {
                let _ = Zoom.probe(&data, &ctx(Transport::Udp, dir, 1, 8801), &mut s, &mut Evidence::default());
            }
        }
    }
}
