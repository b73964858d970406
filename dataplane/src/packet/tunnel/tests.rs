use super::*;
use crate::packet::{checksum, parse};
use proptest::prelude::*;

const A: [u8; 4] = [192, 0, 2, 1];
const B: [u8; 4] = [198, 51, 100, 2];
const C: [u8; 4] = [10, 0, 0, 7];
const D: [u8; 4] = [10, 0, 9, 9];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let total = (20 + payload.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
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

fn tcp(sp: u16, dp: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sp.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t
}

/// The inner packet every test tunnels: UDP 10.0.0.7:5060 -> 10.0.9.9:5061 "hello".
fn inner4() -> Vec<u8> {
    ipv4(C, D, proto::UDP, &udp(5060, 5061, b"hello"))
}

fn decap_frame(f: &[u8]) -> Result<Option<(Headers, Tunnel)>, Malformed> {
    let h = parse(f, f.len()).expect("outer parses");
    if !candidate(&h) {
        return Ok(None);
    }
    decap(f, &h)
}

fn check_inner4(f: &[u8], kind: Kind, id: Option<u32>) -> (Headers, Tunnel) {
    let (h, t) = decap_frame(f).unwrap().expect("a tunnel");
    assert_eq!((h.src.v4(), h.dst.v4()), (Some(C), Some(D)));
    assert_eq!((h.proto, h.src_port, h.dst_port), (proto::UDP, 5060, 5061));
    assert_eq!(
        &f[h.payload_offset as usize..][..h.payload_len as usize],
        b"hello"
    );
    assert_eq!(h.tunnel, kind as u8);
    assert_eq!((t.kind, t.id), (kind, id));
    (h, t)
}

#[test]
fn ip_in_ip_all_four_ways() {
    let f = eth(0x0800, &ipv4(A, B, 4, &inner4()));
    let (_, t) = check_inner4(&f, Kind::IpInIp, None);
    assert_eq!(
        (t.outer_src.v4(), t.outer_dst.v4(), t.depth),
        (Some(A), Some(B), 1)
    );

    let f = eth(0x86dd, &ipv6(A6, B6, 4, &inner4()));
    let (_, t) = check_inner4(&f, Kind::IpInIp, None);
    assert_eq!((t.outer_src.0, t.outer_dst.0), (A6, B6));

    let six = ipv6(B6, A6, proto::TCP, &tcp(40000, 443));
    for f in [
        eth(0x0800, &ipv4(A, B, 41, &six)),
        eth(0x86dd, &ipv6(A6, B6, 41, &six)),
    ] {
        let (h, t) = decap_frame(&f).unwrap().unwrap();
        assert_eq!((h.l3, h.src.0, h.dst.0), (L3::Ipv6, B6, A6));
        assert_eq!(
            (h.proto, h.src_port, h.dst_port, h.tcp_flags),
            (proto::TCP, 40000, 443, 2)
        );
        assert_eq!(t.kind, Kind::IpInIp);
    }
    // Protocol 4 with an IPv6 packet inside (or 41 with IPv4) is not that tunnel.
    assert_eq!(decap_frame(&eth(0x0800, &ipv4(A, B, 4, &six))), Ok(None));
    assert_eq!(
        decap_frame(&eth(0x0800, &ipv4(A, B, 41, &inner4()))),
        Ok(None)
    );
}

#[test]
fn gre_with_checksum_key_and_sequence_and_bridged_ethernet() {
    let mut g = vec![0xb0, 0x00, 0x08, 0x00]; // C, K, S; IPv4
    g.extend_from_slice(&[0, 0, 0, 0]); // checksum + reserved
    g.extend_from_slice(&0x0102_0304u32.to_be_bytes()); // key
    g.extend_from_slice(&7u32.to_be_bytes()); // sequence
    g.extend_from_slice(&inner4());
    let f = eth(0x0800, &ipv4(A, B, 47, &g));
    check_inner4(&f, Kind::Gre, Some(0x0102_0304));

    let mut g = vec![0x00, 0x00, 0x65, 0x58];
    g.extend_from_slice(&eth(0x0800, &inner4()));
    check_inner4(&eth(0x0800, &ipv4(A, B, 47, &g)), Kind::Gre, None);

    // Routing present, version 1 (PPTP), a protocol that is not IP: no tunnel.
    for head in [
        [0x40, 0, 8, 0],
        [0x00, 0x01, 8, 0],
        [0x00, 0x00, 0x88, 0x0b],
    ] {
        let mut g = head.to_vec();
        g.extend_from_slice(&inner4());
        assert_eq!(decap_frame(&eth(0x0800, &ipv4(A, B, 47, &g))), Ok(None));
    }
}

#[test]
fn vxlan_carries_an_ethernet_frame_and_names_its_vni() {
    let mut v = vec![0x08, 0, 0, 0, 0x00, 0x30, 0x39, 0x00]; // VNI 12345
    v.extend_from_slice(&eth(0x0800, &inner4()));
    let f = eth(0x0800, &ipv4(A, B, proto::UDP, &udp(36286, VXLAN_PORT, &v)));
    check_inner4(&f, Kind::Vxlan, Some(12345));
    // Without the I flag the VNI is not valid: not decapsulated.
    let mut bad = v.clone();
    bad[0] = 0;
    let f = eth(
        0x0800,
        &ipv4(A, B, proto::UDP, &udp(36286, VXLAN_PORT, &bad)),
    );
    assert_eq!(decap_frame(&f), Ok(None));
    // The same bytes on another port are just UDP.
    let f = eth(0x0800, &ipv4(A, B, proto::UDP, &udp(36286, 4790, &v)));
    assert_eq!(decap_frame(&f), Ok(None));
}

#[test]
fn gtp_u_with_extension_headers() {
    let six = ipv6(A6, B6, proto::UDP, &udp(49120, 25658, b"hello"));
    // E set: sequence, N-PDU, next type 0x85 (PDU session container, 1 unit), then none.
    let mut g = vec![
        0x34, 0xff, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0x85, 1, 0x10, 0x01, 0,
    ];
    g.extend_from_slice(&six);
    let len = (g.len() - 8) as u16;
    g[2..4].copy_from_slice(&len.to_be_bytes());
    let f = eth(
        0x0800,
        &ipv4(A, B, proto::UDP, &udp(GTPU_PORT, GTPU_PORT, &g)),
    );
    let (h, t) = decap_frame(&f).unwrap().unwrap();
    assert_eq!(
        (h.src.0, h.dst.0, h.src_port, h.dst_port),
        (A6, B6, 49120, 25658)
    );
    assert_eq!((t.kind, t.id), (Kind::GtpU, Some(0xdead_beef)));
    // A length longer than the datagram, a zero-length extension, an echo request: no.
    let mut long = g.clone();
    long[2..4].copy_from_slice(&(len + 1).to_be_bytes());
    let mut zero = g.clone();
    zero[12] = 0;
    let mut echo = g.clone();
    echo[1] = 1;
    for bad in [long, zero, echo] {
        let f = eth(
            0x0800,
            &ipv4(A, B, proto::UDP, &udp(GTPU_PORT, GTPU_PORT, &bad)),
        );
        assert_eq!(decap_frame(&f), Ok(None));
    }
}

#[test]
fn teredo_with_origin_indication_and_authentication() {
    let six = ipv6(A6, B6, 58, &[133, 0, 0, 0, 0, 0, 0, 0]);
    let mut plain = six.clone();
    let mut origin = vec![0, 0, 0xf2, 0x3a, 0x3d, 0x77, 0xe3, 0xb3];
    origin.extend_from_slice(&six);
    let mut auth = vec![0, 1, 0, 0];
    auth.extend_from_slice(&[0x11; 8]); // nonce
    auth.push(0); // confirmation
    auth.extend_from_slice(&six);
    for p in [&plain, &origin, &auth] {
        let f = eth(0x0800, &ipv4(A, B, proto::UDP, &udp(51812, TEREDO_PORT, p)));
        let (h, t) = decap_frame(&f).unwrap().unwrap();
        assert_eq!((h.proto, h.icmp_type, t.kind), (58, 133, Kind::Teredo));
    }
    // An IPv6 payload length that does not fill the datagram: not Teredo.
    plain.push(0);
    let f = eth(
        0x0800,
        &ipv4(A, B, proto::UDP, &udp(TEREDO_PORT, 3000, &plain)),
    );
    assert_eq!(decap_frame(&f), Ok(None));
}

#[test]
fn capwap_data_with_native_wifi_and_with_ethernet() {
    // HLEN 2 (8 bytes), RID 1, WBID 1, T set.
    let v: u32 = 2 << 19 | 1 << 14 | 1 << 9 | 1 << 8;
    let head = [0, (v >> 16) as u8, (v >> 8) as u8, v as u8, 0, 0, 0, 0];
    // QoS data, to-DS, then LLC/SNAP for IPv4.
    let mut w = vec![0x88, 0x01];
    w.extend_from_slice(&[0; 22]);
    w.extend_from_slice(&[0, 0]); // QoS control
    w.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
    w.extend_from_slice(&inner4());
    let mut p = head.to_vec();
    p.extend_from_slice(&w);
    let f = eth(
        0x0800,
        &ipv4(A, B, proto::UDP, &udp(41264, CAPWAP_DATA_PORT, &p)),
    );
    check_inner4(&f, Kind::Capwap, None);

    let v: u32 = 2 << 19 | 1 << 14 | 1 << 9;
    let mut p = vec![0, (v >> 16) as u8, (v >> 8) as u8, v as u8, 0, 0, 0, 0];
    p.extend_from_slice(&eth(0x0800, &inner4()));
    let f = eth(
        0x0800,
        &ipv4(A, B, proto::UDP, &udp(CAPWAP_DATA_PORT, 41264, &p)),
    );
    check_inner4(&f, Kind::Capwap, None);

    // DTLS-protected (type 1), a protected 802.11 frame: not looked into.
    let mut dtls = p.clone();
    dtls[0] = 1;
    let mut prot = head.to_vec();
    let mut w2 = w.clone();
    w2[1] |= 0x40;
    prot.extend_from_slice(&w2);
    for bad in [dtls, prot] {
        let f = eth(
            0x0800,
            &ipv4(A, B, proto::UDP, &udp(41264, CAPWAP_DATA_PORT, &bad)),
        );
        assert_eq!(decap_frame(&f), Ok(None));
    }
}

#[test]
fn nesting_is_followed_to_the_limit() {
    // VXLAN inside GRE inside IPv4.
    let mut v = vec![0x08, 0, 0, 0, 0, 0, 5, 0];
    v.extend_from_slice(&eth(0x0800, &inner4()));
    let mid = ipv4(B, A, proto::UDP, &udp(1000, VXLAN_PORT, &v));
    let mut g = vec![0, 0, 8, 0];
    g.extend_from_slice(&mid);
    let f = eth(0x0800, &ipv4(A, B, 47, &g));
    let (_, t) = check_inner4(&f, Kind::Vxlan, Some(5));
    assert_eq!(
        (t.depth, t.outer_src.v4(), t.outer_dst.v4()),
        (2, Some(B), Some(A))
    );

    // Five IP-in-IP levels: followed MAX_DEPTH deep, and what is found there is the inner flow.
    let mut p = inner4();
    for _ in 0..5 {
        p = ipv4(A, B, 4, &p);
    }
    let f = eth(0x0800, &p);
    let (h, t) = decap_frame(&f).unwrap().unwrap();
    assert_eq!((t.depth, h.proto), (MAX_DEPTH, 4));
}

#[test]
fn a_malformed_inner_packet_is_an_error_not_a_panic() {
    let mut inner = inner4();
    inner[2..4].copy_from_slice(&500u16.to_be_bytes()); // longer than the tunnel payload
    let f = eth(0x0800, &ipv4(A, B, 4, &inner));
    assert_eq!(decap_frame(&f), Err(Malformed::Ipv4BadTotalLength));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Any bytes behind any tunnel header: decap never panics, and what it returns lies inside
    /// the frame's declared bytes.
    #[test]
    fn decap_is_total(kind in 0usize..7, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let f = match kind {
            0 => eth(0x0800, &ipv4(A, B, 4, &body)),
            1 => eth(0x86dd, &ipv6(A6, B6, 41, &body)),
            2 => eth(0x0800, &ipv4(A, B, 47, &body)),
            3 => eth(0x0800, &ipv4(A, B, proto::UDP, &udp(1, VXLAN_PORT, &body))),
            4 => eth(0x0800, &ipv4(A, B, proto::UDP, &udp(GTPU_PORT, 2, &body))),
            5 => eth(0x0800, &ipv4(A, B, proto::UDP, &udp(TEREDO_PORT, 3, &body))),
            _ => eth(0x0800, &ipv4(A, B, proto::UDP, &udp(4, CAPWAP_DATA_PORT, &body))),
        };
        if let Ok(Some((h, t))) = decap_frame(&f) {
            prop_assert!(h.l3_offset as usize >= 34);
            prop_assert!(h.payload_offset as usize + h.payload_len as usize <= f.len());
            prop_assert!(t.depth >= 1 && t.depth <= MAX_DEPTH);
        }
    }
}
