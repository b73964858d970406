//! IPv4 header (RFC 791): validation and the TTL edit routed forwarding makes.
use super::bytes::{be16, get};
use super::checksum;
use super::{Fragment, Malformed};

pub const MIN_HEADER_LEN: usize = 20;
const VER_IHL: usize = 0;
const TOTAL_LEN: usize = 2;
const FLAGS_FRAG: usize = 6;
pub const TTL: usize = 8;
const PROTO: usize = 9;
pub const CHECKSUM: usize = 10;
const SRC: usize = 12;
const DST: usize = 16;

pub struct Ipv4 {
    pub header_len: usize,
    pub total_len: u16,
    pub ttl: u8,
    pub proto: u8,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub fragment: Fragment,
}

/// `b` starts at the IPv4 header; `avail` is how many bytes of packet follow (all segments).
#[inline]
pub fn parse(b: &[u8], avail: usize) -> Result<Ipv4, Malformed> {
    let t = Malformed::Ipv4Truncated;
    let vi = get(b, VER_IHL).ok_or(t)?;
    if vi >> 4 != 4 {
        return Err(Malformed::Ipv4BadVersion);
    }
    let header_len = ((vi & 0x0f) as usize) * 4;
    if header_len < MIN_HEADER_LEN {
        return Err(Malformed::Ipv4BadHeaderLength);
    }
    if b.len() < header_len {
        return Err(t);
    }
    // From here on the 20 fixed bytes are known to be present: read them without checks.
    let h: &[u8; MIN_HEADER_LEN] = b.first_chunk().ok_or(t)?;
    let word = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let total_len = word(TOTAL_LEN);
    if (total_len as usize) < header_len || total_len as usize > avail {
        return Err(Malformed::Ipv4BadTotalLength);
    }
    let ff = word(FLAGS_FRAG);
    let more = ff & 0x2000 != 0;
    let offset = ff & 0x1fff;
    let fragment = match (offset, more) {
        (0, false) => Fragment::No,
        (0, true) => Fragment::First,
        _ => Fragment::Later,
    };
    Ok(Ipv4 {
        header_len,
        total_len,
        ttl: h[TTL],
        proto: h[PROTO],
        src: [h[SRC], h[SRC + 1], h[SRC + 2], h[SRC + 3]],
        dst: [h[DST], h[DST + 1], h[DST + 2], h[DST + 3]],
        fragment,
    })
}

/// Decrements the TTL of the IPv4 header at `b` and patches the header checksum incrementally
/// (RFC 1624). Returns the new TTL, or `None` if the header is too short or the TTL is 0.
pub fn decrement_ttl(b: &mut [u8]) -> Option<u8> {
    let ttl = *b.get(TTL)?;
    let proto = *b.get(PROTO)?;
    let new_ttl = ttl.checked_sub(1)?;
    let old_word = u16::from_be_bytes([ttl, proto]);
    let new_word = u16::from_be_bytes([new_ttl, proto]);
    let sum = be16(b, CHECKSUM)?;
    let sum = checksum::update16(sum, old_word, new_word);
    b[TTL] = new_ttl;
    b.get_mut(CHECKSUM..CHECKSUM + 2)?
        .copy_from_slice(&sum.to_be_bytes());
    Some(new_ttl)
}
