//! The seeded pseudo-random source every generator in this crate draws from.
//!
//! SplitMix64: tiny, fast, and fully determined by its seed on every platform, which is all a
//! traffic generator needs. It is not cryptographic and must never be used where secrecy matters.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A deterministic pseudo-random number generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent generator derived from this one, so that adding draws to one part of a
    /// capture does not shift the randomness of the parts generated after it.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    pub fn next_u16(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    /// A uniform value in `lo..=hi` (returns `lo` when `hi <= lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        // Multiply-shift maps a 64-bit draw onto the span; the bias is below 2^-32 for any span
        // this crate uses.
        lo + ((u128::from(self.next_u64()) * u128::from(span + 1)) >> 64) as u64
    }

    /// A uniform `u16` in `lo..=hi`.
    pub fn range_u16(&mut self, lo: u16, hi: u16) -> u16 {
        self.range(u64::from(lo), u64::from(hi)) as u16
    }

    /// `true` with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        den != 0 && self.range(0, den - 1) < num
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0; N];
        self.fill(&mut a);
        a
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }

    /// `len` lowercase hexadecimal digits.
    pub fn hex(&mut self, len: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        (0..len)
            .map(|_| char::from(DIGITS[(self.next_u32() & 0xf) as usize]))
            .collect()
    }

    /// A unicast, locally administered MAC address.
    pub fn mac(&mut self) -> [u8; 6] {
        let mut m: [u8; 6] = self.array();
        m[0] = (m[0] & 0xfc) | 0x02;
        m
    }

    /// A host address inside `prefix`, never its network or broadcast address (for prefixes
    /// shorter than /31).
    pub fn ipv4_in(&mut self, prefix: Ipv4Prefix) -> Ipv4Addr {
        let host_bits = 32 - u32::from(prefix.len.min(32));
        let base = u32::from(prefix.addr) & prefix.mask();
        if host_bits <= 1 {
            return Ipv4Addr::from(base | (self.next_u32() & ((1u32 << host_bits) - 1)));
        }
        let max_host = (1u64 << host_bits) - 2;
        Ipv4Addr::from(base | self.range(1, max_host) as u32)
    }

    /// A host address inside `prefix` whose interface identifier is random and never zero.
    pub fn ipv6_in(&mut self, prefix: Ipv6Prefix) -> Ipv6Addr {
        let host_bits = 128 - u32::from(prefix.len.min(128));
        let mask = if host_bits == 128 {
            0
        } else {
            u128::MAX << host_bits
        };
        let base = u128::from(prefix.addr) & mask;
        let random = (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())) & !mask;
        Ipv6Addr::from(base | random.max(1))
    }
}

/// An IPv4 prefix such as 17.0.0.0/8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Prefix {
    pub const fn new(addr: Ipv4Addr, len: u8) -> Self {
        Ipv4Prefix { addr, len }
    }

    fn mask(self) -> u32 {
        match self.len {
            0 => 0,
            l if l >= 32 => u32::MAX,
            l => u32::MAX << (32 - u32::from(l)),
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

/// An IPv6 prefix such as 2001:db8::/32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

impl Ipv6Prefix {
    pub const fn new(addr: Ipv6Addr, len: u8) -> Self {
        Ipv6Prefix { addr, len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seed_differs() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..16).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..16).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(8);
            (0..16).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn splitmix64_reference_values() {
        // Published SplitMix64 output for seed 1234567.
        let mut r = Rng::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn range_stays_inside_bounds_and_reaches_both_ends() {
        let mut r = Rng::new(1);
        let draws: Vec<u64> = (0..2000).map(|_| r.range(16393, 16402)).collect();
        assert!(draws.iter().all(|d| (16393..=16402).contains(d)));
        assert!(draws.contains(&16393) && draws.contains(&16402));
    }

    #[test]
    fn addresses_stay_in_their_prefix() {
        let mut r = Rng::new(3);
        let apple = Ipv4Prefix::new(Ipv4Addr::new(17, 0, 0, 0), 8);
        let doc = Ipv4Prefix::new(Ipv4Addr::new(192, 0, 2, 0), 24);
        for _ in 0..1000 {
            let a = r.ipv4_in(apple);
            assert_eq!(a.octets()[0], 17);
            let d = r.ipv4_in(doc);
            assert!(doc.contains(d));
            assert!(d.octets()[3] != 0 && d.octets()[3] != 255, "{d}");
            let v6 = r.ipv6_in(Ipv6Prefix::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
                32,
            ));
            assert_eq!(&v6.segments()[..2], &[0x2001, 0xdb8]);
        }
        let mac = r.mac();
        assert_eq!(mac[0] & 0x03, 0x02);
    }
}
