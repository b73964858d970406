//! ICMP and ICMPv6: the type, and the echo identifier that ties a request to its reply.
use super::bytes::{be16, get};
use super::Malformed;

pub const HEADER_LEN: usize = 8;

pub struct Icmp {
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Identifier of an echo request/reply, which names the "flow" of a ping.
    pub echo_id: Option<u16>,
}

/// `b` starts at the ICMP header; `len` is what the IP header declares for it.
#[inline]
pub fn parse(b: &[u8], len: usize, v6: bool) -> Result<Icmp, Malformed> {
    let t = Malformed::IcmpTruncated;
    if b.len() < HEADER_LEN || len < HEADER_LEN {
        return Err(t);
    }
    let ty = get(b, 0).ok_or(t)?;
    let echo = is_echo(v6, ty);
    Ok(Icmp {
        icmp_type: ty,
        icmp_code: get(b, 1).ok_or(t)?,
        echo_id: if echo {
            Some(be16(b, 4).ok_or(t)?)
        } else {
            None
        },
    })
}

/// The IPv4 packet an ICMPv4 error quotes (RFC 792: its IP header and at least the first
/// 8 bytes of its data), as offsets into the frame and the tuple it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// Offset of the quoted IP header in the frame.
    pub ip: usize,
    /// Offset of the quoted transport header.
    pub l4: usize,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// Ports, or the echo identifier twice for a quoted echo request or reply.
    pub sport: u16,
    pub dport: u16,
    /// Bytes of the quoted transport header and data present in the frame.
    pub quoted: usize,
}

/// Whether ICMP (ICMPv6 when `v6`) type `t` is an echo request or reply, whose identifier
/// keys the flow.
pub fn is_echo(v6: bool, t: u8) -> bool {
    if v6 {
        matches!(t, 128 | 129)
    } else {
        matches!(t, 0 | 8)
    }
}

/// Whether ICMPv4 type `t` is an error that quotes the packet it is about: destination
/// unreachable (3), source quench (4), redirect (5), time exceeded (11), parameter problem (12).
pub fn is_error_v4(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// The packet quoted by the ICMPv4 error whose message starts at `l4` in `frame` and runs
/// to `end` (the IP packet's end). None when it is not an error, or the quote is not a
/// whole IPv4 header and the transport header's first 8 bytes (4 for an echo identifier).
pub fn embedded_v4(frame: &[u8], l4: usize, end: usize) -> Option<Embedded> {
    let msg = frame.get(l4..end.min(frame.len()))?;
    if !is_error_v4(get(msg, 0)?) {
        return None;
    }
    let ip = HEADER_LEN;
    let vihl = get(msg, ip)?;
    let ihl = (vihl & 0x0f) as usize * 4;
    if vihl >> 4 != 4 || ihl < 20 {
        return None;
    }
    // A quoted later fragment carries no transport header to find its flow by.
    if be16(msg, ip + 6)? & 0x1fff != 0 {
        return None;
    }
    let proto_ = get(msg, ip + 9)?;
    let src = super::bytes::array::<4>(msg, ip + 12)?;
    let dst = super::bytes::array::<4>(msg, ip + 16)?;
    let t = ip + ihl;
    let (sport, dport) = match proto_ {
        super::proto::TCP | super::proto::UDP => (be16(msg, t)?, be16(msg, t + 2)?),
        super::proto::ICMP if matches!(get(msg, t)?, 0 | 8) => {
            let id = be16(msg, t + 4)?;
            (id, id)
        }
        _ => return None,
    };
    Some(Embedded {
        ip: l4 + ip,
        l4: l4 + t,
        proto: proto_,
        src,
        dst,
        sport,
        dport,
        quoted: msg.len() - t,
    })
}
