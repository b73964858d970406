//! The classification engine: per-flow classifier contexts from a bounded pool, the probe loop
//! over candidate decoders (port-hinted first), the packet budget, and the final verdicts.
//!
//! Owned by one worker, like its flow table; indexed by the same flow slots. Memory is reserved
//! in `new`; classifying a packet never allocates. A flow uses a context only while undecided.
//!
//! Contexts in use are kept in two lists by last use: flows not yet answered (a flood's
//! spoofed one-packet flows stay there) and answered ones. When every context is in use, a
//! new flow takes the least recently used one, from an unanswered flow first: junk that holds
//! contexts gives them back to new flows instead of leaving those unclassified. The flow it is
//! taken from keeps its best answer so far (what it would get at its packet budget).
use super::catalog::{AppId, Catalog, Subject};
use super::decoders::DECODERS;
use super::{Confidence, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::{Dir, Flow, Slot};
use crate::packet::tunnel::Tunnel;
use crate::packet::{proto, Headers};
use std::sync::Arc;

/// Bytes of each TCP direction kept for decoders (a ClientHello, an XMPP stream header...).
pub const STREAM_BYTES: usize = 2048;
const MAX_DECODERS: usize = 48;
const NO_CTX: u32 = u32::MAX;
/// Longest application path recorded (e.g. ssl -> facetime, stun -> dtls).
pub const MAX_PATH: usize = 4;

/// A protocol whose flows keep being classified after it matched, because another protocol
/// may follow on the same flow and is the better name for it: ICE's STUN checks come before a
/// call's DTLS handshake or its media (RTP/SRTP and RTCP/SRTCP, also relayed in TURN
/// ChannelData, which the media decoders read through), so a call's flow is named by what it
/// carries, with `stun` before it in its path. The protocol and the decoders still asked.
const UPGRADES: [(Proto, &[&str]); 1] = [(Proto::Stun, &["dtls", "rtp", "rtcp"])];

/// App-ID limits (dataplane.yaml `app-id`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Classifier contexts per worker: flows being classified at the same time.
    pub contexts: usize,
    /// Payload packets per direction before a TCP flow is declared unknown.
    pub tcp_packets: u8,
    /// The same for UDP.
    pub udp_packets: u8,
}

impl Limits {
    /// The limits `dataplane.yaml` sets (a packet budget of 0 counts as 1).
    pub fn of(cfg: &crate::config::AppIdConfig) -> Limits {
        Limits {
            contexts: cfg.contexts,
            tcp_packets: cfg.tcp_packets.max(1),
            udp_packets: cfg.udp_packets.max(1),
        }
    }
}

/// What App-ID knows about one flow; what the flow log reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppInfo {
    /// The application (`AppId::NONE` while undecided).
    pub app: AppId,
    /// How it was reached: the protocol first, then the applications it shifted to.
    pub path: [AppId; MAX_PATH],
    pub path_len: u8,
    /// Packets of the flow (both directions) when the application was decided.
    pub decided_after: u32,
    /// Payload packets seen per direction while classifying.
    payload_packets: [u8; 2],
    ctx: u32,
    /// Decided, but an upgrade (see `UPGRADES`) may still replace the protocol.
    provisional: bool,
    /// Its context was taken for another flow: the answer it settles on at its next packet
    /// (or end). `AppId::NONE` otherwise.
    reclaimed: AppId,
    /// ICMP/ICMPv6 flows: the first message's type and code.
    pub icmp: [u8; 2],
    /// Where its evidence was kept when its context went (`Kept`), or `NO_CTX`.
    kept: u32,
}

impl AppInfo {
    const NEW: AppInfo = AppInfo {
        app: AppId::NONE,
        path: [AppId::NONE; MAX_PATH],
        path_len: 0,
        decided_after: 0,
        payload_packets: [0; 2],
        ctx: NO_CTX,
        provisional: false,
        reclaimed: AppId::NONE,
        icmp: [0; 2],
        kept: NO_CTX,
    };

    pub fn path(&self) -> &[AppId] {
        &self.path[..self.path_len as usize]
    }
}

/// Per-flow classifier state while a flow is undecided.
struct Context {
    candidates: u64,
    hinted: u64,
    scratch: [Scratch; MAX_DECODERS],
    ev: Evidence,
    /// Best weak answer so far, used if nothing certain turns up.
    likely: Option<Proto>,
    stream: [[u8; STREAM_BYTES]; 2],
    stream_len: [u16; 2],
    next_seq: [u32; 2],
    seq_known: [bool; 2],
    transport: Transport,
}

impl Context {
    fn empty() -> Context {
        Context {
            candidates: 0,
            hinted: 0,
            scratch: [[0; 16]; MAX_DECODERS],
            ev: Evidence::default(),
            likely: None,
            stream: [[0; STREAM_BYTES]; 2],
            stream_len: [0; 2],
            next_seq: [0; 2],
            seq_known: [false; 2],
            transport: Transport::Udp,
        }
    }

    fn reset(&mut self, transport: Transport, client_port: u16, server_port: u16) {
        self.transport = transport;
        self.candidates = 0;
        self.hinted = 0;
        for (i, d) in DECODERS.iter().enumerate().take(MAX_DECODERS) {
            if d.transports().contains(&transport) {
                self.candidates |= 1u64 << i;
                let hints = d.hint_ports();
                if hints.contains(&client_port) || hints.contains(&server_port) {
                    self.hinted |= 1u64 << i;
                }
            }
        }
        self.scratch = [[0; 16]; MAX_DECODERS];
        self.ev = Evidence::default();
        self.likely = None;
        self.stream_len = [0; 2];
        self.seq_known = [false; 2];
    }

    /// Appends a TCP segment at `seq` to direction `d`'s stream; false if nothing new arrived
    /// (retransmission, a segment after a gap, or the buffer is full).
    fn append(&mut self, d: usize, seq: u32, payload: &[u8]) -> bool {
        if !self.seq_known[d] {
            self.seq_known[d] = true;
            self.next_seq[d] = seq;
        }
        let ahead = seq.wrapping_sub(self.next_seq[d]);
        let skip = if ahead == 0 {
            0
        } else if ahead > u32::MAX / 2 {
            // Starts before what we have: an overlap or retransmission.
            (self.next_seq[d].wrapping_sub(seq)) as usize
        } else {
            return false; // a gap: wait for the missing bytes (they may never come)
        };
        let Some(new) = payload.get(skip..).filter(|n| !n.is_empty()) else {
            return false;
        };
        let len = self.stream_len[d] as usize;
        let room = STREAM_BYTES - len;
        if room == 0 {
            return false;
        }
        let n = new.len().min(room);
        self.stream[d][len..len + n].copy_from_slice(&new[..n]);
        self.stream_len[d] = (len + n) as u16;
        self.next_seq[d] = self.next_seq[d].wrapping_add(new.len() as u32);
        true
    }
}

/// What a packet (or a flow's start) changed in its flow's application: what policy and the
/// ALG react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEvent {
    /// Nothing decided.
    None,
    /// The application is decided (possibly provisionally: a later upgrade may shift it).
    Decided(AppId),
    /// A decided application shifted to another (stun -> dtls).
    Shifted { from: AppId, to: AppId },
}

/// Counters of the engine (per worker).
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineCounters {
    pub decided: u64,
    pub probes: u64,
    pub no_context: u64,
    /// Contexts taken from an undecided flow for a new one.
    pub reclaimed: u64,
    /// Flows that ended without the evidence their decoders found: it was kept for them
    /// when their context went, and the ring of kept evidence (`Kept`) reused the entry
    /// before they ended.
    pub evidence_lost: u64,
}

/// A context's place in the pool: its flow and its neighbours in its list.
#[derive(Clone, Copy, Debug)]
struct Link {
    owner: Slot,
    prev: u32,
    next: u32,
    /// Which list: 0 unanswered, 1 answered.
    list: u8,
}

/// The contexts' bookkeeping: the free ones, and those in use in two lists by last use.
struct Pool {
    free: Vec<u32>,
    links: Vec<Link>,
    /// (head, tail) of the unanswered and the answered list.
    lists: [(u32, u32); 2],
}

impl Pool {
    fn unlink(&mut self, c: u32) {
        let Link {
            prev, next, list, ..
        } = self.links[c as usize];
        let l = &mut self.lists[list as usize];
        if prev == NO_CTX {
            l.0 = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NO_CTX {
            l.1 = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
    }

    fn push(&mut self, c: u32, owner: Slot, answered: bool) {
        let list = answered as usize;
        let tail = self.lists[list].1;
        self.links[c as usize] = Link {
            owner,
            prev: tail,
            next: NO_CTX,
            list: list as u8,
        };
        if tail == NO_CTX {
            self.lists[list].0 = c;
        } else {
            self.links[tail as usize].next = c;
        }
        self.lists[list].1 = c;
    }

    /// Context `c` was used again by its flow (now `answered` or not).
    #[inline]
    fn touch(&mut self, c: u32, answered: bool) {
        let l = self.links[c as usize];
        if l.next == NO_CTX && l.list == answered as u8 {
            return;
        }
        self.unlink(c);
        self.push(c, l.owner, answered);
    }

    fn release(&mut self, c: u32) {
        self.unlink(c);
        self.free.push(c);
    }

    /// The least recently used context, of an unanswered flow first.
    fn oldest(&self) -> Option<u32> {
        [self.lists[0].0, self.lists[1].0]
            .into_iter()
            .find(|&c| c != NO_CTX)
    }
}

/// What decoders found in flows that no longer hold a context, for their flow records: a
/// ring as large as twice the context pool, filled in the order flows are decided (only
/// flows with evidence take an entry). A flow decided long ago may find its entry reused by
/// then, and logs no evidence.
struct Kept {
    entries: Vec<(Slot, Evidence)>,
    capacity: usize,
    next: usize,
}

impl Kept {
    fn keep(&mut self, info: &mut AppInfo, slot: Slot, ev: &Evidence) {
        if ev.is_empty() {
            return;
        }
        let at = self.next;
        if at == self.entries.len() {
            self.entries.push((slot, *ev)); // within the reserved capacity
        } else {
            self.entries[at] = (slot, *ev);
        }
        self.next = (at + 1) % self.capacity;
        info.kept = at as u32;
    }

    /// The entry of `info`'s flow (in `slot`), unless another flow took it since. A flow's
    /// `kept` is reset when its slot takes a new flow, so the slot names the owner.
    fn get(&self, info: &AppInfo, slot: Slot) -> Option<&Evidence> {
        match self.entries.get(info.kept as usize) {
            Some((owner, ev)) if *owner == slot => Some(ev),
            _ => None,
        }
    }

    /// Whether `info`'s flow had evidence kept that another flow's has replaced since.
    fn lost(&self, info: &AppInfo, slot: Slot) -> bool {
        info.ctx == NO_CTX && info.kept != NO_CTX && self.get(info, slot).is_none()
    }
}

/// What `finish` needs to give a flow's context back: the pool, and where its evidence goes.
struct Release<'a> {
    pool: &'a mut Pool,
    kept: &'a mut Kept,
    contexts: &'a [Context],
    slot: Slot,
}

pub struct Engine {
    pub catalog: Arc<Catalog>,
    kept: Kept,
    info: Vec<AppInfo>,
    contexts: Vec<Context>,
    pool: Pool,
    limits: Limits,
    /// The tunnel around each live inner flow (a flow whose key has a tunnel kind), for its
    /// record: off the flow entry, at most `contexts` of them (beyond, an inner flow is
    /// still tracked and classified; its record names the tunnel kind only).
    tunnels: hashbrown::HashMap<Slot, Tunnel>,
    pub counters: EngineCounters,
}

impl Engine {
    /// An engine for a flow table of `flows` slots.
    /// Bytes of App-ID state per flow of the flow table's capacity.
    pub fn bytes_per_flow() -> usize {
        std::mem::size_of::<AppInfo>()
    }

    /// Bytes of one classifier context (`app-id.contexts`), with its share of kept evidence.
    pub fn bytes_per_context() -> usize {
        std::mem::size_of::<Context>()
            + 2 * std::mem::size_of::<(Slot, Evidence)>()
            + 2 * std::mem::size_of::<(Slot, Tunnel)>()
    }

    pub fn new(catalog: Arc<Catalog>, flows: usize, limits: Limits) -> Engine {
        assert!(DECODERS.len() <= MAX_DECODERS, "raise MAX_DECODERS");
        let n = limits.contexts.max(1);
        Engine {
            catalog,
            kept: Kept {
                entries: Vec::with_capacity(2 * n),
                capacity: 2 * n,
                next: 0,
            },
            info: vec![AppInfo::NEW; flows],
            // Room for every context, built the first time each is needed (within the
            // reserved capacity: never an allocation while running), so start-up does not
            // write n x 4.5 KiB a small replay never uses.
            contexts: Vec::with_capacity(n),
            pool: Pool {
                free: Vec::with_capacity(n),
                links: Vec::with_capacity(n),
                lists: [(NO_CTX, NO_CTX); 2],
            },
            limits,
            // Twice the room it may hold: inserting never grows it (hashbrown rehashes in
            // place while at most half full).
            tunnels: hashbrown::HashMap::with_capacity(2 * n),
            counters: EngineCounters::default(),
        }
    }

    pub fn info(&self, slot: Slot) -> &AppInfo {
        &self.info[slot as usize]
    }

    /// A new flow took `slot`. Flows of other IP protocols than TCP and UDP are named by
    /// their protocol number at once.
    #[inline]
    pub fn created(&mut self, slot: Slot, f: &mut Flow, h: &Headers) -> AppEvent {
        let info = &mut self.info[slot as usize];
        *info = AppInfo::NEW;
        f.app_done = false;
        if matches!(h.proto, proto::ICMP | proto::ICMPV6) {
            info.icmp = [h.icmp_type, h.icmp_code];
        }
        if !matches!(f.key.proto(), proto::TCP | proto::UDP) {
            let app = self.catalog.of_ip_proto(f.key.proto());
            Self::push_path(info, app);
            info.decided_after = 1;
            Self::finish(info, app, None, f);
            return AppEvent::Decided(app);
        }
        AppEvent::None
    }

    /// The decided flow in `slot` takes application `app` after the one App-ID found (an
    /// ALG predicted it as the media of a call of `app`): appended to its path.
    pub fn adopt(&mut self, slot: Slot, f: &mut Flow, app: AppId) -> AppEvent {
        let info = &mut self.info[slot as usize];
        let from = info.app;
        Self::push_path(info, app);
        info.app = app;
        f.app = app.0;
        if from == AppId::NONE {
            AppEvent::Decided(app)
        } else {
            AppEvent::Shifted { from, to: app }
        }
    }

    /// Classifies one packet of an undecided flow (`f.app_done` false); `frame` is the
    /// packet's first segment, of which the engine reads the L4 payload. Returns what changed.
    #[inline]
    pub fn packet(
        &mut self,
        slot: Slot,
        f: &mut Flow,
        dir: Dir,
        h: &Headers,
        frame: &[u8],
    ) -> AppEvent {
        let before = self.info[slot as usize].app;
        self.classify(slot, f, dir, h, payload_of(frame, h));
        let after = self.info[slot as usize].app;
        match (before, after) {
            (a, b) if a == b => AppEvent::None,
            (AppId::NONE, b) => AppEvent::Decided(b),
            (a, b) => AppEvent::Shifted { from: a, to: b },
        }
    }

    fn classify(&mut self, slot: Slot, f: &mut Flow, dir: Dir, h: &Headers, payload: &[u8]) {
        let transport = if f.key.proto() == proto::TCP {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let (client, client_port, server, server_port) = f.key.oriented(f.orig_is_lo);
        if self.info[slot as usize].reclaimed != AppId::NONE {
            return self.settle_reclaimed(slot, f);
        }
        let info = &mut self.info[slot as usize];
        if payload.is_empty() {
            return;
        }
        let d = dir as usize;
        info.payload_packets[d] = info.payload_packets[d].saturating_add(1);
        if info.ctx == NO_CTX {
            let next = match self.pool.free.pop() {
                Some(c) => Some(c),
                None if self.contexts.len() < self.limits.contexts.max(1) => {
                    self.contexts.push(Context::empty());
                    self.pool.links.push(Link {
                        owner: slot,
                        prev: NO_CTX,
                        next: NO_CTX,
                        list: 0,
                    });
                    Some(self.contexts.len() as u32 - 1)
                }
                None => self.reclaim(),
            };
            match next {
                Some(c) => {
                    self.info[slot as usize].ctx = c;
                    self.pool.push(c, slot, f.answered());
                    self.contexts[c as usize].reset(transport, client_port, server_port);
                }
                None => {
                    self.counters.no_context += 1;
                    let unknown = self.unknown(transport);
                    Self::finish(&mut self.info[slot as usize], unknown, None, f);
                    return;
                }
            }
        } else {
            self.pool.touch(info.ctx, f.answered());
        }
        let info = &mut self.info[slot as usize];
        let ctx = &mut self.contexts[info.ctx as usize];
        if transport == Transport::Tcp && !ctx.append(d, h.tcp_seq, payload) {
            return self.budget_check(slot, f, transport);
        }
        let Context {
            stream,
            stream_len,
            scratch,
            ev,
            candidates,
            hinted,
            likely,
            ..
        } = ctx;
        // TCP: the direction's stream; UDP: the datagram, and the unused stream buffer for
        // a decoder that gathers across datagrams.
        let (data, mut gather): (&[u8], Option<&mut [u8; STREAM_BYTES]>) = match transport {
            Transport::Udp => (payload, Some(&mut stream[0])),
            Transport::Tcp => (&stream[d][..stream_len[d] as usize], None),
        };
        let fctx = FlowCtx {
            transport,
            dir,
            client: (client, client_port),
            server: (server, server_port),
            packets: info.payload_packets,
        };
        // Port-hinted candidates first, then the rest, each in registry order.
        let mut found = None;
        for pass in [*hinted, !*hinted] {
            let mut bits = *candidates & pass;
            while bits != 0 && found.is_none() {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                self.counters.probes += 1;
                let g = gather.as_deref_mut();
                match DECODERS[i].probe_gathering(data, &fctx, &mut scratch[i], ev, g) {
                    Probe::Match(p, Confidence::Certain) => found = Some(p),
                    Probe::Match(p, Confidence::Likely) => {
                        likely.get_or_insert(p);
                    }
                    Probe::NotYet => {}
                    Probe::NotMe => *candidates &= !(1u64 << i),
                }
            }
        }
        let none_left = *candidates == 0;
        match found {
            Some(p) => self.decide(slot, f, p),
            None if none_left => self.give_up(slot, f, transport),
            None => self.budget_check(slot, f, transport),
        }
    }

    /// Takes the least recently used context (an unanswered flow's first) from its flow,
    /// which settles on its best answer so far at its next packet or its end.
    #[cold]
    fn reclaim(&mut self) -> Option<u32> {
        let c = self.pool.oldest()?;
        let owner = self.pool.links[c as usize].owner;
        let ctx = &self.contexts[c as usize];
        let info = &self.info[owner as usize];
        let app = if info.provisional {
            info.app
        } else {
            match ctx.likely {
                Some(p) => self.catalog.of_proto(p),
                None => self.unknown(ctx.transport),
            }
        };
        let info = &mut self.info[owner as usize];
        self.kept.keep(info, owner, &ctx.ev);
        info.reclaimed = app;
        info.ctx = NO_CTX;
        self.pool.unlink(c);
        self.counters.reclaimed += 1;
        Some(c)
    }

    /// A flow whose context was reclaimed settles on the answer it had then.
    #[cold]
    fn settle_reclaimed(&mut self, slot: Slot, f: &mut Flow) {
        let app = std::mem::replace(&mut self.info[slot as usize].reclaimed, AppId::NONE);
        self.settle(slot, f, app);
    }

    fn unknown(&self, t: Transport) -> AppId {
        match t {
            Transport::Tcp => self.catalog.unknown_tcp,
            Transport::Udp => self.catalog.unknown_udp,
        }
    }

    /// Past the packet budget in either direction: settle on the best answer so far.
    fn budget_check(&mut self, slot: Slot, f: &mut Flow, t: Transport) {
        let budget = match t {
            Transport::Tcp => self.limits.tcp_packets,
            Transport::Udp => self.limits.udp_packets,
        };
        if self.info[slot as usize]
            .payload_packets
            .iter()
            .any(|&n| n >= budget)
        {
            self.give_up(slot, f, t);
        }
    }

    /// No decoder can say more: a provisional answer stands, else the best weak one, else
    /// the flow is unknown.
    fn give_up(&mut self, slot: Slot, f: &mut Flow, t: Transport) {
        let info = &self.info[slot as usize];
        let likely = self.contexts.get(info.ctx as usize).and_then(|c| c.likely);
        if info.provisional {
            // Media seen, but not yet for long enough to be certain (RTP needs three
            // packets in a row): it is still the better name than the STUN before it.
            if let Some(p) = likely {
                return self.decide(slot, f, p);
            }
            let app = info.app;
            return self.settle(slot, f, app);
        }
        match likely {
            Some(p) => self.decide(slot, f, p),
            None => {
                let unknown = self.unknown(t);
                self.settle(slot, f, unknown);
            }
        }
    }

    /// A decoder identified protocol `p`: shift to a more specific application if a signature
    /// says so, and stop classifying (unless `p` may still be upgraded).
    fn decide(&mut self, slot: Slot, f: &mut Flow, p: Proto) {
        let info = &mut self.info[slot as usize];
        let base = self.catalog.of_proto(p);
        let ctx = &mut self.contexts[info.ctx as usize];
        let (_, client_port, server, server_port) = f.key.oriented(f.orig_is_lo);
        let subject = Subject {
            ev: &ctx.ev,
            server: server.v4().map(Into::into),
            server_port,
            client_port,
        };
        let app = self.catalog.shift(base, &subject).unwrap_or(base);
        let upgrades: u64 = UPGRADES
            .iter()
            .find(|(from, _)| *from == p)
            .map_or(0, |(_, to)| {
                to.iter()
                    .filter_map(|n| DECODERS.iter().position(|d| d.name() == *n))
                    .fold(0, |m, i| m | 1u64 << i)
            });
        if info.provisional {
            // The upgrade arrived: stun -> dtls, rtp or rtcp (and what that shifts to). The
            // flow's application is decided now. A call whose STUN named its service (a
            // messenger's dialect) stays that service's, its media in the path:
            // ["stun", "rtp", "ms-teams"].
            let service = info.app;
            let first = info.path().first().copied().unwrap_or(service);
            let app = if app == base && service != first {
                info.path_len = 0;
                Self::push_path(info, first);
                Self::push_path(info, base);
                Self::push_path(info, service);
                service
            } else {
                Self::push_path(info, base);
                Self::push_path(info, app);
                app
            };
            info.decided_after = (f.packets[0] + f.packets[1]).min(u32::MAX as u64) as u32;
            info.provisional = false;
            return Self::finish(
                info,
                app,
                Some(Release {
                    pool: &mut self.pool,
                    kept: &mut self.kept,
                    contexts: &self.contexts,
                    slot,
                }),
                f,
            );
        }
        info.path_len = 0;
        Self::push_path(info, base);
        if app != base {
            Self::push_path(info, app);
        }
        info.decided_after = (f.packets[0] + f.packets[1]).min(u32::MAX as u64) as u32;
        self.counters.decided += 1;
        match upgrades {
            0 => Self::finish(
                info,
                app,
                Some(Release {
                    pool: &mut self.pool,
                    kept: &mut self.kept,
                    contexts: &self.contexts,
                    slot,
                }),
                f,
            ),
            bits => {
                info.app = app;
                info.provisional = true;
                ctx.candidates = bits;
                ctx.hinted = 0;
                // From here a weak answer is one of the upgrades' (see `give_up`).
                ctx.likely = None;
            }
        }
    }

    /// Ends classification with `app` without a protocol match (unknown, or a provisional
    /// answer that stands).
    fn settle(&mut self, slot: Slot, f: &mut Flow, app: AppId) {
        let info = &mut self.info[slot as usize];
        if !info.provisional {
            info.path_len = 0;
            Self::push_path(info, app);
            info.decided_after = (f.packets[0] + f.packets[1]).min(u32::MAX as u64) as u32;
        }
        info.provisional = false;
        Self::finish(
            info,
            app,
            Some(Release {
                pool: &mut self.pool,
                kept: &mut self.kept,
                contexts: &self.contexts,
                slot,
            }),
            f,
        );
    }

    fn push_path(info: &mut AppInfo, app: AppId) {
        if (info.path_len as usize) < MAX_PATH && info.path().last() != Some(&app) {
            info.path[info.path_len as usize] = app;
            info.path_len += 1;
        }
    }

    fn finish(info: &mut AppInfo, app: AppId, release: Option<Release>, f: &mut Flow) {
        info.app = app;
        if info.path_len == 0 {
            Self::push_path(info, app);
        }
        if let Some(r) = release {
            if info.ctx != NO_CTX {
                r.kept.keep(info, r.slot, &r.contexts[info.ctx as usize].ev);
                r.pool.release(info.ctx);
            }
        }
        info.ctx = NO_CTX;
        f.app_done = true;
    }

    /// The policy denied the flow in `slot` on its provisional application (a STUN exchange
    /// that media or DTLS might have followed): it stays that, as a denied flow carries
    /// nothing more to tell it by (its packets are dropped from now on).
    pub fn conclude(&mut self, slot: Slot, f: &mut Flow) {
        let info = &self.info[slot as usize];
        if info.provisional && !f.app_done {
            let app = info.app;
            self.settle(slot, f, app);
        }
    }

    /// The flow in `slot` ends: its final application. Undecided flows become `incomplete`
    /// (TCP that never carried data), `insufficient-data` (data, but not enough to decide), or
    /// the best weak answer; a provisional answer stands.
    pub fn ended(&mut self, slot: Slot, f: &Flow) -> AppInfo {
        if f.key.tunnel() != 0 {
            self.tunnels.remove(&slot);
        }
        if self.kept.lost(&self.info[slot as usize], slot) {
            self.counters.evidence_lost += 1;
        }
        let info = &mut self.info[slot as usize];
        let reclaimed = std::mem::replace(&mut info.reclaimed, AppId::NONE);
        if info.app == AppId::NONE {
            let likely = self.contexts.get(info.ctx as usize).and_then(|c| c.likely);
            let app = match likely {
                _ if reclaimed != AppId::NONE => reclaimed,
                Some(p) => self.catalog.of_proto(p),
                None if info.payload_packets == [0, 0] && f.key.proto() == proto::TCP => {
                    self.catalog.incomplete
                }
                None => self.catalog.insufficient_data,
            };
            info.path_len = 0;
            Self::push_path(info, app);
            info.app = app;
            info.decided_after = (f.packets[0] + f.packets[1]).min(u32::MAX as u64) as u32;
        }
        info.provisional = false;
        if info.ctx != NO_CTX {
            self.pool.release(info.ctx);
            info.ctx = NO_CTX;
        }
        *info
    }

    /// What App-ID's decoders found in the flow in `slot` (empty if nothing, or if its kept
    /// entry was reused since).
    pub fn evidence(&self, slot: Slot) -> Evidence {
        let info = &self.info[slot as usize];
        let ev = match self.contexts.get(info.ctx as usize) {
            Some(c) if info.ctx != NO_CTX => Some(&c.ev),
            _ => self.kept.get(info, slot),
        };
        ev.copied().unwrap_or_default()
    }

    /// Inner flow `slot` (just created) came out of tunnel `t`. False when the table of
    /// tunnels is full (the record then names the kind only).
    pub fn set_tunnel(&mut self, slot: Slot, t: Tunnel) -> bool {
        if self.tunnels.len() >= self.limits.contexts.max(1) && !self.tunnels.contains_key(&slot) {
            return false;
        }
        self.tunnels.insert(slot, t);
        true
    }

    /// The tunnel around flow `f` in `slot`, if it is an inner flow whose tunnel is known.
    #[inline]
    pub fn tunnel(&self, slot: Slot, f: &Flow) -> Option<Tunnel> {
        if f.key.tunnel() == 0 {
            return None;
        }
        self.tunnels.get(&slot).copied()
    }

    /// Contexts in use (flows being classified).
    pub fn contexts_in_use(&self) -> usize {
        self.contexts.len() - self.pool.free.len()
    }
}

/// The L4 payload within `frame` (the packet's first segment).
#[inline]
pub fn payload_of<'a>(frame: &'a [u8], h: &Headers) -> &'a [u8] {
    let start = (h.payload_offset as usize).min(frame.len());
    let end = (start + h.payload_len as usize).min(frame.len());
    &frame[start..end]
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
