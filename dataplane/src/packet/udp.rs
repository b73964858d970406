//! UDP header (RFC 768).
use super::bytes::be16;
use super::Malformed;

pub const HEADER_LEN: usize = 8;
const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const LENGTH: usize = 4;

pub struct Udp {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload_len: u16,
}

/// `b` starts at the UDP header; `len` is what the IP header declares for it. In a first
/// fragment the UDP length covers the whole datagram, so it may exceed `len`.
#[inline]
pub fn parse(b: &[u8], len: usize, first_fragment: bool) -> Result<Udp, Malformed> {
    let t = Malformed::UdpTruncated;
    if len < HEADER_LEN || b.len() < HEADER_LEN {
        return Err(t);
    }
    let ulen = be16(b, LENGTH).ok_or(t)? as usize;
    // A UDP length of 0 is legal only for IPv6 jumbograms; treat any value below the header
    // or (outside a fragment) above the IP payload as bad.
    if ulen < HEADER_LEN || (!first_fragment && ulen > len) {
        return Err(Malformed::UdpBadLength);
    }
    let h: &[u8; HEADER_LEN] = b.first_chunk().ok_or(t)?;
    Ok(Udp {
        src_port: u16::from_be_bytes([h[SRC_PORT], h[SRC_PORT + 1]]),
        dst_port: u16::from_be_bytes([h[DST_PORT], h[DST_PORT + 1]]),
        payload_len: (ulen.min(len) - HEADER_LEN) as u16,
    })
}
