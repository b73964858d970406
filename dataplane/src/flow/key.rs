//! `FlowKey`: the 5-tuple (plus outer VLAN) in a canonical order, so a packet and its reply
//! find the same flow with one hash.
use crate::packet::{Headers, IpAddr16};

/// Which way a packet goes relative to the flow's originator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Dir {
    /// From the side that sent the flow's first packet.
    Orig = 0,
    Reply = 1,
}

/// Endpoints in canonical order: (`lo_addr`, `lo_port`) <= (`hi_addr`, `hi_port`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub lo_addr: IpAddr16,
    pub hi_addr: IpAddr16,
    pub lo_port: u16,
    pub hi_port: u16,
    pub vlan: u16,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet and whether its source is the `lo` endpoint.
    #[inline]
    pub fn from_headers(h: &Headers) -> (FlowKey, bool) {
        // Compare as integers: one 128-bit compare instead of a byte-wise memcmp.
        let s = u128::from_ne_bytes(h.src.0);
        let d = u128::from_ne_bytes(h.dst.0);
        let src_is_lo = s < d || (s == d && h.src_port <= h.dst_port);
        let (lo, hi) = if src_is_lo {
            ((h.src, h.src_port), (h.dst, h.dst_port))
        } else {
            ((h.dst, h.dst_port), (h.src, h.src_port))
        };
        (
            FlowKey {
                lo_addr: lo.0,
                hi_addr: hi.0,
                lo_port: lo.1,
                hi_port: hi.1,
                vlan: h.vlans[0],
                proto: h.proto,
            },
            src_is_lo,
        )
    }

    /// (source, source port, destination, destination port) as the originator sent them.
    pub fn oriented(&self, orig_is_lo: bool) -> (IpAddr16, u16, IpAddr16, u16) {
        if orig_is_lo {
            (self.lo_addr, self.lo_port, self.hi_addr, self.hi_port)
        } else {
            (self.hi_addr, self.hi_port, self.lo_addr, self.lo_port)
        }
    }
}

impl std::hash::Hash for FlowKey {
    /// Three word-sized writes instead of a byte-slice walk: this runs once per packet.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.lo_addr.0));
        state.write_u128(u128::from_ne_bytes(self.hi_addr.0));
        state.write_u64(
            (self.lo_port as u64)
                | (self.hi_port as u64) << 16
                | (self.vlan as u64) << 32
                | (self.proto as u64) << 48,
        );
    }
}
