//! NTP (RFC 5905) over UDP. The format is weak (any 48 bytes with a plausible first byte look
//! like NTP), so port 123 is required on at least one side, and then the datagram must be a
//! structurally valid message:
//! - modes 1..=5 (symmetric, client, server, broadcast): version 1..=4, at least the 48-byte
//!   header, stratum 0..=16, and a length the header plus extension fields or a MAC can make
//!   (a multiple of 4);
//! - mode 6 (control, ntpq): version 1..=4, a 12-byte header whose data count fits the
//!   datagram and stays within the protocol's 468 bytes;
//! - mode 7 (private, ntpdc, the monlist of amplification attacks): version 1..=4, at least 8
//!   bytes, a known implementation number.
//!
//! Never allocates, never panics: every read is bounds-checked.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Ntp;

pub const NTP_PORT: u16 = 123;

const HEADER_LEN: usize = 48;
const MAX_STRATUM: u8 = 16;
const CONTROL_HEADER_LEN: usize = 12;
const CONTROL_MAX_DATA: usize = 468;
const PRIVATE_HEADER_LEN: usize = 8;
/// Implementation numbers of mode 7: universal, xntpd (old), xntpd.
const PRIVATE_IMPLS: [u8; 3] = [0, 2, 3];

impl Decoder for Ntp {
    fn name(&self) -> &'static str {
        "ntp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[NTP_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp || !ctx.has_port(NTP_PORT) {
            return Probe::NotMe;
        }
        if message(data) {
            Probe::Match(Proto::Ntp, Confidence::Certain)
        } else {
            Probe::NotMe
        }
    }
}

fn message(m: &[u8]) -> bool {
    let Some(&first) = m.first() else {
        return false;
    };
    let version = (first >> 3) & 0x7;
    let mode = first & 0x7;
    if !(1..=4).contains(&version) {
        return false;
    }
    match mode {
        1..=5 => {
            let stratum = m.get(1).copied().unwrap_or(u8::MAX);
            m.len() >= HEADER_LEN && stratum <= MAX_STRATUM && m.len() & 3 == 0
        }
        6 => {
            let Some(count) = be16(m, 10) else {
                return false;
            };
            let count = count as usize;
            count <= CONTROL_MAX_DATA && CONTROL_HEADER_LEN + count <= m.len()
        }
        7 => {
            let implementation = m.get(2).copied().unwrap_or(u8::MAX);
            m.len() >= PRIVATE_HEADER_LEN && PRIVATE_IMPLS.contains(&implementation)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// Client request (1kxun.pcap, 192.168.5.16:123 -> 17.253.26.125:123).
    const CLIENT: &str = "230206ec000026200000f6c911fd1a7ddb4a7e8f3d3ee739db4a8184a643c768db4a\
                          8184b424877edb4a81ec3f779f2c";

    #[test]
    fn client_request_is_ntp() {
        let m = hex(CLIENT);
        assert_eq!(
            probe_once(&Ntp, &m, &ctx(Transport::Udp, Dir::Orig, 123, 123)).0,
            Probe::Match(Proto::Ntp, Confidence::Certain)
        );
        assert_eq!(
            probe_once(&Ntp, &m, &ctx(Transport::Udp, Dir::Orig, 50000, 123)).0,
            Probe::Match(Proto::Ntp, Confidence::Certain)
        );
    }

    #[test]
    fn port_123_is_required() {
        let m = hex(CLIENT);
        assert_eq!(
            probe_once(&Ntp, &m, &ctx(Transport::Udp, Dir::Orig, 50000, 1230)).0,
            Probe::NotMe
        );
        assert_eq!(
            probe_once(&Ntp, &m, &ctx(Transport::Tcp, Dir::Orig, 50000, 123)).0,
            Probe::NotMe
        );
    }

    #[test]
    fn invalid_headers_are_not_ntp() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 123);
        let m = hex(CLIENT);
        let with = |i: usize, v: u8| {
            let mut x = m.clone();
            x[i] = v;
            probe_once(&Ntp, &x, &c).0
        };
        assert_eq!(with(0, 0x03), Probe::NotMe); // version 0
        assert_eq!(with(0, 0x2b), Probe::NotMe); // version 5
        assert_eq!(with(0, 0x20), Probe::NotMe); // mode 0
        assert_eq!(with(1, 17), Probe::NotMe); // stratum 17
        assert_eq!(probe_once(&Ntp, &m[..47], &c).0, Probe::NotMe);
        let mut x = m.clone();
        x.push(0);
        assert_eq!(probe_once(&Ntp, &x, &c).0, Probe::NotMe);
        // A 20-byte MAC after the header is fine.
        let mut x = m.clone();
        x.extend_from_slice(&[0; 20]);
        assert_eq!(
            probe_once(&Ntp, &x, &c).0,
            Probe::Match(Proto::Ntp, Confidence::Certain)
        );
    }

    #[test]
    fn control_and_private_modes() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 123);
        // ntpq "readvar": version 2, mode 6, opcode 2, no data.
        let readvar = [0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            probe_once(&Ntp, &readvar, &c).0,
            Probe::Match(Proto::Ntp, Confidence::Certain)
        );
        let mut bad = readvar;
        bad[11] = 4; // a data count the datagram does not hold
        assert_eq!(probe_once(&Ntp, &bad, &c).0, Probe::NotMe);
        // ntpdc "monlist": version 2, mode 7, implementation 3, request 42.
        let mut monlist = vec![0x17, 0x00, 0x03, 0x2a];
        monlist.resize(48, 0);
        assert_eq!(
            probe_once(&Ntp, &monlist, &c).0,
            Probe::Match(Proto::Ntp, Confidence::Certain)
        );
        monlist[2] = 9;
        assert_eq!(probe_once(&Ntp, &monlist, &c).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_ntp() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 123);
        for m in [
            testkit::HTTP_GET,
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[][..],
        ] {
            assert_eq!(probe_once(&Ntp, m, &c).0, Probe::NotMe);
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        let (bad, matched) = testkit::compare_with_ndpi(&Ntp, &[Proto::Ntp]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert_eq!(matched.get(&Proto::Ntp), Some(&1));
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // SIP calls with RTP, SNMP, MGCP, H.225; FaceTime media; TRex's DNS, HTTP, mail,
        // Exchange (DCE-RPC), Oracle, Citrix and video-call mixes.
        assert_eq!(testkit::matches_elsewhere(&Ntp), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            scratch in any::<[u8; 16]>(),
            ports in (prop_oneof![Just(123u16), any::<u16>()], any::<u16>()),
            tcp in any::<bool>(),
        ) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = Ntp.probe(&data, &ctx(t, Dir::Orig, ports.0, ports.1), &mut s, &mut ev);
        }
    }
}
