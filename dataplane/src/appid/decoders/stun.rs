//! STUN and TURN (RFC 5389/8489, classic RFC 3489, TURN RFC 8656/6062) over UDP and TCP,
//! including TURN ChannelData framing and the RFC 4571 length framing some applications put
//! around STUN on TCP.
//!
//! Owns the recognition of STUN messages and fills `Evidence::stun_software` from the SOFTWARE
//! attribute. It never allocates and never panics: every read of the input is bounds-checked.
//! Messages with the magic cookie (any method: Binding, the TURN ones, vendor extensions) are
//! recognised by header, length and a clean attribute walk; classic (cookie-less) messages
//! only for the RFC 3489 types and attributes, because without the cookie the header alone
//! proves little (on STUN's own ports 3478/3479, where Zoom's clients send such messages with
//! their own attribute, any attribute type is let through). Scratch byte 0 remembers that the
//! flow showed STUN (for ChannelData).
//!
//! Messengers' dialects: WhatsApp's calls and Microsoft's MS-TURN (Teams, Skype) send messages
//! with the cookie whose attributes are not padded to 4 bytes (so the length need not be a
//! multiple of 4), WhatsApp with private attributes 0x4000-0x4007, MS-TURN with its own
//! (MS-VERSION 0x8008, candidate identifier 0x8054, service quality 0x8055, implementation
//! version 0x8070) and a 32-byte MESSAGE-INTEGRITY. The dialect goes into
//! `Evidence::dialect` (`whatsapp`, `ms-teams`), which the catalog's signatures can match.
use super::util::{be16, be32, channel_data};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

const MAGIC_COOKIE: u32 = 0x2112_a442;
const HEADER_LEN: usize = 20;

const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_SOFTWARE: u16 = 0x8022;
const ATTR_FINGERPRINT: u16 = 0x8028;

/// Classic (RFC 3489) message types: Binding and Shared Secret request, response, error.
const CLASSIC_TYPES: [u16; 6] = [0x0001, 0x0101, 0x0111, 0x0002, 0x0102, 0x0112];

/// Attribute types a classic message may carry: RFC 3489's, and the few that RFC 3489bis
/// stacks added before the magic cookie existed (REALM, NONCE, XOR-MAPPED-ADDRESS, SERVER,
/// ALTERNATE-SERVER, FINGERPRINT).
const CLASSIC_ATTRS: [u16; 18] = [
    0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x0008, 0x0009, 0x000a, 0x000b, 0x0014,
    0x0015, 0x0020, 0x8020, 0x8022, 0x8023, 0x8028,
];

/// WhatsApp's private attributes.
const WHATSAPP_ATTRS: std::ops::RangeInclusive<u16> = 0x4000..=0x4007;
/// MS-TURN's (MS-TURN, MS-ICE2): MS-VERSION, candidate identifier, service quality,
/// implementation version.
const MS_ATTRS: [u16; 4] = [0x8008, 0x8054, 0x8055, 0x8070];
/// STUN's own ports, where classic messages may carry attributes RFC 3489 does not define.
const STUN_PORTS: [u16; 2] = [3478, 3479];

/// Scratch byte 0: this flow already carried a valid STUN message.
const SEEN_STUN: u8 = 1;

pub struct Stun;

impl Decoder for Stun {
    fn name(&self) -> &'static str {
        "stun"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[3478, 3479, 5349, 19302]
    }
    fn probe(&self, data: &[u8], ctx: &FlowCtx, scratch: &mut Scratch, ev: &mut Evidence) -> Probe {
        let lenient = STUN_PORTS.iter().any(|p| ctx.has_port(*p));
        let answer = match ctx.transport {
            Transport::Udp => datagram(data, scratch[0] & SEEN_STUN != 0, lenient, ev),
            Transport::Tcp => stream(data, lenient, ev),
        };
        if answer == Probe::Match(Proto::Stun, Confidence::Certain) {
            scratch[0] |= SEEN_STUN;
        }
        answer
    }
}

/// What one message at the start of a buffer is.
#[derive(Debug, PartialEq, Eq)]
enum Msg<'a> {
    /// A whole valid message of `len` bytes.
    Valid {
        len: usize,
        /// Classic and without attributes: 4 fixed bytes and a length, weak on its own.
        bare_classic: bool,
        software: Option<&'a [u8]>,
        dialect: Option<&'static str>,
    },
    /// Nothing contradicts STUN so far, but the message is not all there.
    Partial,
    Invalid,
}

/// Parses the STUN message at the start of `b` (which may hold more after it). `lenient`:
/// classic messages may carry any attribute type (on STUN's ports).
fn message(b: &[u8], lenient: bool) -> Msg<'_> {
    let Some(&first) = b.first() else {
        return Msg::Partial;
    };
    // The two top bits of a STUN message type are zero (RFC 7983 demultiplexing).
    if first & 0xc0 != 0 {
        return Msg::Invalid;
    }
    let (Some(ty), Some(len)) = (be16(b, 0), be16(b, 2)) else {
        return Msg::Partial;
    };
    let len = len as usize;
    // Compare as much of the cookie as has arrived.
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let have = b.get(4..b.len().min(8)).unwrap_or(&[]);
    let may_be_modern = cookie.get(..have.len()) == Some(have) && method(ty) != 0;
    // Only a message with the cookie may end with an unpadded attribute (WhatsApp's).
    if !len.is_multiple_of(4) && !may_be_modern {
        return Msg::Invalid;
    }
    let may_be_classic = CLASSIC_TYPES.contains(&ty);
    if !may_be_modern && !may_be_classic {
        return Msg::Invalid;
    }
    let total = HEADER_LEN + len;
    let Some(whole) = b.get(..total) else {
        return Msg::Partial;
    };
    let classic = be32(b, 4) != Some(MAGIC_COOKIE);
    // RFC 5389 pads every attribute to 4 bytes; MS-TURN and WhatsApp's calls pad none (only
    // a message with the cookie may be one of theirs).
    let body = &whole[HEADER_LEN..];
    let walked = attributes(body, classic, lenient, true).or_else(|| {
        (!classic)
            .then(|| attributes(body, false, false, false))
            .flatten()
    });
    match walked {
        Some((software, dialect)) => Msg::Valid {
            len: total,
            bare_classic: classic && len == 0,
            software,
            dialect,
        },
        None => Msg::Invalid,
    }
}

/// The 12-bit method of a message type (the class bits 4 and 8 taken out).
fn method(ty: u16) -> u16 {
    ((ty & 0x3e00) >> 2) | ((ty & 0x00e0) >> 1) | (ty & 0x000f)
}

/// What a message's attributes told: its SOFTWARE value and its dialect, if any.
type Found<'a> = (Option<&'a [u8]>, Option<&'static str>);

/// Walks the attributes of one message body, each padded to 4 bytes or (`padded` false)
/// none. `None`: they do not tile the body exactly or an attribute breaks a rule.
fn attributes(body: &[u8], classic: bool, lenient: bool, padded: bool) -> Option<Found<'_>> {
    let mut off = 0;
    let mut software = None;
    let mut dialect = None;
    let mut fingerprint_seen = false;
    while off < body.len() {
        // FINGERPRINT is always the last attribute.
        if fingerprint_seen {
            return None;
        }
        let ty = be16(body, off)?;
        let len = be16(body, off + 2)? as usize;
        let start = off + 4;
        let value = body.get(start..start + len)?;
        let next = if padded {
            start + len.div_ceil(4) * 4
        } else {
            start + len
        };
        if next > body.len() {
            return None;
        }
        if classic && !lenient && !CLASSIC_ATTRS.contains(&ty) {
            return None;
        }
        if !classic && WHATSAPP_ATTRS.contains(&ty) {
            dialect = Some("whatsapp");
        } else if MS_ATTRS.contains(&ty) {
            dialect = dialect.or(Some("ms-teams"));
        }
        let len_ok = match ty {
            ATTR_MAPPED_ADDRESS
            | ATTR_XOR_MAPPED_ADDRESS
            | 0x0002
            | 0x0004
            | 0x0005
            | 0x000b
            | 0x8020
            | 0x8023 => address_ok(value),
            0x0003 => len == 4,
            // HMAC-SHA1; MS-TURN's is HMAC-SHA256.
            ATTR_MESSAGE_INTEGRITY => len == 20 || len == 32,
            ATTR_FINGERPRINT => len == 4,
            _ => true,
        };
        if !len_ok {
            return None;
        }
        match ty {
            ATTR_SOFTWARE if software.is_none() => software = Some(value),
            ATTR_FINGERPRINT => fingerprint_seen = true,
            _ => {}
        }
        off = next;
    }
    Some((software, dialect))
}

/// An address attribute: reserved byte, family 1 (IPv4, 8 bytes) or 2 (IPv6, 20 bytes).
fn address_ok(v: &[u8]) -> bool {
    matches!((v.len(), v.get(1)), (8, Some(1)) | (20, Some(2)))
}

fn set_software(ev: &mut Evidence, software: Option<&[u8]>, dialect: Option<&str>) {
    if let Some(s) = software {
        if ev.stun_software.is_empty() {
            ev.stun_software.set(s);
        }
    }
    if let Some(d) = dialect {
        if ev.dialect.is_empty() {
            ev.dialect.set(d.as_bytes());
        }
    }
}

/// A UDP datagram: one STUN message exactly, or ChannelData.
fn datagram(b: &[u8], seen_stun: bool, lenient: bool, ev: &mut Evidence) -> Probe {
    match message(b, lenient) {
        Msg::Valid {
            len,
            bare_classic,
            software,
            dialect,
        } if len == b.len() => {
            set_software(ev, software, dialect);
            if bare_classic {
                Probe::Match(Proto::Stun, Confidence::Likely)
            } else {
                Probe::Match(Proto::Stun, Confidence::Certain)
            }
        }
        _ => match channel_data(b) {
            // Relayed data on a flow that set up its TURN channel in view.
            Some(_) if seen_stun => Probe::Match(Proto::Stun, Confidence::Certain),
            Some(inner) => match message(inner, false) {
                Msg::Valid {
                    len,
                    bare_classic: false,
                    software,
                    dialect,
                } if len == inner.len() => {
                    set_software(ev, software, dialect);
                    Probe::Match(Proto::Stun, Confidence::Certain)
                }
                // Media relayed through a channel set up before the flow came into view: the
                // STUN that would prove it may still come.
                _ => Probe::NotYet,
            },
            None => Probe::NotMe,
        },
    }
}

/// A TCP stream from its first byte: STUN messages (and, after one, ChannelData) back to back,
/// or each inside an RFC 4571 length frame. Every complete message must be valid.
fn stream(b: &[u8], lenient: bool, ev: &mut Evidence) -> Probe {
    let message = |b| message(b, lenient);
    let framed = match message(b) {
        Msg::Invalid => {
            // Not a message at byte 0: perhaps a 2-byte frame length, then a message.
            let frame = be16(b, 0).map_or(HEADER_LEN, usize::from);
            let fits = match b.get(2..).map_or(Msg::Partial, message) {
                Msg::Valid { len, .. } => len == frame,
                Msg::Partial => b.first().is_some_and(|&c| c < 0x40) && frame >= HEADER_LEN,
                Msg::Invalid => false,
            };
            if !fits {
                return Probe::NotMe;
            }
            true
        }
        _ => false,
    };
    let mut off = 0;
    let mut valid = 0u32;
    let mut software = None;
    let mut dialect = None;
    while let Some(rest) = b.get(off..).filter(|r| !r.is_empty()) {
        let (elem_len, msg) = if framed {
            let Some(frame) = be16(rest, 0).map(usize::from) else {
                break;
            };
            let body = rest.get(2..).unwrap_or(&[]);
            let msg = match body.get(..frame) {
                // A whole frame holds exactly one whole message.
                Some(whole) => match message(whole) {
                    m @ Msg::Valid { len, .. } if len == frame => m,
                    _ => Msg::Invalid,
                },
                None => match message(body) {
                    Msg::Partial => Msg::Partial,
                    _ => Msg::Invalid,
                },
            };
            (2 + frame, msg)
        } else if (0x40..0x80).contains(&rest[0]) && valid > 0 {
            // ChannelData (channels 0x4000-0x7FFF, RFC 5766) is padded to 4 bytes on TCP.
            let Some(len) = be16(rest, 2) else { break };
            off += 4 + (len as usize).div_ceil(4) * 4;
            continue;
        } else {
            let m = message(rest);
            let len = match m {
                Msg::Valid { len, .. } => len,
                _ => 0,
            };
            (len, m)
        };
        match msg {
            Msg::Valid {
                bare_classic,
                software: s,
                dialect: d,
                ..
            } => {
                if !bare_classic {
                    valid += 1;
                }
                software = software.or(s);
                dialect = dialect.or(d);
            }
            Msg::Partial => break,
            // After STUN on a framed stream, frames may carry the media it set up.
            Msg::Invalid if framed && valid > 0 => {}
            Msg::Invalid => return Probe::NotMe,
        }
        off += elem_len;
    }
    set_software(ev, software, dialect);
    if valid > 0 {
        Probe::Match(Proto::Stun, Confidence::Certain)
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

    fn hex(s: &str) -> Vec<u8> {
        testkit::hex(s)
    }

    fn probe(data: &[u8], transport: Transport) -> (Probe, Evidence) {
        let mut scratch = [0u8; 16];
        let mut ev = Evidence::default();
        let p = Stun.probe(
            data,
            &testkit::ctx(transport, Dir::Orig, 40000, 40002),
            &mut scratch,
            &mut ev,
        );
        (p, ev)
    }

    const CERTAIN: Probe = Probe::Match(Proto::Stun, Confidence::Certain);

    // From ndpi/stun.pcap (frames 16, 17, 145) and stun_classic.pcap (frames 1, 2).
    const BINDING_REQUEST: &str = "000100002112a44253486b6846386f6477677956";
    const ALLOCATE: &str =
        "000300142112a442536e4c665278533665516e540019000411000000ff05000754595f6e756c6c00";
    const CLASSIC_REQUEST: &str = "000100089429ef88294dd52632c72931cb8dbb4c0003000400000000";
    const CLASSIC_RESPONSE: &str =
        "0101000c9429ef88294dd52632c72931cb8dbb4c000100080001d70aac103fe0";

    #[test]
    fn binding_allocate_and_classic_over_udp() {
        for m in [BINDING_REQUEST, ALLOCATE, CLASSIC_REQUEST, CLASSIC_RESPONSE] {
            assert_eq!(probe(&hex(m), Transport::Udp).0, CERTAIN, "{m}");
        }
    }

    #[test]
    fn software_attribute_becomes_evidence() {
        // ndpi/stun.pcap frame 149 (TCP): Allocate success response with SOFTWARE.
        let m = hex("010300602112a442304b4962396f395356597953001600080001bf926325f852002000080001b09b24377d3c000d0004000002588022001a436f7475726e2d342e352e302e35202764616e20456964657227323400080014bbf047aa875e44951b78a280ee2222d51580438e80280004ca0e20cc");
        let (p, ev) = probe(&m, Transport::Tcp);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.stun_software.as_str(), "Coturn-4.5.0.5 'dan Eider'");
    }

    #[test]
    fn tcp_several_messages_in_one_segment_and_partial_ones() {
        let one = hex("000300082112a442704b6e453952586746596c590019000411000000");
        let mut three = one.clone();
        three.extend_from_slice(&one);
        three.extend_from_slice(&one);
        assert_eq!(probe(&three, Transport::Tcp).0, CERTAIN);
        // The first message not complete yet: wait; a half second message after a whole one
        // is fine.
        assert_eq!(probe(&one[..10], Transport::Tcp).0, Probe::NotYet);
        assert_eq!(probe(&three[..40], Transport::Tcp).0, CERTAIN);
        // A broken second message (here a TLS record) is not STUN.
        let mut bad = one.clone();
        bad.extend_from_slice(&[
            0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03,
        ]);
        bad.extend_from_slice(&[0; 32]);
        assert_eq!(probe(&bad, Transport::Tcp).0, Probe::NotMe);
    }

    #[test]
    fn tcp_rfc4571_framing() {
        // ndpi/stun.pcap frame 3 (Skype/Teams over TCP): a 2-byte length before each message.
        let m = hex("0068000100542112a442f3439453b698fb2950bb06ed000600092f7049303a546f4564000000002400046e6bfcff80290008000000000004c2d18054000132000000807000040000000300080014fe92876ad46d7b797d42eb8d79a805faf31d72d1802800040200fc47");
        assert_eq!(m.len(), 106);
        assert_eq!(probe(&m, Transport::Tcp).0, CERTAIN);
        assert_eq!(probe(&m[..50], Transport::Tcp).0, Probe::NotYet);
        assert_eq!(probe(&m[..1], Transport::Tcp).0, Probe::NotYet);
    }

    #[test]
    fn channel_data() {
        // ndpi/stun.pcap frame 110: ChannelData 0x4003 carrying a Binding request.
        let cd = hex("400300600001004c2112a442424a6650522b3470464652370006000958704a733a6b537479000000c05700040004000a80290008ba2ef3242b85e3d6002400046e7f1eff000800149e5482715ab7203975f0f512c5eae27779cf801f8028000459f5cdce");
        assert_eq!(probe(&cd, Transport::Udp).0, CERTAIN);
        // ChannelData with RTCP inside (frame 113): wait, unless the flow showed STUN before.
        let rtcp = hex("4003001680c9000100000001800000031ff01345009e4583923d");
        assert_eq!(probe(&rtcp, Transport::Udp).0, Probe::NotYet);
        let mut scratch = [0u8; 16];
        let mut ev = Evidence::default();
        let ctx = testkit::ctx(Transport::Udp, Dir::Orig, 40000, 40002);
        assert_eq!(
            Stun.probe(&hex(ALLOCATE), &ctx, &mut scratch, &mut ev),
            CERTAIN
        );
        assert_eq!(Stun.probe(&rtcp, &ctx, &mut scratch, &mut ev), CERTAIN);
    }

    #[test]
    fn classic_is_strict() {
        let mut m = hex(CLASSIC_REQUEST);
        // Unknown attribute type in a cookie-less message.
        m[20] = 0x00;
        m[21] = 0x30;
        assert_eq!(probe(&m, Transport::Udp).0, Probe::NotMe);
        // A type RFC 3489 does not have (Allocate without the cookie).
        let mut m = hex(CLASSIC_REQUEST);
        m[1] = 0x03;
        assert_eq!(probe(&m, Transport::Udp).0, Probe::NotMe);
        // A classic MAPPED-ADDRESS must be 8 bytes for IPv4.
        let mut m = hex(CLASSIC_RESPONSE);
        m[25] = 2;
        assert_eq!(probe(&m, Transport::Udp).0, Probe::NotMe);
        // No attributes at all: only likely.
        let bare = hex("00010000fe0102030405060708090a0b0c0d0e0f");
        assert_eq!(
            probe(&bare, Transport::Udp).0,
            Probe::Match(Proto::Stun, Confidence::Likely)
        );
    }

    #[test]
    fn lengths_must_agree() {
        let mut m = hex(ALLOCATE);
        m.push(0);
        assert_eq!(probe(&m, Transport::Udp).0, Probe::NotMe);
        let m = hex(ALLOCATE);
        assert_eq!(probe(&m[..m.len() - 4], Transport::Udp).0, Probe::NotMe);
        // Attribute running past the message.
        let mut m = hex(ALLOCATE);
        m[23] = 0x40;
        assert_eq!(probe(&m, Transport::Udp).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_stun() {
        for (p, t) in testkit::foreign_payloads() {
            assert_eq!(
                probe(&p, t).0,
                Probe::NotMe,
                "{t:?} {:02x?}",
                &p[..p.len().min(16)]
            );
        }
    }

    #[test]
    fn ndpi_captures() {
        let stun = Probe::Match(Proto::Stun, Confidence::Certain);
        for (file, expect) in [
            ("ndpi/stun.pcap", 8),
            ("ndpi/stun_classic.pcap", 1),
            ("ndpi/stun_tcp_multiple_msgs_same_pkt.pcap", 1),
            ("ndpi/stun_dtls_rtp.pcapng", 2),
        ] {
            let flows = testkit::flows(file);
            let hits: Vec<_> = flows
                .iter()
                .filter(|f| testkit::replay(&Stun, f, testkit::Feed::ENGINE).verdict == stun)
                .collect();
            assert_eq!(hits.len(), expect, "{file}");
        }
        // The TURN server of the TCP flow on 3478 names itself in its responses.
        let mut server_side = testkit::flows("ndpi/stun.pcap")
            .into_iter()
            .find(|f| f.transport == Transport::Tcp && f.has_port(3478))
            .expect("the TCP TURN flow");
        // (The capture starts with the server's SYN-ACK, so the server may be either side.)
        let server_dir = if server_side.client.1 == 3478 {
            crate::flow::Dir::Orig
        } else {
            crate::flow::Dir::Reply
        };
        server_side.packets.retain(|(d, _, _)| *d == server_dir);
        let o = testkit::replay(&Stun, &server_side, testkit::Feed::ENGINE);
        assert_eq!(o.verdict, stun);
        assert!(
            o.ev.stun_software.as_str().starts_with("Coturn-4.5"),
            "{:?}",
            o.ev
        );
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600),
                        scratch in any::<[u8; 16]>(), tcp in any::<bool>()) {
            let mut s = scratch;
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Stun.probe(&data, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }

        #[test]
        fn never_panics_on_stun_like_input(tail in proptest::collection::vec(any::<u8>(), 0..200),
                                           ty in 0u16..0x4000, len in 0u16..256, tcp in any::<bool>()) {
            let mut data = ty.to_be_bytes().to_vec();
            data.extend_from_slice(&len.to_be_bytes());
            data.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            data.extend_from_slice(&tail);
            let mut s = [0u8; 16];
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Stun.probe(&data, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }
    }
}
