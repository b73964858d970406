//! ICMP and ICMPv6: the type, and the echo identifier that ties a request to its reply.
use super::bytes::{be16, get};
use super::Malformed;

pub const HEADER_LEN: usize = 8;

pub struct Icmp {
    pub icmp_type: u8,
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
    let echo = if v6 {
        matches!(ty, 128 | 129)
    } else {
        matches!(ty, 0 | 8)
    };
    Ok(Icmp {
        icmp_type: ty,
        echo_id: if echo {
            Some(be16(b, 4).ok_or(t)?)
        } else {
            None
        },
    })
}
