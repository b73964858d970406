//! The neighbour (ARP) cache of one worker: resolved entries with an expiry, and pending
//! resolutions holding the newest packet that waits for them. Bounded; allocates only in `new`.
use crate::packet::MacAddr;
use aperture_dpdk::Mbuf;
use std::net::Ipv4Addr;

pub enum State {
    Resolved(MacAddr),
    /// ARP request sent at `asked_ns`; `held` is the newest packet waiting.
    Incomplete {
        asked_ns: u64,
        held: Option<Mbuf>,
    },
}

pub struct Neighbour {
    pub ip: Ipv4Addr,
    pub port: usize,
    pub state: State,
    pub updated_ns: u64,
}

pub struct NeighbourCache {
    entries: Vec<Neighbour>,
    capacity: usize,
    ttl_ns: u64,
}

/// What a lookup found.
pub enum Lookup {
    Mac(MacAddr),
    /// Not resolved (yet): the caller hands over the packet to hold.
    Pending,
}

impl NeighbourCache {
    pub fn new(capacity: usize, ttl_s: u32) -> NeighbourCache {
        NeighbourCache {
            entries: Vec::with_capacity(capacity),
            capacity,
            ttl_ns: ttl_s as u64 * 1_000_000_000,
        }
    }

    fn find(&mut self, ip: Ipv4Addr) -> Option<&mut Neighbour> {
        self.entries.iter_mut().find(|n| n.ip == ip)
    }

    /// The MAC of `ip` if resolved and fresh.
    pub fn lookup(&mut self, ip: Ipv4Addr, now_ns: u64) -> Lookup {
        let ttl = self.ttl_ns;
        match self.find(ip) {
            Some(Neighbour {
                state: State::Resolved(mac),
                updated_ns,
                ..
            }) if now_ns.saturating_sub(*updated_ns) < ttl => Lookup::Mac(*mac),
            _ => Lookup::Pending,
        }
    }

    /// Holds `m` until `ip` resolves. Returns (packet that it replaces, whether an ARP
    /// request should be sent now: first time, or a second since the last one).
    pub fn hold(
        &mut self,
        ip: Ipv4Addr,
        port: usize,
        m: Mbuf,
        now_ns: u64,
    ) -> (Option<Mbuf>, bool) {
        if let Some(n) = self.find(ip) {
            match &mut n.state {
                State::Incomplete { asked_ns, held } => {
                    let ask = now_ns.saturating_sub(*asked_ns) >= 1_000_000_000;
                    if ask {
                        *asked_ns = now_ns;
                    }
                    return (held.replace(m), ask);
                }
                State::Resolved(_) => {
                    // Stale: re-resolve.
                    n.state = State::Incomplete {
                        asked_ns: now_ns,
                        held: Some(m),
                    };
                    n.port = port;
                    return (None, true);
                }
            }
        }
        let dropped = self.make_room();
        self.entries.push(Neighbour {
            ip,
            port,
            state: State::Incomplete {
                asked_ns: now_ns,
                held: Some(m),
            },
            updated_ns: now_ns,
        });
        (dropped, true)
    }

    /// Records `ip` at `mac` (from an ARP packet addressed to us). Returns a held packet that
    /// can go now, with the port it waited for.
    pub fn learn(
        &mut self,
        ip: Ipv4Addr,
        mac: MacAddr,
        port: usize,
        now_ns: u64,
    ) -> Option<(Mbuf, usize)> {
        if let Some(n) = self.find(ip) {
            let old = std::mem::replace(&mut n.state, State::Resolved(mac));
            n.updated_ns = now_ns;
            let p = n.port;
            n.port = port;
            if let State::Incomplete { held: Some(m), .. } = old {
                return Some((m, p));
            }
            return None;
        }
        // A packet still held by an evicted entry is dropped with it (counted by the caller
        // only through the absence of a tx; rare and bounded by the cache size).
        drop(self.make_room());
        self.entries.push(Neighbour {
            ip,
            port,
            state: State::Resolved(mac),
            updated_ns: now_ns,
        });
        None
    }

    /// Refreshes an entry that already exists (RFC 826 "merge"), without creating one.
    pub fn refresh(&mut self, ip: Ipv4Addr, mac: MacAddr, now_ns: u64) -> Option<(Mbuf, usize)> {
        if self.find(ip).is_some() {
            let port = self.find(ip).map(|n| n.port).unwrap_or(0);
            return self.learn(ip, mac, port, now_ns);
        }
        None
    }

    /// Evicts the least recently updated entry if full; returns its held packet.
    fn make_room(&mut self) -> Option<Mbuf> {
        if self.entries.len() < self.capacity {
            return None;
        }
        let i = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| n.updated_ns)
            .map(|(i, _)| i)?;
        match self.entries.swap_remove(i).state {
            State::Incomplete { held, .. } => held,
            State::Resolved(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
