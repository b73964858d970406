//! IPv6 header (RFC 8200) and the walk over extension headers to the transport header.
use super::bytes::{array, be16, get};
use super::{Fragment, Malformed};

pub const HEADER_LEN: usize = 40;
const PAYLOAD_LEN: usize = 4;
const NEXT_HEADER: usize = 6;
pub const HOP_LIMIT: usize = 7;
const SRC: usize = 8;
const DST: usize = 24;
/// Extension headers walked before giving up (a bound against crafted chains).
const MAX_EXTENSIONS: usize = 8;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DEST_OPTS: u8 = 60;
const AUTH: u8 = 51;

pub struct Ipv6 {
    pub payload_len: u16,
    pub hop_limit: u8,
    /// The transport protocol after extension headers.
    pub proto: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Offset of the transport header from the start of the IPv6 header.
    pub l4_offset: usize,
    pub fragment: Fragment,
}

#[inline]
pub fn parse(b: &[u8], avail: usize) -> Result<Ipv6, Malformed> {
    let t = Malformed::Ipv6Truncated;
    if b.len() < HEADER_LEN {
        return Err(t);
    }
    if get(b, 0).ok_or(t)? >> 4 != 6 {
        return Err(Malformed::Ipv6BadVersion);
    }
    let payload_len = be16(b, PAYLOAD_LEN).ok_or(t)?;
    if HEADER_LEN + payload_len as usize > avail {
        return Err(Malformed::Ipv6BadPayloadLength);
    }
    let end = HEADER_LEN + payload_len as usize;
    let mut next = get(b, NEXT_HEADER).ok_or(t)?;
    let mut off = HEADER_LEN;
    let mut fragment = Fragment::No;
    let e = Malformed::Ipv6ExtensionTruncated;
    for _ in 0..=MAX_EXTENSIONS {
        let len = match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => (get(b, off + 1).ok_or(e)? as usize + 1) * 8,
            AUTH => (get(b, off + 1).ok_or(e)? as usize + 2) * 4,
            FRAGMENT => {
                let fo = be16(b, off + 2).ok_or(e)?;
                fragment = match (fo >> 3, fo & 1 == 1) {
                    (0, false) => Fragment::No,
                    (0, true) => Fragment::First,
                    _ => Fragment::Later,
                };
                8
            }
            _ => {
                return Ok(Ipv6 {
                    payload_len,
                    hop_limit: get(b, HOP_LIMIT).ok_or(t)?,
                    proto: next,
                    src: array(b, SRC).ok_or(t)?,
                    dst: array(b, DST).ok_or(t)?,
                    l4_offset: off,
                    fragment,
                })
            }
        };
        next = get(b, off).ok_or(e)?;
        off += len;
        // The chain must end inside the packet and inside the contiguous first segment (a
        // chain longer than a segment is not something a real stack sends).
        if off > end || off > b.len() {
            return Err(e);
        }
        if fragment == Fragment::Later {
            // Later fragments carry no transport header; stop here.
            return Ok(Ipv6 {
                payload_len,
                hop_limit: get(b, HOP_LIMIT).ok_or(t)?,
                proto: next,
                src: array(b, SRC).ok_or(t)?,
                dst: array(b, DST).ok_or(t)?,
                l4_offset: off,
                fragment,
            });
        }
    }
    Err(Malformed::Ipv6TooManyExtensions)
}

/// Decrements the hop limit (IPv6 has no header checksum). `None` if short or already 0.
pub fn decrement_hop_limit(b: &mut [u8]) -> Option<u8> {
    let h = b.get_mut(HOP_LIMIT)?;
    *h = h.checked_sub(1)?;
    Some(*h)
}
