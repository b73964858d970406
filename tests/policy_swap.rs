//! A policy swap takes effect on a flow's first packet after it: one worker on two
//! ring-backed DPDK ports (virtual wire), the test on the other end of each ring, the policy
//! swapped in the store between bursts as the control socket does.
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::appid::engine::{Engine, Limits};
use aperture_dataplane::clock::Clock;
use aperture_dataplane::config::{AppIdConfig, Timeouts};
use aperture_dataplane::flow::FlowTable;
use aperture_dataplane::flowlog::FlowLogSink;
use aperture_dataplane::forward::VirtualWire;
use aperture_dataplane::policy::{compile, Policy, PolicyStore};
use aperture_dataplane::stats::{DropReason, C};
use aperture_dataplane::worker::{Mode, Worker};
use aperture_dpdk::{Burst, Eal, Mbuf, Mempool, RingPair, RxQueue, TxBuffer, TxQueue};
use aperture_traffic::build;
use std::net::SocketAddrV4;
use std::sync::Arc;

const ALLOW: &str = "version: 1\nrules:\n  - { name: all, action: allow }\n";
const NO_9999: &str = "version: 1
rules:
  - { name: no-9999, service: [udp/9999], action: drop }
  - { name: all, action: allow }
";

fn policy(text: &str, catalog: &Catalog) -> Policy {
    compile(text, "p.yaml", catalog, None).unwrap().policy
}

fn send(port: &mut (RxQueue, TxQueue), pool: &Mempool, frame: &[u8]) {
    let mut tx = TxBuffer::default();
    let _ = tx.push(Mbuf::from_bytes(pool, frame).expect("mbuf"));
    assert_eq!(port.1.flush(&mut tx).sent, 1);
}

fn received(port: &mut (RxQueue, TxQueue)) -> usize {
    let mut b = Burst::default();
    port.0.burst(&mut b)
}

#[test]
fn a_swapped_policy_applies_from_the_next_packet_of_every_flow() {
    let _eal = Eal::init(&[
        "-l",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        &format!("--file-prefix=apswap{}", std::process::id()),
        "--log-level=lib.eal:error",
    ])
    .expect("EAL");
    let pool = Arc::new(Mempool::new("swap_pool", 1023, 0, 2048, -1).unwrap());
    let inside = RingPair::new("in", 256).unwrap();
    let outside = RingPair::new("out", 256).unwrap();
    let [ia, mut ib, oa, mut ob] = [&inside.a, &inside.b, &outside.a, &outside.b].map(|p| {
        let mut q = p.start(&Default::default(), &pool).unwrap().into_pairs();
        q.remove(0)
    });
    let catalog = Catalog::embedded();
    let store = PolicyStore::new(policy(ALLOW, &catalog));
    let flows = FlowTable::new(64, &Timeouts::default(), [1, 2, 3, 4]);
    let appid = Engine::new(
        Arc::new(Catalog::embedded()),
        flows.capacity(),
        Limits::of(&AppIdConfig::default()),
    );
    let log = FlowLogSink {
        queue: Arc::new(crossbeam_queue::ArrayQueue::new(64)),
        lossless: false,
    };
    let mut w = Worker::new(
        0,
        vec![ia, oa],
        Mode::Wire(VirtualWire::new(2, &[(0, 1)])),
        flows,
        appid,
        Clock::tsc(),
        log,
        pool.clone(),
    )
    .with_policy(store.reader());
    let c = SocketAddrV4::new("192.0.2.2".parse().unwrap(), 40000);
    let blocked = SocketAddrV4::new("198.51.100.2".parse().unwrap(), 9999);
    let other = SocketAddrV4::new("198.51.100.2".parse().unwrap(), 7000);
    let (mac_a, mac_b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let to = |dst, payload: &[u8]| build::udp4(mac_a, mac_b, c, dst, payload);

    // Allowed: both flows pass.
    for i in 0..3u8 {
        send(&mut ib, &pool, &to(blocked, &[b'a', i]));
        send(&mut ib, &pool, &to(other, &[b'b', i]));
        w.poll_once();
        assert_eq!(received(&mut ob), 2, "packet {i} of each flow forwarded");
    }
    // The swap: the next packet of the udp/9999 flow is dropped, the other flow goes on.
    assert_eq!(store.install(policy(NO_9999, &catalog)), 2);
    send(&mut ib, &pool, &to(blocked, b"after"));
    send(&mut ib, &pool, &to(other, b"after"));
    w.poll_once();
    assert_eq!(received(&mut ob), 1, "only the other flow's packet");
    assert_eq!(w.counters.drops(DropReason::Policy), 1);
    assert_eq!(w.counters.get(C::FlowsDenied), 1);
    // And back: the flow passes again from its next packet.
    store.install(policy(ALLOW, &catalog));
    send(&mut ib, &pool, &to(blocked, b"again"));
    w.poll_once();
    assert_eq!(received(&mut ob), 1, "allowed again");
    assert_eq!(w.counters.drops(DropReason::Policy), 1);
    assert_eq!(w.flows.active(), 2, "still the same two flows");
}
