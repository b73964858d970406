//! TCP header (RFC 9293): ports, flags, data offset.
use super::bytes::get;
use super::Malformed;

pub const MIN_HEADER_LEN: usize = 20;
const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const SEQ: usize = 4;
const DATA_OFF: usize = 12;
const FLAGS: usize = 13;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub flags: u8,
    pub seq: u32,
    pub header_len: usize,
}

/// `b` starts at the TCP header; `len` is the segment length the IP header declares.
#[inline]
pub fn parse(b: &[u8], len: usize) -> Result<Tcp, Malformed> {
    let t = Malformed::TcpTruncated;
    if len < MIN_HEADER_LEN || b.len() < MIN_HEADER_LEN {
        return Err(t);
    }
    let header_len = ((get(b, DATA_OFF).ok_or(t)? >> 4) as usize) * 4;
    if header_len < MIN_HEADER_LEN || header_len > len {
        return Err(Malformed::TcpBadDataOffset);
    }
    if b.len() < header_len {
        return Err(t);
    }
    let h: &[u8; MIN_HEADER_LEN] = b.first_chunk().ok_or(t)?;
    Ok(Tcp {
        src_port: u16::from_be_bytes([h[SRC_PORT], h[SRC_PORT + 1]]),
        dst_port: u16::from_be_bytes([h[DST_PORT], h[DST_PORT + 1]]),
        flags: h[FLAGS],
        seq: u32::from_be_bytes([h[SEQ], h[SEQ + 1], h[SEQ + 2], h[SEQ + 3]]),
        header_len,
    })
}
