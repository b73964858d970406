//! Tunnels the dataplane looks into: IP-in-IP (4in4, 6in4, 4in6, 6in6), GRE (RFC 2784/2890:
//! checksum, key and sequence), VXLAN (RFC 7348), GTP-U (3GPP TS 29.281, with extension
//! headers), Teredo (RFC 4380, with its authentication and origin indications) and CAPWAP
//! data (RFC 5415, 802.3 or native 802.11 frames).
//!
//! `decap` returns the headers of the packet inside a tunnel packet, with offsets into the
//! same frame, so the inner flow is tracked and classified as a flow of its own while the
//! outer packet goes on unchanged. The UDP tunnels are recognised on their registered ports
//! (as their endpoints demultiplex them) and only when the tunnel header is well formed and
//! an IP packet parses inside; anything else is simply not a tunnel. Nesting is followed to
//! `MAX_DEPTH`. Total like `parse`: no input panics, reads past its end or loops; it does
//! not allocate.
use super::bytes::{be16, be32, get};
use super::{ethernet, parse_ip, proto, Fragment, Headers, IpAddr16, Malformed, L3};

pub const VXLAN_PORT: u16 = 4789;
pub const GTPU_PORT: u16 = 2152;
pub const TEREDO_PORT: u16 = 3544;
pub const CAPWAP_DATA_PORT: u16 = 5247;
/// Tunnels inside tunnels followed at most this deep; deeper is the last inner flow found.
pub const MAX_DEPTH: u8 = 3;

const IPIP: u8 = 4;
const IPV6_IN_IP: u8 = 41;
const GRE: u8 = 47;

/// What kind of tunnel a packet was found in. The value is part of the inner flow's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (IP protocols 4 and 41).
    IpInIp = 1,
    Gre = 2,
    Vxlan = 3,
    GtpU = 4,
    Teredo = 5,
    Capwap = 6,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::IpInIp,
        Kind::Gre,
        Kind::Vxlan,
        Kind::GtpU,
        Kind::Teredo,
        Kind::Capwap,
    ];

    pub fn from_u8(v: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == v)
    }

    /// The name the flow log gives it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::IpInIp => "ip-in-ip",
            Kind::Gre => "gre",
            Kind::Vxlan => "vxlan",
            Kind::GtpU => "gtp-u",
            Kind::Teredo => "teredo",
            Kind::Capwap => "capwap",
        }
    }
}

/// The tunnel an inner packet came out of: the one directly around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub kind: Kind,
    /// How many tunnels deep the inner packet is (1: one tunnel).
    pub depth: u8,
    /// The endpoints of the packet that carried the tunnel.
    pub outer_src: IpAddr16,
    pub outer_dst: IpAddr16,
    /// VXLAN VNI, GRE key or GTP-U TEID, when the tunnel has one.
    pub id: Option<u32>,
}

/// Whether `h` may be a tunnel's outer packet: the per-packet test, a few compares.
#[inline(always)]
pub fn candidate(h: &Headers) -> bool {
    if h.fragment != Fragment::No || !matches!(h.l3, L3::Ipv4 | L3::Ipv6) {
        return false;
    }
    match h.proto {
        IPIP | IPV6_IN_IP | GRE => true,
        proto::UDP => {
            let p = |x: u16| matches!(x, VXLAN_PORT | GTPU_PORT | TEREDO_PORT | CAPWAP_DATA_PORT);
            p(h.dst_port) || p(h.src_port)
        }
        _ => false,
    }
}

/// The innermost packet of a tunnel packet whose headers are `h` (`candidate(h)`), and the
/// tunnel directly around it. `Ok(None)`: not a tunnel packet (a UDP flow that merely uses
/// the port, a tunnel header that is not well formed, a protocol inside that is not IP).
/// `Err`: a well-formed tunnel whose inner IP packet is malformed.
pub fn decap(frame: &[u8], h: &Headers) -> Result<Option<(Headers, Tunnel)>, Malformed> {
    let mut found = None;
    let mut cur = *h;
    for depth in 1..=MAX_DEPTH {
        if !candidate(&cur) {
            break;
        }
        let Some((inner, kind, id)) = step(frame, &cur)? else {
            break;
        };
        found = Some((
            inner,
            Tunnel {
                kind,
                depth,
                outer_src: cur.src,
                outer_dst: cur.dst,
                id,
            },
        ));
        cur = inner;
    }
    Ok(found)
}

/// One level: the packet inside `h`'s payload.
fn step(frame: &[u8], h: &Headers) -> Result<Option<(Headers, Kind, Option<u32>)>, Malformed> {
    let start = h.payload_offset as usize;
    let end = start + h.payload_len as usize;
    // The payload as far as this segment holds it; `end` may lie beyond (a chained mbuf).
    let p = frame.get(start..end.min(frame.len())).unwrap_or_default();
    let found = match h.proto {
        IPIP => Some((Inner::Ip(start, false), Kind::IpInIp, None)),
        IPV6_IN_IP => Some((Inner::Ip(start, true), Kind::IpInIp, None)),
        GRE => gre(p).map(|(off, inner, key)| (inner.at(start + off), Kind::Gre, key)),
        _ => udp_inner(p, end - start, h.src_port, h.dst_port, start),
    };
    let Some((inner, kind, id)) = found else {
        return Ok(None);
    };
    let Some(mut out) = parse_inner(frame, inner, end)? else {
        return Ok(None);
    };
    out.vlans = h.vlans;
    out.tunnel = kind as u8;
    Ok(Some((out, kind, id)))
}

/// The tunnel in a UDP payload `p` (of `plen` bytes declared) between these ports, which
/// starts at `base` in its frame: where its inner packet is, the kind, and the id.
fn udp_inner(
    p: &[u8],
    plen: usize,
    src_port: u16,
    dst_port: u16,
    base: usize,
) -> Option<(Inner, Kind, Option<u32>)> {
    let port = |x: u16| dst_port == x || src_port == x;
    if port(VXLAN_PORT) {
        vxlan(p).map(|(off, vni)| (Inner::Ethernet(base + off), Kind::Vxlan, Some(vni)))
    } else if port(GTPU_PORT) {
        gtpu(p, plen)
            .map(|(off, teid)| (Inner::ip_by_version(p, off, base), Kind::GtpU, Some(teid)))
    } else if port(TEREDO_PORT) {
        teredo(p, plen).map(|off| (Inner::Ip(base + off, true), Kind::Teredo, None))
    } else if port(CAPWAP_DATA_PORT) {
        capwap(p).map(|(off, inner)| (inner.at(base + off), Kind::Capwap, None))
    } else {
        None
    }
}

/// The headers of the IP packet `inner` names in `frame`, whose bytes end at `end`.
/// `Ok(None)`: nothing IP is there (a version other than the tunnel says, ARP in an
/// Ethernet frame, a truncated frame header).
fn parse_inner(frame: &[u8], inner: Inner, end: usize) -> Result<Option<Headers>, Malformed> {
    let (off, v6) = match inner {
        Inner::Ip(off, v6) => (off, v6),
        Inner::Ethernet(off) => {
            let Some(f) = frame.get(off..end.min(frame.len())) else {
                return Ok(None);
            };
            let Ok(eth) = ethernet::parse(f) else {
                return Ok(None);
            };
            match eth.ethertype {
                ethernet::EtherType::IPV4 => (off + eth.payload_offset, false),
                ethernet::EtherType::IPV6 => (off + eth.payload_offset, true),
                // ARP and other non-IP frames inside: the outer flow is all there is.
                _ => return Ok(None),
            }
        }
        Inner::None => return Ok(None),
    };
    // The version must be what the tunnel says: anything else is not this tunnel.
    if off >= end || get(frame, off).map(|b| b >> 4) != Some(if v6 { 6 } else { 4 }) {
        return Ok(None);
    }
    let mut out = Headers::empty();
    parse_ip(frame, off, end - off, v6, &mut out)?;
    Ok(Some(out))
}

/// Whether UDP payload `p` between these ports is a tunnel packet with a well-formed IP
/// packet inside, and of which kind: App-ID's view of the outer flow.
pub fn udp_tunnel(p: &[u8], src_port: u16, dst_port: u16) -> Option<Kind> {
    let (inner, kind, _) = udp_inner(p, p.len(), src_port, dst_port, 0)?;
    matches!(parse_inner(p, inner, p.len()), Ok(Some(_))).then_some(kind)
}

/// Where the inner packet starts and what it is.
#[derive(Clone, Copy)]
enum Inner {
    /// An IP packet at this offset (IPv6 when true).
    Ip(usize, bool),
    /// An Ethernet frame at this offset.
    Ethernet(usize),
    None,
}

/// What follows a tunnel header, relative to the tunnel payload.
#[derive(Clone, Copy)]
enum Next {
    Ip(bool),
    Ethernet,
}

impl Next {
    fn at(self, off: usize) -> Inner {
        match self {
            Next::Ip(v6) => Inner::Ip(off, v6),
            Next::Ethernet => Inner::Ethernet(off),
        }
    }
}

impl Inner {
    /// An IP packet at `off` of `p` (which starts at `base` in the frame), by its version.
    fn ip_by_version(p: &[u8], off: usize, base: usize) -> Inner {
        match get(p, off).map(|b| b >> 4) {
            Some(4) => Inner::Ip(base + off, false),
            Some(6) => Inner::Ip(base + off, true),
            _ => Inner::None,
        }
    }
}

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
/// Strict source route, recursion control and reserved flags (RFC 2784 section 2.3: a
/// receiver discards what sets them), and the version.
const GRE_MUST_BE_ZERO: u16 = 0x0ff8 | 0x0007;
const GRE_TEB: u16 = 0x6558;

/// GRE version 0: the header length, what follows, and the key if present.
fn gre(p: &[u8]) -> Option<(usize, Next, Option<u32>)> {
    let flags = be16(p, 0)?;
    if flags & (GRE_R | GRE_MUST_BE_ZERO) != 0 {
        return None;
    }
    let next = match be16(p, 2)? {
        0x0800 => Next::Ip(false),
        0x86dd => Next::Ip(true),
        GRE_TEB => Next::Ethernet,
        _ => return None,
    };
    let mut off = 4;
    if flags & GRE_C != 0 {
        off += 4;
    }
    let mut key = None;
    if flags & GRE_K != 0 {
        key = Some(be32(p, off)?);
        off += 4;
    }
    if flags & GRE_S != 0 {
        off += 4;
    }
    Some((off, next, key))
}

const VXLAN_HEADER_LEN: usize = 8;
const VXLAN_I: u8 = 0x08;

/// VXLAN: the I flag set (a valid VNI), then an Ethernet frame. Returns (header length, VNI).
fn vxlan(p: &[u8]) -> Option<(usize, u32)> {
    let flags = get(p, 0)?;
    if flags & VXLAN_I == 0 || p.len() < VXLAN_HEADER_LEN + ethernet::HEADER_LEN {
        return None;
    }
    Some((VXLAN_HEADER_LEN, be32(p, 4)? >> 8))
}

const GTP_HEADER_LEN: usize = 8;
const GTP_OPTIONAL_LEN: usize = 4;
/// G-PDU: a user packet (T-PDU) follows.
const GTP_G_PDU: u8 = 0xff;
const GTP_MAX_EXTENSIONS: usize = 8;

/// GTP-U version 1, protocol type GTP, a G-PDU whose length fits the datagram's `plen`
/// bytes: (header length, TEID).
fn gtpu(p: &[u8], plen: usize) -> Option<(usize, u32)> {
    let flags = get(p, 0)?;
    // Version 1, PT 1; the spare bit is not checked (senders set it).
    if flags >> 5 != 1 || flags & 0x10 == 0 || get(p, 1)? != GTP_G_PDU {
        return None;
    }
    let len = be16(p, 2)? as usize;
    if GTP_HEADER_LEN + len > plen {
        return None;
    }
    let teid = be32(p, 4)?;
    let mut off = GTP_HEADER_LEN;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number and the first extension header type are present
        // when any of E, S, PN is.
        off += GTP_OPTIONAL_LEN;
        let mut next = get(p, off - 1)?;
        let mut n = 0;
        while flags & 0x04 != 0 && next != 0 {
            if n == GTP_MAX_EXTENSIONS {
                return None;
            }
            // Length in 4-byte units, including the length and next-type bytes.
            let units = get(p, off)? as usize;
            if units == 0 {
                return None;
            }
            off += units * 4;
            next = get(p, off - 1)?;
            n += 1;
        }
    }
    (off <= GTP_HEADER_LEN + len).then_some((off, teid))
}

/// Teredo: optional authentication and origin indications, then an IPv6 packet that fills
/// the datagram (`plen` bytes). Returns the IPv6 header's offset.
fn teredo(p: &[u8], plen: usize) -> Option<usize> {
    let mut off = 0;
    if be16(p, 0)? == 0x0001 {
        // Authentication: client id length, auth value length, both, nonce (8), confirmation.
        let id_len = get(p, 2)? as usize;
        let auth_len = get(p, 3)? as usize;
        off = 4 + id_len + auth_len + 8 + 1;
    }
    if be16(p, off)? == 0x0000 {
        // Origin indication: obfuscated port and address.
        off += 8;
    }
    let version = get(p, off)? >> 4;
    let payload = be16(p, off + 4)? as usize;
    (version == 6 && off + 40 + payload == plen).then_some(off)
}

/// CAPWAP data (RFC 5415 section 4.3), not DTLS-protected, not a fragment: the header length
/// and what follows (an 802.3 frame, or an 802.11 data frame, converted here to the offset
/// of the IP packet behind its LLC/SNAP header).
fn capwap(p: &[u8]) -> Option<(usize, Next)> {
    // Preamble: version 0, type 0 (clear).
    if get(p, 0)? != 0 {
        return None;
    }
    let v = (get(p, 1)? as u32) << 16 | (get(p, 2)? as u32) << 8 | get(p, 3)? as u32;
    let hlen = (v >> 19) as usize * 4;
    let wbid = (v >> 9) & 0x1f;
    let t = v & (1 << 8) != 0;
    let f = v & (1 << 7) != 0;
    if hlen < 8 || f {
        return None;
    }
    if !t {
        return Some((hlen, Next::Ethernet));
    }
    // Native frames: only IEEE 802.11 (WBID 1) is known.
    if wbid != 1 {
        return None;
    }
    let w = p.get(hlen..)?;
    let (off, v6) = wifi_data(w, false).or_else(|| wifi_data(w, true))?;
    Some((hlen + off, Next::Ip(v6)))
}

/// An unprotected IEEE 802.11 data frame carrying IP behind LLC/SNAP: the IP packet's offset.
/// `swapped`: the frame control's two bytes in the other order, as Cisco controllers send
/// them (Wireshark's "swap frame control" for CAPWAP).
fn wifi_data(w: &[u8], swapped: bool) -> Option<(usize, bool)> {
    let (fc0, fc1) = match swapped {
        false => (get(w, 0)?, get(w, 1)?),
        true => (get(w, 1)?, get(w, 0)?),
    };
    // Protocol version 0, type data (2); subtypes with the "no data" bit carry nothing.
    if fc0 & 0x03 != 0 || (fc0 >> 2) & 0x03 != 2 || fc0 & 0x40 != 0 {
        return None;
    }
    // Protected frames are encrypted.
    if fc1 & 0x40 != 0 {
        return None;
    }
    let mut off = 24;
    if fc1 & 0x03 == 0x03 {
        off += 6; // to-DS and from-DS: a fourth address
    }
    if fc0 & 0x80 != 0 {
        off += 2; // QoS control
        if fc1 & 0x80 != 0 {
            off += 4; // +HTC
        }
    }
    // LLC/SNAP: AA AA 03, OUI 00 00 00, EtherType.
    if w.get(off..off + 6)? != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return None;
    }
    let v6 = match be16(w, off + 6)? {
        0x0800 => false,
        0x86dd => true,
        _ => return None,
    };
    Some((off + 8, v6))
}

#[cfg(test)]
mod tests;
