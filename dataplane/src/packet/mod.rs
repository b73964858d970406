//! Zero-copy L2-L4 parsing and the few in-place edits the forwarding path makes.
//!
//! `parse` reads an Ethernet frame once and returns a small `Headers` value with every offset a
//! later stage needs. It is total: any byte string yields either `Headers` or a `Malformed`
//! reason (a counted drop); no input can make it panic, index out of bounds or loop. Every read
//! is checked: through `bytes::be16`/`be32`/`get`, which return `None` past the end, or on a
//! fixed-size array (`first_chunk`) whose length was checked once. It never allocates.

pub mod arp;
pub mod bytes;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod tunnel;
pub mod udp;

pub use ethernet::{EtherType, MacAddr};

/// IP protocol numbers the dataplane knows.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// Why a frame could not be parsed. Each variant is a drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Malformed {
    EthernetTruncated,
    VlanTruncated,
    TooManyVlanTags,
    ArpTruncated,
    Ipv4Truncated,
    Ipv4BadVersion,
    Ipv4BadHeaderLength,
    Ipv4BadTotalLength,
    Ipv6Truncated,
    Ipv6BadVersion,
    Ipv6BadPayloadLength,
    Ipv6ExtensionTruncated,
    Ipv6TooManyExtensions,
    TcpTruncated,
    TcpBadDataOffset,
    UdpTruncated,
    UdpBadLength,
    IcmpTruncated,
}

impl Malformed {
    pub const ALL: [Malformed; 18] = [
        Malformed::EthernetTruncated,
        Malformed::VlanTruncated,
        Malformed::TooManyVlanTags,
        Malformed::ArpTruncated,
        Malformed::Ipv4Truncated,
        Malformed::Ipv4BadVersion,
        Malformed::Ipv4BadHeaderLength,
        Malformed::Ipv4BadTotalLength,
        Malformed::Ipv6Truncated,
        Malformed::Ipv6BadVersion,
        Malformed::Ipv6BadPayloadLength,
        Malformed::Ipv6ExtensionTruncated,
        Malformed::Ipv6TooManyExtensions,
        Malformed::TcpTruncated,
        Malformed::TcpBadDataOffset,
        Malformed::UdpTruncated,
        Malformed::UdpBadLength,
        Malformed::IcmpTruncated,
    ];

    /// Counter label, kebab-case.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::EthernetTruncated => "ethernet-truncated",
            Malformed::VlanTruncated => "vlan-truncated",
            Malformed::TooManyVlanTags => "too-many-vlan-tags",
            Malformed::ArpTruncated => "arp-truncated",
            Malformed::Ipv4Truncated => "ipv4-truncated",
            Malformed::Ipv4BadVersion => "ipv4-bad-version",
            Malformed::Ipv4BadHeaderLength => "ipv4-bad-header-length",
            Malformed::Ipv4BadTotalLength => "ipv4-bad-total-length",
            Malformed::Ipv6Truncated => "ipv6-truncated",
            Malformed::Ipv6BadVersion => "ipv6-bad-version",
            Malformed::Ipv6BadPayloadLength => "ipv6-bad-payload-length",
            Malformed::Ipv6ExtensionTruncated => "ipv6-extension-truncated",
            Malformed::Ipv6TooManyExtensions => "ipv6-too-many-extensions",
            Malformed::TcpTruncated => "tcp-truncated",
            Malformed::TcpBadDataOffset => "tcp-bad-data-offset",
            Malformed::UdpTruncated => "udp-truncated",
            Malformed::UdpBadLength => "udp-bad-length",
            Malformed::IcmpTruncated => "icmp-truncated",
        }
    }
}

/// An IPv4 or IPv6 address in one 16-byte form (IPv4 as `::ffff:a.b.c.d`), so flow keys of
/// both families have one layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpAddr16(pub [u8; 16]);

impl IpAddr16 {
    #[inline]
    pub fn from_v4(b: [u8; 4]) -> IpAddr16 {
        // Built as one integer so it is stored in whole words (byte-wise stores followed by a
        // word load stall the flow-key code that reads it next).
        IpAddr16(((0xffffu128 << 32) | u32::from_be_bytes(b) as u128).to_be_bytes())
    }
    pub fn is_v4(&self) -> bool {
        self.0[..10] == [0; 10] && self.0[10] == 0xff && self.0[11] == 0xff
    }
    pub fn v4(&self) -> Option<[u8; 4]> {
        self.is_v4()
            .then(|| [self.0[12], self.0[13], self.0[14], self.0[15]])
    }
    pub fn to_std(self) -> std::net::IpAddr {
        match self.v4() {
            Some(b) => std::net::IpAddr::V4(b.into()),
            None => std::net::IpAddr::V6(self.0.into()),
        }
    }
}

impl From<std::net::IpAddr> for IpAddr16 {
    fn from(a: std::net::IpAddr) -> Self {
        match a {
            std::net::IpAddr::V4(v) => IpAddr16::from_v4(v.octets()),
            std::net::IpAddr::V6(v) => IpAddr16(v.octets()),
        }
    }
}

/// What sits above Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    Arp,
    Ipv4,
    Ipv6,
    /// Any other EtherType (or an 802.3 length field): STP, LLC, LLDP, ...
    Other(u16),
}

/// Whether an IP packet is a fragment, and which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fragment {
    #[default]
    No,
    /// Offset 0 with more fragments: carries the L4 header.
    First,
    /// Offset > 0: no L4 header.
    Later,
}

/// The parsed L2-L4 view of one frame: offsets into the frame plus the fields flows need.
/// The MAC addresses are not copied: `ethernet::dst_mac` and `src_mac` read them from the frame
/// (only routing needs them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers {
    /// Outer VLAN id first; 0 = none.
    pub vlans: [u16; 2],
    pub l3: L3,
    pub l3_offset: u16,
    /// IP protocol of the L4 header (0 when there is none).
    pub proto: u8,
    /// 0, or the `tunnel::Kind` these headers were found inside (then they describe the
    /// inner packet, and are part of its flow's key).
    pub tunnel: u8,
    pub src: IpAddr16,
    pub dst: IpAddr16,
    pub ttl: u8,
    pub fragment: Fragment,
    pub l4_offset: u16,
    /// Ports, or (id, id) for ICMP echo, or zeros.
    pub src_port: u16,
    pub dst_port: u16,
    pub tcp_flags: u8,
    /// TCP sequence number (0 for other protocols).
    pub tcp_seq: u32,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub payload_offset: u16,
    /// L4 payload length as the IP header declares it (may run past the first mbuf segment).
    pub payload_len: u16,
    /// IP length (header + payload) as declared: the frame may carry Ethernet padding beyond.
    pub ip_len: u16,
}

impl Headers {
    pub const fn empty() -> Headers {
        Headers {
            vlans: [0; 2],
            l3: L3::Other(0),
            l3_offset: 0,
            proto: 0,
            tunnel: 0,
            src: IpAddr16([0; 16]),
            dst: IpAddr16([0; 16]),
            ttl: 0,
            fragment: Fragment::No,
            l4_offset: 0,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            tcp_seq: 0,
            icmp_type: 0,
            icmp_code: 0,
            payload_offset: 0,
            payload_len: 0,
            ip_len: 0,
        }
    }

    pub fn is_ip(&self) -> bool {
        matches!(self.l3, L3::Ipv4 | L3::Ipv6)
    }
}

/// Parses one frame. `frame` is the contiguous bytes (the first mbuf segment); `wire_len` the
/// whole packet length, which may be longer when the mbuf is a chain.
#[inline]
pub fn parse(frame: &[u8], wire_len: usize) -> Result<Headers, Malformed> {
    let mut h = Headers::empty();
    parse_into(frame, wire_len, &mut h)?;
    Ok(h)
}

/// `parse` writing into `h` in place (the worker's per-burst array), which saves copying the
/// headers on the packet path. On error `h` holds what was parsed before the error.
#[inline]
pub fn parse_into(frame: &[u8], wire_len: usize, h: &mut Headers) -> Result<(), Malformed> {
    if parse_common(frame, wire_len, h) {
        return Ok(());
    }
    parse_general(frame, wire_len, h)
}

/// The common-case parser alone, `None` when it leaves the frame to the general parser; and
/// the general parser alone. For the fuzz target, which checks that they agree.
#[doc(hidden)]
pub fn parse_each_way(
    frame: &[u8],
    wire_len: usize,
) -> (Option<Headers>, Result<Headers, Malformed>) {
    let mut common = Headers::empty();
    let common = parse_common(frame, wire_len, &mut common).then_some(common);
    let mut general = Headers::empty();
    let general = parse_general(frame, wire_len, &mut general).map(|()| general);
    (common, general)
}

/// The frame nearly every packet is: untagged Ethernet II, IPv4 without options, not a
/// fragment, UDP or TCP, headers in the first segment. Recognised with a handful of loads and
/// compares on fixed offsets; `h` is written once. Returns false, leaving `h` unspecified, for
/// anything else, including every malformed frame: `parse_general` then decides. The result
/// is the same as `parse_general`'s for every frame it accepts (a property test checks this).
#[inline(always)]
fn parse_common(frame: &[u8], wire_len: usize, h: &mut Headers) -> bool {
    const IP: usize = ethernet::HEADER_LEN;
    const L4: usize = IP + ipv4::MIN_HEADER_LEN;
    const UDP_END: usize = L4 + udp::HEADER_LEN;
    const TCP_END: usize = L4 + tcp::MIN_HEADER_LEN;
    let Some(b) = frame.first_chunk::<UDP_END>() else {
        return false;
    };
    let be16 = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    // EtherType IPv4; version 4 with a 20-byte header; no MF flag, offset 0.
    if be16(12) != 0x0800 || b[IP] != 0x45 || be16(IP + 6) & 0x3fff != 0 {
        return false;
    }
    let ip_len = be16(IP + 2);
    let avail = wire_len.max(frame.len()) - IP;
    if (ip_len as usize) < ipv4::MIN_HEADER_LEN || ip_len as usize > avail {
        return false;
    }
    let l4_len = ip_len as usize - ipv4::MIN_HEADER_LEN;
    let proto = b[IP + 9];
    let (tcp_flags, tcp_seq, payload_offset, payload_len) = match proto {
        proto::UDP => {
            let ulen = be16(L4 + 4) as usize;
            if ulen < udp::HEADER_LEN || ulen > l4_len {
                return false;
            }
            (0, 0, UDP_END, ulen - udp::HEADER_LEN)
        }
        proto::TCP => {
            let Some(t) = frame.first_chunk::<TCP_END>() else {
                return false;
            };
            let hl = (t[L4 + 12] >> 4) as usize * 4;
            if hl < tcp::MIN_HEADER_LEN || hl > l4_len {
                return false;
            }
            if frame.len() < L4 + hl {
                return false;
            }
            let seq = u32::from_be_bytes([t[L4 + 4], t[L4 + 5], t[L4 + 6], t[L4 + 7]]);
            (t[L4 + 13], seq, L4 + hl, l4_len - hl)
        }
        _ => return false,
    };
    let addr = |at: usize| IpAddr16::from_v4([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    *h = Headers {
        vlans: [0; 2],
        l3: L3::Ipv4,
        l3_offset: IP as u16,
        proto,
        tunnel: 0,
        src: addr(IP + 12),
        dst: addr(IP + 16),
        ttl: b[IP + 8],
        fragment: Fragment::No,
        l4_offset: L4 as u16,
        src_port: be16(L4),
        dst_port: be16(L4 + 2),
        tcp_flags,
        tcp_seq,
        icmp_type: 0,
        icmp_code: 0,
        payload_offset: payload_offset as u16,
        payload_len: payload_len as u16,
        ip_len,
    };
    true
}

/// Every frame `parse_common` does not take: tags, PPPoE, ARP, IPv6, options, fragments,
/// other protocols, and the malformed.
#[inline(never)]
fn parse_general(frame: &[u8], wire_len: usize, h: &mut Headers) -> Result<(), Malformed> {
    let eth = ethernet::parse(frame)?;
    *h = Headers::empty();
    h.vlans = eth.vlans;
    let off = eth.payload_offset;
    h.l3_offset = off as u16;
    let wire_len = wire_len.max(frame.len());
    match eth.ethertype {
        EtherType::ARP => {
            arp::check(frame.get(off..).unwrap_or_default())?;
            h.l3 = L3::Arp;
            Ok(())
        }
        EtherType::IPV4 => parse_ip(frame, off, wire_len - off, false, h),
        EtherType::IPV6 => parse_ip(frame, off, wire_len - off, true, h),
        other => {
            h.l3 = L3::Other(other.0);
            Ok(())
        }
    }
}

/// Parses the IP packet at `off` of `frame` (IPv6 when `v6`), of which `avail` bytes exist
/// (the frame's wire length, or an enclosing packet's declared end, beyond `off`), and its
/// transport header. Offsets in `h` are from the start of `frame`.
#[inline(always)]
fn parse_ip(
    frame: &[u8],
    off: usize,
    avail: usize,
    v6: bool,
    h: &mut Headers,
) -> Result<(), Malformed> {
    let b = frame.get(off..).unwrap_or_default();
    h.l3_offset = off as u16;
    if v6 {
        h.l3 = L3::Ipv6;
        let ip = ipv6::parse(b, avail)?;
        h.src = IpAddr16(ip.src);
        h.dst = IpAddr16(ip.dst);
        h.ttl = ip.hop_limit;
        h.proto = ip.proto;
        h.fragment = ip.fragment;
        h.ip_len = (ipv6::HEADER_LEN + ip.payload_len as usize) as u16;
        let l4 = off + ip.l4_offset;
        let l4_len = (ipv6::HEADER_LEN + ip.payload_len as usize).saturating_sub(ip.l4_offset);
        parse_l4(frame, h, l4, l4_len, true)
    } else {
        h.l3 = L3::Ipv4;
        let ip = ipv4::parse(b, avail)?;
        h.src = IpAddr16::from_v4(ip.src);
        h.dst = IpAddr16::from_v4(ip.dst);
        h.ttl = ip.ttl;
        h.proto = ip.proto;
        h.fragment = ip.fragment;
        h.ip_len = ip.total_len;
        let l4 = off + ip.header_len;
        parse_l4(frame, h, l4, ip.total_len as usize - ip.header_len, false)
    }
}

/// Parses the transport header at `off` whose declared length (from the IP header) is `len`.
#[inline(always)]
fn parse_l4(
    frame: &[u8],
    h: &mut Headers,
    off: usize,
    len: usize,
    v6: bool,
) -> Result<(), Malformed> {
    h.l4_offset = off as u16;
    h.payload_offset = off as u16;
    h.payload_len = len as u16;
    if h.fragment == Fragment::Later {
        return Ok(());
    }
    let seg = frame.get(off..).unwrap_or_default();
    match h.proto {
        proto::TCP => {
            let t = tcp::parse(seg, len)?;
            h.src_port = t.src_port;
            h.dst_port = t.dst_port;
            h.tcp_flags = t.flags;
            h.tcp_seq = t.seq;
            h.payload_offset = (off + t.header_len) as u16;
            h.payload_len = (len - t.header_len) as u16;
        }
        proto::UDP => {
            let u = udp::parse(seg, len, h.fragment == Fragment::First)?;
            h.src_port = u.src_port;
            h.dst_port = u.dst_port;
            h.payload_offset = (off + udp::HEADER_LEN) as u16;
            h.payload_len = u.payload_len;
        }
        proto::ICMP | proto::ICMPV6 if (h.proto == proto::ICMPV6) == v6 => {
            let i = icmp::parse(seg, len, v6)?;
            h.icmp_type = i.icmp_type;
            h.icmp_code = i.icmp_code;
            if let Some(id) = i.echo_id {
                h.src_port = id;
                h.dst_port = id;
            }
            h.payload_offset = (off + icmp::HEADER_LEN) as u16;
            h.payload_len = (len - icmp::HEADER_LEN) as u16;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
