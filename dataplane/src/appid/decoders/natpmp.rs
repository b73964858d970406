//! NAT-PMP (RFC 6886) and its successor PCP (RFC 6887), over UDP. Both formats are weak (an
//! external-address request is two bytes), so port 5351 is required on at least one side:
//! clients ask the gateway on 5351, and the gateway's announcements go from 5351 to 5350. Then
//! the datagram must be a message of its version:
//! - NAT-PMP (version 0): each opcode has one exact length: requests 0 (2 bytes), 1 and 2
//!   (12 bytes, reserved field zero); responses 128 (12 bytes), 129 and 130 (16 bytes) with a
//!   result code 0..=5, or the 8-byte "unsupported version/opcode" error response;
//! - PCP (version 2): a 24-byte header, opcode ANNOUNCE, MAP or PEER, zero reserved fields, a
//!   result code 0..=13 in responses, the opcode's body, then options (code, reserved, length,
//!   data padded to 4 bytes) that fill the datagram exactly.
//!
//! Never allocates, never panics: every read is bounds-checked.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct NatPmp;

pub const SERVER_PORT: u16 = 5351;

const NATPMP_VERSION: u8 = 0;
const PCP_VERSION: u8 = 2;
const NATPMP_MAX_RESULT: u16 = 5;
/// Result codes of the error response that carries only the first 8 bytes.
const UNSUPPORTED_VERSION: u16 = 1;
const UNSUPPORTED_OPCODE: u16 = 5;

const PCP_HEADER_LEN: usize = 24;
const PCP_MAX_LEN: usize = 1100;
const PCP_MAX_RESULT: u8 = 13;
const PCP_OPTION_HEADER_LEN: usize = 4;

impl Decoder for NatPmp {
    fn name(&self) -> &'static str {
        "natpmp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[SERVER_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp || !ctx.has_port(SERVER_PORT) {
            return Probe::NotMe;
        }
        let valid = match data.first() {
            Some(&NATPMP_VERSION) => natpmp(data),
            Some(&PCP_VERSION) => pcp(data),
            _ => false,
        };
        if valid {
            Probe::Match(Proto::NatPmp, Confidence::Certain)
        } else {
            Probe::NotMe
        }
    }
}

fn natpmp(m: &[u8]) -> bool {
    let Some(&op) = m.get(1) else {
        return false;
    };
    let field = be16(m, 2);
    match (op, m.len()) {
        (0, 2) => true,
        // Map requests: the reserved field is zero.
        (1 | 2, 12) => field == Some(0),
        (128, 12) | (129 | 130, 16) => field.is_some_and(|r| r <= NATPMP_MAX_RESULT),
        (128..=255, 8) => matches!(field, Some(UNSUPPORTED_VERSION | UNSUPPORTED_OPCODE)),
        _ => false,
    }
}

fn pcp(m: &[u8]) -> bool {
    if m.len() < PCP_HEADER_LEN || m.len() > PCP_MAX_LEN || m.len() & 3 != 0 {
        return false;
    }
    let response = m[1] & 0x80 != 0;
    let body = match m[1] & 0x7f {
        0 => 0,  // ANNOUNCE
        1 => 36, // MAP
        2 => 56, // PEER
        _ => return false,
    };
    if response {
        // Reserved byte, result code, lifetime, epoch, then 96 reserved bits.
        if m[2] != 0 || m[3] > PCP_MAX_RESULT || m[12..PCP_HEADER_LEN].iter().any(|&b| b != 0) {
            return false;
        }
        // An error response may stop after the header.
        if m[3] != 0 && m.len() == PCP_HEADER_LEN {
            return true;
        }
    } else if m[2] != 0 || m[3] != 0 {
        return false;
    }
    let mut pos = PCP_HEADER_LEN + body;
    while pos < m.len() {
        let (Some(&code), Some(len)) = (m.get(pos), be16(m, pos + 2)) else {
            return false;
        };
        if code == 0 {
            return false;
        }
        let len = len as usize;
        pos += PCP_OPTION_HEADER_LEN + len.div_ceil(4) * 4;
    }
    pos == m.len()
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// The gateway's announcements after a restart (iphone.pcap, 192.168.2.1:5351 ->
    /// 224.0.0.1:5350): PCP ANNOUNCE response, then NAT-PMP external address response.
    const PCP_ANNOUNCE: &str = "028000000000000000000021000000000000000000000000";
    const NATPMP_ANNOUNCE: &str = "0080000000000021c0a8010b";

    fn matches(m: &[u8], c: &crate::appid::FlowCtx) -> bool {
        probe_once(&NatPmp, m, c).0 == Probe::Match(Proto::NatPmp, Confidence::Certain)
    }

    #[test]
    fn gateway_announcements_are_nat_pmp() {
        let c = ctx(Transport::Udp, Dir::Orig, 5351, 5350);
        assert!(matches(&hex(PCP_ANNOUNCE), &c));
        assert!(matches(&hex(NATPMP_ANNOUNCE), &c));
    }

    #[test]
    fn requests_and_responses_have_exact_lengths() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 5351);
        let r = ctx(Transport::Udp, Dir::Reply, 50000, 5351);
        assert!(matches(&[0, 0], &c));
        assert!(!matches(&[0, 0, 0], &c));
        let map = [0, 2, 0, 0, 0x1f, 0x90, 0x1f, 0x90, 0, 0, 0x1c, 0x20];
        assert!(matches(&map, &c));
        let mut bad = map;
        bad[2] = 1; // reserved
        assert!(!matches(&bad, &c));
        assert!(!matches(&map[..11], &c));
        let mapped = [
            0, 130, 0, 0, 0, 0, 0, 9, 0x1f, 0x90, 0x1f, 0x90, 0, 0, 0x1c, 0x20,
        ];
        assert!(matches(&mapped, &r));
        let mut bad = mapped;
        bad[3] = 6; // result code
        assert!(!matches(&bad, &r));
        assert!(matches(&[0, 131, 0, 5, 0, 0, 0, 9], &r)); // unsupported opcode
        assert!(!matches(&[0, 3, 0, 5, 0, 0, 0, 9], &r)); // requests have no error form
        assert!(!matches(&[0, 0x81, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0], &r)); // 129 is 16 bytes
    }

    #[test]
    fn pcp_map_request_with_an_option() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 5351);
        let mut m = vec![2, 1, 0, 0, 0, 0, 0x1c, 0x20];
        m.extend_from_slice(&[0; 16]); // client address
        m.extend_from_slice(&[0x11; 12]); // nonce
        m.extend_from_slice(&[17, 0, 0, 0, 0x1f, 0x90, 0x1f, 0x90]);
        m.extend_from_slice(&[0; 16]); // suggested external address
        m.extend_from_slice(&[2, 0, 0, 0]); // PREFER_FAILURE, no data
        m.extend_from_slice(&[0x80, 0, 0, 1, 0xaa, 0, 0, 0]); // 1 byte of data, padded to 4
        assert!(matches(&m, &c));
        m.push(0);
        assert!(!matches(&m, &c));
        m.pop();
        m[1] = 3; // opcode
        assert!(!matches(&m, &c));
    }

    #[test]
    fn port_5351_is_required() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 5352);
        assert!(!matches(&hex(NATPMP_ANNOUNCE), &c));
        assert!(!matches(&hex(PCP_ANNOUNCE), &c));
        let t = ctx(Transport::Tcp, Dir::Orig, 50000, 5351);
        assert!(!matches(&hex(NATPMP_ANNOUNCE), &t));
    }

    #[test]
    fn broken_pcp_is_not_nat_pmp() {
        let c = ctx(Transport::Udp, Dir::Orig, 5351, 5350);
        let m = hex(PCP_ANNOUNCE);
        let with = |i: usize, v: u8| {
            let mut x = m.clone();
            x[i] = v;
            matches(&x, &c)
        };
        assert!(!with(0, 1)); // version 1
        assert!(!with(3, 14)); // result code
        assert!(!with(20, 1)); // reserved
        assert!(!matches(&m[..20], &c));
    }

    #[test]
    fn other_protocols_are_not_nat_pmp() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 5351);
        for m in [
            testkit::HTTP_GET,
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[][..],
        ] {
            assert_eq!(probe_once(&NatPmp, m, &c).0, Probe::NotMe);
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        let (bad, matched) = testkit::compare_with_ndpi(&NatPmp, &[Proto::NatPmp]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert_eq!(matched.get(&Proto::NatPmp), Some(&1));
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // SIP calls with RTP, SNMP, MGCP, H.225; FaceTime media; TRex's DNS, HTTP, mail,
        // Exchange (DCE-RPC), Oracle, Citrix and video-call mixes.
        assert_eq!(testkit::matches_elsewhere(&NatPmp), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            scratch in any::<[u8; 16]>(),
            ports in (any::<u16>(), prop_oneof![Just(5351u16), any::<u16>()]),
            tcp in any::<bool>(),
        ) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = NatPmp.probe(&data, &ctx(t, Dir::Orig, ports.0, ports.1), &mut s, &mut ev);
        }

        #[test]
        fn short_version_0_and_2_messages_never_panic(
            version in prop_oneof![Just(0u8), Just(2u8)],
            rest in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut m = vec![version];
            m.extend_from_slice(&rest);
            let _ = probe_once(&NatPmp, &m, &ctx(Transport::Udp, Dir::Orig, 50000, 5351));
        }
    }
}
