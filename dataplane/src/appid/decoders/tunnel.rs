//! The UDP tunnels the dataplane decapsulates (VXLAN, GTP-U, Teredo, CAPWAP data), named as
//! the outer flow's application. A datagram is one only when `packet::tunnel` finds the
//! tunnel's header well formed on the tunnel's port and an IP packet that parses inside it:
//! the same test that makes the worker track the inner flow, so the outer flow's name and the
//! inner flow's existence agree. Certain on one datagram (a well-formed header and a whole
//! IP packet whose length fills it leave little doubt); the port alone is never enough.
//!
//! Never allocates, never panics: `packet::tunnel` is total.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::packet::tunnel::{self, Kind};

pub struct UdpTunnel;

impl Decoder for UdpTunnel {
    fn name(&self) -> &'static str {
        "udp-tunnel"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[
            tunnel::VXLAN_PORT,
            tunnel::GTPU_PORT,
            tunnel::TEREDO_PORT,
            tunnel::CAPWAP_DATA_PORT,
        ]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        let (src, dst) = ctx.ports();
        let proto = match tunnel::udp_tunnel(data, src, dst) {
            Some(Kind::Vxlan) => Proto::Vxlan,
            Some(Kind::GtpU) => Proto::GtpU,
            Some(Kind::Teredo) => Proto::Teredo,
            Some(Kind::Capwap) => Proto::Capwap,
            Some(Kind::IpInIp | Kind::Gre) | None => return Probe::NotMe,
        };
        Probe::Match(proto, Confidence::Certain)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once, Feed};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// A Teredo router solicitation (teredo.pcap, 10.112.16.67:51812 -> 194.136.28.76:3544):
    /// an authentication indication, then IPv6 ICMPv6 133 from fe80::8000:ffff:ffff:fffd.
    const TEREDO_RS: &str = "00010000b11b3fea46a9afe9006000000000083afffe800000000000000000ffff\
                             fffffffeff02000000000000000000000000000285007d3800000000";

    #[test]
    fn teredo_on_its_port_with_ipv6_inside() {
        let m = hex(TEREDO_RS);
        assert_eq!(
            probe_once(&UdpTunnel, &m, &ctx(Transport::Udp, Dir::Orig, 51812, 3544)).0,
            Probe::Match(Proto::Teredo, Confidence::Certain)
        );
        // Elsewhere it is not Teredo; cut short, its IPv6 length no longer fills it.
        assert_eq!(
            probe_once(&UdpTunnel, &m, &ctx(Transport::Udp, Dir::Orig, 51812, 3545)).0,
            Probe::NotMe
        );
        assert_eq!(
            probe_once(
                &UdpTunnel,
                &m[..m.len() - 1],
                &ctx(Transport::Udp, Dir::Orig, 51812, 3544)
            )
            .0,
            Probe::NotMe
        );
    }

    #[test]
    fn vxlan_with_an_ip_frame_inside_and_not_without() {
        let mut m = hex("0800000000303900");
        m.extend(hex(
            "02000000000202000000000108004500002100010000401100000000000000000000",
        ));
        // Fix the inner IPv4 addresses and lengths: 10.0.0.1 -> 10.0.0.2, UDP 8 + 5 bytes.
        let ip = 8 + 14;
        m[ip + 12..ip + 20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        m.extend(hex("13c413c5000d0000"));
        m.extend(b"hello");
        assert_eq!(
            probe_once(&UdpTunnel, &m, &ctx(Transport::Udp, Dir::Orig, 40000, 4789)).0,
            Probe::Match(Proto::Vxlan, Confidence::Certain)
        );
        m[0] = 0; // no VNI
        assert_eq!(
            probe_once(&UdpTunnel, &m, &ctx(Transport::Udp, Dir::Orig, 40000, 4789)).0,
            Probe::NotMe
        );
    }

    #[test]
    fn names_the_outer_flows_of_the_tunnel_captures_and_nothing_else() {
        let count = |file: &str, p: Proto| {
            let runs = testkit::replay_file(file, &UdpTunnel, Feed::FIRST_ANSWER);
            runs.iter().filter(|r| r.proto() == Some(p)).count()
        };
        // nDPI names the five Teredo flows; the VXLAN, GTP-U and CAPWAP captures' outer
        // flows (nDPI lists only their inner flows) are every UDP flow they have.
        assert_eq!(count("ndpi/teredo.pcap", Proto::Teredo), 5);
        assert_eq!(count("ndpi/vxlan.pcap", Proto::Vxlan), 9);
        assert_eq!(count("ndpi/ipv6_in_gtp.pcap", Proto::GtpU), 2);
        // Three access points' flows, told apart by VLAN only (the decoder test kit merges
        // them; the worker keeps them apart).
        assert_eq!(count("ndpi/capwap_data.pcapng", Proto::Capwap), 1);
        assert_eq!(testkit::matches_elsewhere(&UdpTunnel), Vec::<String>::new());
        // Elsewhere in the scored captures it matches nothing: nDPI lists every flow but a
        // tunnel's outer one, so an outer flow is the only kind it may leave unlisted.
        let (bad, _) = testkit::compare_with_ndpi(&UdpTunnel, &[Proto::Teredo]);
        let bad: Vec<String> = bad
            .into_iter()
            .filter(|l| !l.contains("nDPI (not listed)"))
            .collect();
        assert!(
            bad.is_empty(),
            "matches in the scored captures:\n{}",
            bad.join("\n")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), port in prop::sample::select(vec![4789u16, 2152, 3544, 5247, 80])) {
            let _ = probe_once(&UdpTunnel, &data, &ctx(Transport::Udp, Dir::Orig, 40000, port));
        }
    }
}
