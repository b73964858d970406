//! RTCP (RFC 3550 compound packets, RFC 4585 feedback, RFC 3611 XR) over UDP (also inside
//! TURN ChannelData or Send/Data indications) and over TCP with RFC 4571 framing.
//!
//! Owns the recognition of compound RTCP packets. It never allocates and never panics: the
//! walk over sub-packets is bounds-checked. One compound packet decides, when it starts with a
//! sender or receiver report and its sub-packets' length fields tile the datagram exactly;
//! a clean walk that starts otherwise (reduced-size RTCP, RFC 5506) waits for a report.
//! Per-flow state: scratch byte 0 counts packets that were neither (tolerated: a STUN or
//! DTLS packet on the same port, RFC 7983).
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;
const APP: u8 = 204;
const RTPFB: u8 = 205;
const PSFB: u8 = 206;
const XR: u8 = 207;
/// STUN or DTLS packets tolerated on an RTCP flow before NotMe.
const MAX_MUXED: u8 = 4;

pub struct Rtcp;

impl Decoder for Rtcp {
    fn name(&self) -> &'static str {
        "rtcp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
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
        match ctx.transport {
            Transport::Udp => datagram(data, scratch),
            Transport::Tcp => stream(data),
        }
    }
}

/// What a compound packet is.
#[derive(Debug, PartialEq, Eq)]
enum Compound {
    /// Walks cleanly and starts with SR or RR.
    Report,
    /// Walks cleanly but starts with another type.
    Reduced,
    Invalid,
}

/// Walks the sub-packets of the compound packet `b`: each version 2, a type 200-207, long
/// enough for its count field, padding only on the last, ending exactly at the end of `b`.
fn compound(b: &[u8]) -> Compound {
    let mut off = 0;
    let mut first_type = None;
    while off < b.len() {
        let (Some(&h0), Some(&pt), Some(words)) = (b.get(off), b.get(off + 1), be16(b, off + 2))
        else {
            return Compound::Invalid;
        };
        if h0 >> 6 != 2 || !(SR..=XR).contains(&pt) {
            return Compound::Invalid;
        }
        let words = words as usize;
        let count = (h0 & 0x1f) as usize;
        // Minimum length in 32-bit words after the header word, per type.
        let min = match pt {
            SR => 6 + 6 * count,
            RR => 1 + 6 * count,
            // Each chunk: an SSRC and at least one null octet, padded to a word.
            SDES => 2 * count,
            BYE => count,
            APP => 2,
            RTPFB | PSFB => 2,
            _ => 1,
        };
        if words < min {
            return Compound::Invalid;
        }
        let end = off + 4 + 4 * words;
        if end > b.len() {
            return Compound::Invalid;
        }
        if h0 & 0x20 != 0 {
            // Padding: only on the last sub-packet; its last byte counts it.
            let pad = b.get(end - 1).copied().unwrap_or(0) as usize;
            if end != b.len() || pad == 0 || pad > 4 * words {
                return Compound::Invalid;
            }
        }
        first_type.get_or_insert(pt);
        off = end;
    }
    match first_type {
        Some(SR | RR) => Compound::Report,
        Some(_) => Compound::Reduced,
        None => Compound::Invalid,
    }
}

/// STUN (type's top two bits zero and a cookie or a length that fills the datagram) or DTLS.
fn stun_or_dtls(b: &[u8]) -> bool {
    let first = b.first().copied().unwrap_or(0xff);
    let stun = first < 4
        && b.len() >= 20
        && (super::util::be32(b, 4) == Some(0x2112_a442)
            || be16(b, 2).map(|l| l as usize + 20) == Some(b.len()));
    let dtls = (20..=63).contains(&first) && b.get(1) == Some(&0xfe);
    stun || dtls
}

fn datagram(b: &[u8], scratch: &mut Scratch) -> Probe {
    let inner = super::util::turn_payload(b).unwrap_or(b);
    match compound(inner) {
        Compound::Report => Probe::Match(Proto::Rtcp, Confidence::Certain),
        Compound::Reduced => Probe::NotYet,
        Compound::Invalid if stun_or_dtls(inner) && scratch[0] < MAX_MUXED => {
            scratch[0] += 1;
            Probe::NotYet
        }
        Compound::Invalid => Probe::NotMe,
    }
}

/// A TCP stream from its first byte: compound packets each behind a 2-byte length (RFC 4571).
/// Every whole frame in view must walk cleanly; the first must start with a report.
fn stream(b: &[u8]) -> Probe {
    let mut off = 0;
    let mut reports = 0u32;
    while let Some(frame) = be16(b, off).map(usize::from) {
        let Some(body) = b.get(off + 2..off + 2 + frame) else {
            // Still arriving: what is there of its first header must be RTCP's.
            let part = b.get(off + 2..).unwrap_or(&[]);
            let v2 = part.first().is_none_or(|&c| c >> 6 == 2);
            let pt = part.get(1).is_none_or(|pt| (SR..=XR).contains(pt));
            if frame < 8 || !v2 || !pt {
                return Probe::NotMe;
            }
            break;
        };
        match compound(body) {
            Compound::Report => reports += 1,
            Compound::Reduced if reports > 0 => {}
            Compound::Reduced => return Probe::NotYet,
            Compound::Invalid => return Probe::NotMe,
        }
        off += 2 + frame;
    }
    if reports > 0 {
        Probe::Match(Proto::Rtcp, Confidence::Certain)
    } else {
        Probe::NotYet
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appid::decoders::testkit;
    use crate::flow::Dir;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Rtcp, Confidence::Certain);

    fn hex(s: &str) -> Vec<u8> {
        testkit::hex(s)
    }

    fn probe(data: &[u8], transport: Transport) -> Probe {
        let mut scratch = [0u8; 16];
        let mut ev = Evidence::default();
        Rtcp.probe(
            data,
            &testkit::ctx(transport, Dir::Orig, 40000, 40002),
            &mut scratch,
            &mut ev,
        )
    }

    // ndpi/rtcp_multiple_pkts_in_the_same_datagram.pcap frame 1: SR + SDES.
    const SR_SDES: &str = "81c8000c5d931534dd3ac1704d614df800007d00000000c800007d0000000000000000010000000000000000000000000000000081ca000e5d931534010835643933313533340725467265655357495443482e6f7267202d2d20436f6d6520746f20436c7565436f6e2e636f6d000000";
    // Frame 2: RR + SDES.
    const RR_SDES: &str = "81c9000701932db400000000010000010000bec200000001000000000000000081ca000e01932db40107313933326462340725467265655357495443482e6f7267202d2d20436f6d6520746f20436c7565436f6e2e636f6d00000000";

    #[test]
    fn sender_and_receiver_reports() {
        assert_eq!(probe(&hex(SR_SDES), Transport::Udp), CERTAIN);
        assert_eq!(probe(&hex(RR_SDES), Transport::Udp), CERTAIN);
        // The SR alone (its length field says 13 words).
        assert_eq!(probe(&hex(SR_SDES)[..52], Transport::Udp), CERTAIN);
    }

    #[test]
    fn the_walk_must_end_exactly() {
        let m = hex(SR_SDES);
        assert_eq!(probe(&m[..m.len() - 4], Transport::Udp), Probe::NotMe);
        let mut longer = m.clone();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(probe(&longer, Transport::Udp), Probe::NotMe);
        // A report count the length cannot hold.
        let mut m = hex(SR_SDES);
        m[0] = 0x82;
        assert_eq!(probe(&m, Transport::Udp), Probe::NotMe);
        // Version 1.
        let mut m = hex(SR_SDES);
        m[0] = 0x41;
        assert_eq!(probe(&m, Transport::Udp), Probe::NotMe);
        // Padding on a sub-packet that is not the last.
        let mut m = hex(SR_SDES);
        m[0] |= 0x20;
        assert_eq!(probe(&m, Transport::Udp), Probe::NotMe);
    }

    #[test]
    fn reduced_size_waits_for_a_report() {
        // A lone PSFB (PLI): valid but not a compound packet with a report.
        let pli = hex("81ce0002deadbeefcafebabe");
        assert_eq!(probe(&pli, Transport::Udp), Probe::NotYet);
    }

    #[test]
    fn rtp_and_stun_are_not_rtcp() {
        // ndpi/sip.pcap frame 95 (RTP, PT 8).
        assert_eq!(
            probe(&hex("80086fae000004d83796cb71d5d5d5d5"), Transport::Udp),
            Probe::NotMe
        );
        // STUN before RTCP on the same port is tolerated, a few times.
        let mut scratch = [0u8; 16];
        let mut ev = Evidence::default();
        let ctx = testkit::ctx(Transport::Udp, Dir::Orig, 40000, 40002);
        let stun = hex("000100002112a44253486b6846386f6477677956");
        assert_eq!(
            Rtcp.probe(&stun, &ctx, &mut scratch, &mut ev),
            Probe::NotYet
        );
        assert_eq!(
            Rtcp.probe(&hex(RR_SDES), &ctx, &mut scratch, &mut ev),
            CERTAIN
        );
    }

    #[test]
    fn inside_turn_channel_data_and_rfc4571_frames() {
        let m = hex(RR_SDES);
        let mut cd = vec![0x40, 0x05];
        cd.extend_from_slice(&(m.len() as u16).to_be_bytes());
        cd.extend_from_slice(&m);
        assert_eq!(probe(&cd, Transport::Udp), CERTAIN);
        let mut s = (m.len() as u16).to_be_bytes().to_vec();
        s.extend_from_slice(&m);
        assert_eq!(probe(&s[..20], Transport::Tcp), Probe::NotYet);
        assert_eq!(probe(&s, Transport::Tcp), CERTAIN);
        s.extend_from_slice(&s.clone());
        assert_eq!(probe(&s, Transport::Tcp), CERTAIN);
        assert_eq!(probe(&m, Transport::Tcp), Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_rtcp() {
        for (p, t) in testkit::foreign_payloads() {
            assert_eq!(
                probe(&p, t),
                Probe::NotMe,
                "{t:?} {:02x?}",
                &p[..p.len().min(16)]
            );
        }
    }

    #[test]
    fn ndpi_captures() {
        let flows = testkit::flows("ndpi/rtcp_multiple_pkts_in_the_same_datagram.pcap");
        assert_eq!(flows.len(), 1);
        let o = testkit::replay(&Rtcp, &flows[0], testkit::Feed::ENGINE);
        assert_eq!((o.verdict, o.probes), (CERTAIN, 1));
        // sip.pcap: the one-packet RTCP flow (30001 -> 40393) is RTCP; SIP and RTP are not.
        for f in testkit::flows("ndpi/sip.pcap") {
            let expect = if f.has_port(30001) {
                CERTAIN
            } else {
                Probe::NotMe
            };
            assert_eq!(
                testkit::replay(&Rtcp, &f, testkit::Feed::ENGINE).verdict,
                expect,
                "{:?}",
                f.client
            );
        }
        for f in testkit::flows("ndpi/rtp.pcapng") {
            assert_ne!(
                testkit::replay(&Rtcp, &f, testkit::Feed::ENGINE).verdict,
                CERTAIN,
                "{:?}",
                f.client
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400),
                        scratch in any::<[u8; 16]>(), tcp in any::<bool>()) {
            let mut s = scratch;
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Rtcp.probe(&data, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }

        #[test]
        fn never_panics_on_rtcp_like_input(h0 in 0x80u8..0xc0, pt in 200u8..208, words in 0u16..40,
                                           tail in proptest::collection::vec(any::<u8>(), 0..200),
                                           tcp in any::<bool>()) {
            let mut data = vec![h0, pt];
            data.extend_from_slice(&words.to_be_bytes());
            data.extend_from_slice(&tail);
            let mut s = [0u8; 16];
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Rtcp.probe(&data, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }
    }
}
