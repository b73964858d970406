//! The routed path frame by frame, without namespaces: two ring-backed DPDK ports, one worker,
//! and the test on the other end of each ring. ARP answered, next hop resolved with the packet
//! held meanwhile, TTL and MACs rewritten, and the drops counted by reason.
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::appid::engine::{Engine, Limits};
use aperture_dataplane::clock::Clock;
use aperture_dataplane::config::{AppIdConfig, Forwarding, Interface, Timeouts};
use aperture_dataplane::flow::FlowTable;
use aperture_dataplane::flowlog::FlowLogSink;
use aperture_dataplane::forward::Router;
use aperture_dataplane::packet::{self, arp, checksum, ethernet, MacAddr, L3};
use aperture_dataplane::stats::{DropReason, C};
use aperture_dataplane::worker::{Mode, Worker};
use aperture_dpdk::{Burst, Eal, Mbuf, Mempool, RingPair, RxQueue, TxBuffer, TxQueue};
use aperture_traffic::build::{self, ArpOp};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x22];

fn send(port: &mut (RxQueue, TxQueue), pool: &Mempool, frame: &[u8]) {
    let mut tx = TxBuffer::default();
    let _ = tx.push(Mbuf::from_bytes(pool, frame).expect("mbuf"));
    assert_eq!(port.1.flush(&mut tx).sent, 1);
}

fn receive(port: &mut (RxQueue, TxQueue)) -> Vec<Vec<u8>> {
    let mut b = Burst::default();
    let n = port.0.burst(&mut b);
    (0..n)
        .filter_map(|i| b.take(i))
        .map(|m| m.data().to_vec())
        .collect()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn routed_worker_answers_arp_resolves_next_hops_and_counts_drops() {
    let _eal = Eal::init(&[
        "-l",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        &format!("--file-prefix=aprings{}", std::process::id()),
        "--log-level=lib.eal:error",
    ])
    .expect("EAL");
    let pool = Arc::new(Mempool::new("rings_pool", 2047, 0, 2048, -1).unwrap());
    let inside = RingPair::new("in", 1024).unwrap();
    let outside = RingPair::new("out", 1024).unwrap();
    let [ia, mut ib, oa, mut ob] = [&inside.a, &inside.b, &outside.a, &outside.b].map(|p| {
        let mut q = p.start(&Default::default(), &pool).unwrap().into_pairs();
        q.remove(0)
    });
    let macs = [
        MacAddr(inside.a.info().unwrap().mac),
        MacAddr(outside.a.info().unwrap().mac),
    ];
    let fwd = Forwarding::Routed {
        interfaces: vec![
            Interface {
                port: "inside".into(),
                address: "192.0.2.1/24".into(),
            },
            Interface {
                port: "outside".into(),
                address: "198.51.100.1/24".into(),
            },
        ],
        routes: vec![],
        neighbours: 8,
        neighbour_ttl: 300,
    };
    let router = Router::new(&fwd, |n| if n == "inside" { 0 } else { 1 }, &macs).unwrap();
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
        Mode::Routed(router),
        flows,
        appid,
        Clock::tsc(),
        log,
        pool.clone(),
    );

    // 1. The client asks for its gateway: the worker answers with the inside port's MAC.
    let who_has = build::arp(
        ArpOp::Request,
        CLIENT_MAC,
        ip("192.0.2.2"),
        [0; 6],
        ip("192.0.2.1"),
    );
    send(&mut ib, &pool, &who_has);
    w.poll_once();
    let got = receive(&mut ib);
    assert_eq!(got.len(), 1, "one ARP reply");
    let h = packet::parse(&got[0], got[0].len()).unwrap();
    let a = arp::parse(&got[0][h.l3_offset as usize..]).unwrap();
    assert_eq!(
        (a.oper, a.sender_mac, a.sender_ip, a.target_ip),
        (arp::REPLY, macs[0], [192, 0, 2, 1], [192, 0, 2, 2])
    );
    assert_eq!(ethernet::dst_mac(&got[0]), MacAddr(CLIENT_MAC));

    // 2. A datagram for the server: held while the worker asks for the server's MAC.
    let c = SocketAddrV4::new(ip("192.0.2.2"), 40000);
    let s = SocketAddrV4::new(ip("198.51.100.2"), 7000);
    let dgram = build::udp4(CLIENT_MAC, macs[0].0, c, s, b"hello");
    send(&mut ib, &pool, &dgram);
    w.poll_once();
    let got = receive(&mut ob);
    assert_eq!(got.len(), 1, "an ARP request, not the datagram");
    let h = packet::parse(&got[0], got[0].len()).unwrap();
    assert_eq!(h.l3, L3::Arp);
    let a = arp::parse(&got[0][h.l3_offset as usize..]).unwrap();
    assert_eq!(
        (a.oper, a.sender_ip, a.target_ip),
        (arp::REQUEST, [198, 51, 100, 1], [198, 51, 100, 2])
    );
    assert_eq!(ethernet::dst_mac(&got[0]), MacAddr::BROADCAST);

    // 3. The server answers: the held datagram leaves with new MACs and TTL - 1.
    let is_at = build::arp(
        ArpOp::Reply,
        SERVER_MAC,
        ip("198.51.100.2"),
        macs[1].0,
        ip("198.51.100.1"),
    );
    send(&mut ob, &pool, &is_at);
    w.poll_once();
    let got = receive(&mut ob);
    assert_eq!(got.len(), 1, "the held datagram");
    let h = packet::parse(&got[0], got[0].len()).unwrap();
    assert_eq!(
        (
            ethernet::dst_mac(&got[0]),
            ethernet::src_mac(&got[0]),
            h.ttl,
            h.dst_port
        ),
        (MacAddr(SERVER_MAC), macs[1], 63, 7000)
    );
    let l3 = h.l3_offset as usize;
    assert_eq!(
        checksum::sum(&got[0][l3..l3 + 20], 0),
        0xffff,
        "IPv4 header checksum still valid"
    );
    assert_eq!(&got[0][h.payload_offset as usize..][..5], b"hello");

    // 4. The next one goes straight through; the reply comes back to the client too.
    send(&mut ib, &pool, &dgram);
    w.poll_once();
    assert_eq!(receive(&mut ob).len(), 1);
    send(
        &mut ob,
        &pool,
        &build::udp4(SERVER_MAC, macs[1].0, s, c, b"HELLO"),
    );
    w.poll_once();
    let got = receive(&mut ib);
    assert_eq!(
        got.len(),
        1,
        "the reply, to the client learnt from its ARP request"
    );
    let h = packet::parse(&got[0], got[0].len()).unwrap();
    assert_eq!(
        (ethernet::dst_mac(&got[0]), h.ttl),
        (MacAddr(CLIENT_MAC), 63)
    );

    // 5. Drops, each with its reason, and nothing forwarded.
    let mut ttl1 = dgram.clone();
    ttl1[14 + 8] = 1;
    let no_route = build::udp4(
        CLIENT_MAC,
        macs[0].0,
        c,
        SocketAddrV4::new(ip("203.0.113.9"), 53),
        b"x",
    );
    let other_mac = build::udp4(CLIENT_MAC, [2, 9, 9, 9, 9, 9], c, s, b"x");
    let to_me = build::udp4(
        CLIENT_MAC,
        macs[0].0,
        c,
        SocketAddrV4::new(ip("192.0.2.1"), 53),
        b"x",
    );
    for f in [&ttl1, &no_route, &other_mac, &to_me] {
        send(&mut ib, &pool, f);
    }
    w.poll_once();
    assert!(receive(&mut ob).is_empty() && receive(&mut ib).is_empty());
    for r in [
        DropReason::TtlExceeded,
        DropReason::NoRoute,
        DropReason::NotOurMac,
        DropReason::LocalDelivery,
    ] {
        assert_eq!(w.counters.drops(r), 1, "{}", r.name());
    }
    assert_eq!(w.counters.get(C::ArpRepliesSent), 1);
    assert_eq!(w.counters.get(C::ArpRequestsSent), 1);
    assert_eq!(
        w.counters.get(C::TxPackets),
        5,
        "ARP reply, ARP request, 3 datagrams"
    );
}
