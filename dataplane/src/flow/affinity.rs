//! Endpoints a worker has claimed for the flows it expects: the media of a call whose
//! signalling it follows, an incoming call to a phone whose registration it saw. Symmetric RSS
//! (or the NAT steering) puts a call's media flow on whichever worker its tuple hashes to, but
//! the pinholes that admit it, and the NAT mappings its ports were rewritten to, are on the
//! worker that read the SDP: a worker that finds a new flow to or from an endpoint another
//! worker claimed hands the packet to that worker.
//!
//! Shared by every worker and lock-free: a fixed open-addressing table of atomics, each entry
//! written only by the worker that claims it, read by all without waiting. Reserved in `new`;
//! a full table refuses a claim (the caller counts it). Lookups probe a bounded number of
//! slots.
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Slots probed per lookup or claim.
const PROBES: usize = 16;
const EMPTY: u64 = 0;
/// A released slot: lookups probe past it, claims reuse it.
const GONE: u64 = u64::MAX;

/// The table key of an endpoint: protocol, IPv4 address and port (never `EMPTY` or `GONE`).
pub fn key(proto: u8, addr: [u8; 4], port: u16) -> u64 {
    1 << 56 | (proto as u64) << 48 | (port as u64) << 32 | u32::from_be_bytes(addr) as u64
}

struct Entry {
    key: AtomicU64,
    /// The claiming worker + 1 (0: none yet, or released).
    owner: AtomicU32,
}

/// The workers' claims.
pub struct Affinity {
    slots: Box<[Entry]>,
    mask: usize,
    live: AtomicUsize,
}

impl Affinity {
    /// Room for about `claims` endpoints.
    pub fn new(claims: usize) -> Affinity {
        let n = (claims.max(16) * 2).next_power_of_two();
        Affinity {
            slots: (0..n)
                .map(|_| Entry {
                    key: AtomicU64::new(EMPTY),
                    owner: AtomicU32::new(0),
                })
                .collect(),
            mask: n - 1,
            live: AtomicUsize::new(0),
        }
    }

    /// No endpoint is claimed (the common case: skip the lookups).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live.load(Ordering::Relaxed) == 0
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & self.mask
    }

    /// The slots `key` may be in, in probe order.
    #[inline]
    fn entries(&self, key: u64) -> impl Iterator<Item = &Entry> {
        let s = self.start(key);
        (0..PROBES).map(move |k| &self.slots[(s + k) & self.mask])
    }

    /// The slots holding `key` (the probe ends at an empty slot).
    #[inline]
    fn holding(&self, key: u64) -> impl Iterator<Item = &Entry> {
        self.entries(key)
            .map(|e| (e, e.key.load(Ordering::Acquire)))
            .take_while(|&(_, k)| k != EMPTY)
            .filter(move |&(_, k)| k == key)
            .map(|(e, _)| e)
    }

    /// The worker that claimed `key`, if one did.
    #[inline]
    pub fn owner(&self, key: u64) -> Option<usize> {
        self.holding(key)
            .find_map(|e| match e.owner.load(Ordering::Acquire) {
                0 => None,
                o => Some(o as usize - 1),
            })
    }

    /// Claims `key` for `worker` (taking it over from another worker that claimed it: the
    /// latest call's worker wins). False when the table has no room near its place.
    pub fn claim(&self, key: u64, worker: usize) -> bool {
        let me = worker as u32 + 1;
        if let Some(e) = self.holding(key).next() {
            if e.owner.swap(me, Ordering::AcqRel) == 0 {
                self.live.fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        for e in self.entries(key) {
            for free in [EMPTY, GONE] {
                if e.key
                    .compare_exchange(free, key, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    e.owner.store(me, Ordering::Release);
                    self.live.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            }
        }
        false
    }

    /// Gives up `worker`'s claim of `key` (a claim another worker took over stays).
    pub fn release(&self, key: u64, worker: usize) {
        let me = worker as u32 + 1;
        if let Some(e) = self.holding(key).find(|e| Self::give_up(e, me)) {
            e.key.store(GONE, Ordering::Release);
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Clears `e`'s owner if it is `me` (worker + 1).
    fn give_up(e: &Entry, me: u32) -> bool {
        e.owner
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_found_released_and_taken_over() {
        let a = Affinity::new(64);
        assert!(a.is_empty());
        let k = key(17, [10, 0, 0, 1], 40000);
        assert_eq!(a.owner(k), None);
        assert!(a.claim(k, 1));
        assert_eq!(a.owner(k), Some(1));
        assert!(!a.is_empty());
        // Another worker's release does not touch it; its own does.
        a.release(k, 0);
        assert_eq!(a.owner(k), Some(1));
        a.release(k, 1);
        assert_eq!(a.owner(k), None);
        assert!(a.is_empty());
        // Taken over: the old owner's release leaves the new claim.
        assert!(a.claim(k, 0));
        assert!(a.claim(k, 1));
        a.release(k, 0);
        assert_eq!(a.owner(k), Some(1));
        a.release(k, 1);
        assert!(a.is_empty());
    }

    #[test]
    fn a_full_neighbourhood_refuses_and_released_slots_are_reused() {
        let a = Affinity::new(16);
        let keys: Vec<u64> = (0..40u16).map(|p| key(17, [10, 0, 0, 1], p)).collect();
        let claimed: Vec<bool> = keys.iter().map(|&k| a.claim(k, 0)).collect();
        assert!(claimed.iter().filter(|&&c| c).count() <= 32);
        for (k, &c) in keys.iter().zip(&claimed) {
            assert_eq!(a.owner(*k).is_some(), c);
        }
        for (k, &c) in keys.iter().zip(&claimed) {
            if c {
                a.release(*k, 0);
            }
        }
        assert!(a.is_empty());
        assert!(keys.iter().take(16).all(|&k| a.claim(k, 1)));
    }

    #[test]
    fn workers_claim_at_once_without_losing_one() {
        let a = std::sync::Arc::new(Affinity::new(4096));
        let threads: Vec<_> = (0..4)
            .map(|w| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for p in 0..500u16 {
                        assert!(a.claim(key(17, [10, 0, w as u8, 1], p), w));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for w in 0..4usize {
            for p in 0..500u16 {
                assert_eq!(a.owner(key(17, [10, 0, w as u8, 1], p)), Some(w));
            }
        }
    }
}
