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

/// Endpoints in canonical order: (`lo_addr`, `lo_port`) <= (`hi_addr`, `hi_port`). The ports,
/// outer VLAN and protocol are one word (`FlowKey::rest`), so comparing or hashing a key is
/// three word operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub lo_addr: IpAddr16,
    pub hi_addr: IpAddr16,
    rest: u64,
}

impl FlowKey {
    pub fn new(lo: (IpAddr16, u16), hi: (IpAddr16, u16), vlan: u16, proto: u8) -> FlowKey {
        FlowKey {
            lo_addr: lo.0,
            hi_addr: hi.0,
            rest: rest(lo.1, hi.1, vlan, proto),
        }
    }

    /// The key of a packet and whether its source is the `lo` endpoint.
    #[inline]
    pub fn from_headers(h: &Headers) -> (FlowKey, bool) {
        let src_is_lo = FlowKey::src_is_lo(h);
        let (lo, hi) = ends(h, src_is_lo);
        let key = FlowKey {
            lo_addr: lo,
            hi_addr: hi,
            rest: FlowKey::rest_of(h, src_is_lo),
        };
        (key, src_is_lo)
    }

    pub fn lo_port(&self) -> u16 {
        self.rest as u16
    }
    pub fn hi_port(&self) -> u16 {
        (self.rest >> 16) as u16
    }
    pub fn vlan(&self) -> u16 {
        (self.rest >> 32) as u16
    }
    pub fn proto(&self) -> u8 {
        (self.rest >> 48) as u8
    }
    /// 0, or the `packet::tunnel::Kind` of the tunnel this is the inner flow of.
    pub fn tunnel(&self) -> u8 {
        (self.rest >> 56) as u8
    }

    /// Whether the source of `h` is the `lo` endpoint of its key (`from_headers` without
    /// building the key).
    #[inline(always)]
    pub fn src_is_lo(h: &Headers) -> bool {
        let s = u128::from_ne_bytes(h.src.0);
        let d = u128::from_ne_bytes(h.dst.0);
        s < d || (s == d && h.src_port <= h.dst_port)
    }

    /// The ports, VLAN and protocol word of the key of `h`.
    #[inline(always)]
    pub fn rest_of(h: &Headers, src_is_lo: bool) -> u64 {
        let (lo_port, hi_port) = if src_is_lo {
            (h.src_port, h.dst_port)
        } else {
            (h.dst_port, h.src_port)
        };
        rest(lo_port, hi_port, h.vlans[0], h.proto) | (h.tunnel as u64) << 56
    }

    /// Whether this is the key of `h`, given `src_is_lo` and `rest_of(h, src_is_lo)`:
    /// `from_headers(h).0 == *self` without building the key.
    #[inline(always)]
    pub fn matches(&self, h: &Headers, src_is_lo: bool, rest: u64) -> bool {
        let (lo, hi) = ends(h, src_is_lo);
        self.lo_addr == lo && self.hi_addr == hi && self.rest == rest
    }

    /// (source, source port, destination, destination port) as the originator sent them.
    pub fn oriented(&self, orig_is_lo: bool) -> (IpAddr16, u16, IpAddr16, u16) {
        if orig_is_lo {
            (self.lo_addr, self.lo_port(), self.hi_addr, self.hi_port())
        } else {
            (self.hi_addr, self.hi_port(), self.lo_addr, self.lo_port())
        }
    }
}

impl std::hash::Hash for FlowKey {
    /// Three word-sized writes instead of a byte-slice walk.
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.lo_addr.0));
        state.write_u128(u128::from_ne_bytes(self.hi_addr.0));
        state.write_u64(self.rest);
    }
}

/// The packet's addresses as (`lo`, `hi`).
#[inline(always)]
fn ends(h: &Headers, src_is_lo: bool) -> (IpAddr16, IpAddr16) {
    if src_is_lo {
        (h.src, h.dst)
    } else {
        (h.dst, h.src)
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
        self.hash_parts(key.lo_addr, key.hi_addr, key.rest)
    }

    /// The hash of the key of `h`, given `src_is_lo` and `rest_of(h, src_is_lo)`, without
    /// building the key.
    #[inline(always)]
    pub fn hash_headers(&self, h: &Headers, src_is_lo: bool, rest: u64) -> u64 {
        let (lo, hi) = ends(h, src_is_lo);
        self.hash_parts(lo, hi, rest)
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
