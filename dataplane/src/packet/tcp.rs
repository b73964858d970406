//! TCP header (RFC 9293): ports, flags, data offset.
use super::bytes::{be16, be32, get};
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
    Ok(Tcp {
        src_port: be16(b, SRC_PORT).ok_or(t)?,
        dst_port: be16(b, DST_PORT).ok_or(t)?,
        flags: get(b, FLAGS).ok_or(t)?,
        seq: be32(b, SEQ).ok_or(t)?,
        header_len,
    })
}
