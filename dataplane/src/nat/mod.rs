//! NAT44: the policy's NAT rules (compiled in `policy`), each worker's bindings and
//! endpoint-independent mappings, and the in-place rewrite (`rewrite`).
//!
//! A translated flow keeps its own key (the tuple its originator sent) and gets a second key
//! in the flow table (the tuple on the other side of the translation), so both directions
//! find it with one lookup. Per flow slot a `Binding` says what each direction's packets
//! become. Source NAT (dynamic IP and port, to an interface address or a pool) makes a
//! `Mapping` per inside endpoint (protocol, address, port) shared by all of that endpoint's
//! flows whatever their destination (endpoint-independent mapping, RFC 4787 REQ-1 / RFC 5382
//! REQ-1), so an address learnt through STUN stays valid. An outside host may open a new
//! flow to a mapping only if the inside endpoint has sent to its address
//! (address-dependent filtering, RFC 4787 REQ-8's recommended default).
//!
//! External ports are taken from this worker's share of 1024-65535 (`PortRange::of_worker`), so
//! that return traffic to a port belongs to the worker that made its mapping. Everything is
//! reserved at start: making a binding or a mapping allocates nothing, and running out of
//! ports is a counted refusal.
pub mod rewrite;

use crate::flow::{Dir, FlowTable, Slot};
use crate::packet::{proto, Headers, IpAddr16};
use hashbrown::HashTable;
pub mod steer;
pub use rewrite::{rewrite, rewrite_error, Tuple, Unrewritable};

/// A compiled NAT rule: what it matches (the original packet: zones, addresses, service) and
/// what it translates. First match wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatRule {
    pub name: String,
    /// Zone masks (`u64::MAX`: any). `to` is the zone of the egress port the original
    /// destination routes to (the ingress port for the appliance's own addresses).
    pub from: u64,
    pub to: u64,
    /// Inclusive IPv4 ranges (None: any).
    pub src: Option<Vec<(u32, u32)>>,
    pub dst: Option<Vec<(u32, u32)>>,
    /// Protocol and destination port ranges (empty: any).
    pub service: Vec<(u8, u16, u16)>,
    pub source: SourceNat,
    pub destination: Option<DestinationNat>,
}

/// Source translation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceNat {
    None,
    /// Dynamic IP and port to the address of this dataplane port's interface.
    Interface(usize),
    /// Dynamic IP and port to a pool of addresses; an inside address always gets the same
    /// one (paired pooling, RFC 4787 REQ-2).
    Pool(Vec<u32>),
    /// One-to-one: `original` prefix onto `translated` (same length), ports unchanged;
    /// `bidirectional` also translates flows from outside to the translated addresses.
    Static {
        original: u32,
        translated: u32,
        len: u8,
        bidirectional: bool,
    },
}

/// What a new flow's source becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Keep,
    /// This address, the port kept (static NAT).
    Address(u32),
    /// This external address with a port from the worker's range, through the inside
    /// endpoint's mapping (dynamic IP and port).
    Dynamic(u32),
}

/// Destination translation (port forwarding): the original destination becomes `address`
/// (and `port`, when given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationNat {
    pub address: u32,
    pub port: Option<u16>,
}

/// What a NAT rule is matched against: the first packet of a flow.
#[derive(Clone, Copy, Debug)]
pub struct NatSubject {
    pub from_zone: u8,
    pub to_zone: u8,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub dst_port: u16,
}

fn zone_in(mask: u64, zone: u8) -> bool {
    mask == u64::MAX || (zone < 64 && mask & (1 << zone) != 0)
}

fn in_ranges(r: &Option<Vec<(u32, u32)>>, a: u32) -> bool {
    r.as_ref()
        .is_none_or(|v| v.iter().any(|&(lo, hi)| lo <= a && a <= hi))
}

impl NatRule {
    pub fn matches(&self, s: &NatSubject) -> bool {
        zone_in(self.from, s.from_zone)
            && zone_in(self.to, s.to_zone)
            && in_ranges(&self.src, s.src)
            && in_ranges(&self.dst, s.dst)
            && (self.service.is_empty()
                || self
                    .service
                    .iter()
                    .any(|&(p, lo, hi)| p == s.proto && lo <= s.dst_port && s.dst_port <= hi))
    }
}

/// The external ports a worker gives out: worker `i` of `n` owns the `i`-th of `n` equal
/// slices of 1024-65535 (return traffic is steered to a port's owner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const FIRST: u16 = 1024;

    pub fn of_worker(i: usize, n: usize) -> PortRange {
        let n = n.max(1);
        let span = (65536 - PortRange::FIRST as usize) / n;
        let lo = PortRange::FIRST as usize + i.min(n - 1) * span;
        let hi = if i + 1 >= n { 65535 } else { lo + span - 1 };
        PortRange {
            lo: lo as u16,
            hi: hi as u16,
        }
    }

    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    fn len(&self) -> u32 {
        (self.hi - self.lo) as u32 + 1
    }

    /// The worker of `n` that owns port `p` (ports below 1024 belong to worker 0).
    pub fn owner(p: u16, n: usize) -> usize {
        let n = n.max(1);
        if p < PortRange::FIRST {
            return 0;
        }
        let span = (65536 - PortRange::FIRST as usize) / n;
        ((p - PortRange::FIRST) as usize / span).min(n - 1)
    }
}

/// What a translated flow's packets become, per direction (`Dir` index), and its mapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    pub to: [Tuple; 2],
    /// Index of the source-NAT mapping the flow holds (`NO_MAPPING`: none).
    mapping: u32,
    /// The NAT rule that made it (index in the policy that was running).
    pub rule: u16,
}

const NO_MAPPING: u32 = u32::MAX;
/// Outside addresses a mapping remembers having sent to (address-dependent filtering); a
/// mapping that sent to more remembers the latest.
const REMOTES: usize = 6;
/// Candidate ports tried before a mapping is refused as exhausted.
const PROBES: u32 = 512;

/// An endpoint-independent mapping: an inside (address, port) seen outside as
/// (`ext`, `ext_port`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mapping {
    pub proto: u8,
    pub inside: u32,
    pub inside_port: u16,
    pub ext: u32,
    pub ext_port: u16,
    /// Flows (and ALG pinholes) using it; the mapping ends with its last.
    pub refs: u32,
    /// The outside addresses it sent to (0: unused).
    pub remotes: [u32; REMOTES],
    next_remote: u8,
    hash_in: u64,
    hash_out: u64,
}

/// NAT counters a worker publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    pub mappings_created: u64,
    pub mappings_active: u64,
    pub bindings_created: u64,
    /// No free external port within the probes.
    pub exhausted: u64,
    /// Inbound flows to a mapping from an address the inside endpoint never sent to.
    pub filtered: u64,
}

/// One worker's NAT state. Reserved at start for `flows` flows.
pub struct NatTable {
    bindings: Vec<Binding>,
    mappings: Vec<Mapping>,
    free: Vec<u32>,
    by_inside: HashTable<u32>,
    by_outside: HashTable<u32>,
    seeds: [u64; 2],
    pub ports: PortRange,
    pub counters: NatCounters,
}

fn mix(seeds: [u64; 2], a: u64, b: u64) -> u64 {
    let m = |x: u64, y: u64| {
        let r = (x as u128) * (y as u128);
        (r as u64) ^ ((r >> 64) as u64)
    };
    m(a ^ seeds[0], b ^ seeds[1] ^ 0x9e37_79b9_7f4a_7c15)
}

fn endpoint_word(proto_: u8, addr: u32, port: u16) -> u64 {
    (addr as u64) << 24 | (port as u64) << 8 | proto_ as u64
}

impl NatTable {
    pub fn new(flows: usize, ports: PortRange, seeds: [u64; 2]) -> NatTable {
        NatTable {
            bindings: vec![Binding::default(); flows],
            mappings: vec![Mapping::default(); flows],
            free: (0..flows as u32).rev().collect(),
            by_inside: HashTable::with_capacity(flows),
            by_outside: HashTable::with_capacity(flows),
            seeds,
            ports,
            counters: NatCounters::default(),
        }
    }

    /// Calls `f` with each live mapping until it returns false (off the packet path: `show
    /// nat`).
    pub fn visit_mappings(&self, f: &mut impl FnMut(&Mapping) -> bool) {
        for m in self.mappings.iter().filter(|m| m.refs > 0) {
            if !f(m) {
                return;
            }
        }
    }

    /// The binding of translated flow `slot`.
    #[inline(always)]
    pub fn binding(&self, slot: Slot) -> &Binding {
        &self.bindings[slot as usize]
    }

    /// The hash of an endpoint in the inside (`outside` false) or outside index.
    fn hash_of(&self, outside: bool, proto_: u8, addr: u32, port: u16) -> u64 {
        mix(
            self.seeds,
            endpoint_word(proto_, addr, port),
            1 + outside as u64,
        )
    }

    fn hash_in(&self, proto_: u8, addr: u32, port: u16) -> u64 {
        self.hash_of(false, proto_, addr, port)
    }

    fn hash_out(&self, proto_: u8, addr: u32, port: u16) -> u64 {
        self.hash_of(true, proto_, addr, port)
    }

    /// The mapping whose inside (`outside` false) or external endpoint is this one.
    fn find(&self, outside: bool, proto_: u8, addr: u32, port: u16) -> Option<u32> {
        let h = self.hash_of(outside, proto_, addr, port);
        let m = &self.mappings;
        let index = if outside {
            &self.by_outside
        } else {
            &self.by_inside
        };
        index
            .find(h, |&i| {
                let x = &m[i as usize];
                let (a, p) = if outside {
                    (x.ext, x.ext_port)
                } else {
                    (x.inside, x.inside_port)
                };
                x.proto == proto_ && a == addr && p == port
            })
            .copied()
    }

    fn find_inside(&self, proto_: u8, addr: u32, port: u16) -> Option<u32> {
        self.find(false, proto_, addr, port)
    }

    fn find_outside(&self, proto_: u8, addr: u32, port: u16) -> Option<u32> {
        self.find(true, proto_, addr, port)
    }

    /// The mapping of inside endpoint (`proto_`, `addr`, `port`) onto external address
    /// `ext`, made if there is none: the same port when it is this worker's and free, else
    /// the first free one from a hashed start. None when none is free within the probes.
    fn map(&mut self, proto_: u8, addr: u32, port: u16, ext: u32) -> Option<u32> {
        if let Some(i) = self.find_inside(proto_, addr, port) {
            if self.mappings[i as usize].ext == ext {
                return Some(i);
            }
        }
        let range = self.ports;
        // The inside port itself when it is free (port preservation), else probes from a
        // point the endpoint hashes to: many inside hosts on one port (every phone on 5060)
        // must not all probe the same run of ports.
        let mut chosen = (range.contains(port) && self.find_outside(proto_, ext, port).is_none())
            .then_some(port);
        let start =
            (mix(self.seeds, endpoint_word(proto_, addr, port), 3) % range.len() as u64) as u32;
        for k in 0..PROBES.min(range.len()) {
            if chosen.is_some() {
                break;
            }
            let p = range.lo as u32 + (start + k) % range.len();
            if self.find_outside(proto_, ext, p as u16).is_none() {
                chosen = Some(p as u16);
            }
        }
        let Some(ext_port) = chosen else {
            self.counters.exhausted += 1;
            return None;
        };
        let i = self.free.pop()?;
        let hash_in = self.hash_in(proto_, addr, port);
        let hash_out = self.hash_out(proto_, ext, ext_port);
        self.mappings[i as usize] = Mapping {
            proto: proto_,
            inside: addr,
            inside_port: port,
            ext,
            ext_port,
            refs: 0,
            remotes: [0; REMOTES],
            next_remote: 0,
            hash_in,
            hash_out,
        };
        let m = &self.mappings;
        self.by_inside
            .insert_unique(hash_in, i, |&j| m[j as usize].hash_in);
        self.by_outside
            .insert_unique(hash_out, i, |&j| m[j as usize].hash_out);
        self.counters.mappings_created += 1;
        self.counters.mappings_active += 1;
        Some(i)
    }

    fn remember_remote(&mut self, i: u32, remote: u32) {
        let m = &mut self.mappings[i as usize];
        if !m.remotes.contains(&remote) {
            m.remotes[m.next_remote as usize % REMOTES] = remote;
            m.next_remote = m.next_remote.wrapping_add(1);
        }
    }

    fn release_mapping(&mut self, i: u32) {
        let m = &mut self.mappings[i as usize];
        m.refs = m.refs.saturating_sub(1);
        if m.refs > 0 {
            return;
        }
        let (hi, ho) = (m.hash_in, m.hash_out);
        if let Ok(e) = self.by_inside.find_entry(hi, |&j| j == i) {
            e.remove();
        }
        if let Ok(e) = self.by_outside.find_entry(ho, |&j| j == i) {
            e.remove();
        }
        self.free.push(i);
        self.counters.mappings_active -= 1;
    }

    /// Holds a mapping of inside endpoint (`proto_`, `addr`, `port`) onto `ext` for an ALG
    /// (a call's media port, a registered contact): made if there is none, kept while held.
    /// Returns its index (for `release`) and external port; None when ports are exhausted.
    pub fn hold(&mut self, proto_: u8, addr: u32, port: u16, ext: u32) -> Option<(u32, u16)> {
        let i = self.map(proto_, addr, port, ext)?;
        let m = &mut self.mappings[i as usize];
        m.refs += 1;
        Some((i, m.ext_port))
    }

    /// Lets go of a mapping `hold` gave.
    pub fn release(&mut self, i: u32) {
        self.release_mapping(i);
    }

    /// The NAT mapping flow `slot` holds, if any.
    pub fn mapping_of(&self, slot: Slot) -> Option<u32> {
        let m = self.bindings[slot as usize].mapping;
        (m != NO_MAPPING).then_some(m)
    }

    /// Translates the new flow `slot`, whose first packet (direction Orig) is `h`: its
    /// source as `source` says, its destination to `destination`. Gives the flow its second
    /// key. None when it cannot (ports exhausted, a tuple clash): the caller drops the flow's
    /// packets (never sends them untranslated).
    pub fn translate_new(
        &mut self,
        flows: &mut FlowTable,
        slot: Slot,
        h: &Headers,
        rule: u16,
        source: Source,
        destination: Option<DestinationNat>,
    ) -> Option<&Binding> {
        let orig = Tuple::of(h)?;
        let mut to = orig;
        let mut mapping = NO_MAPPING;
        let proto_ = h.proto;
        if let Some(d) = destination {
            to.dst = d.address.to_be_bytes();
            if let Some(p) = d.port {
                if proto_ == proto::TCP || proto_ == proto::UDP {
                    to.dport = p;
                }
            }
        }
        match source {
            Source::Keep => {}
            Source::Address(a) => to.src = a.to_be_bytes(),
            Source::Dynamic(ext) => {
                let inside = u32::from_be_bytes(orig.src);
                let i = self.map(proto_, inside, orig.sport, ext)?;
                let m = &self.mappings[i as usize];
                to.src = m.ext.to_be_bytes();
                to.sport = m.ext_port;
                if proto_ == proto::ICMP {
                    to.dport = m.ext_port;
                }
                mapping = i;
            }
        }
        // The other side's tuple for the reply: (to.dst, to.dport) -> (to.src, to.sport).
        let ok = flows.set_alias(
            slot,
            Dir::Orig,
            (IpAddr16::from_v4(to.src), to.sport),
            (IpAddr16::from_v4(to.dst), to.dport),
        );
        if !ok {
            if mapping != NO_MAPPING {
                // A mapping made for this flow alone ends with it.
                self.mappings[mapping as usize].refs += 1;
                self.release_mapping(mapping);
            }
            self.counters.exhausted += 1;
            return None;
        }
        if mapping != NO_MAPPING {
            self.mappings[mapping as usize].refs += 1;
            self.remember_remote(mapping, u32::from_be_bytes(to.dst));
        }
        let reply = Tuple {
            src: orig.dst,
            sport: orig.dport,
            dst: orig.src,
            dport: orig.sport,
        };
        self.bindings[slot as usize] = Binding {
            to: [to, reply],
            mapping,
            rule,
        };
        self.counters.bindings_created += 1;
        Some(&self.bindings[slot as usize])
    }

    /// A new flow from outside addressed to a mapping's external endpoint (an outside host
    /// answering what the inside endpoint learnt by STUN, or a peer of a call): the inside
    /// endpoint it maps to, if the inside endpoint has sent to this address before
    /// (address-dependent filtering; otherwise `Filtered`, and counted).
    pub fn inbound(&mut self, h: &Headers) -> Inbound {
        let (Some(dst), Some(src)) = (h.dst.v4(), h.src.v4()) else {
            return Inbound::NotMapped;
        };
        let Some(i) = self.find_outside(h.proto, u32::from_be_bytes(dst), h.dst_port) else {
            return Inbound::NotMapped;
        };
        let m = &self.mappings[i as usize];
        if !m.remotes.contains(&u32::from_be_bytes(src)) {
            self.counters.filtered += 1;
            return Inbound::Filtered;
        }
        Inbound::Allowed(m.inside, m.inside_port)
    }

    /// Binds the new inbound flow `slot` (first packet `h`, from outside to mapping
    /// external endpoint) to the inside endpoint `inside` that `inbound` gave.
    pub fn bind_inbound(
        &mut self,
        flows: &mut FlowTable,
        slot: Slot,
        h: &Headers,
        inside: (u32, u16),
        rule: u16,
    ) -> Option<&Binding> {
        let orig = Tuple::of(h)?;
        let i = self.find_outside(h.proto, u32::from_be_bytes(orig.dst), orig.dport)?;
        let to = Tuple {
            src: orig.src,
            sport: orig.sport,
            dst: inside.0.to_be_bytes(),
            dport: inside.1,
        };
        let ok = flows.set_alias(
            slot,
            Dir::Orig,
            (IpAddr16::from_v4(to.src), to.sport),
            (IpAddr16::from_v4(to.dst), to.dport),
        );
        if !ok {
            return None;
        }
        self.mappings[i as usize].refs += 1;
        let reply = Tuple {
            src: orig.dst,
            sport: orig.dport,
            dst: orig.src,
            dport: orig.sport,
        };
        self.bindings[slot as usize] = Binding {
            to: [to, reply],
            mapping: i,
            rule,
        };
        self.counters.bindings_created += 1;
        Some(&self.bindings[slot as usize])
    }

    /// Flow `slot` ended: its binding goes, and its mapping with its last flow. Returns the
    /// binding it had.
    pub fn ended(&mut self, slot: Slot) -> Binding {
        let b = std::mem::take(&mut self.bindings[slot as usize]);
        if b.mapping != NO_MAPPING {
            self.release_mapping(b.mapping);
        }
        b
    }
}

/// What `NatTable::inbound` found for a new flow from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Not addressed to a mapping.
    NotMapped,
    /// To a mapping whose inside endpoint (address, port) has sent to this source address.
    Allowed(u32, u16),
    /// To a mapping, from an address its inside endpoint never sent to.
    Filtered,
}

/// What the NAT rules say of a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No rule matches: not translated.
    None,
    /// Rule `rule` translates it.
    Translate {
        rule: u16,
        source: Source,
        destination: Option<DestinationNat>,
    },
    /// A rule matches but cannot give it an address (an interface without one): the flow's
    /// packets are dropped, never sent untranslated.
    Fail,
}

/// The first of `rules` that matches `s` (a flow's first packet), with the source address
/// it gives (`iface` says a dataplane port's IPv4 address). A bidirectional static rule also
/// matches a flow from outside to one of its translated addresses, which it sends to the
/// original address.
pub fn plan(rules: &[NatRule], s: &NatSubject, iface: impl Fn(usize) -> Option<u32>) -> Plan {
    for (i, r) in rules.iter().enumerate() {
        let rule = i as u16;
        if r.matches(s) {
            let source = match &r.source {
                SourceNat::None => Source::Keep,
                SourceNat::Interface(p) => match iface(*p) {
                    Some(a) => Source::Dynamic(a),
                    None => return Plan::Fail,
                },
                SourceNat::Pool(pool) => match pool_address(pool, s.src) {
                    Some(a) => Source::Dynamic(a),
                    None => return Plan::Fail,
                },
                SourceNat::Static {
                    original,
                    translated,
                    len,
                    ..
                } => match static_address(*original, *translated, *len, s.src) {
                    Some(a) => Source::Address(a),
                    None => Source::Keep,
                },
            };
            return Plan::Translate {
                rule,
                source,
                destination: r.destination,
            };
        }
        if let SourceNat::Static {
            original,
            translated,
            len,
            bidirectional: true,
        } = r.source
        {
            if let Some(a) = static_address(translated, original, len, s.dst) {
                return Plan::Translate {
                    rule,
                    source: Source::Keep,
                    destination: Some(DestinationNat {
                        address: a,
                        port: None,
                    }),
                };
            }
        }
    }
    Plan::None
}

/// The address `SourceNat::Pool` gives inside address `a` (paired pooling: always the same).
pub fn pool_address(pool: &[u32], a: u32) -> Option<u32> {
    if pool.is_empty() {
        return None;
    }
    // A fixed multiplicative hash: the same inside address picks the same pool address in
    // every worker and after every reload of the same pool.
    let k = (a as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    Some(pool[(k % pool.len() as u64) as usize])
}

/// The address `SourceNat::Static` gives `a` (None: outside the original prefix).
pub fn static_address(original: u32, translated: u32, len: u8, a: u32) -> Option<u32> {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (a & mask == original).then_some(translated | (a & !mask))
}

#[cfg(test)]
mod tests;
