//! ARP for IPv4 over Ethernet (RFC 826): parsing requests/replies and answering in place.
use super::bytes::{array, be16};
use super::ethernet::MacAddr;
use super::Malformed;

pub const LEN: usize = 28;
const HTYPE: usize = 0;
const PTYPE: usize = 2;
const HLEN: usize = 4;
const PLEN: usize = 5;
const OPER: usize = 6;
const SHA: usize = 8;
const SPA: usize = 14;
const THA: usize = 18;
const TPA: usize = 24;

pub const REQUEST: u16 = 1;
pub const REPLY: u16 = 2;

/// An ARP packet for IPv4 over Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arp {
    pub oper: u16,
    pub sender_mac: MacAddr,
    pub sender_ip: [u8; 4],
    pub target_mac: MacAddr,
    pub target_ip: [u8; 4],
}

/// Checks length only: other hardware/protocol types are legal ARP, just not ours.
pub fn check(b: &[u8]) -> Result<(), Malformed> {
    if b.len() < LEN {
        return Err(Malformed::ArpTruncated);
    }
    Ok(())
}

/// Parses Ethernet/IPv4 ARP; `None` for other hardware or protocol types or short input.
pub fn parse(b: &[u8]) -> Option<Arp> {
    if be16(b, HTYPE)? != 1 || be16(b, PTYPE)? != 0x0800 || b.get(HLEN)? != &6 || b.get(PLEN)? != &4
    {
        return None;
    }
    Some(Arp {
        oper: be16(b, OPER)?,
        sender_mac: MacAddr(array(b, SHA)?),
        sender_ip: array(b, SPA)?,
        target_mac: MacAddr(array(b, THA)?),
        target_ip: array(b, TPA)?,
    })
}

/// Writes an ARP packet (28 bytes) into `b`. `false` if `b` is too short.
pub fn emit(b: &mut [u8], a: &Arp) -> bool {
    let Some(b) = b.get_mut(..LEN) else {
        return false;
    };
    b[HTYPE..HTYPE + 2].copy_from_slice(&1u16.to_be_bytes());
    b[PTYPE..PTYPE + 2].copy_from_slice(&0x0800u16.to_be_bytes());
    b[HLEN] = 6;
    b[PLEN] = 4;
    b[OPER..OPER + 2].copy_from_slice(&a.oper.to_be_bytes());
    b[SHA..SHA + 6].copy_from_slice(&a.sender_mac.0);
    b[SPA..SPA + 4].copy_from_slice(&a.sender_ip);
    b[THA..THA + 6].copy_from_slice(&a.target_mac.0);
    b[TPA..TPA + 4].copy_from_slice(&a.target_ip);
    true
}
