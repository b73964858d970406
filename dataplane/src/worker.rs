//! The poll loop of one worker, as a chain of stages per burst. Read it top to bottom to follow
//! a packet:
//!
//! 1. parse (`packet`) and decide where it goes (`forward::decide`), and hash its flow key;
//! 2. find its flow (`FlowTable::lookup`), collecting the misses;
//! 3. slow path, batched over the misses: insert their flows (`FlowTable::insert`) and start
//!    App-ID on them;
//! 4. per packet: account it to its flow (`FlowTable::account`), App-ID while the flow is
//!    undecided (which returns what it decided), `forward::finish` (TTL, MACs, neighbour hold),
//!    send.
//!
//! Each stage returns a plain value or a drop reason; the worker counts drops once, here. ARP
//! for the appliance is answered in `forward::arp`.
//!
//! A worker owns its flow table, counters, neighbour cache and tx buffers; it shares nothing
//! mutable with other threads except the lock-free flow-log queue and its own block of the
//! stats segment. Per packet it never allocates, locks, or makes a system call.
use crate::alg::sip::{Change, Endpoint, Xlate};
use crate::alg::{self, pinhole, Outcome, SipAlg, SipPacket};
use crate::appid::catalog::{AppId, MAX_CUSTOM_APPS};
use crate::appid::engine::{AppEvent, Engine};
use crate::appid::Proto;
use crate::clock::Clock;
use crate::config::{FragmentsConfig, SipAlgConfig};
use crate::flow::admit::Refusal;
use crate::flow::affinity::{self, Affinity};
use crate::flow::defrag::{self, Defrag, Refused, Step};
use crate::flow::handoff::Handoff;
use crate::flow::{Dir, EndReason, Flow, FlowRef, FlowTable, Slot, Tracked};
use crate::flowdump::{self, FlowDumps};
use crate::flowlog::{self, FlowLogSink, FlowRecord};
use crate::forward::reject::{self, Toward};
use crate::forward::{self, arp, ArpRequest, Decision, Finished};
use crate::nat::steer::Steer;
use crate::nat::{self, NatSubject, NatTable, Plan, PortRange};
use crate::packet::{self, Fragment, Headers, IpAddr16, Malformed, L3};
use crate::policy::{
    addr_key, short_generation, Action, Policy, PolicyReader, Subject, Verdict, NO_ZONE,
};
use crate::stats::{AppCounter, Counters, DropReason, StatsSegment, Tables, C};
use aperture_dpdk::{Burst, Mbuf, Mempool, RxQueue, TxBuffer, TxQueue, BURST_SIZE};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use crate::forward::Mode;

/// How many packets ahead of the one being processed its data is prefetched. Measured with
/// 1024 packets in flight (benches/pipeline.rs, 4 KiB pages): 2 ahead 30.9 Mpps, 4: 33.0,
/// 8: 33.4, 12: 31.7, 16: 29.5; with 1M flows 8 ahead beat 4 by about 5%.
const PREFETCH_AHEAD: usize = 8;

/// Flows ended per timer pass at most, so one pass never stalls the loop.
const EXPIRE_BUDGET: usize = 64;
/// Empty polls in a row after which a replay's worker yields its core on each further one.
const IDLE_POLLS_BEFORE_YIELD: u32 = 64;

/// What the first passes over a burst learnt about one packet.
#[derive(Clone, Copy)]
struct Meta {
    h: Headers,
    /// The flow of an IP packet (when `has_flow`): hashed in pass 1, found in pass 2 or
    /// inserted by the slow path.
    flow: FlowRef,
    now: u64,
    /// Where the packet goes, or why it is dropped (malformed, not routable, ...).
    fwd: Result<Decision, DropReason>,
    has_flow: bool,
    /// An ICMP error quoting a packet of a known flow: it goes with that flow (`related`),
    /// not as a flow of its own.
    related: bool,
    /// A datagram reassembled from fragments: the largest of them (IP total length), what
    /// it leaves in again (0: not reassembled).
    refrag: u16,
}

impl Meta {
    const EMPTY: Meta = Meta {
        h: Headers::empty(),
        flow: FlowRef::EMPTY,
        now: 0,
        fwd: Err(DropReason::Malformed(Malformed::EthernetTruncated)),
        has_flow: false,
        related: false,
        refrag: 0,
    };
}

pub struct Worker {
    pub id: usize,
    /// This worker's queue pair on every port (its own: no other thread polls them).
    ports: Vec<(RxQueue, TxQueue)>,
    tx: Vec<TxBuffer>,
    mode: Mode,
    pub flows: FlowTable,
    pub appid: Engine,
    pub counters: Counters,
    /// Per-application and per-rule counters, published with `counters`.
    pub tables: Tables,
    clock: Clock,
    log: FlowLogSink,
    pool: Arc<Mempool>,
    burst: Burst,
    /// Per-packet results of the first passes; taken out of the worker during pass 3 so
    /// packets can borrow their entry while the worker is mutated (moving a Box is free).
    meta: Option<Box<[Meta; BURST_SIZE]>>,
    /// Indices into `meta` of the packets whose flow lookup missed, this burst.
    misses: [u8; BURST_SIZE],
    /// The policy store's reader (None: enforce nothing, as a replay without a policy).
    policy: Option<PolicyReader>,
    /// The policy of the current burst, loaded once at its start.
    current: Option<Arc<Policy>>,
    /// Where `show flows` queries come from, and the last one answered.
    dumps: Option<(Arc<FlowDumps>, u64)>,
    /// NAT bindings and mappings: made when the first policy with NAT rules arrives, then
    /// kept (sized for the flow table, so nothing allocates after).
    nat: Option<NatTable>,
    /// The external ports this worker gives out.
    nat_ports: PortRange,
    /// The SIP ALG: calls' pinholes, and SIP/SDP rewriting where NAT applies.
    alg: SipAlg,
    /// The headers of a rewritten SIP segment whose message continues in more segments
    /// (`send_rest` copies them).
    tcp_headers: [u8; 256],
    /// With several workers: the rings to and from the others, and the current policy's
    /// steering (which worker owns a packet's flow under NAT, `nat::steer`).
    handoff: Option<Handoff>,
    steer: Option<Steer>,
    /// The burst being processed was handed over by another worker (never handed on).
    handed: bool,
    /// IPv4 reassembly (None: fragments pass as they come), the pool for reassembled
    /// datagrams larger than a `pool` mbuf, and room to cut one into fragments again.
    defrag: Option<Defrag>,
    big: Option<Arc<Mempool>>,
    frag_scratch: Box<[u8]>,
    /// With several workers: the endpoints each worker's calls claimed (`flow::affinity`).
    affinity: Option<Arc<Affinity>>,
    /// This worker is waiting for room in the handoff rings (a replay's: `Handoff::lossless`);
    /// a nested flush does not wait again.
    waiting: bool,
}

/// The rest of a rewritten SIP message after its first segment: `SipAlg::rewritten()` from
/// `from`, in segments of `segment` bytes from sequence number `seq`; `fin` on the last.
#[derive(Clone, Copy, Debug)]
struct Rest {
    from: usize,
    segment: usize,
    seq: u32,
    fin: bool,
}

impl Worker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        ports: Vec<(RxQueue, TxQueue)>,
        mode: Mode,
        flows: FlowTable,
        appid: Engine,
        clock: Clock,
        log: FlowLogSink,
        pool: Arc<Mempool>,
    ) -> Worker {
        let tx = ports.iter().map(|_| TxBuffer::default()).collect();
        let tables = Tables::new(appid.catalog.apps.len() + MAX_CUSTOM_APPS);
        let mut flows = flows;
        flows.set_app_timeouts(appid.catalog.app_timeouts());
        let alg = SipAlg::new(
            &SipAlgConfig::default(),
            flows.capacity(),
            [flows.hash_seed(3), flows.hash_seed(4)],
        );
        Worker {
            id,
            ports,
            tx,
            mode,
            flows,
            appid,
            counters: Counters::default(),
            tables,
            clock,
            log,
            pool,
            burst: Burst::default(),
            meta: Some(Box::new([Meta::EMPTY; BURST_SIZE])),
            misses: [0; BURST_SIZE],
            policy: None,
            current: None,
            dumps: None,
            nat: None,
            nat_ports: PortRange::of_worker(0, 1),
            alg,
            tcp_headers: [0; 256],
            handoff: None,
            steer: None,
            handed: false,
            defrag: None,
            big: None,
            frag_scratch: Box::default(),
            affinity: None,
            waiting: false,
        }
    }

    /// Shares call media with the other workers through `shared` (after `with_sip_alg`):
    /// this worker claims the endpoints its pinholes admit, and hands a new flow to or from
    /// an endpoint another worker claimed to that worker (with `with_handoff`).
    pub fn with_affinity(mut self, shared: Arc<Affinity>) -> Worker {
        self.alg.share_claims(shared.clone(), self.id);
        self.affinity = Some(shared);
        self
    }

    /// The other worker that claimed an endpoint of a new flow's first packet `h` (its
    /// destination first), if any. Asked on a miss only: a flow already here stays here.
    /// A packet the NAT steering handed over may be handed on once more this way (to the
    /// claimer, where it stops: the claimer finds its own claim).
    #[inline]
    fn claimed_elsewhere(&self, h: &Headers) -> Option<usize> {
        let a = self.affinity.as_ref().filter(|a| !a.is_empty())?;
        if !matches!(h.proto, packet::proto::UDP | packet::proto::TCP) {
            return None;
        }
        let (src, dst) = (h.src.v4()?, h.dst.v4()?);
        let w = a
            .owner(affinity::key(h.proto, dst, h.dst_port))
            .or_else(|| a.owner(affinity::key(h.proto, src, h.src_port)))?;
        (w != self.id).then_some(w)
    }

    /// Reassembles IPv4 fragments as `config` says (none when `datagrams` is 0), datagrams
    /// larger than a `pool` mbuf in `big`'s.
    pub fn with_defrag(mut self, config: &FragmentsConfig, big: Option<Arc<Mempool>>) -> Worker {
        if config.datagrams == 0 {
            return self;
        }
        let d = Defrag::new(
            config.datagrams,
            config.max_bytes,
            config.timeout as u64 * 1_000_000_000,
        );
        self.frag_scratch = vec![0u8; d.max_frame()].into_boxed_slice();
        self.defrag = Some(d);
        self.big = big;
        self
    }

    /// Shares flows with the other workers through `h` (`flow::handoff::mesh`): packets
    /// whose flow another worker owns under NAT go there.
    /// With `lossless`, a full ring is waited for (taking what the others hand over
    /// meanwhile) instead of dropping: for replays.
    pub fn with_handoff(mut self, mut h: Handoff, lossless: bool) -> Worker {
        h.lossless = lossless;
        self.handoff = Some(h);
        self
    }

    /// Runs the SIP ALG as `config` says (the default one is kept when they agree: its
    /// tables are not reserved twice).
    pub fn with_sip_alg(mut self, config: &SipAlgConfig) -> Worker {
        if self.alg.config() == config {
            return self;
        }
        self.alg = SipAlg::new(
            config,
            self.flows.capacity(),
            [self.flows.hash_seed(3), self.flows.hash_seed(4)],
        );
        self
    }

    /// The SIP ALG's state (pinholes, counters).
    pub fn sip_alg(&self) -> &SipAlg {
        &self.alg
    }

    /// The flow table, App-ID, and what ending a flow touches, borrowed apart.
    #[inline(always)]
    fn split(&mut self) -> (&mut FlowTable, &mut Engine, FlowEnds<'_>) {
        (
            &mut self.flows,
            &mut self.appid,
            FlowEnds {
                id: self.id,
                counters: &mut self.counters,
                tables: &mut self.tables,
                log: &self.log,
                nat: &mut self.nat,
                alg: &mut self.alg,
            },
        )
    }

    /// Gives out NAT ports from `ports` (this worker's share, `PortRange::of_worker`).
    pub fn with_nat_ports(mut self, ports: PortRange) -> Worker {
        self.nat_ports = ports;
        self
    }

    /// Enforces the policy `reader` reads (loaded once per burst).
    pub fn with_policy(mut self, reader: PolicyReader) -> Worker {
        self.policy = Some(reader);
        self
    }

    /// Answers `show flows` queries from `dumps` between bursts.
    pub fn with_flow_dumps(mut self, dumps: Arc<FlowDumps>) -> Worker {
        self.dumps = Some((dumps, 0));
        self
    }

    /// Polls until `stop`, publishing counters every `publish_ms`; then ends every flow into
    /// the flow log and publishes a last time. Every pass's cycles count as loop cycles, and
    /// as busy cycles when it received packets: their ratio is the worker's utilisation (a
    /// poll-mode core is always at 100% CPU, so the OS cannot say).
    pub fn run(&mut self, stop: &AtomicBool, stats: &StatsSegment, publish_ms: u32) {
        let period = aperture_dpdk::tsc_hz() / 1000 * publish_ms.max(1) as u64;
        let mut last = aperture_dpdk::rdtsc();
        let mut next = last + period;
        // Offline (the capture's clock), an idle worker gives its core up now and then: the
        // reading thread and the kernel's writeback share the machine with it. Live, it
        // polls without pause, as a poll-mode worker does.
        let yield_when_idle = self.clock.is_capture();
        let mut idle = 0u32;
        // Fault injection for the tests of panic handling: this worker panics on its first
        // packets when APERTURE_FAULT_PANIC_WORKER names it (read once, here).
        let fault = std::env::var("APERTURE_FAULT_PANIC_WORKER")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            == Some(self.id);
        while !stop.load(Ordering::Relaxed) {
            let received = self.poll_once();
            if fault && received > 0 {
                panic!("fault injection (APERTURE_FAULT_PANIC_WORKER={})", self.id);
            }
            if yield_when_idle {
                idle = if received > 0 { 0 } else { idle + 1 };
                if idle >= IDLE_POLLS_BEFORE_YIELD {
                    std::thread::yield_now();
                }
            }
            let t = aperture_dpdk::rdtsc();
            let spent = t.wrapping_sub(last);
            last = t;
            self.counters.add(C::LoopCycles, spent);
            if received > 0 {
                self.counters.add(C::BusyCycles, spent);
            }
            if t >= next {
                next = t + period;
                stats.publish(self.id, &self.counters, &self.tables);
            }
        }
        if let Some(h) = &self.handoff {
            // What the others hand over until they stop too is still this worker's; once
            // every worker has stopped, nothing new can come: drain what is left.
            h.stop();
            while !self.handoff.as_ref().is_some_and(|h| h.all_stopped()) {
                self.drain_handoff();
                self.flush_tx();
            }
            while self.drain_handoff() > 0 {}
        }
        self.finish();
        stats.publish(self.id, &self.counters, &self.tables);
    }

    /// One pass: a burst from every port, transmit, then timers. Returns packets received.
    pub fn poll_once(&mut self) -> usize {
        let mut total = 0;
        for p in 0..self.ports.len() {
            let n = self.ports[p].0.burst(&mut self.burst);
            if n == 0 {
                continue;
            }
            self.clock.burst();
            self.counters.add(C::Bursts, 1);
            self.counters.add(C::RxPackets, n as u64);
            let bytes = self.burst_stages(p, n);
            self.counters.add(C::RxBytes, bytes);
            total += n;
        }
        if self.handoff.is_some() {
            total += self.drain_handoff();
        }
        self.flush_tx();
        // On the capture's clock time moves only with packets: timers run after bursts
        // alone, so what ends when depends on the packets, not on how often an idle worker
        // polled (a replay gives the same flows every time).
        if total > 0 || !self.clock.is_capture() {
            self.expire();
        }
        if let Some((dumps, seen)) = &mut self.dumps {
            if let Some(q) = dumps.pending(seen) {
                match q.what {
                    flowdump::Listing::Flows => {
                        flowdump::answer(self.id, &q, &self.flows, &self.appid)
                    }
                    flowdump::Listing::Pinholes => flowdump::answer_pinholes(
                        self.id,
                        &q,
                        &self.alg,
                        &self.appid.catalog,
                        self.clock.now(),
                    ),
                    flowdump::Listing::Nat => flowdump::answer_nat(self.id, &q, self.nat.as_ref()),
                }
            }
        }
        total
    }

    /// Processes what other workers handed over (bursts from each, per ingress port).
    /// Returns the packets taken.
    fn drain_handoff(&mut self) -> usize {
        let Some(h) = self.handoff.as_ref() else {
            return 0;
        };
        let (workers, me) = (h.workers(), h.id());
        let mut total = 0;
        for p in 0..self.ports.len() {
            for from in (0..workers).filter(|&w| w != me) {
                loop {
                    let Some(h) = self.handoff.as_mut() else {
                        return total;
                    };
                    let n = h.receive(p, from, &mut self.burst);
                    if n == 0 {
                        break;
                    }
                    self.clock.burst();
                    self.counters.add(C::HandoffReceived, n as u64);
                    self.handed = true;
                    self.burst_stages(p, n);
                    self.handed = false;
                    total += n;
                    if n < BURST_SIZE {
                        break;
                    }
                }
            }
        }
        total
    }

    /// Stages `m` for worker `w`. A reassembled datagram goes as the fragments it came in
    /// (the owner reassembles them again, knowing their size).
    fn hand_over(&mut self, w: usize, port: usize, m: Mbuf, meta: &Meta) {
        if meta.refrag == 0 {
            if let Some(h) = self.handoff.as_mut() {
                let r = h.stage(w, port, m);
                self.handed_off(r);
            }
            return;
        }
        let cut = self.cut(
            &m,
            meta.h.l3_offset as usize,
            meta.refrag as usize,
            |w_, f| {
                if let Some(h) = w_.handoff.as_mut() {
                    let r = h.stage(w, port, f);
                    w_.handed_off(r);
                }
            },
        );
        if !cut {
            self.drop(DropReason::FragInvalid, m);
        }
    }

    /// Cuts the reassembled datagram in `m` (IPv4 header at `l3`) into fragments of at most
    /// `largest` bytes, each in a new mbuf given to `each` (one that finds no mbuf is counted
    /// as `frag-no-buffer`). False when it cannot be cut (`defrag::fragment`).
    #[cold]
    fn cut(
        &mut self,
        m: &Mbuf,
        l3: usize,
        largest: usize,
        mut each: impl FnMut(&mut Worker, Mbuf),
    ) -> bool {
        let mut scratch = std::mem::take(&mut self.frag_scratch);
        let cut = defrag::fragment(
            m.data(),
            l3,
            largest,
            &mut scratch,
            |b| match Mbuf::from_bytes(&self.pool, b) {
                Some(f) => each(self, f),
                None => self.counters.drop(DropReason::FragNoBuffer, b.len() as u32),
            },
        );
        self.frag_scratch = scratch;
        cut.is_some()
    }

    /// Gives the fragment in burst slot `i` (headers in `meta`) to the reassembler. When it
    /// completes its datagram, the datagram takes the slot (parsed into `meta`, `refrag`
    /// set) and the result of parsing it is returned; otherwise the fragment is dropped as
    /// held or refused, and the slot is empty.
    #[cold]
    #[inline(never)]
    fn reassemble(&mut self, i: usize, meta: &mut Meta) -> Option<Result<(), Malformed>> {
        let (defrag, m) = (self.defrag.as_mut()?, self.burst.get(i)?);
        let reason = match defrag.push(m.data(), m.pkt_len() as usize, &meta.h, meta.now) {
            Step::Held => DropReason::FragHeld,
            Step::Refused(Refused::Overlap) => DropReason::FragOverlap,
            Step::Refused(Refused::TooBig) => DropReason::FragTooBig,
            Step::Refused(Refused::Abandoned) => DropReason::FragAbandoned,
            Step::Refused(Refused::Invalid) => DropReason::FragInvalid,
            Step::Complete(slot) => {
                // In a buffer with room to spare: the SIP ALG may lengthen the message.
                let whole = defrag.take(slot).and_then(|(frame, largest)| {
                    let big = self.big.as_ref().and_then(|b| Mbuf::from_bytes(b, frame));
                    let m = big.or_else(|| Mbuf::from_bytes(&self.pool, frame))?;
                    Some((m, largest))
                });
                match whole {
                    Some((whole, largest)) => {
                        let len = whole.pkt_len() as usize;
                        if let Ok(Some(last)) = self.burst.replace(i, whole) {
                            self.drop(DropReason::FragHeld, last);
                        }
                        meta.refrag = largest;
                        let m = self.burst.get(i)?;
                        return Some(packet::parse_into(m.data(), len, &mut meta.h));
                    }
                    None => DropReason::FragNoBuffer,
                }
            }
        };
        let m = self.burst.take(i)?;
        self.drop(reason, m);
        None
    }

    /// Sends a reassembled datagram (`m`, headers `h`, going by `d`) as fragments no larger
    /// than `largest`; each is forwarded as any packet (TTL, MACs, neighbour hold).
    #[cold]
    #[inline(never)]
    fn send_fragments(&mut self, d: Decision, m: Mbuf, h: &Headers, largest: usize, now: u64) {
        let cut = self.cut(&m, h.l3_offset as usize, largest, |w, f| {
            w.counters.add(C::FragmentsSent, 1);
            let f = forward::finish(&mut w.mode, d, f, h, now);
            w.finished(f);
        });
        if !cut {
            // Cannot be cut (options that leave no room): whole, as it is.
            let f = forward::finish(&mut self.mode, d, m, h, now);
            self.finished(f);
        }
    }

    /// Counts what one handoff operation did (what a full ring refused as `handoff-full`).
    #[inline]
    fn handed_off(&mut self, r: aperture_dpdk::TxResult) {
        if r.sent + r.dropped == 0 {
            return;
        }
        self.counters.add(C::HandoffSent, r.sent as u64);
        if r.dropped > 0 {
            self.counters.add(C::DropPackets, r.dropped as u64);
            self.counters.add(C::DropBytes, r.dropped_bytes);
            self.counters.0[DropReason::HandoffFull.index()] += r.dropped as u64;
        }
    }

    /// Gives the worker's queues back (for another worker on the same queues, as a
    /// benchmark builds one after another); its flows are not ended.
    pub fn into_queues(mut self) -> Vec<(RxQueue, TxQueue)> {
        std::mem::take(&mut self.ports)
    }

    /// After a panic in `run`: tells the other workers this one takes no more handoffs (they
    /// would wait for it), then ends and logs its flows.
    pub fn finish_after_panic(&mut self) {
        if let Some(h) = &self.handoff {
            h.stop();
        }
        self.finish();
    }

    /// Ends every flow (reason `exit` unless TCP already closed) and flushes what is queued.
    pub fn finish(&mut self) {
        self.flush_tx();
        let (flows, appid, mut ends) = self.split();
        flows.drain(&mut |s, f, r| ends.end(appid, s, f, r));
        ends.counters.set(C::FlowsActive, 0);
    }

    /// A burst through the stage chain (see the module comment): each pass's memory accesses
    /// overlap across packets. Returns the bytes received.
    #[inline]
    fn burst_stages(&mut self, port: usize, n: usize) -> u64 {
        let Some(mut metas) = self.meta.take() else {
            return 0;
        };
        // The policy for this burst: one atomic load while it is unchanged; the Arc is moved
        // out of the worker for the burst, so no shared reference count is touched.
        if let Some(r) = self.policy.as_mut() {
            let latest = r.load();
            if self
                .current
                .as_ref()
                .is_none_or(|c| !Arc::ptr_eq(c, latest))
            {
                let latest = Arc::clone(latest);
                self.install(latest);
            }
        }
        let bytes = self.parse_pass(port, n, &mut metas);
        let misses = self.find_pass(n, &mut metas);
        if misses > 0 {
            self.slow_path(port, misses, &mut metas);
        }
        let policy = self.current.take();
        for (i, meta) in metas[..n].iter().enumerate() {
            if let Some(m) = self.burst.take(i) {
                self.packet(port, m, meta, policy.as_deref());
            }
        }
        self.current = policy;
        self.meta = Some(metas);
        // What pass 1 (and ARP, for every worker's neighbour cache) staged for other
        // workers leaves in one ring operation per worker.
        if self.handoff.is_some() {
            self.flush_handoff();
        }
        bytes
    }

    /// Sends what this burst staged for other workers. Live, what a full ring refuses is
    /// dropped and counted; in a replay the worker waits for room, taking what the others
    /// hand it meanwhile (so two workers waiting on each other both make progress; what
    /// that stages again waits in its buffer for the next try).
    fn flush_handoff(&mut self) {
        let Some(h) = self.handoff.as_mut() else {
            return;
        };
        if !h.lossless {
            let r = h.flush();
            self.handed_off(r);
            return;
        }
        let (r, mut left) = h.flush_keep();
        self.counters.add(C::HandoffSent, r.sent as u64);
        if self.waiting {
            return;
        }
        self.waiting = true;
        while left {
            self.drain_handoff();
            let Some(h) = self.handoff.as_mut() else {
                break;
            };
            let (r, l) = h.flush_keep();
            self.counters.add(C::HandoffSent, r.sent as u64);
            left = l;
            std::hint::spin_loop();
        }
        self.waiting = false;
    }

    /// Takes on a new policy at the start of a burst: its timeouts, its catalog, and the NAT
    /// table the first time a policy has NAT rules (the one allocation a policy change may
    /// make, off the packet path).
    #[cold]
    fn install(&mut self, latest: Arc<Policy>) {
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.timeouts != latest.timeouts)
        {
            self.flows.set_timeouts(&latest.timeouts);
        }
        if self.current.as_ref().is_none_or(|c| {
            c.zone_of_port != latest.zone_of_port || c.zone_limits != latest.zone_limits
        }) {
            let workers = self.handoff.as_ref().map_or(1, |h| h.workers());
            let mut limits = [crate::flow::admit::Limit::default(); 256];
            for (l, z) in limits.iter_mut().zip(&latest.zone_limits) {
                *l = z.per_worker(workers);
            }
            self.flows.set_zone_limits(&latest.zone_of_port, &limits);
        }
        // A policy with custom applications brings its catalog (append-only: the ids this
        // worker's flows hold keep their meaning).
        if let Some(c) = &latest.catalog {
            if !Arc::ptr_eq(c, &self.appid.catalog) {
                self.appid.catalog = Arc::clone(c);
                self.flows.set_app_timeouts(c.app_timeouts());
            }
        }
        if let Some(h) = &self.handoff {
            let mode = &self.mode;
            self.steer = Steer::of(
                &latest.nat,
                &latest.zone_of_port,
                h.workers(),
                h.seed,
                |port| match mode {
                    Mode::Routed(r) => r.iface_on(port).map(|i| u32::from(i.addr)),
                    Mode::Wire(_) => None,
                },
                |a| match mode {
                    Mode::Routed(r) => match r.route(std::net::Ipv4Addr::from(a)) {
                        forward::routed::Hop::Forward { port, .. } => Some(port),
                        _ => None,
                    },
                    Mode::Wire(_) => None,
                },
            );
        }
        if !latest.nat.is_empty() && self.nat.is_none() {
            self.nat = Some(NatTable::new(
                self.flows.capacity(),
                self.nat_ports,
                [self.flows.hash_seed(1), self.flows.hash_seed(2)],
            ));
        }
        self.current = Some(latest);
    }

    /// Pass 1: parse, decide where each packet goes, hash its flow. Each packet's data is
    /// prefetched a few packets ahead (which loads that packet's mbuf header). Prefetching or
    /// touching every header of the burst up front was measured slower: with 4 KiB pages the
    /// page walks, not the cache, are the limit.
    #[inline(always)]
    fn parse_pass(&mut self, port: usize, n: usize, metas: &mut [Meta; BURST_SIZE]) -> u64 {
        let mut bytes = 0u64;
        for i in 0..n.min(PREFETCH_AHEAD) {
            if let Some(m) = self.burst.get(i) {
                m.prefetch_data();
            }
        }
        for (i, meta) in metas[..n].iter_mut().enumerate() {
            if let Some(m) = self.burst.get(i + PREFETCH_AHEAD) {
                m.prefetch_data();
            }
            let Some(m) = self.burst.get(i) else {
                *meta = Meta::EMPTY;
                continue;
            };
            let len = m.pkt_len();
            bytes += len as u64;
            meta.now = if self.handed {
                self.clock.handed(m)
            } else {
                self.clock.packet(m)
            };
            meta.refrag = 0;
            let mut parsed = packet::parse_into(m.data(), len as usize, &mut meta.h);
            if parsed.is_ok()
                && meta.h.fragment != Fragment::No
                && meta.h.l3 == L3::Ipv4
                && self.defrag.is_some()
            {
                // Gathered into its datagram: the slot is empty until the last fragment,
                // which brings the whole datagram in its place.
                match self.reassemble(i, meta) {
                    Some(p) => parsed = p,
                    None => {
                        *meta = Meta::EMPTY;
                        continue;
                    }
                }
            }
            let Some(m) = self.burst.get(i) else {
                *meta = Meta::EMPTY;
                continue;
            };
            meta.fwd = match parsed {
                Ok(()) => forward::decide(&self.mode, port, m.data(), &meta.h),
                Err(e) => Err(DropReason::Malformed(e)),
            };
            // Packets for the appliance's own addresses have a flow only as NAT return
            // traffic (or a flow a NAT rule forwards): looked up when NAT is on.
            meta.has_flow = meta.h.is_ip()
                && match meta.fwd {
                    Ok(d) => d != Decision::Arp,
                    Err(DropReason::LocalDelivery) => self.nat.is_some(),
                    Err(_) => false,
                };
            meta.related = meta.has_flow
                && meta.h.proto == packet::proto::ICMP
                && packet::icmp::is_error_v4(meta.h.icmp_type)
                && self.quoted_flow(m.data(), &meta.h).is_some();
            if meta.related {
                meta.has_flow = false;
            }
            if let (Some(s), false) = (&self.steer, self.handed) {
                // Under NAT with several workers: a flow another worker owns goes there.
                let out = match meta.fwd {
                    Ok(d) => Some(d.port()),
                    Err(DropReason::LocalDelivery) => Some(None),
                    Err(_) => None,
                };
                if let Some(out) = out.filter(|_| meta.h.l3 == L3::Ipv4) {
                    if let Some(w) = s.owner(&meta.h, m.data(), port, out) {
                        if w != self.id {
                            if let Some(m) = self.burst.take(i) {
                                self.hand_over(w, port, m, meta);
                            }
                            meta.has_flow = false;
                            meta.related = false;
                            continue;
                        }
                    }
                }
            }
            if meta.has_flow {
                meta.flow = self.flows.flow_ref(&meta.h);
            }
        }
        bytes
    }

    /// Pass 2: the fast flow lookup only. Returns how many missed (listed in `misses`).
    #[inline(always)]
    fn find_pass(&mut self, n: usize, metas: &mut [Meta; BURST_SIZE]) -> usize {
        let mut misses = 0;
        for (i, meta) in metas[..n].iter_mut().enumerate() {
            if meta.has_flow {
                self.flows.lookup(&meta.h, &mut meta.flow);
                if meta.flow.missed() {
                    self.misses[misses] = i as u8;
                    misses += 1;
                }
            }
        }
        misses
    }

    /// The slow path, over the burst's misses in order: insert each flow (once, when several
    /// packets of a new flow share the burst), start App-ID on it, and translate it when a
    /// NAT rule (or an existing mapping, for a flow from outside) says so. A packet for the
    /// appliance's own address gets a flow only that way; otherwise it stays a miss and is
    /// dropped as local delivery.
    #[cold]
    fn slow_path(&mut self, port: usize, misses: usize, metas: &mut [Meta; BURST_SIZE]) {
        let policy = self.current.clone();
        for k in 0..misses {
            let i = self.misses[k] as usize;
            let meta = &mut metas[i];
            if let Some(w) = self.claimed_elsewhere(&meta.h) {
                // Another worker's call expects this flow: its pinholes (and NAT mappings)
                // are there.
                if let Some(m) = self.burst.take(i) {
                    self.hand_over(w, port, m, meta);
                }
                meta.has_flow = false;
                continue;
            }
            // A call's media (or an incoming call to a registered phone) that a pinhole
            // expects: admitted from its peer only, with its call's application.
            let admitted = self.pinhole_for(&meta.h, meta.now, &meta.flow);
            let plan = match (&mut self.nat, &policy) {
                _ if admitted.is_some_and(|a| a.inside.is_some()) => {
                    NewFlow::Inbound(admitted.and_then(|a| a.inside).unwrap_or_default())
                }
                (Some(nat), Some(p))
                    if meta.h.l3 == L3::Ipv4 && !self.flows.has(&meta.h, &meta.flow) =>
                {
                    nat_plan(nat, p, &self.mode, &meta.h, meta.fwd, port)
                }
                _ => NewFlow::Plain,
            };
            if plan == NewFlow::NotOurs {
                continue;
            }
            let (flows, appid, mut ends) = self.split();
            let created = insert_flow(
                flows,
                appid,
                &meta.h,
                &mut meta.flow,
                meta.now,
                port as u8,
                &mut |a, s, f, r| ends.end(a, s, f, r),
            );
            match created {
                Ok(true) => {}
                Ok(false) => continue,
                Err(refusal) => {
                    // No flow: pass 3 drops the packet for the reason.
                    meta.fwd = Err(DropReason::refused(refusal));
                    continue;
                }
            }
            ends.counters.add(C::FlowsCreated, 1);
            let Some(slot) = meta.flow.hint() else {
                continue;
            };
            self.bind_new(slot, &meta.h, plan, admitted);
        }
    }

    /// A new flow (`slot`, first packet `h`) gets what the slow path decided for it: its NAT
    /// translation (or a failure that drops its packets), and the pinhole that admitted it.
    fn bind_new(
        &mut self,
        slot: Slot,
        h: &Headers,
        plan: NewFlow,
        admitted: Option<pinhole::Admitted>,
    ) {
        if let (Some(n), false) = (self.nat.as_mut(), plan == NewFlow::Plain) {
            let flows = &mut self.flows;
            let ok = match plan {
                NewFlow::Inbound(inside) => {
                    n.bind_inbound(flows, slot, h, inside, u16::MAX).is_some()
                }
                NewFlow::Nat(Plan::Translate {
                    rule,
                    source,
                    destination,
                }) => n
                    .translate_new(flows, slot, h, rule, source, destination)
                    .is_some(),
                _ => false,
            };
            if !ok {
                flows.set_nat_failed(slot);
            }
        }
        if let Some(a) = admitted {
            self.predict(slot, a);
        }
    }

    /// A flow pass 3 created itself (a closed TCP tuple reused by a new connection, or a
    /// lookup gone stale within the burst) never went through the slow path: it is decided
    /// now, as the slow path would have (a reused tuple must not leave untranslated).
    #[cold]
    fn start_created(&mut self, port: usize, slot: Slot, meta: &Meta, policy: Option<&Policy>) {
        let admitted = if self.alg.pinholes.is_empty() {
            None
        } else {
            self.pinhole_admits(&meta.h, meta.now)
        };
        let plan = match (&mut self.nat, policy) {
            _ if admitted.is_some_and(|a| a.inside.is_some()) => {
                NewFlow::Inbound(admitted.and_then(|a| a.inside).unwrap_or_default())
            }
            (Some(nat), Some(p)) if meta.h.l3 == L3::Ipv4 => {
                nat_plan(nat, p, &self.mode, &meta.h, meta.fwd, port)
            }
            _ => NewFlow::Plain,
        };
        self.bind_new(slot, &meta.h, plan, admitted);
    }

    /// The pinhole a new flow's first packet matches, if any (IPv4 UDP or TCP, the ALG on,
    /// some pinhole open, and the flow not already there as another's second key).
    #[inline]
    fn pinhole_for(
        &mut self,
        h: &Headers,
        now: u64,
        r: &crate::flow::FlowRef,
    ) -> Option<pinhole::Admitted> {
        if self.alg.pinholes.is_empty() || self.flows.has(h, r) {
            return None;
        }
        self.pinhole_admits(h, now)
    }

    /// The pinhole admitting a flow whose first packet is `h` (IPv4 UDP or TCP), if any.
    #[inline]
    fn pinhole_admits(&mut self, h: &Headers, now: u64) -> Option<pinhole::Admitted> {
        if !matches!(h.proto, packet::proto::UDP | packet::proto::TCP) {
            return None;
        }
        let (Some(src), Some(dst)) = (h.src.v4(), h.dst.v4()) else {
            return None;
        };
        let key = pinhole::Key {
            proto: h.proto,
            addr: dst,
            port: h.dst_port,
        };
        self.alg.pinholes.admit(key, src, now)
    }

    /// Flow `slot` was let in by a pinhole: it remembers the signalling flow and its
    /// application, which policy checks it as (the rule that allowed the call allows its
    /// media). App-ID still names what it carries (rtp, rtcp, ichat-av, ...).
    fn predict(&mut self, slot: Slot, a: pinhole::Admitted) {
        self.flows.get_mut(slot).set_predicted();
        self.alg.set_predicted(slot, a.parent, a.app, a.claim);
    }

    /// Pass 3 for one packet: ARP, or the flow stage, the NAT stage (what the packet becomes,
    /// and where that goes), the policy stage, the rewrite, then `forward::finish`, then send.
    #[inline(always)]
    fn packet(&mut self, port: usize, mut m: Mbuf, meta: &Meta, policy: Option<&Policy>) {
        if meta.related {
            return self.related(port, m, meta, policy);
        }
        let d = match meta.fwd {
            Ok(Decision::Arp) => return self.arp(port, m, meta),
            Ok(d) => Some(d),
            // For the appliance's own address: only a flow NAT found or made goes on.
            Err(DropReason::LocalDelivery) if meta.has_flow && !meta.flow.missed() => None,
            Err(r) => return self.drop(r, m),
        };
        let mut to = None;
        let mut dir = Dir::Orig;
        let d = if meta.has_flow {
            let (t, mut ev) = self.flow_stage(&meta.h, &meta.flow, m.pkt_len(), meta.now, m.data());
            dir = t.dir;
            if t.created {
                self.start_created(port, t.slot, meta, policy);
            }
            if t.first && !self.alg.pinholes.is_empty() && !self.flows.get(t.slot).predicted() {
                // The slow path ran before this burst's signalling opened its pinholes (a
                // call's first media packet in the same burst as its answer).
                if let Some(a) = self.pinhole_admits(&meta.h, meta.now) {
                    self.predict(t.slot, a);
                    if ev == AppEvent::None {
                        // Checked again now, as the call's media.
                        ev = AppEvent::Decided(AppId(a.app));
                    }
                }
            }
            let d = match self.nat_stage(&t, meta, port, d, m.data()) {
                Ok((d, x)) => {
                    to = x;
                    d
                }
                Err(r) => return self.drop(r, m),
            };
            if let Some(p) = policy {
                let out = d.port().unwrap_or(port);
                let v = self.policy_stage(p, &t, ev, &meta.h, port, out);
                self.tables.rule_packet(p.slot_of(v.rule), m.pkt_len());
                if !v.passes() {
                    if v.action == Action::Reset {
                        self.reject(port, d, &m, meta);
                    }
                    return self.drop(DropReason::Policy, m);
                }
            }
            if packet::tunnel::candidate(&meta.h) {
                let inner = self.tunnel_stage(port, m.data(), &meta.h, meta.now);
                if let (Some((t, ev, ih)), Some(p)) = (inner, policy) {
                    // The inner flow is checked as any flow (its zones are the tunnel
                    // packet's ports): a flow the policy stops stops the tunnel packet that
                    // carries it (dropped: a reset cannot be sent inside the tunnel).
                    let out = d.port().unwrap_or(port);
                    let v = self.policy_stage(p, &t, ev, &ih, port, out);
                    self.tables.rule_packet(p.slot_of(v.rule), m.pkt_len());
                    if !v.passes() {
                        return self.drop(DropReason::Policy, m);
                    }
                }
            }
            d
        } else {
            self.counters.add(C::NonIpPackets, 1);
            match d {
                Some(d) => d,
                None => return self.drop(DropReason::LocalDelivery, m),
            }
        };
        let mut h = meta.h;
        let mut rest = None;
        if meta.has_flow
            && self.alg.enabled()
            && (h.payload_len > 0 || h.proto == packet::proto::TCP)
        {
            match self.alg_stage(&mut m, &mut h, meta, dir, to.as_ref(), policy) {
                Ok(r) => rest = r,
                Err(r) => return self.drop(r, m),
            }
        }
        if let Some(to) = to {
            if nat::rewrite(m.data_mut(), &h, &to).is_err() {
                return self.drop(DropReason::NatUnrewritable, m);
            }
        }
        let l3 = h.l3_offset as usize;
        let total = packet::bytes::be16(m.data(), l3 + 2).unwrap_or(0);
        if meta.refrag > 0 && total > meta.refrag {
            self.send_fragments(d, m, &h, meta.refrag as usize, meta.now);
        } else {
            let f = forward::finish(&mut self.mode, d, m, &h, meta.now);
            self.finished(f);
        }
        if let Some(r) = rest {
            self.send_rest(r, &h, d, to.as_ref(), meta.now);
        }
    }

    /// The packet an ICMPv4 error (headers `h`) quotes, and the flow it belongs to: the
    /// slot, the direction the error travels in it (that of a reply to the quoted packet),
    /// and whether it was found by its translated tuple.
    #[cold]
    #[inline(never)]
    fn quoted_flow(
        &self,
        frame: &[u8],
        h: &Headers,
    ) -> Option<(packet::icmp::Embedded, (Slot, Dir, bool))> {
        let end = h.l3_offset as usize + h.ip_len as usize;
        let e = packet::icmp::embedded_v4(frame, h.l4_offset as usize, end)?;
        let mut reply = Headers::empty();
        reply.vlans = h.vlans;
        reply.l3 = L3::Ipv4;
        reply.proto = e.proto;
        reply.src = IpAddr16::from_v4(e.dst);
        reply.dst = IpAddr16::from_v4(e.src);
        reply.src_port = e.dport;
        reply.dst_port = e.sport;
        Some((e, self.flows.find_dir(&reply)?))
    }

    /// An ICMP error about a packet of a known flow (destination or port unreachable, need
    /// to fragment, time exceeded): it passes if the flow does, and under NAT it is
    /// translated back as the flow's packets in its direction are, the quoted packet too
    /// (`nat::rewrite_error`), so path MTU discovery and unreachables work through NAT.
    /// It is not accounted to the flow: App-ID and the flow's counters never see it.
    #[cold]
    #[inline(never)]
    fn related(&mut self, port: usize, mut m: Mbuf, meta: &Meta, policy: Option<&Policy>) {
        // Pass 1 found the flow; it may have ended within the burst.
        let Some((e, (slot, dir, via_alias))) = self.quoted_flow(m.data(), &meta.h) else {
            return self.drop(meta.fwd.err().unwrap_or(DropReason::Policy), m);
        };
        let f = self.flows.get(slot);
        if policy.is_some() && !f.policy.verdict.passes() {
            return self.drop(DropReason::Policy, m);
        }
        let d = if f.nat() {
            let Some(n) = &self.nat else {
                return self.drop(DropReason::NatFailed, m);
            };
            if dir == Dir::Reply && !via_alias && matches!(self.mode, Mode::Routed(_)) {
                return self.drop(DropReason::NatBypass, m);
            }
            let to = n.binding(slot).to[dir as usize];
            if nat::rewrite_error(m.data_mut(), &meta.h, &e, &to).is_err() {
                return self.drop(DropReason::NatUnrewritable, m);
            }
            let mut h = meta.h;
            h.dst = IpAddr16::from_v4(to.dst);
            match forward::decide(&self.mode, port, m.data(), &h) {
                Ok(d) => d,
                Err(r) => return self.drop(r, m),
            }
        } else if f.nat_failed() {
            return self.drop(DropReason::NatFailed, m);
        } else {
            match meta.fwd {
                Ok(d) => d,
                Err(r) => return self.drop(r, m),
            }
        };
        self.counters.add(C::IcmpErrorsRelated, 1);
        let f = forward::finish(&mut self.mode, d, m, &meta.h, meta.now);
        self.finished(f);
    }

    /// The segments after the first of a rewritten SIP message that no longer fits in one
    /// (`alg_tcp`): each a copy of the first's headers with its part of the message, its
    /// own sequence number, then NAT and forwarding as the first had.
    #[cold]
    fn send_rest(
        &mut self,
        r: Rest,
        first: &Headers,
        d: Decision,
        to: Option<&nat::Tuple>,
        now: u64,
    ) {
        let hdr = first.payload_offset as usize;
        let mut at = r.from;
        let total = self.alg.rewritten().len();
        while at < total {
            let n = (total - at).min(r.segment);
            let last = at + n == total;
            let Some(mut m) = Mbuf::alloc(&self.pool) else {
                self.counters.add(C::AlgSegmentsLost, 1);
                return;
            };
            if !m.set_len(hdr + n) {
                self.counters.add(C::AlgSegmentsLost, 1);
                return;
            }
            let seq = r.seq.wrapping_add((at - r.from) as u32);
            let frame = m.data_mut();
            frame[..hdr].copy_from_slice(&self.tcp_headers[..hdr]);
            let Some(h) = alg::write_tcp_payload(
                frame,
                first,
                &self.alg.rewritten()[at..at + n],
                seq,
                last && r.fin,
            ) else {
                self.counters.add(C::AlgSegmentsLost, 1);
                return;
            };
            if let Some(to) = to {
                if nat::rewrite(m.data_mut(), &h, to).is_err() {
                    return self.drop(DropReason::NatUnrewritable, m);
                }
            }
            self.counters.add(C::AlgSegmentsSent, 1);
            let f = forward::finish(&mut self.mode, d, m, &h, now);
            self.finished(f);
            at += n;
        }
    }

    /// The ALG stage of one packet of a flow whose application has the SIP ALG (and the
    /// rule that allowed it did not switch the ALG off): its call is followed, and its
    /// message rewritten where NAT (`to`: what the packet becomes) changed an address.
    #[inline(always)]
    fn alg_stage(
        &mut self,
        m: &mut Mbuf,
        h: &mut Headers,
        meta: &Meta,
        dir: Dir,
        to: Option<&nat::Tuple>,
        policy: Option<&Policy>,
    ) -> Result<Option<Rest>, DropReason> {
        let Some(slot) = meta.flow.hint() else {
            return Ok(None);
        };
        let tcp = h.proto == packet::proto::TCP;
        if h.l3 != L3::Ipv4 || h.fragment != Fragment::No {
            return Ok(None);
        }
        let f = self.flows.get(slot);
        if !f.alg() {
            // A TCP connection App-ID is still reading, whose first bytes are a SIP start
            // line: followed now (App-ID waits for the header block; the first segment must
            // not go on unrewritten before it decides).
            let undecided = !f.app_done && f.app == u16::MAX && !f.predicted();
            let frame = m.data();
            let at = h.payload_offset as usize;
            let first = tcp
                && undecided
                && frame
                    .get(at..at + h.payload_len as usize)
                    .is_some_and(alg::sip::starts_like_sip);
            if !first {
                return Ok(None);
            }
            self.flows.get_mut(slot).set_alg(true);
        }
        let f = self.flows.get(slot);
        if tcp && h.payload_len == 0 {
            // Only its numbers, where an earlier rewrite moved them.
            if self.alg.streams.adjusts(slot) {
                self.shift(m, h, slot, dir, None);
            }
            return Ok(None);
        }
        if !tcp && h.proto != packet::proto::UDP {
            return Ok(None);
        }
        if policy.is_some_and(|p| !p.alg_allowed(f.policy.verdict.rule)) {
            return Ok(None);
        }
        let (Some(src), Some(dst)) = (h.src.v4(), h.dst.v4()) else {
            return Ok(None);
        };
        let mut xlate = Xlate::default();
        let mut peer = dst;
        if let Some(t) = to {
            let (s0, d0) = (
                Endpoint {
                    addr: src,
                    port: h.src_port,
                },
                Endpoint {
                    addr: dst,
                    port: h.dst_port,
                },
            );
            let (s1, d1) = (
                Endpoint {
                    addr: t.src,
                    port: t.sport,
                },
                Endpoint {
                    addr: t.dst,
                    port: t.dport,
                },
            );
            xlate.src = (s0 != s1).then_some(Change { from: s0, to: s1 });
            xlate.dst = (d0 != d1).then_some(Change { from: d0, to: d1 });
            peer = t.dst;
        }
        let (osrc, ..) = f.key.oriented(f.orig_is_lo);
        // The sender's side and the peer's side of the flow (ports, zones).
        let [p0, p1] = f.policy.ports;
        let (from_port, to_port) = match dir {
            Dir::Orig => (p0 as usize, p1 as usize),
            Dir::Reply => (p1 as usize, p0 as usize),
        };
        let mode = &self.mode;
        let media_nat = |a: [u8; 4]| -> Option<[u8; 4]> {
            let p = policy?;
            let iface = match mode {
                // Only a host reached through the sender's own side is inside with it.
                Mode::Routed(r) => {
                    match r.route(std::net::Ipv4Addr::from(a)) {
                        forward::routed::Hop::Forward { port, .. } if port == from_port => {}
                        _ => return None,
                    }
                    r.iface_on(to_port).map(|i| u32::from(i.addr))
                }
                Mode::Wire(_) => None,
            };
            let s = NatSubject {
                from_zone: p.zone_of(from_port),
                to_zone: p.zone_of(to_port),
                src: u32::from_be_bytes(a),
                dst: u32::from_be_bytes(peer),
                proto: packet::proto::UDP,
                dst_port: 0,
            };
            match nat::plan(&p.nat, &s, |_| iface) {
                Plan::Translate {
                    source: nat::Source::Dynamic(e) | nat::Source::Address(e),
                    ..
                } => Some(e.to_be_bytes()),
                _ => None,
            }
        };
        let frame = m.data();
        let start = h.payload_offset as usize;
        let Some(payload) = frame.get(start..start + h.payload_len as usize) else {
            return Ok(None);
        };
        let p = SipPacket {
            payload,
            dir,
            proto: h.proto,
            xlate,
            media_nat: &media_nat,
            peer,
            flow_id: flowlog::flow_id(self.id as u16, slot, f.start_ns),
            flow_hash: f.key_hash(),
            app: f.app,
            source: osrc.v4().map_or(0, u32::from_be_bytes),
            now: meta.now,
        };
        if tcp {
            let seg = self.alg.on_segment(&p, slot, h.tcp_seq, self.nat.as_mut());
            return self.segment_out(m, h, slot, dir, seg);
        }
        match self.alg.on_datagram(&p, self.nat.as_mut()) {
            Outcome::Unchanged => Ok(None),
            Outcome::Drop => Err(DropReason::AlgUnrewritable),
            Outcome::Rewritten => {
                let out = self.alg.rewritten();
                let end = start + out.len();
                if !m.set_len(end) {
                    self.alg.counters.unrewritable += 1;
                    return Err(DropReason::AlgUnrewritable);
                }
                match alg::write_udp_payload(m.data_mut(), h, self.alg.rewritten()) {
                    Some(nh) => {
                        *h = nh;
                        Ok(None)
                    }
                    None => Err(DropReason::AlgUnrewritable),
                }
            }
        }
    }

    /// What the ALG decided for a TCP segment, done to the packet: sent with its numbers
    /// shifted, its payload replaced by the rewritten messages (the first segment's worth;
    /// the `Rest` goes after it), or consumed.
    fn segment_out(
        &mut self,
        m: &mut Mbuf,
        h: &mut Headers,
        slot: Slot,
        dir: Dir,
        seg: alg::Segment,
    ) -> Result<Option<Rest>, DropReason> {
        match seg {
            alg::Segment::Unchanged => {
                if self.alg.streams.adjusts(slot) {
                    self.shift(m, h, slot, dir, None);
                }
                Ok(None)
            }
            alg::Segment::Held => Err(DropReason::AlgHeld),
            alg::Segment::Reordered => Err(DropReason::AlgReordered),
            alg::Segment::Drop => Err(DropReason::AlgUnrewritable),
            alg::Segment::Emit { seq, segment } => {
                let start = h.payload_offset as usize;
                let total = self.alg.rewritten().len();
                // At least what fits in the datagram every host takes; the mbuf's own room
                // bounds the first segment too.
                let headers = start - h.l3_offset as usize;
                let segment = segment
                    .max(alg::tcp::MIN_DATAGRAM.saturating_sub(headers))
                    .min(m.room().saturating_sub(start))
                    .max(1);
                let n = total.min(segment);
                if !m.set_len(start + n) {
                    self.alg.counters.unrewritable += 1;
                    return Err(DropReason::AlgUnrewritable);
                }
                // The acknowledgement and SACK first (the payload's checksum follows).
                self.shift(m, h, slot, dir, Some(seq));
                let fin = h.tcp_flags & 0x01 != 0;
                let out = &self.alg.rewritten()[..n];
                let Some(nh) = alg::write_tcp_payload(m.data_mut(), h, out, seq, n == total && fin)
                else {
                    return Err(DropReason::AlgUnrewritable);
                };
                *h = nh;
                if n == total {
                    return Ok(None);
                }
                self.tcp_headers[..start].copy_from_slice(&m.data()[..start]);
                Ok(Some(Rest {
                    from: n,
                    segment,
                    seq: seq.wrapping_add(n as u32),
                    fin,
                }))
            }
        }
    }

    /// Shifts a TCP packet's sequence number (to `mapped`, or by the correction of its
    /// direction), acknowledgement and SACK blocks by the corrections the ALG's rewrites
    /// made on its connection.
    fn shift(&mut self, m: &mut Mbuf, h: &mut Headers, slot: Slot, dir: Dir, mapped: Option<u32>) {
        let s = &self.alg.streams;
        let seq = mapped.unwrap_or_else(|| s.shift(slot, dir, h.tcp_seq, 0).0);
        alg::shift_tcp(m.data_mut(), h, seq, &|v| s.unmap_sack(slot, dir, v));
        h.tcp_seq = seq;
    }

    /// The NAT stage of one packet: for a translated flow, the tuple the packet becomes in
    /// its direction and where that goes (decided again when the destination changes:
    /// return traffic to the appliance's address, destination NAT); a flow NAT could not
    /// translate is dropped; any other goes where pass 1 decided.
    #[inline(always)]
    fn nat_stage(
        &mut self,
        t: &Tracked,
        meta: &Meta,
        in_port: usize,
        d: Option<Decision>,
        frame: &[u8],
    ) -> Result<(Decision, Option<nat::Tuple>), DropReason> {
        let f = self.flows.get(t.slot);
        if !f.nat() {
            if f.nat_failed() {
                return Err(DropReason::NatFailed);
            }
            return d.map(|d| (d, None)).ok_or(DropReason::LocalDelivery);
        }
        let Some(n) = &self.nat else {
            return Err(DropReason::NatFailed);
        };
        if t.dir == Dir::Reply && !meta.flow.via_alias() && matches!(self.mode, Mode::Routed(_)) {
            return Err(DropReason::NatBypass);
        }
        let to = n.binding(t.slot).to[t.dir as usize];
        let d = match d {
            Some(d) if meta.h.dst.v4() == Some(to.dst) => d,
            _ => {
                let mut h = meta.h;
                h.dst = IpAddr16::from_v4(to.dst);
                forward::decide(&self.mode, in_port, frame, &h)?
            }
        };
        Ok((d, Some(to)))
    }

    /// Sends what `forward::finish` completed (or holds, or drops).
    #[inline(always)]
    fn finished(&mut self, f: Finished) {
        match f {
            Finished::Send(out, m) => self.send(out, m),
            Finished::Held { replaced, ask } => {
                if let Some(old) = replaced {
                    self.drop(DropReason::NeighbourUnresolved, old);
                }
                if let Some(req) = ask {
                    self.ask(req);
                }
            }
            Finished::Drop(r, m) => self.drop(r, m),
        }
    }

    /// The flow stage of one packet: account it, run App-ID while the flow is undecided.
    #[inline(always)]
    fn flow_stage(
        &mut self,
        h: &Headers,
        r: &FlowRef,
        len: u32,
        now: u64,
        frame: &[u8],
    ) -> (Tracked, AppEvent) {
        if h.fragment != Fragment::No {
            self.counters.add(C::Fragments, 1);
        }
        let (flows, appid, mut ends) = self.split();
        let (t, ev) = account_and_classify(
            flows,
            appid,
            h,
            r,
            len,
            now,
            frame,
            &mut |a, s, f, reason| ends.end(a, s, f, reason),
        );
        if t.created {
            ends.counters.add(C::FlowsCreated, 1);
        }
        if t.interim {
            ends.interim(appid, t.slot, flows.get(t.slot));
        }
        let mut ev = ev;
        if let AppEvent::Decided(a) | AppEvent::Shifted { to: a, .. } = ev {
            let f = flows.get_mut(t.slot);
            // The media of a call of a specific application (facetime, not plain sip)
            // takes that application, after what App-ID found (["rtp", "facetime"]).
            // The ALG follows what the flow carries: SIP (also a predicted one, an incoming
            // call a registration let in), not the media a SIP call predicted, nor a
            // facetime flow that is TLS (["ssl", "facetime"]).
            let sip_id = appid.catalog.of_proto(Proto::Sip);
            let sip = appid.catalog.has_sip_alg(a)
                && (a == sip_id || appid.info(t.slot).path().contains(&sip_id));
            let call = if f.predicted() {
                Some(ends.alg.call_app(t.slot))
            } else if is_media(appid, t.slot) {
                // A call's media relayed through TURN: the flow runs from the endpoint the
                // call described to the relay, which no pinhole expected.
                let (src, sport, dst, dport) = f.key.oriented(f.orig_is_lo);
                match (src.v4(), dst.v4()) {
                    (Some(s), Some(d)) => {
                        let media = [(s, sport), (d, dport)];
                        ends.alg.relayed_media(t.slot, f.key.proto(), media)
                    }
                    _ => None,
                }
            } else {
                None
            };
            let call = call.map(AppId).filter(|&c| c != a && c != sip_id);
            let adopted = call.is_some();
            if let Some(call) = call {
                ev = appid.adopt(t.slot, f, call);
            }
            f.set_alg(sip);
            if adopted {
                flows.app_decided(t.slot);
            }
        }
        ends.tables.app_packet(flows.get_mut(t.slot).app, len);
        (t, ev)
    }

    /// The inner flow of a tunnel packet that passed (`inner_flow`), counted.
    #[cold]
    #[inline(never)]
    fn tunnel_stage(
        &mut self,
        port: usize,
        frame: &[u8],
        h: &Headers,
        now: u64,
    ) -> Option<(Tracked, AppEvent, Headers)> {
        let (flows, appid, mut ends) = self.split();
        let inner = inner_flow(
            flows,
            appid,
            frame,
            h,
            now,
            port as u8,
            &mut |a, s, f, r| ends.end(a, s, f, r),
        );
        match inner {
            Inner::None => None,
            Inner::Malformed => {
                ends.counters.add(C::TunnelInnerMalformed, 1);
                None
            }
            Inner::Refused => {
                ends.counters.add(C::TunnelInnerUntracked, 1);
                None
            }
            Inner::Tracked(t, ev, len, ih) => {
                ends.counters.add(C::TunnelPackets, 1);
                if t.created || t.first {
                    ends.counters.add(C::FlowsCreated, 1);
                }
                if t.interim {
                    ends.interim(appid, t.slot, flows.get(t.slot));
                }
                ends.tables.app_packet(flows.get(t.slot).app, len);
                Some((t, ev, ih))
            }
        }
    }

    /// A `reset` rule stopped this packet's flow: TCP resets to both ends, or ICMP port
    /// unreachable to the sender. The reset toward the destination takes the packet's own
    /// forwarding decision; the rest go back out of the port the packet came in on.
    #[cold]
    #[inline(never)]
    fn reject(&mut self, in_port: usize, d: Decision, m: &Mbuf, meta: &Meta) {
        let (frame, h) = (m.data(), &meta.h);
        let mut buf = [0u8; reject::MAX_FRAME];
        if h.proto == packet::proto::TCP {
            if let Some(n) = reject::tcp_reset(frame, h, Toward::Sender, &mut buf) {
                self.send_built(in_port, &buf[..n]);
            }
            if let Some(n) = reject::tcp_reset(frame, h, Toward::Destination, &mut buf) {
                if let Some(r) = Mbuf::from_bytes(&self.pool, &buf[..n]) {
                    self.counters.add(C::ResetsSent, 1);
                    let f = forward::finish(&mut self.mode, d, r, h, meta.now);
                    self.finished(f);
                }
            }
        } else if let Some(n) = reject::port_unreachable(frame, h, &mut buf) {
            self.send_built(in_port, &buf[..n]);
        }
    }

    fn send_built(&mut self, out: usize, frame: &[u8]) {
        if let Some(m) = Mbuf::from_bytes(&self.pool, frame) {
            self.counters.add(C::ResetsSent, 1);
            self.send(out, m);
        }
    }

    /// Sends the ARP request the neighbour cache asked for.
    #[cold]
    fn ask(&mut self, req: ArpRequest) {
        if let Some(m) = Mbuf::from_bytes(&self.pool, &req.frame()) {
            self.counters.add(C::ArpRequestsSent, 1);
            self.send(req.port, m);
        }
    }

    /// The policy stage of one packet: the flow's verdict, checked again when it is new,
    /// when App-ID decided or shifted its application, or when the policy changed.
    #[inline(always)]
    fn policy_stage(
        &mut self,
        p: &Policy,
        t: &Tracked,
        ev: AppEvent,
        h: &Headers,
        in_port: usize,
        out_port: usize,
    ) -> Verdict {
        let f = self.flows.get_mut(t.slot);
        let generation = short_generation(p.generation);
        if f.policy.generation == generation && ev == AppEvent::None && !t.first {
            return f.policy.verdict;
        }
        if t.first {
            // The first packet's ports give the flow's zones for every later check.
            f.policy.ports = [in_port as u8, out_port as u8];
        }
        let app = match self.appid.info(t.slot).app {
            // A call's media is checked as its call's application.
            _ if f.predicted() => Some(AppId(self.alg.call_app(t.slot))),
            AppId::NONE => None,
            a => Some(a),
        };
        // A predicted flow from outside to a NAT mapping: its inside end, for the check of
        // the call's rule from that side.
        let inside = match &self.nat {
            Some(n) if f.predicted() && f.nat() => {
                Some(IpAddr16::from_v4(n.binding(t.slot).to[0].dst))
            }
            _ => None,
        };
        let v = check_flow(p, f, h, t.dir, app, inside);
        if !v.passes() && (f.policy.generation == 0 || f.policy.verdict.passes()) {
            self.counters.add(C::FlowsDenied, 1);
            self.tables.app_add(f.app, AppCounter::Denied, 1);
        }
        // A rule hit: the verdict settled now, or a later decision moved the settled flow
        // to another rule: an App-ID shift under the same policy, or a reload that changed
        // what happens to it (rule indices of two generations do not compare; a reload that
        // keeps a flow's action does not count it again).
        let old = f.policy;
        let moved = if old.generation == generation {
            old.verdict.rule != v.rule
        } else {
            old.verdict.action != v.action
        };
        if v.settled && (!old.verdict.settled || moved) {
            self.tables.rule_hit(p.slot_of(v.rule));
        }
        f.policy.verdict = v;
        f.policy.generation = generation;
        if !v.passes() && v.settled && !f.app_done {
            // Denied on a provisional answer: no later shift brings it back (as a firewall
            // that denies a session stops inspecting it).
            self.appid.conclude(t.slot, f);
        }
        v
    }

    /// Every worker keeps its own neighbour cache and sends on its own queue: each learns
    /// from every ARP frame, whichever worker's queue it arrived on, through a copy.
    fn copy_to_others(&mut self, port: usize, m: &Mbuf) {
        let Some(h) = self.handoff.as_mut() else {
            return;
        };
        let (workers, me) = (h.workers(), h.id());
        let mut r = aperture_dpdk::TxResult::default();
        for w in (0..workers).filter(|&w| w != me) {
            if let Some(copy) = Mbuf::from_bytes(&self.pool, m.data()) {
                let s = h.stage(w, port, copy);
                r.sent += s.sent;
                r.dropped += s.dropped;
                r.dropped_bytes += s.dropped_bytes;
            }
        }
        self.handed_off(r);
    }

    /// ARP on a routed port, answered or consumed by `forward::arp`.
    fn arp(&mut self, port: usize, m: Mbuf, meta: &Meta) {
        if let (Mode::Routed(_), false) = (&self.mode, self.handed) {
            self.copy_to_others(port, &m);
        }
        let Mode::Routed(ref mut router) = self.mode else {
            return self.drop(DropReason::NotRoutable, m);
        };
        let (handled, released) = arp::handle(router, port, m, &meta.h, meta.now);
        match handled {
            // A copy from another worker: that one answered.
            arp::Handled::Reply(_, _) if self.handed => self.counters.add(C::LocalPackets, 1),
            arp::Handled::Reply(out, m) => {
                self.counters.add(C::ArpRepliesSent, 1);
                self.send(out, m);
            }
            arp::Handled::Consumed => self.counters.add(C::LocalPackets, 1),
            arp::Handled::Drop(r, m) => self.drop(r, m),
        }
        if let Some((out, m)) = released {
            self.send(out, m);
        }
    }

    #[inline(always)]
    fn send(&mut self, out: usize, m: Mbuf) {
        if self.tx[out].is_full() {
            self.flush_port(out);
        }
        if let Err(m) = self.tx[out].push(m) {
            self.drop(DropReason::TxFull, m);
        }
    }

    #[inline]
    fn drop(&mut self, r: DropReason, m: Mbuf) {
        self.counters.drop(r, m.pkt_len());
    }

    fn flush_port(&mut self, p: usize) {
        let r = self.ports[p].1.flush(&mut self.tx[p]);
        self.counters.add(C::TxPackets, r.sent as u64);
        self.counters.add(C::TxBytes, r.sent_bytes);
        if r.dropped > 0 {
            self.counters.add(C::DropPackets, r.dropped as u64);
            self.counters.add(C::DropBytes, r.dropped_bytes);
            self.counters.0[DropReason::TxFull.index()] += r.dropped as u64;
        }
    }

    fn flush_tx(&mut self) {
        for p in 0..self.tx.len() {
            if !self.tx[p].is_empty() {
                self.flush_port(p);
            }
        }
    }

    fn expire(&mut self) {
        let now = self.clock.now();
        self.counters.set(C::ClockOutliers, self.clock.outliers());
        let a = self.appid.counters;
        self.counters.set(C::AppidContextsReclaimed, a.reclaimed);
        self.counters.set(C::AppidNoContext, a.no_context);
        self.counters.set(C::AppidEvidenceLost, a.evidence_lost);
        if let Some(d) = self.defrag.as_mut() {
            d.sweep(now);
            let c = d.counters;
            self.counters.set(C::FragmentsHeld, c.held);
            self.counters.set(C::FragmentsReassembled, c.reassembled);
            self.counters.set(C::FragmentsTimedOut, c.timed_out);
            self.counters.set(C::FragmentsEvicted, c.evicted);
        }
        self.alg.expire(now, EXPIRE_BUDGET, self.nat.as_mut());
        let (flows, appid, mut ends) = self.split();
        flows.expire(now, EXPIRE_BUDGET, &mut |s, f, r| ends.end(appid, s, f, r));
        let counters = ends.counters;
        counters.set(C::FlowsActive, flows.active() as u64);
        if let Some(n) = ends.nat {
            let c = n.counters;
            counters.set(C::NatMappingsCreated, c.mappings_created);
            counters.set(C::NatMappingsActive, c.mappings_active);
            counters.set(C::NatBindingsCreated, c.bindings_created);
            counters.set(C::NatPortExhausted, c.exhausted);
            counters.set(C::NatInboundFiltered, c.filtered);
        }
        let (a, p) = (ends.alg.counters, ends.alg.pinholes.counters);
        counters.set(C::SipMessages, a.messages);
        counters.set(C::SipRewritten, a.rewritten);
        counters.set(C::SipMalformed, a.malformed);
        counters.set(C::SipUnrewritable, a.unrewritable);
        counters.set(C::SipMediaUnmapped, a.media_unmapped);
        counters.set(C::SipNotSip, a.not_sip);
        let t = ends.alg.streams.counters;
        counters.set(C::SipTcpHeld, t.held);
        counters.set(C::SipTcpReordered, t.reordered);
        counters.set(C::SipTcpUnbuffered, t.unbuffered);
        counters.set(C::SipTcpAbandoned, t.abandoned);
        counters.set(C::SipTcpAdjusted, t.adjusted);
        counters.set(C::SipTcpStreamsActive, ends.alg.streams.active() as u64);
        counters.set(C::PinholesOpened, p.opened);
        counters.set(C::PinholesUsed, p.used);
        counters.set(C::PinholesExpired, p.expired);
        counters.set(C::PinholesClosed, p.closed);
        counters.set(C::PinholesRefused, p.refused);
        counters.set(C::PinholesActive, p.active);
        counters.set(C::SipDialogsActive, p.dialogs);
        if let Some(c) = &ends.alg.pinholes.claims {
            counters.set(C::PinholeClaimsRefused, c.refused);
        }
    }
}

/// What the slow path does with a new flow as far as NAT goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NewFlow {
    /// A plain flow: no NAT rule matches.
    Plain,
    /// For the appliance's own address and nothing NAT forwards: no flow (local delivery).
    NotOurs,
    /// From outside to a mapping the inside endpoint (address, port) made.
    Inbound((u32, u16)),
    Nat(Plan),
}

/// What NAT does with the new flow of `h` (its first packet, received on `in_port`, going
/// where `fwd` says). Slow path only.
fn nat_plan(
    nat: &mut NatTable,
    p: &Policy,
    mode: &Mode,
    h: &Headers,
    fwd: Result<Decision, DropReason>,
    in_port: usize,
) -> NewFlow {
    let local = fwd == Err(DropReason::LocalDelivery);
    match nat.inbound(h) {
        nat::Inbound::Allowed(a, port) => return NewFlow::Inbound((a, port)),
        nat::Inbound::Filtered => return NewFlow::Nat(Plan::Fail),
        nat::Inbound::NotMapped => {}
    }
    let (Some(src), Some(dst)) = (h.src.v4(), h.dst.v4()) else {
        return if local {
            NewFlow::NotOurs
        } else {
            NewFlow::Plain
        };
    };
    let out_port = match fwd {
        Ok(d) => d.port().unwrap_or(in_port),
        Err(_) => in_port,
    };
    let zone = |port: usize| p.zone_of_port.get(port).copied().unwrap_or(NO_ZONE);
    let s = NatSubject {
        from_zone: zone(in_port),
        to_zone: zone(out_port),
        src: u32::from_be_bytes(src),
        dst: u32::from_be_bytes(dst),
        proto: h.proto,
        dst_port: h.dst_port,
    };
    let plan = nat::plan(&p.nat, &s, |port| match mode {
        Mode::Routed(r) => r.iface_on(port).map(|i| u32::from(i.addr)),
        Mode::Wire(_) => None,
    });
    match plan {
        Plan::None if local => NewFlow::NotOurs,
        Plan::None => NewFlow::Plain,
        // Traffic for the appliance itself that only a source translation matches: not
        // forwarded (only destination NAT sends a local address on).
        Plan::Translate {
            destination: None, ..
        } if local => NewFlow::NotOurs,
        // A later fragment has no ports to translate: never sent untranslated.
        _ if h.fragment == Fragment::Later => NewFlow::Nat(Plan::Fail),
        plan => NewFlow::Nat(plan),
    }
}

/// The slow path of one packet whose lookup missed, shared by the workers and the offline
/// driver: insert its flow (unless an earlier packet of the burst did) and start App-ID on
/// it. Returns whether a flow was created, or why the limits refused it (`port`: where it
/// came in). Flows evicted to make room go to `ended`.
#[inline]
pub fn insert_flow(
    flows: &mut FlowTable,
    appid: &mut Engine,
    h: &Headers,
    r: &mut FlowRef,
    now: u64,
    port: u8,
    ended: &mut impl FnMut(&mut Engine, Slot, &Flow, EndReason),
) -> Result<bool, Refusal> {
    let Some(slot) = flows.insert(h, r, now, port, &mut |s, f, reason| {
        ended(appid, s, f, reason)
    })?
    else {
        return Ok(false);
    };
    appid.created(slot, flows.get_mut(slot), h);
    Ok(true)
}

/// The flow stage of one packet, shared by the workers and the offline driver: account the
/// packet to its flow (found or inserted before), and run App-ID while the application is
/// undecided. `frame` is the packet's first segment. `ended` receives every flow that ends
/// on the way (eviction, tuple reuse) with the engine. Returns what App-ID decided.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub fn account_and_classify(
    flows: &mut FlowTable,
    appid: &mut Engine,
    h: &Headers,
    r: &FlowRef,
    len: u32,
    now: u64,
    frame: &[u8],
    ended: &mut impl FnMut(&mut Engine, Slot, &Flow, EndReason),
) -> (Tracked, AppEvent) {
    let t = flows.account(h, r, len, now, &mut |s, f, reason| {
        ended(appid, s, f, reason)
    });
    let f = flows.get_mut(t.slot);
    let mut ev = AppEvent::None;
    if t.created {
        ev = appid.created(t.slot, f, h);
    }
    if !f.app_done {
        ev = appid.packet(t.slot, f, t.dir, h, frame);
    }
    if let AppEvent::Decided(a) | AppEvent::Shifted { to: a, .. } = ev {
        f.app = a.0;
        flows.app_decided(t.slot);
    }
    (t, ev)
}

/// Whether App-ID named flow `slot` by its media (RTP or RTCP on its path).
fn is_media(appid: &Engine, slot: Slot) -> bool {
    let (rtp, rtcp) = (
        appid.catalog.of_proto(Proto::Rtp),
        appid.catalog.of_proto(Proto::Rtcp),
    );
    appid
        .info(slot)
        .path()
        .iter()
        .any(|p| *p == rtp || *p == rtcp)
}

/// What became of the inner packet of a possible tunnel packet (`inner_flow`).
pub enum Inner {
    /// Not a tunnel packet after all.
    None,
    /// A well-formed tunnel whose inner IP packet is malformed.
    Malformed,
    /// The flow table refused the inner flow.
    Refused,
    /// Accounted to its flow (this many bytes), with what App-ID decided on it and the
    /// inner packet's headers.
    Tracked(Tracked, AppEvent, u32, Headers),
}

/// The inner flow of a tunnel packet (`frame`, outer headers `h` with
/// `tunnel::candidate(h)`), shared by the workers and the offline driver: the inner packet
/// is accounted to a flow of its own (keyed with the tunnel kind; created on its first
/// packet, under the same admission limits as any flow, with the tunnel it came out of) and
/// classified. Its size is the inner IP packet's. Policy and NAT act on the outer packet.
#[allow(clippy::too_many_arguments)]
#[cold]
#[inline(never)]
pub fn inner_flow(
    flows: &mut FlowTable,
    appid: &mut Engine,
    frame: &[u8],
    h: &Headers,
    now: u64,
    port: u8,
    ended: &mut impl FnMut(&mut Engine, Slot, &Flow, EndReason),
) -> Inner {
    let (ih, tunnel) = match packet::tunnel::decap(frame, h) {
        Ok(Some(x)) => x,
        Ok(None) => return Inner::None,
        Err(_) => return Inner::Malformed,
    };
    let mut r = flows.flow_ref(&ih);
    flows.lookup(&ih, &mut r);
    if r.missed() {
        match insert_flow(flows, appid, &ih, &mut r, now, port, ended) {
            Ok(true) => {
                if let Some(slot) = r.hint() {
                    appid.set_tunnel(slot, tunnel);
                }
            }
            Ok(false) => {}
            Err(_) => return Inner::Refused,
        }
    }
    let len = ih.ip_len as u32;
    let (t, ev) = account_and_classify(flows, appid, &ih, &r, len, now, frame, ended);
    if t.created {
        appid.set_tunnel(t.slot, tunnel);
    }
    Inner::Tracked(t, ev, len, ih)
}

/// Checks a flow against the policy from its originator's side: the zones of the ports its
/// first packet came in on and left by, the originator's address as source, the responder's
/// port as destination port. `h` is this packet's headers, `dir` its direction in the flow.
#[inline(never)]
/// The verdict on flow `f` for its packet `h` in `dir`. `inside`: for a predicted flow that
/// NAT translated, where its originator's packets go after translation (the inside party a
/// pinhole let it reach), which the reversed check takes as that party's address.
pub fn check_flow(
    p: &Policy,
    f: &Flow,
    h: &Headers,
    dir: Dir,
    app: Option<AppId>,
    inside: Option<IpAddr16>,
) -> Verdict {
    let [from, to] = f.policy.ports;
    let (src, dst, dst_port) = match dir {
        Dir::Orig => (&h.src, &h.dst, h.dst_port),
        Dir::Reply => (&h.dst, &h.src, h.src_port),
    };
    let s = Subject {
        from_zone: p.zone_of(from as usize),
        to_zone: p.zone_of(to as usize),
        src: addr_key(src),
        dst: addr_key(dst),
        proto: h.proto,
        dst_port,
        predicted: f.predicted(),
    };
    let v = p.check(&s, app);
    if v.passes() || !f.predicted() {
        return v;
    }
    // A call's media flows both ways whichever end sends first: the rule that allows the
    // call from one side allows its media in either direction.
    let reversed = Subject {
        from_zone: s.to_zone,
        to_zone: s.from_zone,
        src: inside.as_ref().map_or(s.dst, addr_key),
        dst: s.src,
        dst_port: match dir {
            Dir::Orig => h.src_port,
            Dir::Reply => h.dst_port,
        },
        ..s
    };
    let r = p.check(&reversed, app);
    if r.passes() {
        return r;
    }
    // Where the ports' zones do not say the direction (a replayed capture enters on one
    // port both ways): the reversed ends between the same zones.
    let same_zones = Subject {
        from_zone: s.from_zone,
        to_zone: s.to_zone,
        ..reversed
    };
    let z = p.check(&same_zones, app);
    if z.passes() {
        z
    } else {
        v
    }
}

/// What ending a flow touches besides the flow table and App-ID: split off the worker so
/// the table's callbacks can reach it while the table is borrowed (`Worker::split`).
struct FlowEnds<'a> {
    id: usize,
    counters: &'a mut Counters,
    tables: &'a mut Tables,
    log: &'a FlowLogSink,
    nat: &'a mut Option<NatTable>,
    alg: &'a mut SipAlg,
}

impl FlowEnds<'_> {
    /// Accounts an ended flow, releases its NAT binding, and hands its record to the flow log.
    fn end(&mut self, appid: &mut Engine, slot: Slot, f: &Flow, r: EndReason) {
        let evidence = appid.evidence(slot);
        let tunnel = appid.tunnel(slot, f);
        let app = appid.ended(slot, f);
        let mut record = FlowRecord::new(self.id as u16, slot, f, Some(r), &app, evidence);
        record.tunnel = tunnel;
        record.predicted_by = self.alg.ended(slot);
        if f.nat() {
            if let Some(n) = self.nat {
                record.nat = Some(n.ended(slot).to[0]);
            }
        }
        self.tables.app_add(app.app.0, AppCounter::Flows, 1);
        match r {
            EndReason::Evicted => self.counters.add(C::FlowsEvicted, 1),
            EndReason::Exit => {}
            _ => self.counters.add(C::FlowsExpired, 1),
        }
        if !self.log.push(record) {
            self.counters.add(C::FlowLogLost, 1);
        }
    }

    /// Hands the flow log an interim record of live flow `f` (past another active timeout).
    #[cold]
    fn interim(&mut self, appid: &Engine, slot: Slot, f: &Flow) {
        let mut record = FlowRecord::new(
            self.id as u16,
            slot,
            f,
            None,
            appid.info(slot),
            appid.evidence(slot),
        );
        record.predicted_by = self.alg.predicted_by(slot);
        record.tunnel = appid.tunnel(slot, f);
        if f.nat() {
            if let Some(n) = self.nat {
                record.nat = Some(n.binding(slot).to[0]);
            }
        }
        self.counters.add(C::FlowLogInterim, 1);
        if !self.log.push(record) {
            self.counters.add(C::FlowLogLost, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The per-burst metadata is written and read for every packet: keep it small. A
    /// `Decision` of 8 bytes (u16 ports, a `u8` tag) was measured to matter: with a wider
    /// enum the compiler assembled `Result<Decision, _>` from overlapping stack loads, a
    /// store-forwarding stall that cost about 15% of the worker benchmark.
    #[test]
    fn per_packet_metadata_stays_small() {
        assert_eq!(std::mem::size_of::<crate::forward::Decision>(), 8);
        assert_eq!(
            std::mem::size_of::<Result<crate::forward::Decision, crate::stats::DropReason>>(),
            8
        );
        assert!(std::mem::size_of::<super::Meta>() <= 120);
        assert!(std::mem::size_of::<crate::forward::Finished>() <= 40);
    }
}
