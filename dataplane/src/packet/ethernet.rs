//! Ethernet II with up to two 802.1Q/802.1ad tags.
use super::bytes::be16;
use super::Malformed;

pub const HEADER_LEN: usize = 14;
const DST: usize = 0;
const SRC: usize = 6;
const ETHERTYPE: usize = 12;
const TAG_LEN: usize = 4;

/// A MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const QINQ: EtherType = EtherType(0x88a8);
    pub const IPV6: EtherType = EtherType(0x86dd);
    pub const PPPOE_SESSION: EtherType = EtherType(0x8864);
}

/// PPPoE session header (6 bytes) plus the PPP protocol field (2 bytes).
const PPPOE_LEN: usize = 8;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

pub struct Ethernet {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub vlans: [u16; 2],
    pub ethertype: EtherType,
    pub payload_offset: usize,
}

#[inline]
pub fn parse(f: &[u8]) -> Result<Ethernet, Malformed> {
    let h: &[u8; HEADER_LEN] = f.first_chunk().ok_or(Malformed::EthernetTruncated)?;
    let dst = MacAddr([
        h[DST],
        h[DST + 1],
        h[DST + 2],
        h[DST + 3],
        h[DST + 4],
        h[DST + 5],
    ]);
    let src = MacAddr([
        h[SRC],
        h[SRC + 1],
        h[SRC + 2],
        h[SRC + 3],
        h[SRC + 4],
        h[SRC + 5],
    ]);
    let mut ethertype = EtherType(u16::from_be_bytes([h[ETHERTYPE], h[ETHERTYPE + 1]]));
    let mut off = HEADER_LEN;
    let mut vlans = [0u16; 2];
    let mut n = 0;
    while ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
        if n == vlans.len() {
            return Err(Malformed::TooManyVlanTags);
        }
        let tci = be16(f, off).ok_or(Malformed::VlanTruncated)?;
        vlans[n] = tci & 0x0fff;
        ethertype = EtherType(be16(f, off + 2).ok_or(Malformed::VlanTruncated)?);
        off += TAG_LEN;
        n += 1;
    }
    if ethertype == EtherType::PPPOE_SESSION {
        // Version/type 0x11, code 0 (session data); IP inside is parsed like any other, other
        // PPP protocols (LCP, IPCP...) stay a non-IP frame.
        let ppp = (f.get(off) == Some(&0x11) && f.get(off + 1) == Some(&0))
            .then(|| be16(f, off + 6))
            .flatten();
        match ppp {
            Some(PPP_IPV4) => {
                return Ok(Ethernet {
                    dst,
                    src,
                    vlans,
                    ethertype: EtherType::IPV4,
                    payload_offset: off + PPPOE_LEN,
                })
            }
            Some(PPP_IPV6) => {
                return Ok(Ethernet {
                    dst,
                    src,
                    vlans,
                    ethertype: EtherType::IPV6,
                    payload_offset: off + PPPOE_LEN,
                })
            }
            _ => {}
        }
    }
    Ok(Ethernet {
        dst,
        src,
        vlans,
        ethertype,
        payload_offset: off,
    })
}

/// The destination MAC of a frame (zeros if the frame is shorter than one).
#[inline]
pub fn dst_mac(f: &[u8]) -> MacAddr {
    MacAddr(super::bytes::array(f, DST).unwrap_or_default())
}

/// The source MAC of a frame (zeros if the frame is shorter than two).
#[inline]
pub fn src_mac(f: &[u8]) -> MacAddr {
    MacAddr(super::bytes::array(f, SRC).unwrap_or_default())
}

/// Rewrites the MAC addresses of a frame in place (routed forwarding). `false` if too short.
pub fn set_macs(f: &mut [u8], dst: MacAddr, src: MacAddr) -> bool {
    match f.get_mut(..12) {
        Some(h) => {
            h[..6].copy_from_slice(&dst.0);
            h[6..].copy_from_slice(&src.0);
            true
        }
        None => false,
    }
}
