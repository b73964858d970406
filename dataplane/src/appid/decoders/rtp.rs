//! RTP (RFC 3550), confirmed over several packets: over UDP (also relayed by TURN, inside
//! ChannelData or Send/Data indications) and over TCP with RFC 4571 framing.
//!
//! Owns the RTP header heuristics and the per-flow confirmation state, kept in the 16-byte
//! scratch. It never allocates and never panics: every read is bounds-checked. One packet is
//! never enough: a UDP flow is RTP after 3 consistent packets in one direction (same SSRC,
//! sequence number advancing by 1-10, timestamp not going back) or 2 in each direction; a TCP
//! stream after 2 consecutive frames (TCP neither loses nor reorders them). STUN, DTLS and
//! RTCP packets multiplexed on the flow (RFC 7983) are skipped, not counted.
use super::util::{be16, be32};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

const HEADER_LEN: usize = 12;
const STUN_COOKIE: u32 = 0x2112_a442;
/// Largest forward step of the sequence number between two packets we accept (losses).
const MAX_SEQ_STEP: u16 = 10;
/// A backward step this small is a reordered or duplicated packet, not a new stream.
const MAX_SEQ_BACK: u16 = 10;
/// Packets of a flow that are neither RTP nor multiplexed with it, tolerated before NotMe
/// (some applications send a few private probes before the media starts).
const MAX_STRAYS: u8 = 2;

// Scratch layout: [0] consistent-packet counts (low nibble client->server, high nibble
// server->client); [1] stray packets seen; [2..9] client->server state, [9..16] the other
// direction's: SSRC folded to 16 bits, last sequence number, low 24 bits of the timestamp
// (enough to tell forward from backward for steps under 2^23).
const STATE: [usize; 2] = [2, 9];

pub struct Rtp;

impl Decoder for Rtp {
    fn name(&self) -> &'static str {
        "rtp"
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
            Transport::Udp => datagram(data, ctx.dir as usize, scratch),
            Transport::Tcp => stream(data),
        }
    }
}

/// The fields that link packets of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    seq: u16,
    ts: u32,
    ssrc: u32,
}

/// What one packet is, for RTP's purposes.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Rtp(Header),
    /// STUN, DTLS or RTCP: may share an RTP flow (RFC 5761, RFC 7983); proves nothing.
    Muxed,
    /// Anything else.
    Other,
}

/// Checks an RTP header against the packet length `b.len()` (`whole`: the packet is all
/// there; otherwise only the fixed part and what follows it in view are checked).
fn header(b: &[u8], whole: bool) -> Kind {
    let (Some(&b0), Some(&b1)) = (b.first(), b.get(1)) else {
        return Kind::Other;
    };
    if b0 >> 6 != 2 {
        return muxed_or_other(b);
    }
    // RTCP packet types 200-207 (72-79 with the marker bit): SR, RR, SDES, BYE, APP and the
    // feedback/XR types RFC 5761 keeps RTP payload types away from.
    if (200..=207).contains(&b1) || (72..=76).contains(&(b1 & 0x7f)) {
        return Kind::Muxed;
    }
    let (Some(seq), Some(ts), Some(ssrc)) = (be16(b, 2), be32(b, 4), be32(b, 8)) else {
        return Kind::Other;
    };
    let mut len = HEADER_LEN + 4 * (b0 & 0x0f) as usize;
    if b0 & 0x10 != 0 {
        // Header extension: 16-bit profile, 16-bit length in 32-bit words.
        match be16(b, len + 2) {
            Some(words) => len += 4 + 4 * words as usize,
            None if whole => return Kind::Other,
            None => {}
        }
    }
    if whole {
        if len > b.len() {
            return Kind::Other;
        }
        if b0 & 0x20 != 0 {
            // Padding: the last byte counts it, itself included.
            let pad = b.last().copied().unwrap_or(0) as usize;
            if pad == 0 || len + pad > b.len() {
                return Kind::Other;
            }
        }
    }
    Kind::Rtp(Header { seq, ts, ssrc })
}

fn muxed_or_other(b: &[u8]) -> Kind {
    let first = b.first().copied().unwrap_or(0);
    // STUN with the cookie, or classic STUN whose length fills the datagram.
    let stun = first < 4
        && b.len() >= 20
        && (be32(b, 4) == Some(STUN_COOKIE)
            || be16(b, 2).map(|l| l as usize + 20) == Some(b.len()));
    let dtls = (20..=63).contains(&first) && b.get(1) == Some(&0xfe);
    if stun || dtls {
        Kind::Muxed
    } else {
        Kind::Other
    }
}

/// Text (a request line, a header) cannot be RTP: its first byte is never 0x80-0xbf.
fn looks_like_text(b: &[u8]) -> bool {
    let head = b.get(..4).unwrap_or(b);
    !head.is_empty()
        && head
            .iter()
            .all(|&c| c.is_ascii_graphic() || matches!(c, b' ' | b'\r' | b'\n' | b'\t'))
}

fn count(scratch: &Scratch, d: usize) -> u8 {
    (scratch[0] >> (4 * d)) & 0x0f
}

fn set_count(scratch: &mut Scratch, d: usize, n: u8) {
    let shift = 4 * d;
    scratch[0] = (scratch[0] & !(0x0f << shift)) | (n.min(15) << shift);
}

fn fold(ssrc: u32) -> u16 {
    (ssrc >> 16) as u16 ^ ssrc as u16
}

fn store(scratch: &mut Scratch, d: usize, h: &Header) {
    let at = STATE[d];
    if let Some(s) = scratch.get_mut(at..at + 7) {
        s[..2].copy_from_slice(&fold(h.ssrc).to_be_bytes());
        s[2..4].copy_from_slice(&h.seq.to_be_bytes());
        s[4..7].copy_from_slice(&h.ts.to_be_bytes()[1..]);
    }
}

/// The stored state of direction `d`: folded SSRC, sequence number, 24-bit timestamp.
fn load(scratch: &Scratch, d: usize) -> (u16, u16, u32) {
    let at = STATE[d];
    let s = |i: usize| scratch.get(at + i).copied().unwrap_or(0);
    (
        u16::from_be_bytes([s(0), s(1)]),
        u16::from_be_bytes([s(2), s(3)]),
        u32::from_be_bytes([0, s(4), s(5), s(6)]),
    )
}

fn datagram(b: &[u8], d: usize, scratch: &mut Scratch) -> Probe {
    let b = super::util::turn_payload(b).unwrap_or(b);
    if looks_like_text(b) {
        return Probe::NotMe;
    }
    let h = match header(b, true) {
        Kind::Rtp(h) => h,
        Kind::Muxed => return verdict(scratch),
        Kind::Other => {
            scratch[1] = scratch[1].saturating_add(1);
            return if scratch[1] > MAX_STRAYS {
                Probe::NotMe
            } else {
                verdict(scratch)
            };
        }
    };
    let n = count(scratch, d);
    if n == 0 {
        store(scratch, d, &h);
        set_count(scratch, d, 1);
        return verdict(scratch);
    }
    let (ssrc, seq, ts) = load(scratch, d);
    let step = h.seq.wrapping_sub(seq);
    let forward_ts = (h.ts & 0x00ff_ffff).wrapping_sub(ts) & 0x00ff_ffff < 0x0080_0000;
    let same = fold(h.ssrc) == ssrc;
    if same && (1..=MAX_SEQ_STEP).contains(&step) && forward_ts {
        store(scratch, d, &h);
        set_count(scratch, d, n + 1);
    } else if same && (step == 0 || step > u16::MAX - MAX_SEQ_BACK) {
        // A duplicate or a late packet of the same stream: neither proof nor disproof.
    } else {
        // Another stream (or not RTP at all): start over from this packet.
        store(scratch, d, &h);
        set_count(scratch, d, 1);
    }
    verdict(scratch)
}

fn verdict(scratch: &Scratch) -> Probe {
    let (a, b) = (count(scratch, 0), count(scratch, 1));
    if a >= 3 || b >= 3 || (a >= 2 && b >= 2) {
        Probe::Match(Proto::Rtp, Confidence::Certain)
    } else if a >= 2 || b >= 2 {
        Probe::Match(Proto::Rtp, Confidence::Likely)
    } else {
        Probe::NotYet
    }
}

/// A TCP stream from its first byte: RTP packets each behind a 2-byte length (RFC 4571).
/// The frames in view must all be RTP (or RTCP); two consecutive ones of the same stream
/// with consecutive sequence numbers settle it.
fn stream(b: &[u8]) -> Probe {
    let mut off = 0;
    let mut last: Option<Header> = None;
    let mut run = 0u32;
    while let Some(frame) = be16(b, off).map(usize::from) {
        let body = b.get(off + 2..).unwrap_or(&[]);
        let whole = body.len() >= frame;
        let body = body.get(..frame).unwrap_or(body);
        if frame < HEADER_LEN {
            return Probe::NotMe;
        }
        if body.len() < HEADER_LEN {
            // The next header is still arriving.
            if body.first().is_some_and(|&c| c >> 6 != 2) {
                return Probe::NotMe;
            }
            break;
        }
        match header(body, whole) {
            Kind::Rtp(h) => {
                let next = last.is_some_and(|l| {
                    l.ssrc == h.ssrc
                        && h.seq == l.seq.wrapping_add(1)
                        && h.ts.wrapping_sub(l.ts) < 0x8000_0000
                });
                run = if next { run + 1 } else { 1 };
                if run >= 2 {
                    return Probe::Match(Proto::Rtp, Confidence::Certain);
                }
                last = Some(h);
            }
            Kind::Muxed if body.get(1).is_some_and(|pt| (200..=207).contains(pt)) => {}
            _ => return Probe::NotMe,
        }
        if !whole {
            break;
        }
        off += 2 + frame;
    }
    Probe::NotYet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appid::decoders::testkit;
    use crate::flow::Dir;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Rtp, Confidence::Certain);

    fn hex(s: &str) -> Vec<u8> {
        testkit::hex(s)
    }

    /// Probes each packet in turn on one flow; returns every answer.
    fn run(packets: &[(Dir, Vec<u8>)], transport: Transport) -> Vec<Probe> {
        let mut scratch = [0u8; 16];
        let mut ev = Evidence::default();
        let mut ctx = testkit::ctx(transport, Dir::Orig, 40000, 40002);
        ctx.packets = [0, 0];
        packets
            .iter()
            .map(|(d, p)| {
                ctx.dir = *d;
                ctx.packets[*d as usize] += 1;
                Rtp.probe(p, &ctx, &mut scratch, &mut ev)
            })
            .collect()
    }

    // ndpi/sip.pcap frames 95-97 (G.711, 30000 -> 40392), first 16 bytes of payload each.
    fn g711() -> Vec<Vec<u8>> {
        [
            "80086fae000004d83796cb71d5d5d5d5",
            "80086faf000005783796cb716e681514",
            "80086fb0000006183796cb71717e7076",
            "80086fb1000006b83796cb719297e8e9",
        ]
        .iter()
        .map(|s| hex(s))
        .collect()
    }

    #[test]
    fn three_consistent_packets_in_one_direction() {
        let p: Vec<_> = g711().into_iter().map(|p| (Dir::Orig, p)).collect();
        assert_eq!(
            run(&p[..3], Transport::Udp),
            [
                Probe::NotYet,
                Probe::Match(Proto::Rtp, Confidence::Likely),
                CERTAIN
            ]
        );
    }

    #[test]
    fn two_in_each_direction() {
        // ndpi/stun_classic.pcap frames 9, 10 (55050 ->) and 4, 5 (13958 ->).
        let p = [
            (Dir::Orig, hex("8012b5b9050ad16c47d66fdec07609a000fac5c8")),
            (Dir::Reply, hex("8012ae1604e9fa383aa6d922c4532097ca1bd297")),
            (Dir::Orig, hex("8012b5ba050ad20c47d66fde580409a588921564")),
            (Dir::Reply, hex("8012ae1704e9fad83aa6d922f87abcea7ac0ab24")),
        ];
        assert_eq!(run(&p, Transport::Udp)[3], CERTAIN);
    }

    #[test]
    fn inconsistent_packets_do_not_add_up() {
        let g = g711();
        // Another SSRC each time.
        let mut p = Vec::new();
        for (i, pkt) in g.iter().enumerate() {
            let mut pkt = pkt.clone();
            pkt[8] = i as u8;
            p.push((Dir::Orig, pkt));
        }
        assert!(run(&p, Transport::Udp).iter().all(|a| *a == Probe::NotYet));
        // Sequence numbers jumping.
        let mut p = Vec::new();
        for (i, pkt) in g.iter().enumerate() {
            let mut pkt = pkt.clone();
            pkt[2] = (i * 40) as u8;
            p.push((Dir::Orig, pkt));
        }
        assert!(run(&p, Transport::Udp).iter().all(|a| *a == Probe::NotYet));
        // Timestamp going back by a lot.
        let mut p = Vec::new();
        for (i, pkt) in g.iter().enumerate() {
            let mut pkt = pkt.clone();
            pkt[5] = 0xff - (i as u8) * 0x40;
            p.push((Dir::Orig, pkt));
        }
        assert!(run(&p, Transport::Udp).iter().all(|a| *a == Probe::NotYet));
        // A duplicate in the middle neither breaks nor counts.
        let p = [
            (Dir::Orig, g[0].clone()),
            (Dir::Orig, g[1].clone()),
            (Dir::Orig, g[1].clone()),
            (Dir::Orig, g[2].clone()),
        ];
        assert_eq!(run(&p, Transport::Udp)[3], CERTAIN);
    }

    #[test]
    fn header_consistency_with_length() {
        // CSRC count larger than the packet.
        assert_eq!(
            header(&hex("8f086fae000004d83796cb71d5d5d5d5"), true),
            Kind::Other
        );
        // Padding count beyond the payload.
        assert_eq!(
            header(&hex("a0086fae000004d83796cb71d5d5d5ff"), true),
            Kind::Other
        );
        assert_eq!(
            header(&hex("a0086fae000004d83796cb71d5d5d503"), true),
            Kind::Rtp(Header {
                seq: 0x6fae,
                ts: 0x4d8,
                ssrc: 0x3796cb71
            })
        );
        // Extension header longer than the packet.
        assert_eq!(
            header(&hex("90086fae000004d83796cb71bede0009d5d5d5d5"), true),
            Kind::Other
        );
        // RTCP, STUN and DTLS are skipped, not counted.
        assert_eq!(
            header(&hex("81c8000c5d931534dd3ac1704d614df8"), true),
            Kind::Muxed
        );
        assert_eq!(
            header(&hex("000100002112a44253486b6846386f6477677956"), true),
            Kind::Muxed
        );
        assert_eq!(
            header(&hex("17fefd000100000000000200440001"), true),
            Kind::Muxed
        );
    }

    #[test]
    fn stun_dtls_and_rtcp_flows_never_match() {
        let stun = hex("000100002112a44253486b6846386f6477677956");
        let dtls = hex("17fefd0001000000000002004400010000000000024d2cb896");
        let rtcp = hex("81c9000701932db400000000010000010000bec20000000100000000000000");
        for pkt in [stun, dtls, rtcp] {
            let p: Vec<_> = (0..8).map(|_| (Dir::Orig, pkt.clone())).collect();
            assert!(run(&p, Transport::Udp).iter().all(|a| *a == Probe::NotYet));
        }
    }

    #[test]
    fn a_few_private_packets_before_the_media_are_tolerated() {
        // ndpi/rtp.pcapng flow 55402 -> 6008 starts with a 16-byte private packet.
        let mut p = vec![(Dir::Orig, hex("0100000000000000000000000000011c"))];
        for s in [
            "816fcdd21e5131ffb80974d80000011c480be455bf14987c",
            "816fcdd31e5135bfb80974d80000011c4806e379c12458",
            "816fcdd41e51397fb80974d80000011c4806e379c12458",
        ] {
            p.push((Dir::Orig, hex(s)));
        }
        assert_eq!(run(&p, Transport::Udp)[3], CERTAIN);
        // But a flow of such packets is not RTP.
        let p: Vec<_> = (0..4)
            .map(|_| (Dir::Orig, hex("0100000000000000000000000000011c")))
            .collect();
        assert_eq!(run(&p, Transport::Udp)[3], Probe::NotMe);
    }

    #[test]
    fn inside_turn_channel_data() {
        let p: Vec<_> = g711()
            .into_iter()
            .map(|pkt| {
                let mut cd = vec![0x40, 0x00, 0, pkt.len() as u8];
                cd.extend_from_slice(&pkt);
                (Dir::Orig, cd)
            })
            .collect();
        assert_eq!(run(&p[..3], Transport::Udp)[2], CERTAIN);
    }

    /// TURN's Send indications (and the Data indications coming back) carry the media in
    /// their DATA attribute (RFC 8656 section 11).
    #[test]
    fn inside_turn_send_and_data_indications() {
        let indication = |ty: u16, pkt: &[u8]| {
            let mut attrs = vec![
                0x00, 0x12, 0x00, 0x08, 0x00, 0x01, 0x3f, 0x10, 0x11, 0x22, 0x33, 0x44,
            ];
            attrs.extend_from_slice(&0x0013u16.to_be_bytes());
            attrs.extend_from_slice(&(pkt.len() as u16).to_be_bytes());
            attrs.extend_from_slice(pkt);
            attrs.resize(attrs.len().div_ceil(4) * 4, 0);
            let mut m = ty.to_be_bytes().to_vec();
            m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
            m.extend_from_slice(&0x2112_a442u32.to_be_bytes());
            m.extend_from_slice(&[7; 12]);
            m.extend(attrs);
            m
        };
        let p: Vec<_> = g711()
            .into_iter()
            .enumerate()
            .map(|(i, pkt)| {
                (
                    Dir::Orig,
                    indication(if i % 2 == 0 { 0x0016 } else { 0x0017 }, &pkt),
                )
            })
            .collect();
        assert_eq!(run(&p[..3], Transport::Udp)[2], CERTAIN);
        // A Binding request is no indication: nothing to unwrap.
        let mut binding = indication(0x0016, &[0x80; 12]);
        binding[1] = 0x01;
        assert_eq!(super::super::util::turn_indication_data(&binding), None);
    }

    #[test]
    fn tcp_rfc4571_frames() {
        // ndpi/rtp.pcapng 40252 -> 5000: 1212-byte frames of G.711 A-law.
        let mut s = Vec::new();
        for (seq, ts) in [(0xc623u16, 0x6448eca9u32), (0xc624, 0x6448f159)] {
            s.extend_from_slice(&1212u16.to_be_bytes());
            s.extend_from_slice(&[0x80, 0x08]);
            s.extend_from_slice(&seq.to_be_bytes());
            s.extend_from_slice(&ts.to_be_bytes());
            s.extend_from_slice(&0u32.to_be_bytes());
            s.extend(std::iter::repeat_n(0xd5, 1200));
        }
        assert_eq!(
            run(&[(Dir::Orig, s[..1214].to_vec())], Transport::Tcp)[0],
            Probe::NotYet
        );
        assert_eq!(
            run(&[(Dir::Orig, s[..1230].to_vec())], Transport::Tcp)[0],
            CERTAIN
        );
        assert_eq!(run(&[(Dir::Orig, s.clone())], Transport::Tcp)[0], CERTAIN);
        // Unframed RTP on TCP is not RTP.
        assert_eq!(
            run(&[(Dir::Orig, s[2..].to_vec())], Transport::Tcp)[0],
            Probe::NotMe
        );
    }

    #[test]
    fn other_protocols_are_not_rtp() {
        for (p, t) in testkit::foreign_payloads() {
            let a = run(&[(Dir::Orig, p.clone())], t)[0];
            assert!(
                matches!(a, Probe::NotMe | Probe::NotYet),
                "{t:?} {:02x?}",
                &p[..p.len().min(16)]
            );
        }
        // ... and whole flows of them never match.
        for file in [
            "ndpi/dns.pcap",
            "ndpi/google_ssl.pcap",
            "ndpi/http_on_sip_port.pcap",
            "ndpi/jabber.pcap",
        ] {
            for f in testkit::flows(file) {
                assert!(
                    !matches!(
                        testkit::replay(&Rtp, &f, testkit::Feed::ENGINE).verdict,
                        Probe::Match(..)
                    ),
                    "{file}"
                );
            }
        }
    }

    #[test]
    fn ndpi_captures() {
        // sip.pcap: the one RTP flow; the SIP flows and the one-packet RTCP flow are not RTP.
        let flows = testkit::flows("ndpi/sip.pcap");
        let rtp: Vec<_> = flows
            .iter()
            .filter(|f| testkit::replay(&Rtp, f, testkit::Feed::ENGINE).verdict == CERTAIN)
            .collect();
        assert_eq!(rtp.len(), 1);
        assert!(rtp[0].has_port(30000));
        // rtp.pcapng: three RTP flows (one over TCP) and Discord's, which is RTP too.
        let flows = testkit::flows("ndpi/rtp.pcapng");
        for f in &flows {
            assert_eq!(
                testkit::replay(&Rtp, f, testkit::Feed::ENGINE).verdict,
                CERTAIN,
                "{:?}",
                f.client
            );
        }
        // stun_dtls_rtp.pcapng: the UDP flow's RTP comes after STUN and DTLS (beyond the
        // engine's budget), so only the replay with a larger budget would see it; the RTCP
        // flow of rtcp_multiple_pkts is never RTP.
        for f in testkit::flows("ndpi/rtcp_multiple_pkts_in_the_same_datagram.pcap") {
            assert_eq!(
                testkit::replay(&Rtp, &f, testkit::Feed::ENGINE).verdict,
                Probe::NotYet
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400),
                        scratch in any::<[u8; 16]>(), tcp in any::<bool>(), reply in any::<bool>()) {
            let mut s = scratch;
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut ctx = testkit::ctx(t, Dir::Orig, 40000, 40002);
            ctx.dir = if reply { Dir::Reply } else { Dir::Orig };
            let _ = Rtp.probe(&data, &ctx, &mut s, &mut ev);
        }

        #[test]
        fn never_panics_on_rtp_like_input(b0 in 0x80u8..0xc0, tail in proptest::collection::vec(any::<u8>(), 0..100),
                                          scratch in any::<[u8; 16]>(), tcp in any::<bool>()) {
            let mut data = vec![b0];
            data.extend_from_slice(&tail);
            if tcp {
                let mut framed = (data.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&data);
                data = framed;
            }
            let mut s = scratch;
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Rtp.probe(&data, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }
    }
}
