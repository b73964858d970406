use super::*;
use proptest::prelude::*;

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2,
    ];
    let total = (20 + payload.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn tcp(sp: u16, dp: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sp.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t.extend_from_slice(payload);
    t
}

fn frame(ethertype: u16, l3: Vec<u8>) -> Vec<u8> {
    let mut f = eth(ethertype);
    f.extend(l3);
    f
}

#[test]
fn udp_over_ipv4() {
    let f = frame(0x0800, ipv4(17, &udp(5060, 5061, b"INVITE")));
    let h = parse(&f, f.len()).unwrap();
    assert_eq!(h.l3, L3::Ipv4);
    assert_eq!((h.src_port, h.dst_port, h.proto), (5060, 5061, proto::UDP));
    assert_eq!(h.src.v4(), Some([192, 0, 2, 1]));
    assert_eq!(h.dst.v4(), Some([198, 51, 100, 2]));
    assert_eq!(
        &f[h.payload_offset as usize..][..h.payload_len as usize],
        b"INVITE"
    );
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut f = frame(0x0800, ipv4(6, &tcp(1, 2, tcp::SYN, b"")));
    f.resize(60, 0);
    let h = parse(&f, f.len()).unwrap();
    assert_eq!(h.payload_len, 0);
    assert_eq!(h.ip_len, 40);
    assert_eq!(h.tcp_flags, tcp::SYN);
}

#[test]
fn two_vlan_tags() {
    let mut f = eth(0x88a8);
    f.extend_from_slice(&[0x00, 0x64, 0x81, 0x00, 0x20, 0xc8, 0x08, 0x00]);
    f.extend(ipv4(17, &udp(1, 2, b"x")));
    let h = parse(&f, f.len()).unwrap();
    assert_eq!(h.vlans, [100, 200]);
    assert_eq!(h.l3_offset, 22);
    assert_eq!(h.dst_port, 2);
}

#[test]
fn three_vlan_tags_are_refused() {
    let mut f = eth(0x8100);
    f.extend_from_slice(&[0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0]);
    f.extend(ipv4(17, &udp(1, 2, b"x")));
    assert_eq!(parse(&f, f.len()), Err(Malformed::TooManyVlanTags));
}

#[test]
fn ipv4_errors() {
    let good = frame(0x0800, ipv4(17, &udp(1, 2, b"abc")));
    let mut f = good.clone();
    f[14] = 0x43; // IHL 3
    assert_eq!(parse(&f, f.len()), Err(Malformed::Ipv4BadHeaderLength));
    let mut f = good.clone();
    f[14] = 0x55;
    assert_eq!(parse(&f, f.len()), Err(Malformed::Ipv4BadVersion));
    let mut f = good.clone();
    f[16..18].copy_from_slice(&500u16.to_be_bytes());
    assert_eq!(parse(&f, f.len()), Err(Malformed::Ipv4BadTotalLength));
    let f = &good[..14 + 10];
    assert_eq!(parse(f, f.len()), Err(Malformed::Ipv4Truncated));
    let mut f = good.clone();
    f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(parse(&f, f.len()), Err(Malformed::UdpBadLength));
}

#[test]
fn tcp_errors() {
    let good = frame(0x0800, ipv4(6, &tcp(1, 2, tcp::ACK, b"data")));
    let mut f = good.clone();
    f[14 + 20 + 12] = 4 << 4;
    assert_eq!(parse(&f, f.len()), Err(Malformed::TcpBadDataOffset));
    let mut f = good.clone();
    f[14 + 20 + 12] = 15 << 4; // 60 bytes, more than the segment
    assert_eq!(parse(&f, f.len()), Err(Malformed::TcpBadDataOffset));
    let f = frame(0x0800, ipv4(6, &tcp(1, 2, 0, b"")[..10]));
    assert_eq!(parse(&f, f.len()), Err(Malformed::TcpTruncated));
}

#[test]
fn icmp_echo_ports_are_the_identifier() {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(b"ping");
    let f = frame(0x0800, ipv4(1, &icmp));
    let h = parse(&f, f.len()).unwrap();
    assert_eq!((h.src_port, h.dst_port, h.icmp_type), (0x1234, 0x1234, 8));
}

#[test]
fn ipv6_with_extension_headers() {
    let mut ip = vec![0x60, 0, 0, 0, 0, 0, 0 /* hop-by-hop */, 64];
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mut ext = vec![60, 0, 0, 0, 0, 0, 0, 0]; // hop-by-hop -> dest opts
    ext.extend_from_slice(&[17, 0, 0, 0, 0, 0, 0, 0]); // dest opts -> udp
    ext.extend(udp(53, 40000, b"dns"));
    ip[4..6].copy_from_slice(&(ext.len() as u16).to_be_bytes());
    ip.extend(ext);
    let f = frame(0x86dd, ip);
    let h = parse(&f, f.len()).unwrap();
    assert_eq!(h.l3, L3::Ipv6);
    assert_eq!((h.proto, h.src_port, h.dst_port), (17, 53, 40000));
    assert_eq!(h.l4_offset, 14 + 40 + 16);
    assert!(!h.src.is_v4());
}

#[test]
fn ipv4_fragments() {
    let mut ip = ipv4(17, &udp(1, 2, b"abcdefgh"));
    ip[6] = 0x20; // MF, offset 0
    let f = frame(0x0800, ip.clone());
    let h = parse(&f, f.len()).unwrap();
    assert_eq!((h.fragment, h.dst_port), (Fragment::First, 2));
    ip[6] = 0x00;
    ip[7] = 0x10; // offset 16*8, no L4 header
    let f = frame(0x0800, ip);
    let h = parse(&f, f.len()).unwrap();
    assert_eq!(
        (h.fragment, h.src_port, h.dst_port),
        (Fragment::Later, 0, 0)
    );
}

#[test]
fn non_ip_is_passed_up_as_other() {
    let mut f = vec![0x01, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0x26];
    f.extend_from_slice(&[0x42; 38]);
    let h = parse(&f, f.len()).unwrap();
    assert_eq!(h.l3, L3::Other(0x26));
    assert!(!h.is_ip());
}

#[test]
fn ttl_decrement_keeps_checksum_valid() {
    let mut ip = ipv4(17, &udp(1, 2, b""));
    for _ in 0..64 {
        ipv4::decrement_ttl(&mut ip).unwrap();
        assert_eq!(checksum::sum(&ip[..20], 0), 0xffff, "checksum must verify");
    }
    assert_eq!(ipv4::decrement_ttl(&mut ip), None);
}

#[test]
fn arp_roundtrip() {
    let a = arp::Arp {
        oper: arp::REQUEST,
        sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
        sender_ip: [192, 0, 2, 2],
        target_mac: MacAddr::default(),
        target_ip: [192, 0, 2, 1],
    };
    let mut b = [0u8; 28];
    assert!(arp::emit(&mut b, &a));
    assert_eq!(arp::parse(&b), Some(a));
    assert_eq!(arp::check(&b[..27]), Err(Malformed::ArpTruncated));
}

fn check_invariants(f: &[u8], h: &Headers) {
    assert!(h.l3_offset as usize <= f.len());
    if h.is_ip() && h.fragment != Fragment::Later {
        assert!(h.l4_offset as usize <= f.len());
        assert!(h.payload_offset >= h.l4_offset);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn parse_is_total_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), extra in 0usize..100) {
        if let Ok(h) = parse(&bytes, bytes.len() + extra) {
            check_invariants(&bytes, &h);
        }
    }

    #[test]
    fn parse_is_total_on_mutated_frames(
        kind in 0usize..4,
        flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..8),
        cut in 0usize..130,
    ) {
        let base = match kind {
            0 => frame(0x0800, ipv4(17, &udp(5060, 5060, b"SIP/2.0 200 OK\r\n"))),
            1 => frame(0x0800, ipv4(6, &tcp(443, 5000, tcp::ACK | tcp::PSH, b"\x16\x03\x01"))),
            2 => frame(0x0800, ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1])),
            _ => {
                let mut ip = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
                ip.extend_from_slice(&[0u8; 32]);
                ip.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 1]);
                ip.extend(udp(1, 2, b""));
                frame(0x86dd, ip)
            }
        };
        let mut f = base;
        for (i, v) in flips {
            if let Some(b) = f.get_mut(i) { *b = v; }
        }
        f.truncate(cut);
        if let Ok(h) = parse(&f, f.len()) {
            check_invariants(&f, &h);
        }
    }
}

/// Runs both parsers on `f`; when the common-case parser takes the frame, the general one must
/// accept it too and produce the same headers. Returns whether the common case took it.
fn common_agrees_with_general(f: &[u8], wire_len: usize) -> bool {
    let mut fast = Headers::empty();
    if !parse_common(f, wire_len, &mut fast) {
        return false;
    }
    let mut general = Headers::empty();
    general.ttl = 99;
    assert_eq!(parse_general(f, wire_len, &mut general), Ok(()), "{f:02x?}");
    assert_eq!(fast, general, "{f:02x?}");
    true
}

#[test]
fn common_case_parser_takes_plain_udp_and_tcp_only() {
    let u = frame(0x0800, ipv4(17, &udp(5060, 5061, b"INVITE")));
    let t = frame(0x0800, ipv4(6, &tcp(443, 5000, tcp::ACK, b"\x16\x03")));
    let mut padded = frame(0x0800, ipv4(6, &tcp(1, 2, tcp::SYN, b"")));
    padded.resize(60, 0);
    for f in [&u, &t, &padded] {
        assert!(common_agrees_with_general(f, f.len()));
        // More segments behind the first (an mbuf chain) are fine too.
        assert!(common_agrees_with_general(f, f.len() + 1000));
    }
    // Left to the general parser: options, fragments, ICMP, tags, truncation.
    let mut options = ipv4(17, &[0; 12]);
    options[0] = 0x46;
    let mut fragment = ipv4(17, &udp(1, 2, b"x"));
    fragment[6] = 0x20;
    let icmp = frame(0x0800, ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1]));
    let mut tagged = eth(0x8100);
    tagged.extend_from_slice(&[0, 5, 0x08, 0x00]);
    tagged.extend(ipv4(17, &udp(1, 2, b"x")));
    let others = [
        frame(0x0800, options),
        frame(0x0800, fragment),
        icmp,
        tagged,
        u[..u.len() - 1].to_vec(),
        t[..53].to_vec(),
    ];
    for f in &others {
        assert!(!common_agrees_with_general(f, f.len()), "{f:02x?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// The common-case parser is a shortcut, never a second opinion: on any frame it takes,
    /// the general parser gives the same headers.
    #[test]
    fn common_case_parser_matches_general_parser(
        kind in 0usize..2,
        flips in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
        cut in 30usize..80,
        extra in 0usize..40,
    ) {
        let mut f = match kind {
            0 => frame(0x0800, ipv4(17, &udp(5060, 5060, b"SIP/2.0 200 OK\r\n"))),
            _ => frame(0x0800, ipv4(6, &tcp(443, 5000, tcp::ACK | tcp::PSH, b"\x16\x03\x01\x02\x00"))),
        };
        for (i, v) in flips {
            if let Some(b) = f.get_mut(i) { *b = v; }
        }
        f.truncate(cut);
        common_agrees_with_general(&f, f.len() + extra);
    }
}

#[test]
fn icmp_shorter_than_its_header_by_ip_length_is_truncated() {
    // Found by the property test: IP declared 4 bytes of ICMP while 8 were present.
    let mut ip = ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1]);
    ip[2..4].copy_from_slice(&24u16.to_be_bytes());
    let f = frame(0x0800, ip);
    assert_eq!(parse(&f, f.len()), Err(Malformed::IcmpTruncated));
}

#[test]
fn ipv4_inside_pppoe_inside_two_vlans() {
    let mut f = eth(0x8100);
    f.extend_from_slice(&[0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x88, 0x64]);
    let ip = ipv4(17, &udp(5353, 53, b"q"));
    f.extend_from_slice(&[0x11, 0x00, 0x12, 0x34]);
    f.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    f.extend_from_slice(&[0x00, 0x21]);
    f.extend(ip);
    let h = parse(&f, f.len()).unwrap();
    assert_eq!((h.l3, h.vlans, h.dst_port), (L3::Ipv4, [10, 20], 53));
    assert_eq!(h.l3_offset, 14 + 8 + 8);
    // LCP (0xc021) stays a non-IP frame.
    let n = f.len();
    f[14 + 8 + 6..14 + 8 + 8].copy_from_slice(&[0xc0, 0x21]);
    assert_eq!(parse(&f[..n], n).unwrap().l3, L3::Other(0x8864));
}

#[test]
fn ipv6_extension_chain_past_the_first_segment_is_refused() {
    // Found by the fuzz target: a hop-by-hop header claiming 16 bytes at the very end of the
    // first segment, in a packet whose wire length says more segments follow.
    let mut ip = vec![0x60, 0, 0, 0, 0, 64, 0 /* hop-by-hop */, 64];
    ip.extend_from_slice(&[0u8; 32]);
    ip.extend_from_slice(&[59, 1]); // next: no next header; length (1+1)*8 = 16
    let f = frame(0x86dd, ip);
    assert_eq!(
        parse(&f, f.len() + 100),
        Err(Malformed::Ipv6ExtensionTruncated)
    );
}
