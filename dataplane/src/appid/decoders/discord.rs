//! Discord's voice transport over UDP, on any port:
//! - IP discovery (Discord's voice gateway documentation): a 74-byte packet, type 1 (request)
//!   or 2 (response), length 70, the SSRC, then the address as NUL-padded text and the port:
//!   `Certain`;
//! - its keep-alive, the magic 0x1337CAFE then a counter (8 bytes, answered in 18): `Certain`
//!   once the other side answers with the magic too (kept in scratch), `NotYet` before.
//!
//! The RTP that follows on the same flow is then Discord's.
//!
//! Never allocates, never panics.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Discord;

const DISCOVERY_LEN: usize = 74;
const MAGIC: [u8; 4] = [0x13, 0x37, 0xca, 0xfe];

impl Decoder for Discord {
    fn name(&self) -> &'static str {
        "discord"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[50004]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        let certain = Probe::Match(Proto::Discord, Confidence::Certain);
        if data.len() == DISCOVERY_LEN
            && matches!(be16(data, 0), Some(1 | 2))
            && be16(data, 2) == Some(70)
        {
            return certain;
        }
        if data.starts_with(&MAGIC) && (8..=32).contains(&data.len()) {
            let me = 1u8 << ctx.dir as u8;
            scratch[0] |= me;
            return if scratch[0] == 3 {
                certain
            } else {
                Probe::NotYet
            };
        }
        Probe::NotMe
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn ip_discovery_and_the_answered_keepalive() {
        let o = ctx(Transport::Udp, Dir::Orig, 57955, 50004);
        let r = ctx(Transport::Udp, Dir::Reply, 57955, 50004);
        let certain = Probe::Match(Proto::Discord, Confidence::Certain);
        let mut d = hex("000100460000ace3");
        d.resize(DISCOVERY_LEN, 0);
        assert_eq!(probe_once(&Discord, &d, &o).0, certain);
        d[3] = 0x45;
        assert_eq!(probe_once(&Discord, &d, &o).0, Probe::NotMe);
        // discord.pcap: the keep-alive and its answer.
        let mut s = [0u8; 16];
        let mut ev = Evidence::default();
        assert_eq!(
            Discord.probe(&hex("1337cafe0e000000"), &o, &mut s, &mut ev),
            Probe::NotYet
        );
        let answer = hex("1337cafe0e00000000000000000000000000");
        assert_eq!(Discord.probe(&answer, &r, &mut s, &mut ev), certain);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        // One miss: discord_mid_flow.pcap's flow is picked up mid-call, RTCP first and one
        // 10-byte keep-alive, unanswered (the engine names it rtcp).
        let (bad, m) = testkit::compare_with_ndpi(&Discord, &[Proto::Discord]);
        assert_eq!(bad, ["discord_mid_flow.pcap Udp 5.36.141.228:54935 <-> 66.22.242.132:50001: nDPI Discord, decoder None"]);
        assert!(m.get(&Proto::Discord).is_some_and(|n| *n >= 5), "{m:?}");
        assert_eq!(testkit::matches_elsewhere(&Discord), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut s = [0u8; 16];
            for dir in [Dir::Orig, Dir::Reply] {
                let _ = Discord.probe(&data, &ctx(Transport::Udp, dir, 1, 2), &mut s, &mut Evidence::default());
            }
        }
    }
}
