//! Per-worker counters and the shared-memory stats segment.
//!
//! A worker counts into a plain `Counters` array it owns (no atomics on the packet path) and
//! publishes it to its block of the segment every `publish-ms` with a sequence counter around
//! the copy (a seqlock): readers in other processes retry until they see the same even
//! sequence before and after, so a snapshot is never torn and a worker never waits.
use crate::packet::Malformed;
use aperture_dpdk::shm::ShmSegment;
use std::path::Path;
use std::sync::atomic::{fence, Ordering};

/// Why the dataplane dropped a packet: one counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Malformed(Malformed),
    /// TTL/hop limit would reach 0 (routed).
    TtlExceeded,
    /// No route to the destination (routed).
    NoRoute,
    /// The next hop did not answer ARP in time, or a newer packet replaced this one (routed).
    NeighbourUnresolved,
    /// Addressed to the appliance itself but not something it answers (routed).
    LocalDelivery,
    /// Neither IPv4 nor ARP on a routed port (IPv6 routing is not implemented yet).
    NotRoutable,
    /// A port with no virtual-wire peer.
    NoEgress,
    /// The tx queue refused the packet.
    TxFull,
    /// A unicast frame for another MAC address on a routed port.
    NotOurMac,
    /// A packet of a flow the policy stopped (deny, drop, reset), or of a flow no rule can
    /// allow.
    Policy,
}

const FIXED: usize = 19;

/// Counter names, index order. The first `FIXED` are general; drop reasons follow.
pub const GENERAL: [&str; FIXED] = [
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "drop_packets",
    "drop_bytes",
    "flows_created",
    "flows_expired",
    "flows_evicted",
    "flows_active",
    "flow_log_lost",
    "arp_replies_sent",
    "arp_requests_sent",
    "non_ip_packets",
    "fragments",
    "bursts",
    "local_packets",
    "flows_denied",
    "resets_sent",
];

/// Index of each general counter.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum C {
    RxPackets,
    RxBytes,
    TxPackets,
    TxBytes,
    DropPackets,
    DropBytes,
    FlowsCreated,
    FlowsExpired,
    FlowsEvicted,
    FlowsActive,
    FlowLogLost,
    ArpRepliesSent,
    ArpRequestsSent,
    NonIpPackets,
    Fragments,
    Bursts,
    /// Packets the appliance consumed itself (ARP for its addresses).
    LocalPackets,
    /// Flows the policy stopped (deny, drop or reset), once each.
    FlowsDenied,
    /// TCP resets and ICMP unreachables sent for `reset` rules.
    ResetsSent,
}

const OTHER_DROPS: [(DropReason, &str); 9] = [
    (DropReason::TtlExceeded, "ttl-exceeded"),
    (DropReason::NoRoute, "no-route"),
    (DropReason::NeighbourUnresolved, "neighbour-unresolved"),
    (DropReason::LocalDelivery, "local-delivery"),
    (DropReason::NotRoutable, "not-routable"),
    (DropReason::NoEgress, "no-egress"),
    (DropReason::TxFull, "tx-full"),
    (DropReason::NotOurMac, "not-our-mac"),
    (DropReason::Policy, "policy"),
];

/// Number of counters per worker.
pub const N: usize = FIXED + Malformed::ALL.len() + OTHER_DROPS.len();

impl DropReason {
    /// Counter index of this reason.
    pub fn index(self) -> usize {
        match self {
            DropReason::Malformed(m) => FIXED + m as usize,
            other => {
                let pos = OTHER_DROPS
                    .iter()
                    .position(|(r, _)| *r == other)
                    .unwrap_or(0);
                FIXED + Malformed::ALL.len() + pos
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed(m) => m.name(),
            other => OTHER_DROPS
                .iter()
                .find(|(r, _)| *r == other)
                .map_or("unknown", |(_, n)| n),
        }
    }
}

/// Drop reason of counter index `i`, if it is one.
pub fn drop_reason_name(i: usize) -> Option<&'static str> {
    if i < FIXED {
        return None;
    }
    let j = i - FIXED;
    Malformed::ALL.get(j).map(|m| m.name()).or_else(|| {
        OTHER_DROPS
            .get(j - Malformed::ALL.len().min(j))
            .map(|(_, n)| *n)
            .filter(|_| j >= Malformed::ALL.len())
    })
}

/// A worker's counters, owned by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; N]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; N])
    }
}

impl Counters {
    #[inline]
    pub fn add(&mut self, c: C, v: u64) {
        self.0[c as usize] += v;
    }
    #[inline]
    pub fn get(&self, c: C) -> u64 {
        self.0[c as usize]
    }
    #[inline]
    pub fn set(&mut self, c: C, v: u64) {
        self.0[c as usize] = v;
    }
    #[inline]
    pub fn drop(&mut self, r: DropReason, bytes: u32) {
        self.0[C::DropPackets as usize] += 1;
        self.0[C::DropBytes as usize] += bytes as u64;
        self.0[r.index()] += 1;
    }
    pub fn drops(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }
    /// (name, count) of every drop reason with a non-zero count.
    pub fn drops_by_reason(&self) -> Vec<(&'static str, u64)> {
        (FIXED..N)
            .filter(|&i| self.0[i] > 0)
            .filter_map(|i| drop_reason_name(i).map(|n| (n, self.0[i])))
            .collect()
    }
    pub fn merge(&mut self, o: &Counters) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }
}

/// Segment layout: a header of `HEADER_WORDS` words, then one block per worker of
/// `BLOCK_WORDS` words: [sequence, counters..., padding to a cache-line multiple].
const MAGIC: u64 = u64::from_be_bytes(*b"APSTATS1");
const HEADER_WORDS: usize = 8;
pub const BLOCK_WORDS: usize = (1 + N).div_ceil(8) * 8;

/// The writer side of the segment, owned by the dataplane.
pub struct StatsSegment {
    shm: ShmSegment,
    workers: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("stats segment {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("stats segment {path} is not an Aperture segment of this version")]
    Layout { path: String },
    #[error("stats segment {path}: worker {worker} did not publish a consistent snapshot")]
    Busy { path: String, worker: usize },
}

impl StatsSegment {
    pub fn create(path: &Path, workers: usize) -> Result<StatsSegment, StatsError> {
        let io = |source| StatsError::Io {
            path: path.display().to_string(),
            source,
        };
        let shm = ShmSegment::create(path, HEADER_WORDS + workers * BLOCK_WORDS).map_err(io)?;
        let w = shm.words().expect("created read-write");
        w[1].store(N as u64, Ordering::Relaxed);
        w[2].store(workers as u64, Ordering::Relaxed);
        w[3].store(BLOCK_WORDS as u64, Ordering::Relaxed);
        w[0].store(MAGIC, Ordering::Release);
        Ok(StatsSegment { shm, workers })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Publishes worker `w`'s counters (seqlock write side; never blocks).
    pub fn publish(&self, w: usize, c: &Counters) {
        let words = self.shm.words().expect("created read-write");
        let base = HEADER_WORDS + w * BLOCK_WORDS;
        let Some(block) = words.get(base..base + 1 + N) else {
            return;
        };
        let seq = block[0].load(Ordering::Relaxed);
        block[0].store(seq | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (d, s) in block[1..].iter().zip(c.0.iter()) {
            d.store(*s, Ordering::Relaxed);
        }
        block[0].store((seq | 1) + 1, Ordering::Release);
    }

    pub fn path(&self) -> &Path {
        self.shm.path()
    }
}

/// Reads a consistent snapshot of every worker's counters from a segment file (the reader
/// side: the control plane, `--stats`).
pub fn read_snapshot(path: &Path) -> Result<Vec<Counters>, StatsError> {
    let shm = ShmSegment::open(path).map_err(|source| StatsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let bad = || StatsError::Layout {
        path: path.display().to_string(),
    };
    if shm.load(0, Ordering::Acquire) != MAGIC
        || shm.load(1, Ordering::Relaxed) != N as u64
        || shm.load(3, Ordering::Relaxed) != BLOCK_WORDS as u64
    {
        return Err(bad());
    }
    let workers = shm.load(2, Ordering::Relaxed) as usize;
    if shm.len() < HEADER_WORDS + workers * BLOCK_WORDS {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(workers);
    for w in 0..workers {
        let base = HEADER_WORDS + w * BLOCK_WORDS;
        let mut c = Counters::default();
        let mut ok = false;
        // A writer preempted mid-publication holds the sequence odd until it runs again: keep
        // trying (yielding the CPU to it) for up to a second before calling the segment busy.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        for attempt in 0u64.. {
            if attempt % 64 == 63 {
                if std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::yield_now();
            }
            let s1 = shm.load(base, Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (i, v) in c.0.iter_mut().enumerate() {
                *v = shm.load(base + 1 + i, Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if shm.load(base, Ordering::Relaxed) == s1 {
                ok = true;
                break;
            }
        }
        if !ok {
            return Err(StatsError::Busy {
                path: path.display().to_string(),
                worker: w,
            });
        }
        out.push(c);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_a_distinct_name() {
        let mut names: Vec<&str> = GENERAL.to_vec();
        for i in FIXED..N {
            names.push(drop_reason_name(i).expect("every index past FIXED is a drop reason"));
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), N);
        for (r, n) in OTHER_DROPS {
            assert_eq!(drop_reason_name(r.index()), Some(n));
        }
        for m in Malformed::ALL {
            assert_eq!(
                drop_reason_name(DropReason::Malformed(m).index()),
                Some(m.name())
            );
        }
    }

    #[test]
    fn snapshot_roundtrip_and_consistency_under_concurrent_publishing() {
        let path = std::env::temp_dir().join(format!("aperture-stats-test-{}", std::process::id()));
        let seg = std::sync::Arc::new(StatsSegment::create(&path, 2).unwrap());
        let w = seg.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut c = Counters::default();
            let mut i = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                i += 1;
                // All counters equal within one publication: a torn read would show a mix.
                c.0 = [i; N];
                w.publish(1, &c);
                // Publish every few microseconds: 10^4 times more often than the dataplane does.
                let t = std::time::Instant::now();
                while t.elapsed() < std::time::Duration::from_micros(5) {
                    std::hint::spin_loop();
                }
            }
        });
        for _ in 0..2000 {
            let snap = read_snapshot(&path).unwrap();
            assert_eq!(snap.len(), 2);
            let v = snap[1].0[0];
            assert!(snap[1].0.iter().all(|x| *x == v), "torn snapshot");
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        let mut c = Counters::default();
        c.drop(DropReason::NoRoute, 60);
        seg.publish(0, &c);
        let snap = read_snapshot(&path).unwrap();
        assert_eq!(snap[0].drops(DropReason::NoRoute), 1);
        assert_eq!(snap[0].drops_by_reason(), vec![("no-route", 1)]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let path =
            std::env::temp_dir().join(format!("aperture-stats-foreign-{}", std::process::id()));
        std::fs::write(&path, [7u8; 4096]).unwrap();
        assert!(matches!(
            read_snapshot(&path),
            Err(StatsError::Layout { .. })
        ));
        std::fs::remove_file(&path).unwrap();
    }
}
