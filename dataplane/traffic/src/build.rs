//! Complete Ethernet frames built from plain values: Ethernet (optionally 802.1Q tagged), ARP,
//! IPv4, IPv6, UDP, TCP, ICMP echo and ICMPv6 echo.
//!
//! Every function returns a whole frame with every length and checksum field correct, padded to
//! the 60-byte Ethernet minimum as it would appear on the wire. Frames that are deliberately wrong
//! are made by editing the bytes these functions return, never by these functions.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

pub const BROADCAST: Mac = [0xff; 6];

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Length of an untagged Ethernet header.
pub const ETH_HEADER_LEN: usize = 14;
/// Shortest Ethernet frame without its FCS; shorter frames are padded with zeros.
pub const ETH_MIN_FRAME: usize = 60;

/// TCP header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);

    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// The TCP header fields other than ports (options are never emitted: data offset is 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
}

/// The fields of an ICMP or ICMPv6 echo message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    pub id: u16,
    pub seq: u16,
    /// Echo reply rather than echo request.
    pub reply: bool,
}

/// The IPv4 header fields a caller may want to choose. No options are emitted (IHL is 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub ttl: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

impl Ipv4Header {
    /// TTL 64 and DF set, as Linux sends; the identification is derived from `payload` so that
    /// it varies from packet to packet while staying deterministic.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Self {
        Ipv4Header {
            src,
            dst,
            protocol,
            ttl: 64,
            ident: fold_hash(payload, u32::from(src) ^ u32::from(dst)),
            dont_fragment: true,
        }
    }
}

/// ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

// ---------------------------------------------------------------------------------------------
// Checksums

/// The 16-bit one's complement sum of `data` (RFC 1071), not yet complemented, folded to 16 bits.
/// An odd trailing byte is padded with zero.
pub fn ones_complement_sum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data` (the complemented one's complement sum).
pub fn internet_checksum(data: &[u8]) -> u16 {
    !ones_complement_sum(data, 0)
}

fn pseudo_sum_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: usize) -> u32 {
    let mut p = [0u8; 12];
    p[0..4].copy_from_slice(&src.octets());
    p[4..8].copy_from_slice(&dst.octets());
    p[9] = protocol;
    p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
    u32::from(ones_complement_sum(&p, 0))
}

fn pseudo_sum_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: usize) -> u32 {
    let mut p = [0u8; 40];
    p[0..16].copy_from_slice(&src.octets());
    p[16..32].copy_from_slice(&dst.octets());
    p[32..36].copy_from_slice(&(len as u32).to_be_bytes());
    p[39] = next_header;
    u32::from(ones_complement_sum(&p, 0))
}

/// Writes the checksum of an L4 segment at `offset` given the pseudo-header sum; UDP's zero is
/// sent as 0xffff because zero means "no checksum".
fn fill_l4_checksum(segment: &mut [u8], offset: usize, pseudo: u32, udp: bool) {
    segment[offset..offset + 2].copy_from_slice(&[0, 0]);
    let mut c = !ones_complement_sum(segment, pseudo);
    if udp && c == 0 {
        c = 0xffff;
    }
    segment[offset..offset + 2].copy_from_slice(&c.to_be_bytes());
}

fn fold_hash(data: &[u8], seed: u32) -> u16 {
    // FNV-1a: only spreads identification values; nothing depends on its quality.
    let mut h: u32 = 0x811c_9dc5 ^ seed;
    for b in data {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    (h ^ (h >> 16)) as u16
}

// ---------------------------------------------------------------------------------------------
// L2

/// An Ethernet II frame carrying `payload`, padded to [`ETH_MIN_FRAME`].
pub fn ethernet(src: Mac, dst: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity((ETH_HEADER_LEN + payload.len()).max(ETH_MIN_FRAME));
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < ETH_MIN_FRAME {
        f.resize(ETH_MIN_FRAME, 0);
    }
    f
}

/// `frame` with an 802.1Q tag (priority 0, VLAN `vid`) inserted after the MAC addresses.
pub fn with_vlan(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(frame.len() + 4);
    f.extend_from_slice(&frame[..12.min(frame.len())]);
    f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    if frame.len() > 12 {
        f.extend_from_slice(&frame[12..]);
    }
    f
}

/// An ARP request (broadcast, target MAC zero) or reply (unicast to the target) for IPv4 over
/// Ethernet.
pub fn arp(
    op: ArpOp,
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let (opcode, eth_dst, tha) = match op {
        ArpOp::Request => (1u16, BROADCAST, [0u8; 6]),
        ArpOp::Reply => (2u16, target_mac, target_mac),
    };
    let mut a = Vec::with_capacity(28);
    a.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    a.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    a.push(6);
    a.push(4);
    a.extend_from_slice(&opcode.to_be_bytes());
    a.extend_from_slice(&sender_mac);
    a.extend_from_slice(&sender_ip.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&target_ip.octets());
    ethernet(sender_mac, eth_dst, ETHERTYPE_ARP, &a)
}

// ---------------------------------------------------------------------------------------------
// L3

/// An IPv4 datagram (header with a correct checksum, then `payload`), without Ethernet.
pub fn ipv4_packet(h: &Ipv4Header, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.push(0x45);
    p.push(0);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&h.ident.to_be_bytes());
    p.extend_from_slice(&(if h.dont_fragment { 0x4000u16 } else { 0 }).to_be_bytes());
    p.push(h.ttl);
    p.push(h.protocol);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&h.src.octets());
    p.extend_from_slice(&h.dst.octets());
    let c = internet_checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet (no extension headers, hop limit 64, flow label 0), without Ethernet.
pub fn ipv6_packet(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(64);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An Ethernet frame carrying an IPv4 datagram with header `h` and L4 bytes `l4` as given.
pub fn ip4(src_mac: Mac, dst_mac: Mac, h: &Ipv4Header, l4: &[u8]) -> Vec<u8> {
    ethernet(src_mac, dst_mac, ETHERTYPE_IPV4, &ipv4_packet(h, l4))
}

/// An Ethernet frame carrying an IPv6 packet with L4 bytes `l4` as given.
pub fn ip6(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    l4: &[u8],
) -> Vec<u8> {
    ethernet(
        src_mac,
        dst_mac,
        ETHERTYPE_IPV6,
        &ipv6_packet(src, dst, next, l4),
    )
}

// ---------------------------------------------------------------------------------------------
// L4 segments (checksum filled in from the pseudo-header sum)

fn udp_segment(src_port: u16, dst_port: u16, payload: &[u8], pseudo: u32) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut s = Vec::with_capacity(len);
    s.extend_from_slice(&src_port.to_be_bytes());
    s.extend_from_slice(&dst_port.to_be_bytes());
    s.extend_from_slice(&(len as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    fill_l4_checksum(&mut s, 6, pseudo, true);
    s
}

fn tcp_segment(
    src_port: u16,
    dst_port: u16,
    h: &TcpHeader,
    payload: &[u8],
    pseudo: u32,
) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&src_port.to_be_bytes());
    s.extend_from_slice(&dst_port.to_be_bytes());
    s.extend_from_slice(&h.seq.to_be_bytes());
    s.extend_from_slice(&h.ack.to_be_bytes());
    s.push(5 << 4);
    s.push(h.flags.0);
    s.extend_from_slice(&h.window.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    s.extend_from_slice(payload);
    fill_l4_checksum(&mut s, 16, pseudo, false);
    s
}

fn echo_message(kind: u8, e: Echo, payload: &[u8], pseudo: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + payload.len());
    m.push(kind);
    m.push(0);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&e.id.to_be_bytes());
    m.extend_from_slice(&e.seq.to_be_bytes());
    m.extend_from_slice(payload);
    fill_l4_checksum(&mut m, 2, pseudo, false);
    m
}

/// The UDP header and payload for IPv4 endpoints, checksum included.
pub fn udp4_segment(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let pseudo = pseudo_sum_v4(*src.ip(), *dst.ip(), IPPROTO_UDP, 8 + payload.len());
    udp_segment(src.port(), dst.port(), payload, pseudo)
}

/// The TCP header and payload for IPv4 endpoints, checksum included.
pub fn tcp4_segment(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    h: &TcpHeader,
    payload: &[u8],
) -> Vec<u8> {
    let pseudo = pseudo_sum_v4(*src.ip(), *dst.ip(), IPPROTO_TCP, 20 + payload.len());
    tcp_segment(src.port(), dst.port(), h, payload, pseudo)
}

// ---------------------------------------------------------------------------------------------
// Whole frames

/// UDP over IPv4 over Ethernet.
pub fn udp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> Vec<u8> {
    let seg = udp4_segment(src, dst, payload);
    ip4(
        src_mac,
        dst_mac,
        &Ipv4Header::new(*src.ip(), *dst.ip(), IPPROTO_UDP, &seg),
        &seg,
    )
}

/// UDP over IPv6 over Ethernet.
pub fn udp6(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    payload: &[u8],
) -> Vec<u8> {
    let pseudo = pseudo_sum_v6(*src.ip(), *dst.ip(), IPPROTO_UDP, 8 + payload.len());
    let seg = udp_segment(src.port(), dst.port(), payload, pseudo);
    ip6(src_mac, dst_mac, *src.ip(), *dst.ip(), IPPROTO_UDP, &seg)
}

/// TCP over IPv4 over Ethernet.
pub fn tcp4(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    h: &TcpHeader,
    payload: &[u8],
) -> Vec<u8> {
    let seg = tcp4_segment(src, dst, h, payload);
    ip4(
        src_mac,
        dst_mac,
        &Ipv4Header::new(*src.ip(), *dst.ip(), IPPROTO_TCP, &seg),
        &seg,
    )
}

/// TCP over IPv6 over Ethernet.
pub fn tcp6(
    src_mac: Mac,
    dst_mac: Mac,
    src: SocketAddrV6,
    dst: SocketAddrV6,
    h: &TcpHeader,
    payload: &[u8],
) -> Vec<u8> {
    let pseudo = pseudo_sum_v6(*src.ip(), *dst.ip(), IPPROTO_TCP, 20 + payload.len());
    let seg = tcp_segment(src.port(), dst.port(), h, payload, pseudo);
    ip6(src_mac, dst_mac, *src.ip(), *dst.ip(), IPPROTO_TCP, &seg)
}

/// ICMP echo request (type 8) or reply (type 0) over IPv4 over Ethernet.
pub fn icmp4_echo(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    e: Echo,
    payload: &[u8],
) -> Vec<u8> {
    let msg = echo_message(if e.reply { 0 } else { 8 }, e, payload, 0);
    ip4(
        src_mac,
        dst_mac,
        &Ipv4Header::new(src, dst, IPPROTO_ICMP, &msg),
        &msg,
    )
}

/// ICMPv6 echo request (type 128) or reply (type 129) over IPv6 over Ethernet.
pub fn icmp6_echo(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    e: Echo,
    payload: &[u8],
) -> Vec<u8> {
    let pseudo = pseudo_sum_v6(src, dst, IPPROTO_ICMPV6, 8 + payload.len());
    let msg = echo_message(if e.reply { 129 } else { 128 }, e, payload, pseudo);
    ip6(src_mac, dst_mac, src, dst, IPPROTO_ICMPV6, &msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // An independent checksum: the textbook loop over 16-bit words with end-around carry after
    // every addition, over an explicitly assembled buffer.
    fn naive_checksum(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let hi = u32::from(bytes[i]) << 8;
            let lo = if i + 1 < bytes.len() {
                u32::from(bytes[i + 1])
            } else {
                0
            };
            sum += hi | lo;
            if sum > 0xffff {
                sum = (sum & 0xffff) + 1;
            }
            i += 2;
        }
        !(sum as u16)
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Recomputes the L4 checksum of an untagged IPv4 frame from scratch and returns
    /// (stored, expected).
    fn check_v4(frame: &[u8]) -> (u16, u16) {
        let ip = &frame[14..];
        assert_eq!(ip[0], 0x45);
        let total = usize::from(be16(ip, 2));
        let proto = ip[9];
        let l4 = &ip[20..total];
        let csum_at = match proto {
            IPPROTO_UDP => 6,
            IPPROTO_TCP => 16,
            IPPROTO_ICMP => 2,
            p => panic!("protocol {p}"),
        };
        let mut buf = Vec::new();
        if proto != IPPROTO_ICMP {
            buf.extend_from_slice(&ip[12..20]);
            buf.extend_from_slice(&[0, proto]);
            buf.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        }
        let mut zeroed = l4.to_vec();
        zeroed[csum_at] = 0;
        zeroed[csum_at + 1] = 0;
        buf.extend_from_slice(&zeroed);
        let mut expected = naive_checksum(&buf);
        if proto == IPPROTO_UDP && expected == 0 {
            expected = 0xffff;
        }
        (be16(l4, csum_at), expected)
    }

    fn check_v6(frame: &[u8]) -> (u16, u16) {
        let ip = &frame[14..];
        assert_eq!(ip[0] >> 4, 6);
        let plen = usize::from(be16(ip, 4));
        let next = ip[6];
        let l4 = &ip[40..40 + plen];
        let csum_at = match next {
            IPPROTO_UDP => 6,
            IPPROTO_TCP => 16,
            IPPROTO_ICMPV6 => 2,
            p => panic!("next header {p}"),
        };
        let mut buf = Vec::new();
        buf.extend_from_slice(&ip[8..40]);
        buf.extend_from_slice(&(plen as u32).to_be_bytes());
        buf.extend_from_slice(&[0, 0, 0, next]);
        let mut zeroed = l4.to_vec();
        zeroed[csum_at] = 0;
        zeroed[csum_at + 1] = 0;
        buf.extend_from_slice(&zeroed);
        let mut expected = naive_checksum(&buf);
        if next == IPPROTO_UDP && expected == 0 {
            expected = 0xffff;
        }
        (be16(l4, csum_at), expected)
    }

    fn ipv4_header_ok(frame: &[u8]) -> bool {
        let mut h = frame[14..34].to_vec();
        let stored = be16(&h, 10);
        h[10] = 0;
        h[11] = 0;
        naive_checksum(&h) == stored
    }

    const A: Mac = [0x02, 0, 0, 0, 0, 1];
    const B: Mac = [0x02, 0, 0, 0, 0, 2];

    #[test]
    fn rfc1071_example_sum() {
        // RFC 1071 section 3: the sum of these bytes is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(&data, 0), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header_checksums() {
        // Two headers whose checksums are published (Wikipedia's "IPv4 header checksum").
        let mut h = Ipv4Header {
            src: Ipv4Addr::new(192, 168, 0, 1),
            dst: Ipv4Addr::new(192, 168, 0, 199),
            protocol: IPPROTO_UDP,
            ttl: 64,
            ident: 0,
            dont_fragment: true,
        };
        let p = ipv4_packet(&h, &[0u8; 95]);
        assert_eq!(&p[..4], &[0x45, 0x00, 0x00, 0x73]);
        assert_eq!(be16(&p, 10), 0xb861);
        h.src = Ipv4Addr::new(172, 16, 10, 99);
        h.dst = Ipv4Addr::new(172, 16, 10, 12);
        h.protocol = IPPROTO_TCP;
        h.ident = 0x1c46;
        let p = ipv4_packet(&h, &[0u8; 40]);
        assert_eq!(be16(&p, 10), 0xb1e6);
    }

    #[test]
    fn udp4_frame_layout_and_checksums() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 53), 53);
        let f = udp4(A, B, src, dst, b"hello");
        assert_eq!(&f[0..6], &B);
        assert_eq!(&f[6..12], &A);
        assert_eq!(be16(&f, 12), ETHERTYPE_IPV4);
        assert_eq!(f.len(), ETH_MIN_FRAME); // 14 + 20 + 8 + 5 = 47, padded
        assert_eq!(be16(&f, 16), 33);
        assert_eq!(be16(&f, 34), 40000);
        assert_eq!(be16(&f, 36), 53);
        assert_eq!(be16(&f, 38), 13);
        assert!(ipv4_header_ok(&f));
        let (stored, expected) = check_v4(&f);
        assert_eq!(stored, expected);
    }

    #[test]
    fn tcp_icmp_and_v6_checksums() {
        let c = SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 51000);
        let s = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 80), 80);
        let h = TcpHeader {
            seq: 0xdead_beef,
            ack: 7,
            flags: TcpFlags::PSH | TcpFlags::ACK,
            window: 502,
        };
        let f = tcp4(A, B, c, s, &h, b"GET / HTTP/1.1\r\n\r\n");
        assert!(ipv4_header_ok(&f));
        let (stored, expected) = check_v4(&f);
        assert_eq!(stored, expected);
        assert_eq!(f[14 + 20 + 13], 0x18);
        assert_eq!(
            u32::from_be_bytes(f[38..42].try_into().unwrap()),
            0xdead_beef
        );

        let e = Echo {
            id: 0x1234,
            seq: 3,
            reply: false,
        };
        let f = icmp4_echo(A, B, *c.ip(), *s.ip(), e, &[0xab; 56]);
        assert!(ipv4_header_ok(&f));
        assert_eq!(f[34], 8);
        let (stored, expected) = check_v4(&f);
        assert_eq!(stored, expected);
        let f = icmp4_echo(
            B,
            A,
            *s.ip(),
            *c.ip(),
            Echo { reply: true, ..e },
            &[0xab; 56],
        );
        assert_eq!(f[34], 0);
        assert_eq!(check_v4(&f).0, check_v4(&f).1);

        let a6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b6: Ipv6Addr = "2001:db8:1::53".parse().unwrap();
        let f = udp6(
            A,
            B,
            SocketAddrV6::new(a6, 5353, 0, 0),
            SocketAddrV6::new(b6, 53, 0, 0),
            b"q",
        );
        assert_eq!(be16(&f, 12), ETHERTYPE_IPV6);
        let (stored, expected) = check_v6(&f);
        assert_eq!(stored, expected);
        let f = tcp6(
            A,
            B,
            SocketAddrV6::new(a6, 1, 0, 0),
            SocketAddrV6::new(b6, 2, 0, 0),
            &h,
            b"xyz",
        );
        let (stored, expected) = check_v6(&f);
        assert_eq!(stored, expected);
        let f = icmp6_echo(A, B, a6, b6, e, b"ping6");
        assert_eq!(f[54], 128);
        let (stored, expected) = check_v6(&f);
        assert_eq!(stored, expected);
    }

    #[test]
    fn udp_zero_checksum_is_sent_as_ffff() {
        // Search payloads until one sums to zero; its checksum must then be 0xffff, never 0.
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 2000);
        let mut found = false;
        for x in 0..=u16::MAX {
            let seg = udp4_segment(src, dst, &x.to_be_bytes());
            if be16(&seg, 6) == 0xffff {
                found = true;
                assert_eq!(
                    internet_checksum(
                        &[&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 10][..], &seg].concat()
                    ),
                    0
                );
            }
            assert_ne!(be16(&seg, 6), 0);
        }
        assert!(found);
    }

    #[test]
    fn arp_request_and_reply() {
        let ip_a = Ipv4Addr::new(10, 0, 0, 2);
        let ip_b = Ipv4Addr::new(10, 0, 0, 1);
        let req = arp(ArpOp::Request, A, ip_a, [0; 6], ip_b);
        assert_eq!(&req[0..6], &BROADCAST);
        assert_eq!(be16(&req, 12), ETHERTYPE_ARP);
        assert_eq!(be16(&req, 20), 1);
        assert_eq!(&req[22..28], &A);
        assert_eq!(&req[28..32], &ip_a.octets());
        assert_eq!(&req[38..42], &ip_b.octets());
        let rep = arp(ArpOp::Reply, B, ip_b, A, ip_a);
        assert_eq!(&rep[0..6], &A);
        assert_eq!(be16(&rep, 20), 2);
        assert_eq!(&rep[32..38], &A);
        assert_eq!(rep.len(), ETH_MIN_FRAME);
    }

    #[test]
    fn vlan_tag_is_inserted_after_macs() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 2000);
        let plain = udp4(A, B, src, dst, &[1; 100]);
        let tagged = with_vlan(&plain, 100);
        assert_eq!(tagged.len(), plain.len() + 4);
        assert_eq!(&tagged[..12], &plain[..12]);
        assert_eq!(be16(&tagged, 12), ETHERTYPE_VLAN);
        assert_eq!(be16(&tagged, 14), 100);
        assert_eq!(&tagged[16..], &plain[12..]);
    }

    proptest! {
        #[test]
        fn any_udp_or_tcp_v4_frame_has_valid_checksums(
            a in any::<u32>(), b in any::<u32>(), sp in any::<u16>(), dp in any::<u16>(),
            seq in any::<u32>(), flags in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let src = SocketAddrV4::new(Ipv4Addr::from(a), sp);
            let dst = SocketAddrV4::new(Ipv4Addr::from(b), dp);
            let f = udp4(A, B, src, dst, &payload);
            prop_assert!(ipv4_header_ok(&f));
            let (s, e) = check_v4(&f);
            prop_assert_eq!(s, e);
            let h = TcpHeader { seq, ack: !seq, flags: TcpFlags(flags & 0x3f), window: sp };
            let f = tcp4(A, B, src, dst, &h, &payload);
            prop_assert!(ipv4_header_ok(&f));
            let (s, e) = check_v4(&f);
            prop_assert_eq!(s, e);
        }

        #[test]
        fn any_v6_frame_has_valid_checksums(
            a in any::<u128>(), b in any::<u128>(), sp in any::<u16>(), dp in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
        ) {
            let src = SocketAddrV6::new(Ipv6Addr::from(a), sp, 0, 0);
            let dst = SocketAddrV6::new(Ipv6Addr::from(b), dp, 0, 0);
            let (s, e) = check_v6(&udp6(A, B, src, dst, &payload));
            prop_assert_eq!(s, e);
            let h = TcpHeader { seq: 1, ack: 2, flags: TcpFlags::ACK, window: 3 };
            let (s, e) = check_v6(&tcp6(A, B, src, dst, &h, &payload));
            prop_assert_eq!(s, e);
            let echo = Echo { id: sp, seq: dp, reply: true };
            let (s, e) = check_v6(&icmp6_echo(A, B, *src.ip(), *dst.ip(), echo, &payload));
            prop_assert_eq!(s, e);
        }
    }
}
