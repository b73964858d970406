//! Pinholes: flows an ALG expects (a call's RTP and RTCP, an incoming call to a registered
//! phone), each open to one peer address, and the calls (dialogs) that hold them.
//!
//! A pinhole is keyed by what its flow's first packet is addressed to, as it arrives
//! (protocol, destination address and port, before any translation), and admits only a
//! packet from its peer address. It lives until its call closes it, or until its deadline
//! (an initial timeout, pushed out by the idle timeout each time it lets a flow in).
//! Everything is reserved in `new`: opening, matching and expiring never allocate; a full
//! table refuses (and the caller counts it), it never evicts.
use crate::flow::affinity::{self, Affinity};
use hashbrown::HashTable;
use std::sync::Arc;

/// Pinholes one party of a call holds at most (RTP and RTCP of four media lines, at the
/// translated and the party's own address).
pub const PER_PARTY: usize = 16;

/// What a pinhole admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub proto: u8,
    pub addr: [u8; 4],
    pub port: u16,
}

impl Key {
    fn word(&self) -> u64 {
        (u32::from_be_bytes(self.addr) as u64) << 24 | (self.port as u64) << 8 | self.proto as u64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// RTP or RTCP of a call's media line.
    Media,
    /// Incoming requests to a registered contact.
    Register,
}

#[derive(Clone, Copy, Debug)]
pub struct Pinhole {
    pub key: Key,
    /// The only source address admitted.
    pub peer: [u8; 4],
    pub dialog: u32,
    pub purpose: Purpose,
    /// Where an admitted flow goes inside, when NAT translates the key (its inside endpoint:
    /// the NAT mapping `mapping` holds it).
    pub inside: Option<(u32, u16)>,
    pub mapping: u32,
    pub deadline: u64,
    pub used: u32,
    hash: u64,
    live: bool,
}

/// A call (or a registration) as the ALG tracks it: the signalling flow it came on, the
/// application of that flow, and the pinholes each party's descriptions opened.
#[derive(Clone, Copy, Debug)]
pub struct Dialog {
    /// Call-ID hash mixed with the signalling flow's key hash.
    pub id: u64,
    /// The signalling flow's `flow_id` (what predicted flows log as `predicted_by`).
    pub parent: u64,
    /// The application predicted flows take (the signalling flow's: sip, facetime, ...).
    pub app: u16,
    /// Pinholes per party (index by the direction of the message that opened them).
    pub holes: [[u32; PER_PARTY]; 2],
    pub n: [u8; 2],
    /// The last media description each party gave, IPv4 address of its media (0: none yet).
    pub media_addr: [[u8; 4]; 2],
    /// A 2xx answered the INVITE: a later failure response ends a re-INVITE, not the call.
    pub confirmed: bool,
    /// The signalling source it counts against (per-source limit).
    pub source: u32,
    pub deadline: u64,
    hash: u64,
    live: bool,
}

/// What a matching pinhole gives a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub app: u16,
    pub parent: u64,
    pub inside: Option<(u32, u16)>,
    /// The endpoint the pinhole claimed for this worker (`flow::affinity`; 0: none): the
    /// flow holds it while it lives.
    pub claim: u64,
}

/// This worker's claims in the workers' shared `Affinity`, counted: each live pinhole and
/// each flow one admitted holds its endpoint's claim; the last to let go releases it.
pub struct Claims {
    shared: Arc<Affinity>,
    me: usize,
    counts: HashTable<(u64, u32)>,
    room: usize,
    /// Claims the shared table or this count had no room for (the flow is then only
    /// admitted on the worker its packets arrive at).
    pub refused: u64,
}

impl Claims {
    /// Worker `me`'s claims in `shared`, at most `room` endpoints at once.
    pub fn new(shared: Arc<Affinity>, me: usize, room: usize) -> Claims {
        Claims {
            shared,
            me,
            counts: HashTable::with_capacity(room),
            room,
            refused: 0,
        }
    }

    fn hash(key: u64) -> u64 {
        key.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// Holds `key` once more; false when it could not be claimed.
    pub fn hold(&mut self, key: u64) -> bool {
        let h = Self::hash(key);
        if let Some(e) = self.counts.find_mut(h, |e| e.0 == key) {
            e.1 += 1;
            return true;
        }
        if self.counts.len() >= self.room || !self.shared.claim(key, self.me) {
            self.refused += 1;
            return false;
        }
        self.counts.insert_unique(h, (key, 1), |e| Self::hash(e.0));
        true
    }

    /// Lets go of one hold of `key`.
    pub fn release(&mut self, key: u64) {
        let h = Self::hash(key);
        if let Ok(e) = self.counts.find_entry(h, |e| e.0 == key) {
            if e.get().1 <= 1 {
                e.remove();
                self.shared.release(key, self.me);
            } else {
                e.into_mut().1 -= 1;
            }
        }
    }
}

/// Limits and timeouts (nanoseconds), from the ALG's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub pinholes: usize,
    pub dialogs: usize,
    pub per_source: u32,
    pub initial_ns: u64,
    pub idle_ns: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinholeCounters {
    pub opened: u64,
    pub used: u64,
    pub expired: u64,
    pub closed: u64,
    /// Not opened: table full, per-call or per-source limit.
    pub refused: u64,
    pub active: u64,
    pub dialogs: u64,
}

pub struct Pinholes {
    holes: Vec<Pinhole>,
    free: Vec<u32>,
    index: HashTable<u32>,
    dialogs: Vec<Dialog>,
    dfree: Vec<u32>,
    dindex: HashTable<u32>,
    per_source: HashTable<(u32, u32)>,
    seeds: [u64; 2],
    limits: Limits,
    /// Where the next expiry pass starts.
    cursor: usize,
    dcursor: usize,
    pub counters: PinholeCounters,
    /// With several workers: the endpoints this worker's pinholes (and the flows they let
    /// in) claim, so the others hand their packets here.
    pub claims: Option<Claims>,
}

pub const NONE: u32 = u32::MAX;

fn mix(seeds: [u64; 2], a: u64, b: u64) -> u64 {
    let r = ((a ^ seeds[0]) as u128) * ((b ^ seeds[1] ^ 0x9e37_79b9_7f4a_7c15) as u128);
    (r as u64) ^ ((r >> 64) as u64)
}

impl Pinholes {
    pub fn new(limits: Limits, seeds: [u64; 2]) -> Pinholes {
        let (np, nd) = (limits.pinholes.max(1), limits.dialogs.max(1));
        let hole = Pinhole {
            key: Key {
                proto: 0,
                addr: [0; 4],
                port: 0,
            },
            peer: [0; 4],
            dialog: NONE,
            purpose: Purpose::Media,
            inside: None,
            mapping: NONE,
            deadline: 0,
            used: 0,
            hash: 0,
            live: false,
        };
        let dialog = Dialog {
            id: 0,
            parent: 0,
            app: 0,
            holes: [[NONE; PER_PARTY]; 2],
            n: [0; 2],
            media_addr: [[0; 4]; 2],
            confirmed: false,
            source: 0,
            deadline: 0,
            hash: 0,
            live: false,
        };
        Pinholes {
            holes: vec![hole; np],
            free: (0..np as u32).rev().collect(),
            index: HashTable::with_capacity(np),
            dialogs: vec![dialog; nd],
            dfree: (0..nd as u32).rev().collect(),
            dindex: HashTable::with_capacity(nd),
            per_source: HashTable::with_capacity(nd),
            seeds,
            limits,
            cursor: 0,
            dcursor: 0,
            counters: PinholeCounters::default(),
            claims: None,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// No pinhole is open (new flows need not be looked up).
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.counters.active == 0
    }

    /// Calls `f` with each open pinhole and its dialog until it returns false (off the
    /// packet path: `show pinholes`).
    pub fn visit(&self, f: &mut impl FnMut(&Pinhole, &Dialog) -> bool) {
        for h in self.holes.iter().filter(|h| h.live) {
            if !f(h, &self.dialogs[h.dialog as usize]) {
                return;
            }
        }
    }

    pub fn hole(&self, i: u32) -> &Pinhole {
        &self.holes[i as usize]
    }

    pub fn dialog(&self, d: u32) -> &Dialog {
        &self.dialogs[d as usize]
    }

    pub fn dialog_mut(&mut self, d: u32) -> &mut Dialog {
        &mut self.dialogs[d as usize]
    }

    /// The pinhole admitting a new flow whose first packet goes to `key` from `src`; it is
    /// used (its deadline pushed out). Slow path.
    pub fn admit(&mut self, key: Key, src: [u8; 4], now: u64) -> Option<Admitted> {
        let h = mix(self.seeds, key.word(), 1);
        let holes = &self.holes;
        let &i = self.index.find(h, |&i| {
            let p = &holes[i as usize];
            p.key == key && p.peer == src
        })?;
        let idle = self.limits.idle_ns;
        let p = &mut self.holes[i as usize];
        p.used += 1;
        // A call's media stays open while used; a registration lasts its Expires.
        if p.purpose == Purpose::Media {
            p.deadline = p.deadline.max(now + idle);
        }
        let d = &self.dialogs[p.dialog as usize];
        self.counters.used += 1;
        Some(Admitted {
            app: d.app,
            parent: d.parent,
            inside: p.inside,
            claim: if self.claims.is_some() {
                claim_of(&key)
            } else {
                0
            },
        })
    }

    /// The call whose media pinhole is at `key`, whoever the peer: (its application, its
    /// signalling flow). For a call's media that a TURN relay carries: the flow runs from the
    /// endpoint the call's description named to the relay, not to the described peer.
    pub fn call_at(&self, key: Key) -> Option<(u16, u64)> {
        let h = mix(self.seeds, key.word(), 1);
        let holes = &self.holes;
        let &i = self.index.find(h, |&i| {
            let p = &holes[i as usize];
            p.key == key && p.purpose == Purpose::Media
        })?;
        let d = &self.dialogs[self.holes[i as usize].dialog as usize];
        Some((d.app, d.parent))
    }

    /// The dialog `id` (made, charged to `source`, if there is none). None when the table
    /// or the source's share is full.
    pub fn dialog_for(
        &mut self,
        id: u64,
        parent: u64,
        app: u16,
        source: u32,
        now: u64,
    ) -> Option<u32> {
        let h = mix(self.seeds, id, 2);
        let dialogs = &self.dialogs;
        if let Some(&d) = self.dindex.find(h, |&d| dialogs[d as usize].id == id) {
            let x = &mut self.dialogs[d as usize];
            x.deadline = x.deadline.max(now + self.limits.initial_ns);
            x.app = app;
            return Some(d);
        }
        let sh = mix(self.seeds, source as u64, 3);
        let count = self
            .per_source
            .find(sh, |e| e.0 == source)
            .map_or(0, |e| e.1);
        if count >= self.limits.per_source {
            self.counters.refused += 1;
            return None;
        }
        let Some(d) = self.dfree.pop() else {
            self.counters.refused += 1;
            return None;
        };
        match self.per_source.find_mut(sh, |e| e.0 == source) {
            Some(e) => e.1 += 1,
            None => {
                let seeds = self.seeds;
                self.per_source
                    .insert_unique(sh, (source, 1), |e| mix(seeds, e.0 as u64, 3));
            }
        }
        self.dialogs[d as usize] = Dialog {
            id,
            parent,
            app,
            holes: [[NONE; PER_PARTY]; 2],
            n: [0; 2],
            media_addr: [[0; 4]; 2],
            confirmed: false,
            source,
            deadline: now + self.limits.initial_ns,
            hash: h,
            live: true,
        };
        let dl = &self.dialogs;
        self.dindex.insert_unique(h, d, |&j| dl[j as usize].hash);
        self.counters.dialogs += 1;
        Some(d)
    }

    /// The dialog `id`, if tracked.
    pub fn find_dialog(&self, id: u64) -> Option<u32> {
        let h = mix(self.seeds, id, 2);
        let dialogs = &self.dialogs;
        self.dindex
            .find(h, |&d| dialogs[d as usize].id == id)
            .copied()
    }

    /// Opens a pinhole for party `party` of dialog `d`, holding NAT mapping `mapping`
    /// (`NONE`: none; the caller releases it when this returns None).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &mut self,
        d: u32,
        party: usize,
        key: Key,
        peer: [u8; 4],
        purpose: Purpose,
        inside: Option<(u32, u16)>,
        mapping: u32,
        deadline: u64,
    ) -> Option<u32> {
        let dl = &self.dialogs[d as usize];
        if dl.n[party] as usize >= PER_PARTY {
            self.counters.refused += 1;
            return None;
        }
        let Some(i) = self.free.pop() else {
            self.counters.refused += 1;
            return None;
        };
        let hash = mix(self.seeds, key.word(), 1);
        self.holes[i as usize] = Pinhole {
            key,
            peer,
            dialog: d,
            purpose,
            inside,
            mapping,
            deadline,
            used: 0,
            hash,
            live: true,
        };
        let holes = &self.holes;
        self.index
            .insert_unique(hash, i, |&j| holes[j as usize].hash);
        if let Some(c) = self.claims.as_mut() {
            c.hold(claim_of(&key));
        }
        let dl = &mut self.dialogs[d as usize];
        dl.holes[party][dl.n[party] as usize] = i;
        dl.n[party] += 1;
        dl.deadline = dl.deadline.max(deadline);
        self.counters.opened += 1;
        self.counters.active += 1;
        Some(i)
    }

    /// Restricts party `party`'s media pinholes of dialog `d` to `peer` (the other party's
    /// media address, once its description is known).
    pub fn set_peer(&mut self, d: u32, party: usize, peer: [u8; 4]) {
        let dl = self.dialogs[d as usize];
        for &i in &dl.holes[party][..dl.n[party] as usize] {
            let p = &mut self.holes[i as usize];
            if p.purpose == Purpose::Media {
                p.peer = peer;
            }
        }
    }

    /// Closes pinhole `i`; returns the NAT mapping it held (`NONE`: none).
    fn remove(&mut self, i: u32) -> u32 {
        let p = &mut self.holes[i as usize];
        if !p.live {
            return NONE;
        }
        p.live = false;
        let (hash, mapping, key) = (p.hash, p.mapping, p.key);
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        if let Some(c) = self.claims.as_mut() {
            c.release(claim_of(&key));
        }
        self.free.push(i);
        self.counters.active -= 1;
        mapping
    }

    /// Closes party `party`'s pinholes of dialog `d` with purpose `purpose`, giving each
    /// held mapping to `release`.
    pub fn close_party(
        &mut self,
        d: u32,
        party: usize,
        purpose: Purpose,
        release: &mut impl FnMut(u32),
    ) {
        let mut dl = self.dialogs[d as usize];
        let mut kept = 0;
        for k in 0..dl.n[party] as usize {
            let i = dl.holes[party][k];
            if self.holes[i as usize].purpose == purpose {
                let m = self.remove(i);
                self.counters.closed += 1;
                if m != NONE {
                    release(m);
                }
            } else {
                dl.holes[party][kept] = i;
                kept += 1;
            }
        }
        dl.n[party] = kept as u8;
        self.dialogs[d as usize] = dl;
    }

    /// Ends dialog `d` and every pinhole it holds.
    pub fn close_dialog(&mut self, d: u32, release: &mut impl FnMut(u32)) {
        if !self.dialogs[d as usize].live {
            return;
        }
        for party in 0..2 {
            self.close_party(d, party, Purpose::Media, release);
            self.close_party(d, party, Purpose::Register, release);
        }
        let dl = &mut self.dialogs[d as usize];
        dl.live = false;
        let (hash, source) = (dl.hash, dl.source);
        if let Ok(e) = self.dindex.find_entry(hash, |&j| j == d) {
            e.remove();
        }
        let sh = mix(self.seeds, source as u64, 3);
        if let Ok(e) = self.per_source.find_entry(sh, |e| e.0 == source) {
            if e.get().1 <= 1 {
                e.remove();
            } else {
                e.into_mut().1 -= 1;
            }
        }
        self.dfree.push(d);
        self.counters.dialogs -= 1;
    }

    /// Closes pinholes past their deadline and dialogs with none left past theirs, looking
    /// at `budget` entries of each table.
    pub fn expire(&mut self, now: u64, budget: usize, release: &mut impl FnMut(u32)) {
        let n = self.holes.len();
        for _ in 0..budget.min(n) {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % n;
            let p = self.holes[i];
            if p.live && p.deadline <= now {
                // Out of its dialog's list too.
                let d = p.dialog;
                let mut dl = self.dialogs[d as usize];
                for party in 0..2 {
                    let len = dl.n[party] as usize;
                    if let Some(k) = dl.holes[party][..len].iter().position(|&x| x == i as u32) {
                        dl.holes[party].copy_within(k + 1..len, k);
                        dl.n[party] -= 1;
                    }
                }
                self.dialogs[d as usize] = dl;
                let m = self.remove(i as u32);
                self.counters.expired += 1;
                if m != NONE {
                    release(m);
                }
            }
        }
        let n = self.dialogs.len();
        for _ in 0..budget.min(n) {
            let d = self.dcursor;
            self.dcursor = (self.dcursor + 1) % n;
            let dl = &self.dialogs[d];
            if dl.live && dl.n == [0, 0] && dl.deadline <= now {
                self.close_dialog(d as u32, release);
            }
        }
    }
}

/// The endpoint a pinhole claims for its worker: what it admits.
fn claim_of(k: &Key) -> u64 {
    affinity::key(k.proto, k.addr, k.port)
}

/// A dialog's id: its Call-ID mixed with its signalling flow's key hash.
pub fn dialog_id(call_id: &[u8], flow_hash: u64) -> u64 {
    // FNV-1a over the Call-ID, then one multiply-mix with the flow hash.
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in call_id {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    mix([flow_hash, 0], h, 4)
}
