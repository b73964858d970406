//! DHCP (RFC 2131) and DHCPv6 (RFC 8415), over UDP.
//!
//! DHCPv4 is BOOTP with the DHCP magic cookie: op 1 or 2, Ethernet hardware addresses (htype 1,
//! hlen 6), a sane hop count, the cookie 0x63825363 at offset 236, and an option walk that
//! stays inside the datagram and finds option 53 (message type 1..=18). That structure is
//! strong, so ports 67/68 are only hints. The client's host name (option 12), lowercased, goes
//! into `ev.host`.
//!
//! DHCPv6's format is weak (a type byte, a transaction id, then TLV options), so it needs the
//! well-known port (546 or 547) on at least one side, IPv6 addresses, a message type 1..=13 and
//! options (at least one, codes assigned) that fill the datagram exactly; relay messages
//! must carry a Relay Message option.
//!
//! Never allocates, never panics: every read is bounds-checked and option walks advance on
//! every step.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Dhcp;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
pub const V6_CLIENT_PORT: u16 = 546;
pub const V6_SERVER_PORT: u16 = 547;

const COOKIE_OFFSET: usize = 236;
const COOKIE: [u8; 4] = [0x63, 0x82, 0x53, 0x63];
const OPTIONS_OFFSET: usize = 240;
const MAX_HOPS: u8 = 16;
const OPT_PAD: u8 = 0;
const OPT_END: u8 = 255;
const OPT_HOST_NAME: u8 = 12;
const OPT_MESSAGE_TYPE: u8 = 53;
/// DHCPDISCOVER (1) .. DHCPSTATUS (18, RFC 7724).
const MAX_MESSAGE_TYPE: u8 = 18;

/// DHCPv6: client/server messages have a 4-byte header, relay messages 34 bytes.
const V6_HEADER: usize = 4;
const V6_RELAY_HEADER: usize = 34;
const V6_RELAY_FORW: u8 = 12;
const V6_RELAY_REPL: u8 = 13;
const V6_OPT_RELAY_MSG: u16 = 9;
/// Highest option code assigned (with room to grow).
const V6_MAX_OPTION: u16 = 255;

impl Decoder for Dhcp {
    fn name(&self) -> &'static str {
        "dhcp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[SERVER_PORT, CLIENT_PORT, V6_CLIENT_PORT, V6_SERVER_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        if let Some(host) = dhcpv4(data) {
            if let Some(h) = host {
                let mut buf = [0u8; 255];
                for (d, s) in buf.iter_mut().zip(h) {
                    *d = s.to_ascii_lowercase();
                }
                ev.host.set(&buf[..h.len()]);
            }
            return Probe::Match(Proto::Dhcp, Confidence::Certain);
        }
        let v6_port = ctx.has_port(V6_CLIENT_PORT) || ctx.has_port(V6_SERVER_PORT);
        if v6_port && !ctx.client.0.is_v4() && dhcpv6(data) {
            return Probe::Match(Proto::Dhcpv6, Confidence::Certain);
        }
        Probe::NotMe
    }
}

/// A DHCPv4 message: `Some(host name option, if any)` when valid.
fn dhcpv4(m: &[u8]) -> Option<Option<&[u8]>> {
    let (op, htype, hlen, hops) = (*m.first()?, *m.get(1)?, *m.get(2)?, *m.get(3)?);
    if !matches!(op, 1 | 2) || htype != 1 || hlen != 6 || hops > MAX_HOPS {
        return None;
    }
    if m.get(COOKIE_OFFSET..OPTIONS_OFFSET)? != COOKIE {
        return None;
    }
    let mut pos = OPTIONS_OFFSET;
    let mut message_type = None;
    let mut host = None;
    while let Some(&code) = m.get(pos) {
        match code {
            OPT_PAD => pos += 1,
            OPT_END => break,
            _ => {
                let len = *m.get(pos + 1)? as usize;
                let value = m.get(pos + 2..pos + 2 + len)?;
                match code {
                    OPT_MESSAGE_TYPE if len == 1 => message_type = Some(value[0]),
                    OPT_MESSAGE_TYPE => return None,
                    OPT_HOST_NAME if !value.is_empty() => host = Some(value),
                    _ => {}
                }
                pos += 2 + len;
            }
        }
    }
    let t = message_type?;
    (1..=MAX_MESSAGE_TYPE).contains(&t).then_some(host)
}

/// A DHCPv6 message (the caller has checked ports and address family).
fn dhcpv6(m: &[u8]) -> bool {
    let Some(&kind) = m.first() else {
        return false;
    };
    let start = match kind {
        1..=11 => V6_HEADER,
        V6_RELAY_FORW | V6_RELAY_REPL => V6_RELAY_HEADER,
        _ => return false,
    };
    let mut pos = start;
    let mut relay_msg = false;
    while pos < m.len() {
        let (Some(code), Some(len)) = (be16(m, pos), be16(m, pos + 2)) else {
            return false;
        };
        if code == 0 || code > V6_MAX_OPTION {
            return false;
        }
        relay_msg |= code == V6_OPT_RELAY_MSG;
        pos += 4 + len as usize;
    }
    let relay = start == V6_RELAY_HEADER;
    pos == m.len() && pos > start && (!relay || relay_msg)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use crate::packet::IpAddr16;
    use proptest::prelude::*;

    /// DHCPREQUEST from an iPhone (iphone.pcap, 0.0.0.0:68 -> 255.255.255.255:67).
    const REQUEST: &str =
        "0101060078544709001b000000000000000000000000000000000000d8306256001c0000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000063825363350101370a017903060f77fc\
        5f2c2e390205dc3d0701d8306256001c33040076a7000c0a4c756361732d694d6163ff00000000000000\
        000000000000";

    /// DHCPv6 Information-Request (1kxun.pcap, [fe80::..]:546 -> [ff02::1:2]:547).
    const INFO_REQUEST: &str =
        "0b27731d0001000e000100011db8e6fb703eacf0f0070006000400170018000800020000";

    fn v6_ctx(client_port: u16, server_port: u16) -> crate::appid::FlowCtx {
        let mut c = ctx(Transport::Udp, Dir::Orig, client_port, server_port);
        let ll: std::net::IpAddr = "fe80::f65c:89ff:fe89:e607".parse().unwrap();
        let group: std::net::IpAddr = "ff02::1:2".parse().unwrap();
        c.client.0 = IpAddr16::from(ll);
        c.server.0 = IpAddr16::from(group);
        c
    }

    #[test]
    fn request_is_dhcp_with_the_host_name() {
        let (p, ev) = probe_once(
            &Dhcp,
            &hex(REQUEST),
            &ctx(Transport::Udp, Dir::Orig, 68, 67),
        );
        assert_eq!(p, Probe::Match(Proto::Dhcp, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "lucas-imac");
        // The structure is strong: another port does not change the answer.
        let (p, _) = probe_once(
            &Dhcp,
            &hex(REQUEST),
            &ctx(Transport::Udp, Dir::Orig, 40000, 6767),
        );
        assert_eq!(p, Probe::Match(Proto::Dhcp, Confidence::Certain));
    }

    #[test]
    fn bootp_without_the_dhcp_parts_is_not_dhcp() {
        let c = ctx(Transport::Udp, Dir::Orig, 68, 67);
        let m = hex(REQUEST);
        let with = |i: usize, v: u8| {
            let mut x = m.clone();
            x[i] = v;
            probe_once(&Dhcp, &x, &c).0
        };
        assert_eq!(with(0, 3), Probe::NotMe); // op
        assert_eq!(with(1, 6), Probe::NotMe); // htype
        assert_eq!(with(2, 8), Probe::NotMe); // hlen
        assert_eq!(with(3, 200), Probe::NotMe); // hops
        assert_eq!(with(236, 0x64), Probe::NotMe); // cookie
        assert_eq!(with(240, 52), Probe::NotMe); // no option 53 (now option 52)
        assert_eq!(with(242, 0), Probe::NotMe); // message type 0
        assert_eq!(with(241, 2), Probe::NotMe); // option 53 of length 2
                                                // An option running past the datagram.
        let mut x = m.clone();
        x.truncate(260);
        assert_eq!(probe_once(&Dhcp, &x, &c).0, Probe::NotMe);
        assert_eq!(probe_once(&Dhcp, &m[..239], &c).0, Probe::NotMe);
    }

    #[test]
    fn information_request_is_dhcpv6_on_its_ports_only() {
        let m = hex(INFO_REQUEST);
        assert_eq!(
            probe_once(&Dhcp, &m, &v6_ctx(546, 547)).0,
            Probe::Match(Proto::Dhcpv6, Confidence::Certain)
        );
        assert_eq!(probe_once(&Dhcp, &m, &v6_ctx(40000, 41000)).0, Probe::NotMe);
        // Over IPv4 it is not DHCPv6.
        assert_eq!(
            probe_once(&Dhcp, &m, &ctx(Transport::Udp, Dir::Orig, 546, 547)).0,
            Probe::NotMe
        );
    }

    #[test]
    fn broken_dhcpv6_is_not_dhcpv6() {
        let c = v6_ctx(546, 547);
        let m = hex(INFO_REQUEST);
        let mut x = m.clone();
        x[0] = 14; // message type
        assert_eq!(probe_once(&Dhcp, &x, &c).0, Probe::NotMe);
        let mut x = m.clone();
        x[5] = 0; // option code 0
        assert_eq!(probe_once(&Dhcp, &x, &c).0, Probe::NotMe);
        // Options that do not fill the datagram exactly.
        assert_eq!(probe_once(&Dhcp, &m[..m.len() - 1], &c).0, Probe::NotMe);
        let mut x = m.clone();
        x.push(0);
        assert_eq!(probe_once(&Dhcp, &x, &c).0, Probe::NotMe);
        // No options at all.
        assert_eq!(probe_once(&Dhcp, &m[..4], &c).0, Probe::NotMe);
    }

    #[test]
    fn relay_forward_needs_a_relay_message() {
        let c = v6_ctx(547, 547);
        let inner = hex(INFO_REQUEST);
        let mut relay = vec![V6_RELAY_FORW, 0];
        relay.extend_from_slice(&[0x20; 16]);
        relay.extend_from_slice(&[0xfe; 16]);
        relay.extend_from_slice(&V6_OPT_RELAY_MSG.to_be_bytes());
        relay.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        relay.extend_from_slice(&inner);
        assert_eq!(
            probe_once(&Dhcp, &relay, &c).0,
            Probe::Match(Proto::Dhcpv6, Confidence::Certain)
        );
        relay[35] = 18; // Interface-Id instead of Relay Message
        assert_eq!(probe_once(&Dhcp, &relay, &c).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_dhcp() {
        for c in [ctx(Transport::Udp, Dir::Orig, 68, 67), v6_ctx(546, 547)] {
            for m in [
                testkit::HTTP_GET,
                testkit::SIP_INVITE,
                testkit::TLS_HELLO,
                &[][..],
            ] {
                assert_eq!(probe_once(&Dhcp, m, &c).0, Probe::NotMe);
            }
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        let (bad, matched) = testkit::compare_with_ndpi(&Dhcp, &[Proto::Dhcp, Proto::Dhcpv6]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        // iphone.pcap 2, 1kxun.pcap 5; 1kxun.pcap 3.
        assert_eq!(matched.get(&Proto::Dhcp), Some(&14));
        assert_eq!(matched.get(&Proto::Dhcpv6), Some(&3));
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // SIP calls with RTP, SNMP, MGCP, H.225; FaceTime media; TRex's DNS, HTTP, mail,
        // Exchange (DCE-RPC), Oracle, Citrix and video-call mixes.
        assert_eq!(testkit::matches_elsewhere(&Dhcp), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            scratch in any::<[u8; 16]>(),
            ports in (prop_oneof![Just(546u16), Just(68u16), any::<u16>()], any::<u16>()),
            v6 in any::<bool>(),
        ) {
            let c = if v6 { v6_ctx(ports.0, ports.1) } else { ctx(Transport::Udp, Dir::Orig, ports.0, ports.1) };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = Dhcp.probe(&data, &c, &mut s, &mut ev);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..300, any::<u8>()), 0..6),
            cut in 0usize..300,
        ) {
            for base in [hex(REQUEST), hex(INFO_REQUEST)] {
                let mut m = base;
                for &(i, b) in &flips {
                    if let Some(x) = m.get_mut(i) { *x = b; }
                }
                m.truncate(cut);
                let _ = probe_once(&Dhcp, &m, &v6_ctx(546, 547));
                let _ = probe_once(&Dhcp, &m, &ctx(Transport::Udp, Dir::Orig, 68, 67));
            }
        }
    }
}
