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
        let src_is_lo = FlowKey::src_is_lo(h);
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

    /// Whether the source of `h` is the `lo` endpoint of its key (`from_headers` without
    /// building the key).
    #[inline(always)]
    pub fn src_is_lo(h: &Headers) -> bool {
        let s = u128::from_ne_bytes(h.src.0);
        let d = u128::from_ne_bytes(h.dst.0);
        s < d || (s == d && h.src_port <= h.dst_port)
    }

    /// Whether this is the key of `h`, whose source is the `lo` endpoint iff `src_is_lo`:
    /// `from_headers(h).0 == *self` without building the key.
    #[inline(always)]
    pub fn matches(&self, h: &Headers, src_is_lo: bool) -> bool {
        let (lo, lo_port, hi, hi_port) = if src_is_lo {
            (h.src, h.src_port, h.dst, h.dst_port)
        } else {
            (h.dst, h.dst_port, h.src, h.src_port)
        };
        self.lo_addr == lo
            && self.hi_addr == hi
            && self.rest() == rest(lo_port, hi_port, h.vlans[0], h.proto)
    }

    /// Ports, VLAN and protocol in one word.
    #[inline(always)]
    fn rest(&self) -> u64 {
        rest(self.lo_port, self.hi_port, self.vlan, self.proto)
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
    /// Three word-sized writes instead of a byte-slice walk.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.lo_addr.0));
        state.write_u128(u128::from_ne_bytes(self.hi_addr.0));
        state.write_u64(self.rest());
    }
}

#[inline(always)]
fn rest(lo_port: u16, hi_port: u16, vlan: u16, proto: u8) -> u64 {
    (lo_port as u64) | (hi_port as u64) << 16 | (vlan as u64) << 32 | (proto as u64) << 48
}

/// The flow table's keyed hash: folded 64x64->128-bit multiplies over the key's words (the
/// construction of wyhash and foldhash), three multiplies per key where a general-purpose
/// hasher spends several AES rounds and a finalisation. The seeds must be secret and random:
/// the key is chosen by whoever sends packets.
#[derive(Clone, Copy, Debug)]
pub struct FlowHasher {
    seeds: [u64; 4],
}

impl FlowHasher {
    pub fn new(seeds: [u64; 4]) -> FlowHasher {
        // Odd, non-zero multiplicands whatever the seeds.
        FlowHasher {
            seeds: seeds.map(|s| s | 1),
        }
    }

    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hash_parts(key.lo_addr, key.hi_addr, key.rest())
    }

    /// The hash of the key of `h` (whose source is `lo` iff `src_is_lo`), without building it.
    #[inline(always)]
    pub fn hash_headers(&self, h: &Headers, src_is_lo: bool) -> u64 {
        let (lo, lo_port, hi, hi_port) = if src_is_lo {
            (h.src, h.src_port, h.dst, h.dst_port)
        } else {
            (h.dst, h.dst_port, h.src, h.src_port)
        };
        self.hash_parts(lo, hi, rest(lo_port, hi_port, h.vlans[0], h.proto))
    }

    #[inline(always)]
    fn hash_parts(&self, lo: IpAddr16, hi: IpAddr16, rest: u64) -> u64 {
        #[inline(always)]
        fn fold(a: u64, b: u64) -> u64 {
            let p = a as u128 * b as u128;
            p as u64 ^ (p >> 64) as u64
        }
        let k = &self.seeds;
        let lo = u128::from_ne_bytes(lo.0);
        let hi = u128::from_ne_bytes(hi.0);
        let a = fold(lo as u64 ^ k[0], (lo >> 64) as u64 ^ k[1]);
        let b = fold(hi as u64 ^ k[2], (hi >> 64) as u64 ^ k[3]);
        fold(a ^ rest, b ^ k[0].rotate_left(32))
    }
}
