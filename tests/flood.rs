//! Floods against one worker on DPDK ring ports (virtual wire: inside <-> outside).
//!
//! 10,000 established TCP flows (handshake done, an HTTP exchange each, so App-ID has named
//! them `web-browsing`) keep carrying traffic both ways while new spoofed tuples arrive: a SYN flood,
//! an ACK flood and a UDP flood (with payload, so App-ID contexts are taken), 20M tuples in all
//! by default (`APERTURE_FLOOD_TUPLES`), then one source opening flows past its per-source
//! limit. The flood packets are made by this thread as fast as it can while the worker polls
//! in between (one core for both: the rate printed is what this machine sustains, generator
//! included). Checked: at least 99.9% of the established flows' packets forwarded, every
//! established flow still there at the end (never evicted) and still `web-browsing`, the worker's
//! memory within what its configured sizes imply, and the evictions, refusals and reclaims
//! counted.
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::appid::engine::{Engine, Limits};
use aperture_dataplane::clock::Clock;
use aperture_dataplane::config::{AppIdConfig, Timeouts};
use aperture_dataplane::flow::admit::Limit;
use aperture_dataplane::flow::{EndReason, FlowTable};
use aperture_dataplane::flowlog::{FlowLogSink, FlowRecord};
use aperture_dataplane::forward::VirtualWire;
use aperture_dataplane::packet::checksum;
use aperture_dataplane::stats::{DropReason, C};
use aperture_dataplane::worker::{Mode, Worker};
use aperture_dpdk::{Burst, Eal, Mbuf, Mempool, RingPair, RxQueue, TxBuffer, TxQueue};
use aperture_traffic::build::{tcp4, udp4, TcpFlags, TcpHeader};
use aperture_traffic::rng::Rng;
use crossbeam_queue::ArrayQueue;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant;

const ESTABLISHED: usize = 10_000;
const CAPACITY: usize = 16_384;
const CONTEXTS: usize = 1024;
/// One established packet (alternating direction) after this many flood packets.
const FLOOD_PER_ESTABLISHED: u64 = 8;
const SOURCE_LIMIT: u32 = 500;
/// New tuples from the one source (distinct source ports).
const ONE_SOURCE: u64 = 60_000;
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x22];
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

fn tuples() -> u64 {
    std::env::var("APERTURE_FLOOD_TUPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000)
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The i-th established client (a distinct address each, under the per-source limit).
fn client(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(10, 1, (i / 200) as u8, (i % 200) as u8 + 1),
        40_000 + (i % 1000) as u16,
    )
}

fn seg(from_client: bool, i: usize, seq: u32, ack: u32, flags: TcpFlags, data: &[u8]) -> Vec<u8> {
    let (c, s) = (client(i), SocketAddrV4::new(SERVER, 80));
    let h = TcpHeader {
        seq,
        ack,
        flags,
        window: 65535,
    };
    if from_client {
        tcp4(CLIENT_MAC, SERVER_MAC, c, s, &h, data)
    } else {
        tcp4(SERVER_MAC, CLIENT_MAC, s, c, &h, data)
    }
}

/// Sets a frame's IPv4 source and L4 source port, patching the checksums (RFC 1624).
fn respoof(f: &mut [u8], src: [u8; 4], port: u16, l4_sum_at: Option<usize>) {
    let word = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
    let mut ip_sum = word(f, 24);
    let mut l4_sum = l4_sum_at.map(|at| word(f, at));
    for (k, new) in [
        u16::from_be_bytes([src[0], src[1]]),
        u16::from_be_bytes([src[2], src[3]]),
    ]
    .into_iter()
    .enumerate()
    {
        let old = word(f, 26 + 2 * k);
        ip_sum = checksum::update16(ip_sum, old, new);
        l4_sum = l4_sum.map(|s| checksum::update16(s, old, new));
        f[26 + 2 * k..28 + 2 * k].copy_from_slice(&new.to_be_bytes());
    }
    let old = word(f, 34);
    l4_sum = l4_sum.map(|s| checksum::update16(s, old, port));
    f[34..36].copy_from_slice(&port.to_be_bytes());
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    if let (Some(at), Some(s)) = (l4_sum_at, l4_sum) {
        f[at..at + 2].copy_from_slice(&s.to_be_bytes());
    }
}

struct Rig {
    _eal: Eal,
    pool: Arc<Mempool>,
    /// The test's ends of the inside and outside rings.
    inside: (RxQueue, TxQueue),
    outside: (RxQueue, TxQueue),
    worker: Worker,
    log: Arc<ArrayQueue<FlowRecord>>,
    tx_in: TxBuffer,
    tx_out: TxBuffer,
    /// Established packets sent and received on the far side.
    sent: u64,
    received: u64,
    /// Established flows' records seen before the end (any is a failure).
    lost_early: Vec<FlowRecord>,
}

impl Rig {
    fn queue(&mut self, to_inside: bool, frame: &[u8]) {
        let m = Mbuf::from_bytes(&self.pool, frame).expect("an mbuf");
        let tx = if to_inside {
            &mut self.tx_in
        } else {
            &mut self.tx_out
        };
        if tx.push(m).is_err() {
            unreachable!("flushed before full");
        }
        if tx.len() == 32 {
            self.flush();
        }
    }

    /// Hands what is queued to the worker, lets it poll, and takes what it sent.
    fn flush(&mut self) {
        for (port, tx) in [
            (&mut self.inside, &mut self.tx_in),
            (&mut self.outside, &mut self.tx_out),
        ] {
            if !tx.is_empty() {
                let r = port.1.flush(tx);
                assert_eq!(r.dropped, 0, "the rings have room for a burst");
            }
        }
        while self.worker.poll_once() > 0 {}
        self.received += received(&mut self.inside) + received(&mut self.outside);
        while let Some(r) = self.log.pop() {
            if r.src.0[12] == 10 {
                self.lost_early.push(r);
            }
        }
    }

    fn established(&mut self, to_server: bool, i: usize, seq: u32) {
        let f = if to_server {
            seg(true, i, 1 + seq, 1, TcpFlags::ACK | TcpFlags::PSH, b"x")
        } else {
            seg(false, i, 1 + seq, 1, TcpFlags::ACK | TcpFlags::PSH, b"y")
        };
        self.sent += 1;
        self.queue(to_server, &f);
    }
}

/// Takes everything the worker sent to `port`; returns how many were established traffic
/// (between 10.1/16 and 10.2.0.1; the floods come from 100.64/10).
fn received(port: &mut (RxQueue, TxQueue)) -> u64 {
    let mut b = Burst::default();
    let mut established = 0;
    loop {
        let n = port.0.burst(&mut b);
        for i in 0..n {
            if b.take(i).is_some_and(|m| m.data()[26] == 10) {
                established += 1;
            }
        }
        if n == 0 {
            return established;
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Flood {
    Syn,
    Ack,
    Udp,
    /// One source, new UDP tuples.
    OneSource,
}

#[test]
fn floods_of_new_tuples_never_displace_established_flows() {
    let total = tuples();
    let eal = Eal::init(&[
        "-l",
        "0",
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        &format!("--file-prefix=apflood{}", std::process::id()),
        "--log-level=lib.eal:error",
    ])
    .expect("EAL");
    let pool = Arc::new(Mempool::new("flood_pool", 8191, 256, 2048, -1).unwrap());
    let inside = RingPair::new("fin", 1024).unwrap();
    let outside = RingPair::new("fout", 1024).unwrap();
    let [ia, ib, oa, ob] = [&inside.a, &inside.b, &outside.a, &outside.b].map(|p| {
        p.start(&Default::default(), &pool)
            .unwrap()
            .into_pairs()
            .remove(0)
    });
    let log = Arc::new(ArrayQueue::new(4 * CAPACITY));
    let before_tables = rss_bytes();
    let mut flows = FlowTable::new(CAPACITY, &Timeouts::default(), [1, 2, 3, 4]);
    let source_limit = Limit {
        flows: SOURCE_LIMIT,
        per_second: 0,
    };
    flows.limit_sources(source_limit);
    let limits = Limits {
        contexts: CONTEXTS,
        ..Limits::of(&AppIdConfig::default())
    };
    let appid = Engine::new(Arc::new(Catalog::embedded()), flows.capacity(), limits);
    let bound = (CAPACITY * (FlowTable::bytes_per_flow(true) + Engine::bytes_per_flow())
        + CONTEXTS * Engine::bytes_per_context()) as u64;
    let worker = Worker::new(
        0,
        vec![ia, oa],
        Mode::Wire(VirtualWire::new(2, &[(0, 1)])),
        flows,
        appid,
        Clock::tsc(),
        FlowLogSink {
            queue: log.clone(),
            lossless: false,
        },
        pool.clone(),
    );
    let mut rig = Rig {
        _eal: eal,
        pool,
        inside: ib,
        outside: ob,
        worker,
        log,
        tx_in: TxBuffer::default(),
        tx_out: TxBuffer::default(),
        sent: 0,
        received: 0,
        lost_early: Vec::new(),
    };

    // The established flows: handshake, a request and its response, each step for a batch
    // of flows before the next (each side sees the other's packet before answering it).
    let get = b"GET / HTTP/1.1\r\nHost: intranet.example\r\nUser-Agent: flood-test\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
    let g = get.len() as u32;
    for batch in (0..ESTABLISHED).collect::<Vec<_>>().chunks(500) {
        for step in 0..5 {
            for &i in batch {
                let (to_server, f) = match step {
                    0 => (true, seg(true, i, 0, 0, TcpFlags::SYN, b"")),
                    1 => (
                        false,
                        seg(false, i, 0, 1, TcpFlags::SYN | TcpFlags::ACK, b""),
                    ),
                    2 => (true, seg(true, i, 1, 1, TcpFlags::ACK, b"")),
                    3 => (true, seg(true, i, 1, 1, TcpFlags::ACK | TcpFlags::PSH, get)),
                    _ => (
                        false,
                        seg(false, i, 1, 1 + g, TcpFlags::ACK | TcpFlags::PSH, ok),
                    ),
                };
                rig.sent += 1;
                rig.queue(to_server, &f);
            }
            rig.flush();
        }
    }
    rig.flush();
    assert_eq!(rig.received, rig.sent, "the set-up went through");
    let set_up = (rig.sent, rig.received);
    rig.sent = 0;
    rig.received = 0;

    // The floods, in turn.
    let mut rng = Rng::new(7);
    let syn = tcp4(
        CLIENT_MAC,
        SERVER_MAC,
        SocketAddrV4::new(Ipv4Addr::new(100, 64, 0, 1), 1),
        SocketAddrV4::new(SERVER, 80),
        &TcpHeader {
            seq: 1,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 1024,
        },
        b"",
    );
    let mut ack = syn.clone();
    ack[47] = 0x10; // ACK
    let ack_sum = u16::from_be_bytes([ack[50], ack[51]]);
    let fixed = checksum::update16(ack_sum, 0x5002, 0x5010);
    ack[50..52].copy_from_slice(&fixed.to_be_bytes());
    let udp = udp4(
        CLIENT_MAC,
        SERVER_MAC,
        SocketAddrV4::new(Ipv4Addr::new(100, 64, 0, 1), 1),
        SocketAddrV4::new(SERVER, 9999),
        &[0x5a; 24],
    );
    let phases = [
        (Flood::Syn, total / 3),
        (Flood::Ack, total / 3),
        (Flood::Udp, total - 2 * (total / 3)),
        (Flood::OneSource, ONE_SOURCE.min(total)),
    ];
    let after_set_up = rss_bytes();
    let mut peak = after_set_up;
    let mut report = vec![];
    let mut next_established = 0usize;
    for (kind, count) in phases {
        let evicted0 = rig.worker.counters.get(C::FlowsEvicted);
        let drops0 = [
            DropReason::FlowTableFull,
            DropReason::SourceLimit,
            DropReason::ZoneLimit,
        ]
        .map(|r| rig.worker.counters.drops(r));
        let (sent0, received0) = (rig.sent, rig.received);
        let t0 = Instant::now();
        let mut frame = match kind {
            Flood::Syn => syn.clone(),
            Flood::Ack => ack.clone(),
            Flood::Udp | Flood::OneSource => udp.clone(),
        };
        let sum_at = match kind {
            Flood::Syn | Flood::Ack => Some(50),
            // UDP over IPv4 may leave its checksum out: 0.
            _ => None,
        };
        if sum_at.is_none() {
            frame[40..42].copy_from_slice(&[0, 0]);
        }
        for n in 0..count {
            let r = rng.next_u64();
            let src = match kind {
                Flood::OneSource => [100, 64, 0, 1],
                // 100.64.0.0/10, never 10/8.
                _ => {
                    let b = (r as u32 & 0x003f_ffff) | 0x6440_0000;
                    b.to_be_bytes()
                }
            };
            let port = match kind {
                Flood::OneSource => n as u16 + 1,
                _ => (r >> 32) as u16 | 1,
            };
            respoof(&mut frame, src, port, sum_at);
            if matches!(kind, Flood::Udp | Flood::OneSource) {
                // Payload the decoders must look at.
                frame[42..50].copy_from_slice(&r.to_le_bytes());
            }
            rig.queue(true, &frame);
            if n.is_multiple_of(FLOOD_PER_ESTABLISHED) {
                let i = next_established % ESTABLISHED;
                let to_server = (next_established / ESTABLISHED).is_multiple_of(2);
                rig.established(to_server, i, 1000 + (next_established / ESTABLISHED) as u32);
                next_established += 1;
            }
        }
        rig.flush();
        let secs = t0.elapsed().as_secs_f64();
        peak = peak.max(rss_bytes());
        let c = &rig.worker.counters;
        let drops = [
            DropReason::FlowTableFull,
            DropReason::SourceLimit,
            DropReason::ZoneLimit,
        ]
        .map(|r| c.drops(r));
        let line = format!(
            "{kind:?}: {count} tuples in {secs:.1} s ({:.2} Mpps offered with the established), established {}/{} forwarded, evicted {}, refused table-full {} source {} zone {}, contexts reclaimed so far {}",
            (count + (rig.sent - sent0)) as f64 / secs / 1e6,
            rig.received - received0,
            rig.sent - sent0,
            c.get(C::FlowsEvicted) - evicted0,
            drops[0] - drops0[0],
            drops[1] - drops0[1],
            drops[2] - drops0[2],
            rig.worker.counters.get(C::AppidContextsReclaimed),
        );
        eprintln!("{line}");
        report.push((
            kind,
            drops[1] - drops0[1],
            c.get(C::FlowsEvicted) - evicted0,
        ));
    }

    // Every established flow is still there, still web-browsing, and its packets went through.
    let received_during = (rig.sent, rig.received);
    rig.worker.finish();
    let mut established = 0;
    let cat = Catalog::embedded();
    let mut wrong = vec![];
    while let Some(r) = rig.log.pop() {
        if r.src.0[12] != 10 {
            continue;
        }
        established += 1;
        // Named in the set-up (after its 5 packets), by its content, and still so.
        if cat.name(r.app) != "web-browsing"
            || r.app_decided_after > 5
            || r.end_reason != Some(EndReason::Exit)
        {
            wrong.push(format!(
                "{:?}:{} {} {:?}",
                r.src.0,
                r.src_port,
                cat.name(r.app),
                r.end_reason
            ));
        }
    }
    eprintln!(
        "set-up {}/{} forwarded; during the floods {}/{} established packets forwarded; memory (resident): the worker's tables and set-up {} KiB, the floods added {} KiB; the configured sizes imply {} KiB",
        set_up.1,
        set_up.0,
        received_during.1,
        received_during.0,
        after_set_up.saturating_sub(before_tables) >> 10,
        peak.saturating_sub(after_set_up) >> 10,
        bound >> 10
    );
    assert!(
        rig.lost_early.is_empty(),
        "established flows ended during the floods: {:?}",
        &rig.lost_early[..rig.lost_early.len().min(5)]
    );
    assert_eq!(
        established, ESTABLISHED,
        "every established flow is logged once"
    );
    assert!(
        wrong.is_empty(),
        "changed: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert!(
        received_during.1 * 1000 >= received_during.0 * 999,
        "at least 99.9% of the established packets forwarded: {}/{}",
        received_during.1,
        received_during.0
    );
    // The worker's other fixed tables (SIP ALG, reassembly, neighbours) come on top of the
    // flow table and App-ID; during the floods only App-ID contexts are built (lazily).
    assert!(
        peak.saturating_sub(before_tables) <= bound + (16 << 20),
        "memory {} beyond the configured bound {}",
        peak - before_tables,
        bound
    );
    assert!(
        peak.saturating_sub(after_set_up)
            <= (CONTEXTS * Engine::bytes_per_context()) as u64 + (2 << 20),
        "the floods grew memory by {}",
        peak - after_set_up
    );
    for (kind, source_refused, evicted) in report {
        match kind {
            // Spoofed floods fill the room the established flows leave and then only
            // displace each other.
            Flood::Syn | Flood::Ack | Flood::Udp => {
                assert!(evicted > 0, "{kind:?} evicted nothing")
            }
            Flood::OneSource => assert!(
                source_refused == ONE_SOURCE.min(tuples()) - SOURCE_LIMIT as u64,
                "one source held more than its limit: {source_refused} refused"
            ),
        }
    }
    assert!(rig.worker.counters.get(C::AppidContextsReclaimed) > 0);
    assert_eq!(rig.worker.counters.get(C::AppidNoContext), 0);
}
