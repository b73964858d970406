//! Telegram's calls over UDP, on any port: packets to and from its reflectors start with the
//! call's 16-byte peer tag; the reflector protocol's own packets then carry eight 0xFF bytes.
//! The first such packet's tag is kept (scratch); `Certain` when the other side answers with
//! the same tag and marker, `NotYet` before.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Telegram;

const TAG: std::ops::Range<usize> = 0..16;
const MARKER: std::ops::Range<usize> = 16..24;

impl Decoder for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp || data.get(MARKER) != Some(&[0xff; 8]) {
            return Probe::NotMe;
        }
        let tag = &data[TAG];
        if tag == [0; 16] || tag == [0xff; 16] {
            return Probe::NotMe;
        }
        if *scratch == [0; 16] {
            scratch.copy_from_slice(tag);
            return Probe::NotYet;
        }
        let other_side = ctx.packets[1 - ctx.dir as usize] > 0;
        if scratch[..] == *tag && other_side {
            Probe::Match(Proto::Telegram, Confidence::Certain)
        } else if scratch[..] == *tag {
            Probe::NotYet
        } else {
            Probe::NotMe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn a_tag_answered_by_the_reflector() {
        let mut o = ctx(Transport::Udp, Dir::Orig, 23174, 521);
        let mut r = ctx(Transport::Udp, Dir::Reply, 23174, 521);
        o.packets = [1, 0];
        r.packets = [1, 1];
        // telegram.pcap, 192.168.1.77:23174 <-> 91.108.8.7:521.
        let p = hex("dc4c00291565b7acbc236da9eda0d597ffffffffffffffff00000000");
        let mut s = [0u8; 16];
        let mut ev = Evidence::default();
        assert_eq!(Telegram.probe(&p, &o, &mut s, &mut ev), Probe::NotYet);
        assert_eq!(
            Telegram.probe(&p, &r, &mut s, &mut ev),
            Probe::Match(Proto::Telegram, Confidence::Certain)
        );
        let mut q = p.clone();
        q[20] = 0;
        assert_eq!(Telegram.probe(&q, &r, &mut [0; 16], &mut ev), Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Telegram, &[Proto::Telegram], &[]);
        assert!(m.get(&Proto::Telegram).is_some_and(|n| *n >= 10), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut s = [0u8; 16];
            for dir in [Dir::Orig, Dir::Reply] {
                let _ = Telegram.probe(&data, &ctx(Transport::Udp, dir, 1, 2), &mut s, &mut Evidence::default());
            }
        }
    }
}
