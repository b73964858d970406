//! The per-worker flow table: a fixed slab of `Flow` entries, a hashbrown `HashTable` of slab
//! indices keyed by a seeded hash of the `FlowKey`, and one LRU list per timeout class.
//!
//! Every list holds flows of one idle timeout ordered by the time they were last queued. A packet
//! re-queues its flow at the tail only when the flow was queued more than `REQUEUE_NS` ago, so
//! the list order is last activity to within that granularity while most packets touch no other
//! flow's cache lines. Expiry pops from the heads and costs O(expired); a flow ends at most
//! `REQUEUE_NS` after its exact idle timeout. Each class has two lists: flows answered (from
//! both sides; for TCP a completed handshake) and flows not. When the slab is full, the least
//! recently active unanswered flow is evicted for a new one; an answered flow never is (as
//! Linux conntrack's early drop spares assured flows): with none unanswered, the new flow is
//! refused, so a flood of spoofed tuples only ever displaces itself. New flows also pass the
//! per-source and per-zone limits (`admit`). All memory is reserved in `new` (and
//! `limit_sources`); nothing here allocates afterwards.
use super::admit::{Admission, Limit, Refusal};
use super::key::{Dir, FlowHasher, FlowKey};
use super::tcp::{TcpState, TcpTrack};
use crate::config::Timeouts;
use crate::packet::{proto, Headers};
use crate::policy::FlowPolicy;
use hashbrown::HashTable;

/// Index of a flow in the slab.
pub type Slot = u32;
const NIL: Slot = Slot::MAX;
/// Set in an index entry that is a flow's second key (its translated tuple, under NAT).
const ALIAS: u32 = 1 << 31;

/// `Flow::bits`.
const LIVE: u8 = 1;
/// The flow has a second key (NAT): `FlowTable::set_alias`.
const NAT: u8 = 2;
/// A NAT rule matched the flow but could not translate it: its packets are dropped.
const NAT_FAILED: u8 = 4;
/// The flow's application has an ALG (`alg: sip` in the catalog): its messages go to it.
const ALG: u8 = 8;
/// An ALG's pinhole let the flow in (a call's media): policy treats its ports as the
/// application's own.
const PREDICTED: u8 = 16;
/// Answered: heard from both sides (TCP: handshake done, or a pickup answered, and open).
const ANSWERED: u8 = 32;
/// The port of a flow made without the slow path (a replacement): in no zone.
const NO_PORT: u8 = u8::MAX;
/// Granularity of the idle timers: how stale a flow's place in its list may become.
pub const REQUEUE_NS: u64 = 1_000_000_000;

/// Which idle timeout applies to a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TimeoutClass {
    TcpEmbryonic,
    TcpEstablished,
    TcpClosing,
    TcpClosed,
    Udp,
    Icmp,
    Other,
}

const CLASSES: usize = 7;
/// Timeouts of applications (the catalog's per-application `timeouts`): the distinct values
/// each take a class of their own after the base ones. A flow takes its application's class
/// when App-ID decides it (TCP: while established; it returns to the base classes as it
/// closes).
pub const APP_CLASSES: usize = 8;
const ALL_CLASSES: usize = CLASSES + APP_CLASSES;
/// Two lists per class: unanswered, answered.
const LISTS: usize = ALL_CLASSES * 2;
/// `FlowTable::app_class`: no timeout of its own.
const NO_CLASS: u8 = u8::MAX;

impl TimeoutClass {
    fn of(proto_: u8, tcp: TcpTrack) -> TimeoutClass {
        match proto_ {
            proto::TCP => match tcp.state {
                TcpState::SynSent | TcpState::SynReceived | TcpState::Midstream => {
                    TimeoutClass::TcpEmbryonic
                }
                TcpState::Established => TimeoutClass::TcpEstablished,
                TcpState::Closing => TimeoutClass::TcpClosing,
                TcpState::Closed | TcpState::Reset => TimeoutClass::TcpClosed,
            },
            proto::UDP => TimeoutClass::Udp,
            proto::ICMP | proto::ICMPV6 => TimeoutClass::Icmp,
            _ => TimeoutClass::Other,
        }
    }
}

/// Why a flow ended (the flow log's `end_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum EndReason {
    /// Idle longer than its timeout.
    AgedOut,
    /// FINs both ways.
    TcpFin,
    TcpRstFromClient,
    TcpRstFromServer,
    /// Removed to make room in a full table.
    Evicted,
    /// Still live when the dataplane stopped.
    Exit,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::AgedOut => "aged-out",
            EndReason::TcpFin => "tcp-fin",
            EndReason::TcpRstFromClient => "tcp-rst-from-client",
            EndReason::TcpRstFromServer => "tcp-rst-from-server",
            EndReason::Evicted => "evicted",
            EndReason::Exit => "exit",
        }
    }
}

/// One flow: both directions. Exactly 128 bytes, aligned to 128 (see the size test): a flow
/// is one aligned pair of cache lines (which the L2 adjacent-line prefetcher fetches
/// together) and shares no line with another flow. The lookup's key compare loads it; an
/// explicit prefetch on top was measured slower with 1M flows (the fill buffers run out).
#[derive(Clone, Copy, Debug)]
#[repr(align(128))]
pub struct Flow {
    pub key: FlowKey,
    hash: u64,
    prev: Slot,
    next: Slot,
    /// Packets and bytes, indexed by `Dir`.
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// Nanoseconds (clock of the worker: TSC-derived wall time, or capture time on replay).
    pub start_ns: u64,
    pub last_ns: u64,
    /// When the flow was last put at the tail of its list.
    queued_ns: u64,
    /// Whether the originator is the key's `lo` endpoint.
    pub orig_is_lo: bool,
    /// `LIVE` (cleared once removed: a slot found before a removal in the same burst is
    /// then stale), `NAT` (the flow has a second key).
    bits: u8,
    /// App-ID has decided this flow's application: later packets skip App-ID.
    pub app_done: bool,
    /// The catalog id of the application App-ID last gave the flow (`u16::MAX` while
    /// undecided): what the per-application counters charge its packets to.
    pub app: u16,
    /// Index of its timeout: a `TimeoutClass`, or an application's (`APP_CLASSES`).
    class: u8,
    pub tcp: TcpTrack,
    /// The policy's verdict on this flow, and what it was checked under.
    pub policy: FlowPolicy,
}

impl Flow {
    /// Its timeout class; for a flow on its application's own timeout, the class that
    /// timeout stands in for (TCP established, UDP).
    pub fn class(&self) -> TimeoutClass {
        match self.class {
            0 => TimeoutClass::TcpEmbryonic,
            1 => TimeoutClass::TcpEstablished,
            2 => TimeoutClass::TcpClosing,
            3 => TimeoutClass::TcpClosed,
            4 => TimeoutClass::Udp,
            5 => TimeoutClass::Icmp,
            6 => TimeoutClass::Other,
            _ if self.key.proto() == proto::TCP => TimeoutClass::TcpEstablished,
            _ => TimeoutClass::Udp,
        }
    }

    /// Whether the flow lives by its application's own idle timeout.
    pub fn app_timeout(&self) -> bool {
        self.class as usize >= CLASSES
    }

    /// Whether the flow is translated (it has a second key, `FlowTable::set_alias`).
    #[inline(always)]
    pub fn nat(&self) -> bool {
        self.bits & NAT != 0
    }

    /// Whether a NAT rule matched the flow but could not translate it.
    #[inline(always)]
    pub fn nat_failed(&self) -> bool {
        self.bits & NAT_FAILED != 0
    }

    /// The hash of the flow's own key (the same for both directions, translated or not).
    #[inline(always)]
    pub fn key_hash(&self) -> u64 {
        self.hash
    }

    /// Whether the flow's messages go through an ALG.
    #[inline(always)]
    pub fn alg(&self) -> bool {
        self.bits & ALG != 0
    }

    /// Whether an ALG's pinhole let the flow in.
    #[inline(always)]
    pub fn predicted(&self) -> bool {
        self.bits & PREDICTED != 0
    }

    /// Sends (or stops sending) the flow's messages through its application's ALG.
    pub fn set_alg(&mut self, on: bool) {
        if on {
            self.bits |= ALG;
        } else {
            self.bits &= !ALG;
        }
    }

    /// Marks the flow as let in by an ALG's pinhole.
    pub fn set_predicted(&mut self) {
        self.bits |= PREDICTED;
    }

    fn live(&self) -> bool {
        self.bits & LIVE != 0
    }

    /// Whether the flow has been answered (see `ANSWERED`): only an unanswered flow is
    /// evicted for a new one.
    #[inline(always)]
    pub fn answered(&self) -> bool {
        self.bits & ANSWERED != 0
    }

    fn is_answered(&self) -> bool {
        if self.key.proto() == proto::TCP {
            self.tcp.answered()
        } else {
            self.packets[Dir::Reply as usize] > 0
        }
    }

    /// The list the flow is on: its class's answered or unanswered one.
    #[inline(always)]
    fn list(&self) -> usize {
        self.class as usize * 2 + self.answered() as usize
    }

    /// The reason to log when this flow is removed for `cause` (a timeout, eviction, exit).
    pub fn end_reason(&self, cause: EndReason) -> EndReason {
        if self.key.proto() == proto::TCP && cause != EndReason::Evicted {
            match self.tcp.state {
                TcpState::Closed => return EndReason::TcpFin,
                TcpState::Reset if self.tcp.reset_from_orig() => {
                    return EndReason::TcpRstFromClient
                }
                TcpState::Reset => return EndReason::TcpRstFromServer,
                _ => {}
            }
        }
        cause
    }
}

/// A flow's second key, and whether the flow's originator is that key's `lo` end.
#[derive(Clone, Copy, Debug)]
struct Alias {
    key: FlowKey,
    hash: u64,
    orig_is_lo: bool,
}

#[derive(Clone, Copy, Default)]
struct List {
    head: Slot,
    tail: Slot,
}

/// A packet's flow: which way it goes within the key, the key's hash, and the slot a lookup
/// found (a hint: `track` validates it, since flows may be created or removed between lookup
/// and accounting). The key itself is not copied: lookups compare against the headers.
#[derive(Clone, Copy, Debug)]
pub struct FlowRef {
    pub hash: u64,
    /// `FlowKey::rest_of` the packet.
    rest: u64,
    /// The table's removal count when `hint` was found: unchanged means the slot still holds
    /// the same flow (slots are reused only after a removal).
    removals: u64,
    hint: Slot,
    pub src_is_lo: bool,
    /// `insert` created the flow for this packet (the slow path, before accounting).
    inserted: bool,
}

impl Default for FlowRef {
    fn default() -> Self {
        FlowRef::EMPTY
    }
}

impl FlowRef {
    /// No flow.
    pub const EMPTY: FlowRef = FlowRef {
        hash: 0,
        rest: 0,
        removals: 0,
        hint: NIL,
        src_is_lo: false,
        inserted: false,
    };

    /// The slot the lookup found, if any.
    pub fn hint(&self) -> Option<Slot> {
        (self.hint != NIL).then_some(self.hint & !ALIAS)
    }

    /// Whether the lookup found the flow by its second key (the translated tuple).
    #[inline(always)]
    pub fn via_alias(&self) -> bool {
        self.hint != NIL && self.hint & ALIAS != 0
    }

    /// Whether the lookup missed: the packet needs the slow path (`FlowTable::insert`).
    #[inline(always)]
    pub fn missed(&self) -> bool {
        self.hint == NIL
    }
}

/// What `FlowTable::account` did with a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracked {
    pub slot: Slot,
    pub dir: Dir,
    /// The packet is its flow's first: the flow was inserted for it (slow path) or created
    /// while accounting it.
    pub first: bool,
    /// `account` itself created the flow (a hint gone stale in the burst, or a closed TCP
    /// tuple reused): the caller has not seen this flow start yet.
    pub created: bool,
    /// The packet took its flow past another active timeout (`set_active_timeout`): the
    /// flow log gets an interim record.
    pub interim: bool,
}

pub struct FlowTable {
    /// Slots, or `slot | ALIAS` for a flow's second key.
    index: HashTable<Slot>,
    slots: Vec<Flow>,
    /// Each translated flow's second key: the tuple its packets carry on the other side of
    /// the translation. Reserved with the slab.
    aliases: Vec<Alias>,
    free: Vec<Slot>,
    lists: [List; LISTS],
    timeout_ns: [u64; ALL_CLASSES],
    /// The timeouts the table was made with (dataplane.yaml), which a policy may override.
    base_ns: [u64; CLASSES],
    /// Per application id: the class of its own TCP and UDP timeouts, or `NO_CLASS`.
    app_class: Vec<[u8; 2]>,
    /// Interim records for flows live longer than this, every this long (0: none).
    active_ns: u64,
    hasher: FlowHasher,
    capacity: usize,
    active: usize,
    /// Flows removed so far; lets `track` trust a lookup hint without comparing keys again.
    removals: u64,
    /// Limits on new flows per source and per zone.
    admission: Admission,
}

impl FlowTable {
    /// A table of `capacity` flows. `seeds` key the hash (take them from a random source: the
    /// table is keyed by attacker-controlled tuples).
    /// The most flows a table holds (slot numbers keep one bit for aliases).
    pub const MAX_CAPACITY: usize = (ALIAS - 1) as usize;

    /// Bytes one flow of capacity takes: its slot, its second key, and two index entries
    /// (hashbrown keeps its table at most 7/8 full, a control byte per entry).
    pub fn bytes_per_flow(sources_limited: bool) -> usize {
        std::mem::size_of::<Flow>()
            + std::mem::size_of::<Alias>()
            + 2 * (std::mem::size_of::<Slot>() + 1) * 8 / 7
            + Admission::bytes_per_flow(sources_limited)
    }

    pub fn new(capacity: usize, timeouts: &Timeouts, seeds: [u64; 4]) -> FlowTable {
        let capacity = capacity.clamp(1, (ALIAS - 1) as usize);
        let s = |x: u32| x as u64 * 1_000_000_000;
        let t = timeouts;
        let empty = Flow {
            key: FlowKey::new((Default::default(), 0), (Default::default(), 0), 0, 0),
            hash: 0,
            prev: NIL,
            next: NIL,
            packets: [0; 2],
            bytes: [0; 2],
            start_ns: 0,
            last_ns: 0,
            queued_ns: 0,
            orig_is_lo: true,
            bits: 0,
            app_done: false,
            app: u16::MAX,
            class: TimeoutClass::Other as u8,
            tcp: TcpTrack::default(),
            policy: FlowPolicy::NEW,
        };
        let base_ns = [
            s(t.tcp_embryonic),
            s(t.tcp_established),
            s(t.tcp_closing),
            s(t.tcp_closed),
            s(t.udp),
            s(t.icmp),
            s(t.other),
        ];
        let mut timeout_ns = [u64::MAX; ALL_CLASSES];
        timeout_ns[..CLASSES].copy_from_slice(&base_ns);
        FlowTable {
            // Room for every flow's second key too: nothing reallocates later.
            index: HashTable::with_capacity(capacity * 2),
            slots: vec![empty; capacity],
            aliases: vec![
                Alias {
                    key: empty.key,
                    hash: 0,
                    orig_is_lo: true,
                };
                capacity
            ],
            free: (0..capacity as Slot).rev().collect(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; LISTS],
            timeout_ns,
            base_ns,
            app_class: Vec::new(),
            active_ns: 0,
            hasher: FlowHasher::new(seeds),
            capacity,
            active: 0,
            removals: 0,
            admission: Admission::new(capacity, Limit::default()),
        }
    }

    /// Limits the flows each source address holds and opens per second (this worker's part
    /// of dataplane.yaml's `flow-table.per-source`). Set before the first flow: it reserves
    /// the table of sources.
    pub fn limit_sources(&mut self, limit: Limit) {
        assert_eq!(self.active, 0, "limit_sources on a table with flows");
        self.admission = Admission::new(self.capacity, limit);
    }

    /// The running policy's zones and their limits (`Policy::zone_of_port`, this worker's
    /// part of each zone's `limits`). Never allocates.
    pub fn set_zone_limits(&mut self, zone_of_port: &[u8], limits: &[Limit]) {
        self.admission.set_zones(zone_of_port, limits);
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
    pub fn active(&self) -> usize {
        self.active
    }
    pub fn get(&self, slot: Slot) -> &Flow {
        &self.slots[slot as usize]
    }

    pub fn get_mut(&mut self, slot: Slot) -> &mut Flow {
        &mut self.slots[slot as usize]
    }

    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash(key)
    }

    /// A secret value derived from the table's hash seeds (for other per-worker tables keyed
    /// by attacker-controlled values, as the NAT's).
    pub fn hash_seed(&self, salt: u64) -> u64 {
        let k = FlowKey::new(
            (Default::default(), salt as u16),
            (Default::default(), (salt >> 16) as u16),
            (salt >> 32) as u16,
            0xfe,
        );
        self.hasher.hash(&k)
    }

    /// The hash of a packet's flow, not looked up yet.
    #[inline]
    pub fn flow_ref(&self, h: &Headers) -> FlowRef {
        let src_is_lo = FlowKey::src_is_lo(h);
        let rest = FlowKey::rest_of(h, src_is_lo);
        FlowRef {
            hash: self.hasher.hash_headers(h, src_is_lo, rest),
            rest,
            removals: 0,
            hint: NIL,
            src_is_lo,
            inserted: false,
        }
    }

    /// The index entry (a slot, or `slot | ALIAS`) whose key is that of `h`.
    #[inline]
    fn find(&self, h: &Headers, r: &FlowRef) -> Option<Slot> {
        let (slots, aliases) = (&self.slots, &self.aliases);
        self.index
            .find(r.hash, |&s| {
                if s & ALIAS == 0 {
                    slots[s as usize].key.matches(h, r.src_is_lo, r.rest)
                } else {
                    aliases[(s & !ALIAS) as usize]
                        .key
                        .matches(h, r.src_is_lo, r.rest)
                }
            })
            .copied()
    }

    /// Whether index entry `e` is live and its key is that of `h`.
    #[inline(always)]
    fn matches(&self, e: Slot, h: &Headers, src_is_lo: bool, rest: u64) -> bool {
        let slot = (e & !ALIAS) as usize;
        let f = &self.slots[slot];
        if !f.live() {
            return false;
        }
        if e & ALIAS == 0 {
            f.key.matches(h, src_is_lo, rest)
        } else {
            f.nat() && self.aliases[slot].key.matches(h, src_is_lo, rest)
        }
    }

    /// Gives flow `slot` a second key: the tuple of packets of `dir` on the other side of a
    /// translation, as (source, source port, destination, destination port). Packets with
    /// either tuple then find the flow. False when another flow already has that tuple (the
    /// translation must pick another). Never allocates (room was reserved in `new`).
    pub fn set_alias(
        &mut self,
        slot: Slot,
        dir: Dir,
        src: (crate::packet::IpAddr16, u16),
        dst: (crate::packet::IpAddr16, u16),
    ) -> bool {
        let f = self.slots[slot as usize];
        let (src, dst) = match dir {
            Dir::Orig => (src, dst),
            Dir::Reply => (dst, src),
        };
        // `src` is now the originator's end.
        let orig_is_lo =
            (u128::from_ne_bytes(src.0 .0), src.1) <= (u128::from_ne_bytes(dst.0 .0), dst.1);
        let (lo, hi) = if orig_is_lo { (src, dst) } else { (dst, src) };
        let key = FlowKey::new(lo, hi, f.key.vlan(), f.key.proto());
        let hash = self.hasher.hash(&key);
        let (slots, aliases) = (&self.slots, &self.aliases);
        let taken = self.index.find(hash, |&e| {
            let i = (e & !ALIAS) as usize;
            if e & ALIAS == 0 {
                slots[i].key == key
            } else {
                slots[i].nat() && aliases[i].key == key
            }
        });
        if taken.is_some() {
            return false;
        }
        if f.nat() {
            let old = self.aliases[slot as usize].hash;
            if let Ok(e) = self.index.find_entry(old, |&s| s == slot | ALIAS) {
                e.remove();
            }
        }
        self.aliases[slot as usize] = Alias {
            key,
            hash,
            orig_is_lo,
        };
        let aliases = &self.aliases;
        let slots = &self.slots;
        self.index.insert_unique(hash, slot | ALIAS, |&e| {
            if e & ALIAS == 0 {
                slots[e as usize].hash
            } else {
                aliases[(e & !ALIAS) as usize].hash
            }
        });
        self.slots[slot as usize].bits |= NAT;
        true
    }

    /// Marks flow `slot` as one a NAT rule could not translate.
    pub fn set_nat_failed(&mut self, slot: Slot) {
        self.slots[slot as usize].bits |= NAT_FAILED;
    }

    /// Whether a packet with headers `h` would find a flow (for the NAT's inbound checks).
    pub fn contains(&self, h: &Headers) -> bool {
        self.has(h, &self.flow_ref(h))
    }

    /// `contains` with the packet's hash already computed (`flow_ref`).
    pub fn has(&self, h: &Headers, r: &FlowRef) -> bool {
        self.find(h, r).is_some()
    }

    /// The flow a packet with headers `h` would belong to, the direction it would go in it,
    /// and whether it matched the second (translated) key, without accounting anything (an
    /// ICMP error is about a flow, not part of it).
    pub fn find_dir(&self, h: &Headers) -> Option<(Slot, Dir, bool)> {
        let r = self.flow_ref(h);
        let e = self.find(h, &r)?;
        let (slot, via_alias) = (e & !ALIAS, e & ALIAS != 0);
        let orig_is_lo = if via_alias {
            self.aliases[slot as usize].orig_is_lo
        } else {
            self.slots[slot as usize].orig_is_lo
        };
        let dir = if r.src_is_lo == orig_is_lo {
            Dir::Orig
        } else {
            Dir::Reply
        };
        Some((slot, dir, via_alias))
    }

    /// Looks up the flow of `h` (which loads the flow it finds). Done for a whole burst
    /// before the packets are accounted, so the lookups' memory accesses overlap.
    #[inline]
    pub fn lookup(&self, h: &Headers, r: &mut FlowRef) {
        r.hint = self.find(h, r).unwrap_or(NIL);
        r.removals = self.removals;
    }

    /// The slow path of a packet whose lookup missed (it came in on `port`): creates its
    /// flow, unless an earlier packet of the same burst did. Returns the new flow's slot
    /// (None if it already existed); `r` then points at the flow. Flows evicted to make room
    /// are handed to `ended`. A flow the limits refuse is not made (`r` stays a miss): the
    /// `Refusal` says why, for the caller to count.
    pub fn insert(
        &mut self,
        h: &Headers,
        r: &mut FlowRef,
        now_ns: u64,
        port: u8,
        ended: &mut impl FnMut(Slot, &Flow, EndReason),
    ) -> Result<Option<Slot>, Refusal> {
        if let Some(s) = self.find(h, r) {
            r.hint = s;
            r.removals = self.removals;
            return Ok(None);
        }
        // A refusal is the caller's to count (the worker's drop reasons).
        let s = self.create(h, r.hash, now_ns, Some(port), ended)?;
        r.hint = s;
        r.removals = self.removals;
        r.inserted = true;
        Ok(Some(s))
    }

    /// Accounts the packet with headers `h` (`wire_len` bytes at `now_ns`) to its flow: the
    /// one `r` found or inserted, found again if `r` went stale, created if it is gone. Flows
    /// that end to make room (eviction) or because a closed TCP tuple is reused are handed to
    /// `ended`.
    #[inline(always)]
    pub fn account(
        &mut self,
        h: &Headers,
        r: &FlowRef,
        wire_len: u32,
        now_ns: u64,
        ended: &mut impl FnMut(Slot, &Flow, EndReason),
    ) -> Tracked {
        let (src_is_lo, hash) = (r.src_is_lo, r.hash);
        let found = match r.hint {
            s if s != NIL && r.removals == self.removals => Some(s),
            s if s != NIL && self.matches(s, h, src_is_lo, r.rest) => Some(s),
            _ => self.find(h, r),
        };
        // Which key the packet matched: the flow's own, or its second (translated) one.
        let via_alias = found.is_some_and(|e| e & ALIAS != 0);
        let found = found.map(|e| e & !ALIAS);
        let (slot, created) = match found {
            Some(slot) => {
                let f = &self.slots[slot as usize];
                let bare_syn = h.proto == proto::TCP
                    && h.tcp_flags & (crate::packet::tcp::SYN | crate::packet::tcp::ACK)
                        == crate::packet::tcp::SYN;
                if bare_syn && f.tcp.reusable() {
                    // A new connection on a closed tuple: end the old flow, start a new one
                    // in its place (not refused: it replaces a flow the limits admitted).
                    self.remove(slot, EndReason::AgedOut, ended);
                    (self.replacement(h, hash, now_ns, ended), true)
                } else {
                    (slot, false)
                }
            }
            None => (self.replacement(h, hash, now_ns, ended), true),
        };
        // A flow inserted for this very packet has its TCP state from this packet already.
        let first = created || (r.inserted && found == Some(r.hint));
        let orig_is_lo = if via_alias && !created {
            self.aliases[slot as usize].orig_is_lo
        } else {
            self.slots[slot as usize].orig_is_lo
        };
        let f = &mut self.slots[slot as usize];
        let dir = if src_is_lo == orig_is_lo {
            Dir::Orig
        } else {
            Dir::Reply
        };
        f.packets[dir as usize] += 1;
        f.bytes[dir as usize] += wire_len as u64;
        f.last_ns = f.last_ns.max(now_ns);
        let class = if h.proto == proto::TCP {
            if !first {
                f.tcp.update(dir, h.tcp_flags);
            }
            let base = TimeoutClass::of(proto::TCP, f.tcp) as u8;
            match base {
                // Established: on its application's timeout, once it has one.
                1 if f.class as usize >= CLASSES => f.class,
                1 if f.class != 1 && f.app != u16::MAX => {
                    match self.app_class.get(f.app as usize) {
                        Some(c) if c[0] != NO_CLASS => c[0],
                        _ => 1,
                    }
                }
                b => b,
            }
        } else {
            f.class
        };
        // Answered stays answered within a class (a UDP flow's replies only add up; a TCP
        // flow that stops being answered, closed or reset, changes class): recomputed only
        // when it is not answered yet or the class moves.
        let answered = (f.answered() && class == f.class) || f.is_answered();
        let mut interim = false;
        if class != f.class
            || answered != f.answered()
            || f.last_ns.saturating_sub(f.queued_ns) >= REQUEUE_NS
        {
            // Past another active timeout since it was last queued: checked here, at most
            // once per `REQUEUE_NS` of a flow's activity (each interval from one queueing to
            // the next is checked once, so each period is reported once, at most a second
            // late), not per packet.
            if self.active_ns != 0 {
                let (t, start) = (self.active_ns, f.start_ns);
                interim = (f.last_ns - start) / t != (f.queued_ns.max(start) - start) / t;
            }
            self.unlink(slot);
            let f = &mut self.slots[slot as usize];
            f.class = class;
            f.bits = (f.bits & !ANSWERED) | if answered { ANSWERED } else { 0 };
            f.queued_ns = f.last_ns;
            self.push_tail(slot);
        }
        Tracked {
            slot,
            dir,
            first,
            created,
            interim,
        }
    }

    /// The class of application `app`'s own timeout for TCP (`which` 0) or UDP (1).
    #[inline]
    fn app_class_of(&self, app: u16, which: usize) -> Option<u8> {
        let c = self.app_class.get(app as usize)?[which];
        (c != NO_CLASS).then_some(c)
    }

    /// App-ID decided (or shifted) the application of the flow in `slot` (`Flow::app`): it
    /// takes that application's own idle timeout if the catalog gives one (TCP once
    /// established, UDP at once), or goes back to its protocol's.
    pub fn app_decided(&mut self, slot: Slot) {
        let f = &self.slots[slot as usize];
        let (which, base) = match f.key.proto() {
            proto::TCP if f.tcp.state == TcpState::Established => (0, 1),
            proto::UDP => (1, TimeoutClass::Udp as u8),
            _ => return,
        };
        let class = self.app_class_of(f.app, which).unwrap_or(base);
        if class != f.class {
            self.unlink(slot);
            self.slots[slot as usize].class = class;
            self.push_tail(slot);
        }
    }

    /// The catalog's per-application idle timeouts in seconds, (TCP, UDP) by application id:
    /// each distinct value takes one of `APP_CLASSES` classes (the catalog allows no more).
    /// A new catalog (a policy's custom applications) may give a class another value: flows
    /// already on it take that value (their list stays in activity order either way).
    pub fn set_app_timeouts(&mut self, apps: impl Iterator<Item = (Option<u32>, Option<u32>)>) {
        let mut values: Vec<u32> = Vec::new();
        self.app_class.clear();
        for (tcp, udp) in apps {
            let mut class = |t: Option<u32>| -> u8 {
                let Some(t) = t else { return NO_CLASS };
                let i = match values.iter().position(|&v| v == t) {
                    Some(i) => i,
                    None if values.len() < APP_CLASSES => {
                        values.push(t);
                        values.len() - 1
                    }
                    None => return NO_CLASS,
                };
                (CLASSES + i) as u8
            };
            let c = [class(tcp), class(udp)];
            self.app_class.push(c);
        }
        for (i, v) in values.iter().enumerate() {
            self.timeout_ns[CLASSES + i] = *v as u64 * 1_000_000_000;
        }
    }

    /// Interim records every `secs` seconds of a flow's life (0: none): `Tracked::interim`.
    pub fn set_active_timeout(&mut self, secs: u32) {
        self.active_ns = secs as u64 * 1_000_000_000;
    }

    /// A flow made while accounting a packet, in place of one that ended in the same burst
    /// (a closed tuple reused, a hint gone stale): not refused. In the rare case that the
    /// table is full of answered flows, the least recently active one makes room.
    fn replacement(
        &mut self,
        h: &Headers,
        hash: u64,
        now_ns: u64,
        ended: &mut impl FnMut(Slot, &Flow, EndReason),
    ) -> Slot {
        match self.create(h, hash, now_ns, None, ended) {
            Ok(s) => s,
            Err(_) => unreachable!("a replacement is never refused"),
        }
    }

    /// The hash of a source address in the table of sources.
    fn source_hash(&self, src: &crate::packet::IpAddr16) -> u64 {
        self.hasher
            .hash(&FlowKey::new((*src, 0), (Default::default(), 0), 0, 0xfd))
    }

    /// Makes the flow of `h`. `port`: the port it came in on, for a new flow the limits
    /// check (None: a replacement, which evicts even an answered flow if it must).
    fn create(
        &mut self,
        h: &Headers,
        hash: u64,
        now_ns: u64,
        port: Option<u8>,
        ended: &mut impl FnMut(Slot, &Flow, EndReason),
    ) -> Result<Slot, Refusal> {
        let src_hash = if self.admission.limits_sources() {
            self.source_hash(&h.src)
        } else {
            0
        };
        if let Some(port) = port {
            self.admission.check(&h.src, src_hash, port, now_ns)?;
        }
        if self.free.is_empty() {
            let victim = self
                .eviction_victim(port.is_none())
                .ok_or(Refusal::TableFull)?;
            self.remove(victim, EndReason::Evicted, ended);
        }
        let slot = self.free.pop().expect("eviction freed a slot");
        self.admission
            .admitted(slot, &h.src, src_hash, port.unwrap_or(NO_PORT), now_ns);
        let tcp = if h.proto == proto::TCP {
            TcpTrack::first(h.tcp_flags)
        } else {
            TcpTrack::default()
        };
        let (key, src_is_lo) = FlowKey::from_headers(h);
        let f = &mut self.slots[slot as usize];
        *f = Flow {
            key,
            hash,
            prev: NIL,
            next: NIL,
            packets: [0; 2],
            bytes: [0; 2],
            start_ns: now_ns,
            last_ns: now_ns,
            queued_ns: now_ns,
            orig_is_lo: src_is_lo,
            bits: LIVE,
            app_done: false,
            app: u16::MAX,
            class: TimeoutClass::of(key.proto(), tcp) as u8,
            tcp,
            policy: FlowPolicy::NEW,
        };
        let slots = &self.slots;
        // Capacity was reserved in `new` for `capacity` entries, so this never reallocates.
        self.index
            .insert_unique(hash, slot, |&s| slots[s as usize].hash);
        self.push_tail(slot);
        self.active += 1;
        Ok(slot)
    }

    /// The least recently active unanswered flow; with none, the least recently active of
    /// all when `any` (else none: the new flow is refused).
    fn eviction_victim(&self, any: bool) -> Option<Slot> {
        let oldest = |lists: &mut dyn Iterator<Item = &List>| {
            lists
                .map(|l| l.head)
                .filter(|&h| h != NIL)
                .min_by_key(|&h| self.slots[h as usize].last_ns)
        };
        oldest(&mut self.lists.iter().step_by(2))
            .or_else(|| any.then(|| oldest(&mut self.lists.iter())).flatten())
    }

    /// Removes `slot`, reporting it to `ended` with the reason `cause` implies.
    pub fn remove(
        &mut self,
        slot: Slot,
        cause: EndReason,
        ended: &mut impl FnMut(Slot, &Flow, EndReason),
    ) {
        self.slots[slot as usize].bits &= !LIVE;
        self.removals += 1;
        let f = self.slots[slot as usize];
        ended(slot, &f, f.end_reason(cause));
        self.unlink(slot);
        if let Ok(e) = self.index.find_entry(f.hash, |&s| s == slot) {
            e.remove();
        }
        if f.nat() {
            let a = self.aliases[slot as usize];
            if let Ok(e) = self.index.find_entry(a.hash, |&s| s == slot | ALIAS) {
                e.remove();
            }
            self.slots[slot as usize].bits &= !NAT;
        }
        self.admission.released(slot);
        self.free.push(slot);
        self.active -= 1;
    }

    /// Ends flows idle past their timeout at `now_ns`, at most `budget` of them. Returns how
    /// many ended.
    pub fn expire(
        &mut self,
        now_ns: u64,
        budget: usize,
        ended: &mut impl FnMut(Slot, &Flow, EndReason),
    ) -> usize {
        let mut n = 0;
        for c in 0..LISTS {
            let timeout = self.timeout_ns[c / 2];
            while n < budget {
                let head = self.lists[c].head;
                if head == NIL || self.slots[head as usize].last_ns.saturating_add(timeout) > now_ns
                {
                    break;
                }
                self.remove(head, EndReason::AgedOut, ended);
                n += 1;
            }
        }
        n
    }

    /// Ends every flow (at exit), oldest first per list.
    pub fn drain(&mut self, ended: &mut impl FnMut(Slot, &Flow, EndReason)) {
        for c in 0..LISTS {
            while self.lists[c].head != NIL {
                let head = self.lists[c].head;
                self.remove(head, EndReason::Exit, ended);
            }
        }
    }

    /// Sets the idle timeouts per class in seconds (a policy's `timeouts`); None restores
    /// the table's own. Every flow of a class shares its timeout, so the lists stay in
    /// expiry order; flows already idle past a shortened timeout end at the next `expire`.
    pub fn set_timeouts(&mut self, secs: &[Option<u32>; CLASSES]) {
        for ((t, base), s) in self.timeout_ns[..CLASSES]
            .iter_mut()
            .zip(self.base_ns)
            .zip(secs)
        {
            *t = s.map_or(base, |s| s as u64 * 1_000_000_000);
        }
    }

    /// Visits live flows, least recently active first per timeout class, until `visit`
    /// returns false (for `aperturectl show flows`: never on the packet path).
    pub fn visit(&self, visit: &mut impl FnMut(Slot, &Flow) -> bool) {
        for c in 0..LISTS {
            let mut s = self.lists[c].head;
            while s != NIL {
                let f = &self.slots[s as usize];
                if !visit(s, f) {
                    return;
                }
                s = f.next;
            }
        }
    }

    fn unlink(&mut self, slot: Slot) {
        let (prev, next, class) = {
            let f = &self.slots[slot as usize];
            (f.prev, f.next, f.list())
        };
        if prev == NIL {
            if self.lists[class].head == slot {
                self.lists[class].head = next;
            }
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            if self.lists[class].tail == slot {
                self.lists[class].tail = prev;
            }
        } else {
            self.slots[next as usize].prev = prev;
        }
        let f = &mut self.slots[slot as usize];
        f.prev = NIL;
        f.next = NIL;
    }

    fn push_tail(&mut self, slot: Slot) {
        let class = self.slots[slot as usize].list();
        let tail = self.lists[class].tail;
        self.slots[slot as usize].prev = tail;
        self.slots[slot as usize].next = NIL;
        if tail == NIL {
            self.lists[class].head = slot;
        } else {
            self.slots[tail as usize].next = slot;
        }
        self.lists[class].tail = slot;
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
