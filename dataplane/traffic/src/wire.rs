//! A small, strict frame parser for this crate's tests: it re-reads generated frames the way a
//! receiver would (lengths from the headers, not from the frame size) and never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub tcp_seq: u32,
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses Ethernet (one optional VLAN tag), IPv4/IPv6, and TCP/UDP/ICMP/ICMPv6. `None` for
/// ARP, for anything malformed, and for anything else.
pub fn parse(frame: &[u8]) -> Option<Parsed<'_>> {
    let mut ethertype = be16(frame, 12)?;
    let mut at = 14;
    let mut vlan = None;
    if ethertype == 0x8100 {
        vlan = Some(be16(frame, 14)? & 0x0fff);
        ethertype = be16(frame, 16)?;
        at = 18;
    }
    let ip = frame.get(at..)?;
    let (src, dst, proto, l4) = match ethertype {
        0x0800 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            if ip[0] >> 4 != 4 || ihl < 20 {
                return None;
            }
            let total = usize::from(be16(ip, 2)?);
            if total < ihl {
                return None;
            }
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            (IpAddr::V4(src), IpAddr::V4(dst), ip[9], ip.get(ihl..total)?)
        }
        0x86dd => {
            let plen = usize::from(be16(ip, 4)?);
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                ip[6],
                ip.get(40..40 + plen)?,
            )
        }
        _ => return None,
    };
    let mut p = Parsed {
        vlan,
        src,
        dst,
        proto,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        tcp_seq: 0,
        payload: l4,
    };
    match proto {
        6 => {
            let off = usize::from(*l4.get(12)? >> 4) * 4;
            if off < 20 || off > l4.len() {
                return None;
            }
            p.sport = be16(l4, 0)?;
            p.dport = be16(l4, 2)?;
            p.tcp_seq = u32::from_be_bytes(l4.get(4..8)?.try_into().ok()?);
            p.tcp_flags = l4[13];
            p.payload = &l4[off..];
        }
        17 => {
            let len = usize::from(be16(l4, 4)?);
            if len < 8 || len > l4.len() {
                return None;
            }
            p.sport = be16(l4, 0)?;
            p.dport = be16(l4, 2)?;
            p.payload = &l4[8..len];
        }
        1 | 58 => {}
        _ => return None,
    }
    Some(p)
}
