//! Admission of new flows: limits per source address and per zone on the flows held and on
//! new flows per second, so one host (or one zone, a guest network) cannot take the whole
//! table. Owned by the flow table; consulted only on the slow path (a flow's first packet).
//!
//! Sources are counted exactly: a table of the addresses that hold flows, as large as the
//! flow table (every flow has one source), keyed by the table's secret hash. A source's entry
//! goes when its last flow ends. Rates are a GCRA (a virtual scheduling time per source and
//! per zone): a burst of one second's worth is admitted at once, then one flow per interval.
//! Zones count their flows through the ports flows came in on, so a reloaded policy that moves
//! a port to another zone counts that port's flows there at once.
use crate::packet::IpAddr16;
use hashbrown::HashTable;

const NIL: u32 = u32::MAX;
/// Ports a flow may come in on (`FlowPolicy::ports` is a `u8`).
const PORTS: usize = 256;
/// `Policy::zone_of_port` of a port in no zone.
pub const NO_ZONE: u8 = u8::MAX;
const SECOND: u64 = 1_000_000_000;

/// Limits on new flows, per worker (dataplane.yaml `flow-table.per-source`, policy.yaml
/// zones' `limits`, divided by the workers). 0 is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    /// Flows held at once.
    pub flows: u32,
    /// New flows per second (a second's worth may come at once).
    pub per_second: u32,
}

impl Limit {
    pub fn is_none(&self) -> bool {
        self.flows == 0 && self.per_second == 0
    }

    /// This limit shared by `workers`: each enforces its part, rounded down (never more than
    /// the whole in total) but never to 0, which would mean no limit.
    pub fn per_worker(self, workers: usize) -> Limit {
        let part = |v: u32| {
            if v == 0 {
                0
            } else {
                (v / workers.max(1) as u32).max(1)
            }
        };
        Limit {
            flows: part(self.flows),
            per_second: part(self.per_second),
        }
    }
}

/// Why a new flow was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The table is full and every flow in it has been answered (none may be evicted for a
    /// flow that has not).
    TableFull,
    /// Its source holds its limit of flows, or opens them faster than its rate.
    Source,
    /// The same for the zone it came in from.
    Zone,
}

/// A GCRA: admits when the virtual time is at most a second (minus one interval) ahead.
#[derive(Clone, Copy, Debug, Default)]
struct Rate {
    tat: u64,
}

impl Rate {
    fn admit(&mut self, per_second: u32, now: u64) -> bool {
        if per_second == 0 {
            return true;
        }
        let interval = SECOND / per_second as u64;
        let tat = self.tat.max(now);
        if tat - now > SECOND - interval.min(SECOND) {
            return false;
        }
        self.tat = tat + interval.max(1);
        true
    }
}

#[derive(Clone, Copy, Debug)]
struct Source {
    addr: IpAddr16,
    hash: u64,
    flows: u32,
    rate: Rate,
}

#[derive(Clone, Copy, Debug, Default)]
struct Zone {
    limit: Limit,
    rate: Rate,
}

pub struct Admission {
    source_limit: Limit,
    /// Entry indices of `sources`, by the hash of the address.
    index: HashTable<u32>,
    sources: Vec<Source>,
    free: Vec<u32>,
    /// Per flow slot: its source's entry (`NIL`: not counted) and its port.
    source_of: Vec<u32>,
    port_of: Vec<u8>,
    /// Admitted flows held per port, and each port's zone (the running policy's).
    port_flows: [u32; PORTS],
    zone_of_port: [u8; PORTS],
    ports: usize,
    zones: [Zone; PORTS],
}

impl Admission {
    /// Bytes per flow of capacity when sources are limited (an entry, its index slot, the
    /// per-slot links), and when not (the links).
    pub fn bytes_per_flow(sources_limited: bool) -> usize {
        let links = std::mem::size_of::<u32>() + 1;
        if sources_limited {
            links
                + std::mem::size_of::<Source>()
                + std::mem::size_of::<u32>() * 2
                + (std::mem::size_of::<u32>() + 1) * 8 / 7
        } else {
            links
        }
    }

    pub fn new(capacity: usize, source_limit: Limit) -> Admission {
        let n = if source_limit.is_none() { 0 } else { capacity };
        Admission {
            source_limit,
            index: HashTable::with_capacity(n),
            sources: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            source_of: vec![NIL; capacity],
            port_of: vec![0; capacity],
            port_flows: [0; PORTS],
            zone_of_port: [NO_ZONE; PORTS],
            ports: 0,
            zones: [Zone::default(); PORTS],
        }
    }

    /// The running policy's zones: each port's zone, and each zone's limit. Rate state starts
    /// again; flows held are kept (counted by port).
    pub fn set_zones(&mut self, zone_of_port: &[u8], limits: &[Limit]) {
        self.zone_of_port = [NO_ZONE; PORTS];
        self.ports = zone_of_port.len().min(PORTS);
        self.zone_of_port[..self.ports].copy_from_slice(&zone_of_port[..self.ports]);
        self.zones = [Zone::default(); PORTS];
        for (z, l) in self.zones.iter_mut().zip(limits) {
            z.limit = *l;
        }
    }

    /// Whether a flow from `src` (hash `hash`) coming in on `port` may start at `now`; when
    /// it may, the rates are charged (`admitted` then records it).
    pub fn check(&mut self, src: &IpAddr16, hash: u64, port: u8, now: u64) -> Result<(), Refusal> {
        let zone = self.zone_of_port[port as usize];
        if zone != NO_ZONE {
            let l = self.zones[zone as usize].limit;
            if l.flows != 0 {
                let held: u32 = (0..self.ports)
                    .filter(|&p| self.zone_of_port[p] == zone)
                    .map(|p| self.port_flows[p])
                    .sum();
                if held >= l.flows {
                    return Err(Refusal::Zone);
                }
            }
        }
        if !self.source_limit.is_none() {
            if let Some(&e) = self
                .index
                .find(hash, |&e| self.sources[e as usize].addr == *src)
            {
                let s = &mut self.sources[e as usize];
                let l = self.source_limit;
                if (l.flows != 0 && s.flows >= l.flows) || !s.rate.admit(l.per_second, now) {
                    return Err(Refusal::Source);
                }
            }
        }
        if zone != NO_ZONE {
            let z = &mut self.zones[zone as usize];
            if !z.rate.admit(z.limit.per_second, now) {
                return Err(Refusal::Zone);
            }
        }
        Ok(())
    }

    /// Flow `slot` from `src` started on `port` (after `check`, or without one for a flow
    /// that replaces another).
    pub fn admitted(&mut self, slot: u32, src: &IpAddr16, hash: u64, port: u8, now: u64) {
        self.port_of[slot as usize] = port;
        self.port_flows[port as usize] += 1;
        if self.source_limit.is_none() {
            return;
        }
        let e = match self
            .index
            .find(hash, |&e| self.sources[e as usize].addr == *src)
        {
            Some(&e) => e,
            None => {
                let mut rate = Rate::default();
                rate.admit(self.source_limit.per_second, now);
                let s = Source {
                    addr: *src,
                    hash,
                    flows: 0,
                    rate,
                };
                let e = match self.free.pop() {
                    Some(e) => {
                        self.sources[e as usize] = s;
                        e
                    }
                    // Within the capacity reserved in `new`: one source per flow at most.
                    None => {
                        self.sources.push(s);
                        self.sources.len() as u32 - 1
                    }
                };
                let sources = &self.sources;
                self.index
                    .insert_unique(hash, e, |&e| sources[e as usize].hash);
                e
            }
        };
        self.sources[e as usize].flows += 1;
        self.source_of[slot as usize] = e;
    }

    /// Flow `slot` ended.
    pub fn released(&mut self, slot: u32) {
        let port = self.port_of[slot as usize] as usize;
        self.port_flows[port] = self.port_flows[port].saturating_sub(1);
        let e = std::mem::replace(&mut self.source_of[slot as usize], NIL);
        if e == NIL {
            return;
        }
        let s = &mut self.sources[e as usize];
        s.flows -= 1;
        if s.flows == 0 {
            if let Ok(entry) = self.index.find_entry(s.hash, |&x| x == e) {
                entry.remove();
            }
            self.free.push(e);
        }
    }

    /// Whether sources are limited (their addresses counted).
    #[inline]
    pub fn limits_sources(&self) -> bool {
        !self.source_limit.is_none()
    }

    /// Sources holding flows now.
    pub fn sources(&self) -> usize {
        self.sources.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> IpAddr16 {
        IpAddr16::from_v4([10, 0, 0, i])
    }

    #[test]
    fn a_source_holds_at_most_its_flows_and_gets_them_back() {
        let mut a = Admission::new(
            8,
            Limit {
                flows: 2,
                per_second: 0,
            },
        );
        let (x, y) = (addr(1), addr(2));
        for slot in 0..2 {
            assert_eq!(a.check(&x, 1, 0, 0), Ok(()));
            a.admitted(slot, &x, 1, 0, 0);
        }
        assert_eq!(a.check(&x, 1, 0, 0), Err(Refusal::Source));
        assert_eq!(
            a.check(&y, 2, 0, 0),
            Ok(()),
            "another source is not limited"
        );
        a.released(0);
        assert_eq!(a.check(&x, 1, 0, 0), Ok(()));
        a.released(1);
        assert_eq!(a.sources(), 0, "a source with no flows leaves the table");
    }

    #[test]
    fn a_colliding_hash_is_still_another_source() {
        let mut a = Admission::new(
            8,
            Limit {
                flows: 1,
                per_second: 0,
            },
        );
        a.admitted(0, &addr(1), 7, 0, 0);
        assert_eq!(a.check(&addr(2), 7, 0, 0), Ok(()));
        a.admitted(1, &addr(2), 7, 0, 0);
        assert_eq!(a.sources(), 2);
        assert_eq!(a.check(&addr(1), 7, 0, 0), Err(Refusal::Source));
    }

    #[test]
    fn the_rate_admits_a_seconds_burst_then_one_per_interval() {
        let mut a = Admission::new(
            64,
            Limit {
                flows: 0,
                per_second: 10,
            },
        );
        let x = addr(1);
        let mut admitted = 0;
        for slot in 0..20 {
            if a.check(&x, 1, 0, 0).is_ok() {
                a.admitted(slot, &x, 1, 0, 0);
                admitted += 1;
            }
        }
        assert_eq!(admitted, 10, "one second's worth at once");
        assert_eq!(a.check(&x, 1, 0, 50_000_000), Err(Refusal::Source));
        assert_eq!(
            a.check(&x, 1, 0, 100_000_000),
            Ok(()),
            "one more per 100 ms"
        );
    }

    #[test]
    fn zones_count_the_flows_of_their_ports() {
        let mut a = Admission::new(8, Limit::default());
        // Ports 0 and 1 in zone 0 (3 flows), port 2 in zone 1 (no limit).
        a.set_zones(
            &[0, 0, 1],
            &[
                Limit {
                    flows: 3,
                    per_second: 0,
                },
                Limit::default(),
            ],
        );
        for (slot, port) in [(0, 0), (1, 1), (2, 0)] {
            assert_eq!(a.check(&addr(slot as u8), 0, port, 0), Ok(()));
            a.admitted(slot, &addr(slot as u8), 0, port, 0);
        }
        assert_eq!(a.check(&addr(9), 0, 1, 0), Err(Refusal::Zone));
        assert_eq!(a.check(&addr(9), 0, 2, 0), Ok(()));
        // Port 1 moves to zone 1: zone 0 holds 2 now.
        a.set_zones(
            &[0, 1, 1],
            &[
                Limit {
                    flows: 3,
                    per_second: 0,
                },
                Limit::default(),
            ],
        );
        assert_eq!(a.check(&addr(9), 0, 0, 0), Ok(()));
        a.released(1);
        a.released(0);
        a.released(2);
        assert_eq!(a.port_flows[..3], [0, 0, 0]);
    }

    #[test]
    fn limits_are_shared_by_workers_never_to_zero() {
        let l = Limit {
            flows: 5,
            per_second: 1,
        };
        assert_eq!(
            l.per_worker(2),
            Limit {
                flows: 2,
                per_second: 1
            }
        );
        assert_eq!(Limit::default().per_worker(4), Limit::default());
    }
}
