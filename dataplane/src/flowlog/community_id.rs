//! The Community ID (v1) of a flow: the cross-tool flow hash that Zeek, Suricata, Wireshark and
//! Arkime log, so that one flow can be found in all of their records by one string.
//!
//! SHA-1 over `seed . addr_a . addr_b . proto . 0 . port_a . port_b` (network byte order), the
//! endpoints ordered so the smaller (address, port) comes first and both directions hash the
//! same; base64, prefixed with the version `1:`. ICMP and ICMPv6 take the type as the source
//! port and, for messages that come in request/reply pairs, the paired type as the destination
//! port (the pair is then ordered like ports); other messages take the code and are one-way
//! (never reordered). Other protocols hash the addresses and protocol only.
use crate::packet::{proto, IpAddr16};
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The type that answers ICMPv4 type `t`, for the types that come in pairs.
fn icmp4_pair(t: u8) -> Option<u8> {
    Some(match t {
        8 => 0, // echo request / reply
        0 => 8,
        13 => 14, // timestamp
        14 => 13,
        15 => 16, // information
        16 => 15,
        10 => 9, // router solicitation / advertisement
        9 => 10,
        17 => 18, // address mask
        18 => 17,
        _ => return None,
    })
}

/// The same for ICMPv6.
fn icmp6_pair(t: u8) -> Option<u8> {
    Some(match t {
        128 => 129, // echo request / reply
        129 => 128,
        130 => 131, // multicast listener query / report
        131 => 130,
        133 => 134, // router solicitation / advertisement
        134 => 133,
        135 => 136, // neighbour solicitation / advertisement
        136 => 135,
        139 => 140, // node information query / reply
        140 => 139,
        144 => 145, // home agent address discovery request / reply
        145 => 144,
        _ => return None,
    })
}

/// What one side of a flow is: its address and port (or ICMP type/code as ports).
#[derive(Clone, Copy, Debug)]
pub struct Endpoints {
    pub proto: u8,
    pub src: IpAddr16,
    pub src_port: u16,
    pub dst: IpAddr16,
    pub dst_port: u16,
    /// For ICMP/ICMPv6: the originator's first message's (type, code); ports are ignored.
    pub icmp: Option<(u8, u8)>,
}

/// The Community ID v1 of a flow with `seed` (0 unless an operator set a domain seed).
pub fn community_id(e: &Endpoints, seed: u16) -> String {
    let (mut sport, mut dport, mut one_way) = (e.src_port, e.dst_port, false);
    let ports = match e.proto {
        proto::TCP | proto::UDP | proto::SCTP => true,
        proto::ICMP | proto::ICMPV6 => {
            let (t, code) = e.icmp.unwrap_or((0, 0));
            let pair = if e.proto == proto::ICMP {
                icmp4_pair(t)
            } else {
                icmp6_pair(t)
            };
            sport = t as u16;
            match pair {
                Some(p) => dport = p as u16,
                None => (dport, one_way) = (code as u16, true),
            }
            true
        }
        _ => false,
    };
    let bytes = |a: &IpAddr16| -> Vec<u8> {
        match a.v4() {
            Some(v4) => v4.to_vec(),
            None => a.0.to_vec(),
        }
    };
    let (mut a, mut b) = (bytes(&e.src), bytes(&e.dst));
    if !one_way && (&a, sport) > (&b, dport) {
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut sport, &mut dport);
    }
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(&a);
    h.update(&b);
    h.update([e.proto, 0]);
    if ports {
        h.update(sport.to_be_bytes());
        h.update(dport.to_be_bytes());
    }
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr16 {
        match s.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(a) => IpAddr16::from_v4(a.octets()),
            std::net::IpAddr::V6(a) => IpAddr16(a.octets()),
        }
    }

    fn id(proto: u8, src: &str, sport: u16, dst: &str, dport: u16, seed: u16) -> String {
        let icmp = matches!(proto, proto::ICMP | proto::ICMPV6).then_some((sport as u8, 0));
        let e = Endpoints {
            proto,
            src: ip(src),
            src_port: sport,
            dst: ip(dst),
            dst_port: dport,
            icmp,
        };
        community_id(&e, seed)
    }

    /// Values published with other implementations (the spec's baseline data as the
    /// `communityid` crate ships it, Tenzir's and that crate's documentation examples).
    #[test]
    fn published_reference_values() {
        let tcp = id(proto::TCP, "1.2.3.4", 4584, "43.3.132.3", 3483, 0);
        assert_eq!(tcp, "1:koNcqhFRD5kb254ZrLsdv630jCM=");
        let udp = id(proto::UDP, "192.168.1.42", 4242, "8.8.8.8", 53, 0);
        assert_eq!(udp, "1:vTdrngJjlP5eZ9mw9JtnKyn99KM=");
        // Both directions of a flow have one id.
        assert_eq!(id(proto::UDP, "8.8.8.8", 53, "192.168.1.42", 4242, 0), udp);
        // ICMPv6 echo request: type 128 paired with its reply type.
        let echo6 = id(
            proto::ICMPV6,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            128,
            "3ffe:501:0:1001::2",
            0,
            0,
        );
        assert_eq!(echo6, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=");
        // Neighbour solicitation and the advertisement that answers it: one id.
        let ns = id(
            proto::ICMPV6,
            "fe80::200:86ff:fe05:80da",
            135,
            "fe80::260:97ff:fe07:69ea",
            0,
            0,
        );
        let na = id(
            proto::ICMPV6,
            "fe80::260:97ff:fe07:69ea",
            136,
            "fe80::200:86ff:fe05:80da",
            0,
            0,
        );
        assert_eq!(ns, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=");
        assert_eq!(na, ns);
        // One-way ICMPv6 (time exceeded, code 0): type and code, never reordered.
        let te = id(
            proto::ICMPV6,
            "3ffe:501:1800:2345::2",
            3,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            0,
            0,
        );
        assert_eq!(te, "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=");
        // The seed changes the id (baseline_seed1).
        let ns1 = id(
            proto::ICMPV6,
            "fe80::200:86ff:fe05:80da",
            135,
            "fe80::260:97ff:fe07:69ea",
            0,
            1,
        );
        assert_eq!(ns1, "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=");
    }

    #[test]
    fn protocols_without_ports_hash_addresses_only() {
        let a = id(47, "10.0.0.1", 1, "10.0.0.2", 2, 0);
        let b = id(47, "10.0.0.2", 9, "10.0.0.1", 7, 0);
        assert_eq!(a, b);
        assert!(a.starts_with("1:") && a.len() == 30, "{a}");
    }
}
