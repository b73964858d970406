//! The worker pipeline on one core, fed from memory through DPDK's net_ring PMD, in packets per
//! second. `benches/pipeline.sh` runs it together with `dpdk-testpmd` io-forwarding on net_null
//! (the per-core ceiling) and reports the ratios.
//!
//! - `io-forward`: rx_burst then tx_burst on a ring port looped onto itself, nothing else: the
//!   cost of the rings, measured in the same run.
//! - `worker/1k-flows`: 1024 packets of 1024 established UDP flows circulate through the looped
//!   port and the full worker (parse, flow lookup, accounting, timers, forward).
//! - `worker/1k-flows+policy`: the same with a policy of 100 rules enforced (the flows match
//!   the last): the cost of the policy stage, against `worker/1k-flows` in the same run.
//! - `worker/1m-flows`: 1,048,576 established flows. The in-flight packets cannot hold a
//!   million distinct tuples, so a generator on the same core rewrites each packet's source
//!   address and port to the next flow before handing it back (ports a <-> b of a ring pair).
//!   `generator+io-forward` measures that generator with no worker, for reference.
//! - `worker/1k-flows+gen` and `worker/1k-flows+nat`: 1024 flows through the generator (each
//!   packet's inside source written back every lap, since NAT rewrites it), without and with
//!   a source-NAT policy (pool 203.0.113.0/26, every flow translated: mapping, binding,
//!   incremental checksums): the NAT fast path's cost at 1k mappings, as a ratio of the same
//!   run's pipeline without NAT. `worker/1m-flows+nat` does the same at 1M mappings, against
//!   `worker/1m-flows`.
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::appid::engine::{Engine, Limits};
use aperture_dataplane::clock::Clock;
use aperture_dataplane::config::AppIdConfig;
use aperture_dataplane::config::Timeouts;
use aperture_dataplane::flow::FlowTable;
use aperture_dataplane::flowlog::FlowLogSink;
use aperture_dataplane::forward::VirtualWire;
use aperture_dataplane::policy::{compile, Policy, PolicyStore};
use aperture_dataplane::stats::C;
use aperture_dataplane::worker::{Mode, Worker};
use aperture_dpdk::{
    Burst, Eal, Mbuf, Mempool, Port, RingPair, RxQueue, TxBuffer, TxQueue, BURST_SIZE,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IN_FLIGHT: u32 = 1024;
const FLOWS_1M: u32 = 1 << 20;

/// A 64-byte UDP/IPv4 frame of flow `i` (source 10.x.y.z:port, destination fixed).
fn frame(i: u32) -> Vec<u8> {
    let mut f = vec![0u8; 60];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[16..20].copy_from_slice(&[198, 51, 100, 7]);
    set_flow(&mut f, i);
    let udp = &mut f[34..42];
    udp[2..4].copy_from_slice(&5004u16.to_be_bytes());
    udp[4..6].copy_from_slice(&26u16.to_be_bytes());
    f
}

/// Writes flow `i`'s source address and port into a frame made by `frame`.
#[inline]
fn set_flow(f: &mut [u8], i: u32) {
    f[26..30].copy_from_slice(&[10, (i >> 16) as u8 & 0x3f, (i >> 8) as u8, i as u8]);
    f[34..36].copy_from_slice(&(1024 + (i >> 22) as u16).to_be_bytes());
}

/// Queue 0 of a ring port, started.
fn start(port: &Port, pool: &Mempool) -> Queue {
    port.start(&Default::default(), pool)
        .expect("start")
        .into_pairs()
        .remove(0)
}

type Queue = (RxQueue, TxQueue);

fn worker(port: Queue, pool: &Arc<Mempool>, capacity: usize) -> Worker {
    let mut seeds = [0u64; 4];
    for (i, s) in seeds.iter_mut().enumerate() {
        *s = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1);
    }
    let log = FlowLogSink {
        queue: Arc::new(crossbeam_queue::ArrayQueue::new(1024)),
        lossless: false,
    };
    Worker::new(
        0,
        vec![port],
        Mode::Wire(VirtualWire::new(1, &[(0, 0)])),
        FlowTable::new(capacity, &Timeouts::default(), seeds),
        Engine::new(
            Arc::new(Catalog::embedded()),
            capacity,
            Limits::of(&AppIdConfig::default()),
        ),
        Clock::tsc(),
        log,
        pool.clone(),
    )
}

/// A policy of `rules` rules, each for one other source /24 and one application, and last
/// the rule the benchmark's flows (10.0.0.0/10, UDP) match.
fn bench_policy(rules: usize) -> Policy {
    let catalog = Catalog::embedded();
    let mut text = String::from("version: 1\nrules:\n");
    for i in 0..rules - 1 {
        text.push_str(&format!(
            "  - {{ name: r{i}, source: [192.168.{}.0/24], application: [{}], action: allow }}\n",
            i % 256,
            catalog.apps[i % 20].name
        ));
    }
    text.push_str(
        "  - { name: bench, source: [10.0.0.0/10], action: allow }\ndefault-action: deny\n",
    );
    compile(&text, "bench.yaml", &catalog, None)
        .expect("the bench policy compiles")
        .policy
}

/// Source NAT of the benchmark's flows (10.0.0.0/10) to a pool, everything allowed.
fn nat_policy() -> Policy {
    let text = "version: 1
nat:
  - { name: hide, source: [10.0.0.0/10], source-translation: { pool: [203.0.113.0/26] } }
rules:
  - { name: bench, action: allow }
";
    compile(text, "nat.yaml", &Catalog::embedded(), None)
        .expect("the NAT bench policy compiles")
        .policy
}

/// Puts `n` packets (flows 0..n) into the ring behind `port`'s receive side via `feeder`.
fn fill(feeder: &mut Queue, pool: &Mempool, n: u32) {
    let mut tx = TxBuffer::default();
    for i in 0..n {
        let m = Mbuf::from_bytes(pool, &frame(i)).expect("mbuf pool big enough");
        if tx.is_full() {
            assert_eq!(feeder.1.flush(&mut tx).dropped, 0);
        }
        let _ = tx.push(m);
    }
    assert_eq!(
        feeder.1.flush(&mut tx).dropped,
        0,
        "ring holds the in-flight packets"
    );
}

/// One io-forward step: a burst in, the same burst out.
#[inline]
fn io_forward(port: &mut Queue, rx: &mut Burst, tx: &mut TxBuffer) -> usize {
    let n = port.0.burst(rx);
    for i in 0..n {
        if let Some(m) = rx.take(i) {
            let _ = tx.push(m);
        }
    }
    port.1.flush(tx);
    n
}

/// The generator: takes what the worker sent, points each packet at the next flow, returns it.
struct Generator {
    next: u32,
    flows: u32,
    rx: Burst,
    tx: TxBuffer,
}

impl Generator {
    #[inline]
    fn step(&mut self, port: &mut Queue) {
        let n = port.0.burst(&mut self.rx);
        for i in 0..n {
            if let Some(mut m) = self.rx.take(i) {
                set_flow(m.data_mut(), self.next);
                self.next = (self.next + 1) % self.flows;
                let _ = self.tx.push(m);
            }
        }
        port.1.flush(&mut self.tx);
    }
}

fn timed(iters: u64, mut f: impl FnMut() -> usize) -> Duration {
    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..iters {
        n += f();
    }
    assert_eq!(
        n as u64,
        iters * BURST_SIZE as u64,
        "every step moves a full burst"
    );
    t.elapsed()
}

fn benches(c: &mut Criterion) {
    // APERTURE_BENCH_HUGE=1 (set by benches/pipeline.sh when hugepages are reserved) runs on
    // hugepages, like testpmd in the same run; otherwise without, as in CI.
    let huge = std::env::var("APERTURE_BENCH_HUGE").is_ok_and(|v| v == "1");
    let mut args = vec!["-l".to_string(), "0".into(), "-m".into(), "512".into()];
    if !huge {
        args.push("--no-huge".into());
    }
    args.extend([
        "--no-pci".into(),
        "--no-shconf".to_string(),
        "--no-telemetry".into(),
        format!("--file-prefix=apbench{}", std::process::id()),
        "--log-level=lib.eal:error".into(),
    ]);
    let _eal = Eal::init(&args).expect("EAL init");
    let pool = Arc::new(Mempool::new("bench_pool", 8191, 256, 2048, -1).expect("pool"));

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST_SIZE as u64));

    let mut looped = start(&RingPair::looped("io", 4096).expect("ring port"), &pool);
    fill(&mut looped, &pool, IN_FLIGHT);
    let (mut rx, mut tx) = (Burst::default(), TxBuffer::default());
    g.bench_function("io-forward", |b| {
        b.iter_custom(|iters| timed(iters, || io_forward(&mut looped, &mut rx, &mut tx)))
    });

    let mut looped = start(&RingPair::looped("w1k", 4096).expect("ring port"), &pool);
    fill(&mut looped, &pool, IN_FLIGHT);
    let mut w = worker(looped, &pool, 4096);
    // Establish every flow before measuring: one pass over all in-flight packets.
    for _ in 0..IN_FLIGHT as usize / BURST_SIZE {
        w.poll_once();
    }
    assert_eq!(w.flows.active(), IN_FLIGHT as usize, "1k established flows");
    g.bench_function("worker/1k-flows", |b| {
        b.iter_custom(|iters| timed(iters, || w.poll_once()))
    });
    assert_eq!(w.flows.active(), IN_FLIGHT as usize, "1k established flows");
    drop(w);

    // The same with a policy of 100 rules enforced; the flows match the last one.
    let mut looped = start(&RingPair::looped("w1kp", 4096).expect("ring port"), &pool);
    fill(&mut looped, &pool, IN_FLIGHT);
    let store = PolicyStore::new(bench_policy(100));
    let mut w = worker(looped, &pool, 4096).with_policy(store.reader());
    for _ in 0..IN_FLIGHT as usize / BURST_SIZE {
        w.poll_once();
    }
    assert_eq!(w.flows.active(), IN_FLIGHT as usize, "1k established flows");
    g.bench_function("worker/1k-flows+policy", |b| {
        b.iter_custom(|iters| timed(iters, || w.poll_once()))
    });
    assert_eq!(w.flows.active(), IN_FLIGHT as usize, "1k established flows");
    assert_eq!(
        w.counters.get(C::DropPackets),
        0,
        "the policy allows every benchmark flow"
    );
    assert_eq!(w.counters.get(C::FlowsDenied), 0);
    drop(w);

    let pair = RingPair::new("gen", 4096).expect("ring pair");
    let (mut a, mut b_side) = (start(&pair.a, &pool), start(&pair.b, &pool));
    fill(&mut b_side, &pool, IN_FLIGHT);
    let mut gen = Generator {
        next: IN_FLIGHT,
        flows: FLOWS_1M,
        rx: Burst::default(),
        tx: TxBuffer::default(),
    };
    let (mut rx, mut tx) = (Burst::default(), TxBuffer::default());
    g.bench_function("generator+io-forward", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let n = io_forward(&mut a, &mut rx, &mut tx);
                gen.step(&mut b_side);
                n
            })
        })
    });

    // 1k flows through the generator, without and with source NAT. The last pair's queues
    // serve the 1M-flow benchmarks after.
    let mut a = None;
    let mut b_side = None;
    for nat in [false, true] {
        let name = if nat { "nat1k" } else { "gen1k" };
        let pair = RingPair::new(name, 4096).expect("ring pair");
        let mut bq = start(&pair.b, &pool);
        fill(&mut bq, &pool, IN_FLIGHT);
        let b_side = b_side.insert(bq);
        let mut gen = Generator {
            next: 0,
            flows: IN_FLIGHT,
            rx: Burst::default(),
            tx: TxBuffer::default(),
        };
        let store = PolicyStore::new(nat_policy());
        let mut w = worker(start(&pair.a, &pool), &pool, 4096);
        if nat {
            w = w.with_policy(store.reader());
        }
        for _ in 0..4 * IN_FLIGHT as usize / BURST_SIZE {
            w.poll_once();
            gen.step(b_side);
        }
        let label = if nat {
            "worker/1k-flows+nat"
        } else {
            "worker/1k-flows+gen"
        };
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                timed(iters, || {
                    let n = w.poll_once();
                    gen.step(b_side);
                    n
                })
            })
        });
        assert_eq!(w.flows.active(), IN_FLIGHT as usize, "{label}: 1k flows");
        assert_eq!(
            w.counters.get(C::DropPackets),
            0,
            "{label}: nothing dropped"
        );
        if nat {
            assert_eq!(
                w.counters.get(C::NatBindingsCreated),
                IN_FLIGHT as u64,
                "every flow translated"
            );
        }
        a = w.into_queues().pop();
    }
    let mut b_side = b_side.expect("the generator's queue");

    // Built only when this benchmark is selected: establishing 1M flows takes a while.
    let mut state: Option<Worker> = None;
    g.bench_function("worker/1m-flows", |b| {
        let w = state.get_or_insert_with(|| {
            let mut w = worker(
                a.take().expect("the worker's queue"),
                &pool,
                FLOWS_1M as usize + (FLOWS_1M as usize >> 2),
            );
            while w.flows.active() < FLOWS_1M as usize {
                w.poll_once();
                gen.step(&mut b_side);
            }
            w
        });
        b.iter_custom(|iters| {
            timed(iters, || {
                let n = w.poll_once();
                gen.step(&mut b_side);
                n
            })
        })
    });
    if let Some(w) = &state {
        assert_eq!(
            w.flows.active(),
            FLOWS_1M as usize,
            "1M established flows, none evicted"
        );
    }
    if let Some(w) = state {
        a = w.into_queues().pop();
    }

    // 1M flows, every one translated: 1M mappings and bindings.
    let store = PolicyStore::new(nat_policy());
    let mut state: Option<Worker> = None;
    g.bench_function("worker/1m-flows+nat", |b| {
        let w = state.get_or_insert_with(|| {
            let mut w = worker(
                a.take().expect("the worker's queue"),
                &pool,
                FLOWS_1M as usize + (FLOWS_1M as usize >> 2),
            )
            .with_policy(store.reader());
            while w.flows.active() < FLOWS_1M as usize {
                w.poll_once();
                gen.step(&mut b_side);
                // A NAT that refused mappings drops packets: the ring would run dry.
                assert_eq!(w.counters.get(C::DropPackets), 0, "NAT refused a flow");
            }
            w
        });
        b.iter_custom(|iters| {
            timed(iters, || {
                let n = w.poll_once();
                gen.step(&mut b_side);
                n
            })
        })
    });
    if let Some(w) = &state {
        assert_eq!(w.flows.active(), FLOWS_1M as usize, "1M translated flows");
        assert_eq!(w.counters.get(C::NatPortExhausted), 0, "no pool exhaustion");
    }
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
