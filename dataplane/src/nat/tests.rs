use super::*;
use crate::flow::FlowTable;
use crate::packet::{Headers, IpAddr16, L3};

fn hdr(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, proto_: u8) -> Headers {
    let mut h = Headers::empty();
    h.l3 = L3::Ipv4;
    h.l3_offset = 14;
    h.l4_offset = 34;
    h.proto = proto_;
    h.src = IpAddr16::from_v4(src);
    h.dst = IpAddr16::from_v4(dst);
    h.src_port = sport;
    h.dst_port = dport;
    h
}

fn table() -> FlowTable {
    FlowTable::new(64, &crate::config::Timeouts::default(), [1, 2, 3, 4])
}

fn snat_rule() -> NatRule {
    NatRule {
        name: "out".into(),
        from: u64::MAX,
        to: u64::MAX,
        src: None,
        dst: None,
        service: vec![],
        source: SourceNat::Pool(vec![u32::from_be_bytes([203, 0, 113, 1])]),
        destination: None,
    }
}

const EXT: u32 = u32::from_be_bytes([203, 0, 113, 1]);

/// Creates the flow of `h` and translates it by `rule`.
fn new_flow(
    flows: &mut FlowTable,
    nat: &mut NatTable,
    h: &Headers,
    rule: &NatRule,
) -> Option<(crate::flow::Slot, Binding)> {
    let mut r = flows.flow_ref(h);
    flows.lookup(h, &mut r);
    let t = flows.account(h, &r, 60, 1, &mut |_, _, _| {});
    let source = match rule.source {
        SourceNat::None => Source::Keep,
        _ => Source::Dynamic(EXT),
    };
    let b = nat.translate_new(flows, t.slot, h, 0, source, rule.destination)?;
    Some((t.slot, *b))
}

#[test]
fn worker_port_ranges_cover_the_space_without_overlap() {
    for n in 1..=8 {
        let mut next = PortRange::FIRST as u32;
        for i in 0..n {
            let r = PortRange::of_worker(i, n);
            assert_eq!(r.lo as u32, next, "n={n} i={i}");
            next = r.hi as u32 + 1;
            for p in [r.lo, r.hi, r.lo + (r.hi - r.lo) / 2] {
                assert_eq!(PortRange::owner(p, n), i, "port {p} of {n}");
            }
        }
        assert_eq!(next, 65536);
    }
}

/// Endpoint-independent mapping: one inside endpoint keeps its external port whatever it
/// talks to; replies find the flow; an outside host the endpoint sent to may open a new flow
/// to the mapping, another may not (address-dependent filtering).
#[test]
fn udp_mappings_are_endpoint_independent_with_address_dependent_filtering() {
    let mut flows = table();
    let mut nat = NatTable::new(64, PortRange::of_worker(0, 1), [7, 8]);
    let rule = snat_rule();
    let a = hdr([10, 0, 0, 5], 40000, [198, 51, 100, 1], 3478, proto::UDP);
    let (_, b1) = new_flow(&mut flows, &mut nat, &a, &rule).unwrap();
    assert_eq!(b1.to[0].src, EXT.to_be_bytes());
    assert_eq!(b1.to[0].sport, 40000, "the port is preserved when free");
    let b = hdr([10, 0, 0, 5], 40000, [198, 51, 100, 2], 16402, proto::UDP);
    let (_, b2) = new_flow(&mut flows, &mut nat, &b, &rule).unwrap();
    assert_eq!(
        (b2.to[0].src, b2.to[0].sport),
        (b1.to[0].src, b1.to[0].sport)
    );
    assert_eq!(nat.counters.mappings_active, 1);
    // Another inside host with the same port gets another external port.
    let c = hdr([10, 0, 0, 6], 40000, [198, 51, 100, 1], 3478, proto::UDP);
    let (_, b3) = new_flow(&mut flows, &mut nat, &c, &rule).unwrap();
    assert_ne!(b3.to[0].sport, 40000);
    assert_eq!(nat.counters.mappings_active, 2);
    // The STUN server's reply finds the first flow by its translated tuple.
    assert!(flows.contains(&hdr(
        [198, 51, 100, 1],
        3478,
        [203, 0, 113, 1],
        40000,
        proto::UDP
    )));
    // A peer the endpoint sent to (198.51.100.2) from a new port: allowed to the mapping.
    let peer = hdr([198, 51, 100, 2], 5000, [203, 0, 113, 1], 40000, proto::UDP);
    assert!(!flows.contains(&peer));
    assert_eq!(
        nat.inbound(&peer),
        Inbound::Allowed(u32::from_be_bytes([10, 0, 0, 5]), 40000)
    );
    // A stranger: filtered.
    let stranger = hdr([192, 0, 2, 66], 5000, [203, 0, 113, 1], 40000, proto::UDP);
    assert_eq!(nat.inbound(&stranger), Inbound::Filtered);
    assert_eq!(nat.counters.filtered, 1);
    // The peer's inbound flow is bound to the inside endpoint; its reply finds it.
    let mut r = flows.flow_ref(&peer);
    flows.lookup(&peer, &mut r);
    let t = flows.account(&peer, &r, 60, 2, &mut |_, _, _| {});
    let Inbound::Allowed(a, p) = nat.inbound(&peer) else {
        panic!()
    };
    let inside = (a, p);
    let bi = *nat
        .bind_inbound(&mut flows, t.slot, &peer, inside, 0)
        .unwrap();
    assert_eq!(bi.to[0].dst, [10, 0, 0, 5]);
    assert_eq!(
        bi.to[1].src,
        [203, 0, 113, 1],
        "the reply leaves as the mapping"
    );
    assert!(flows.contains(&hdr(
        [10, 0, 0, 5],
        40000,
        [198, 51, 100, 2],
        5000,
        proto::UDP
    )));
}

/// The mapping lives as long as its flows: when the last ends, the port is free again.
#[test]
fn a_mapping_ends_with_its_last_flow() {
    let mut flows = table();
    let mut nat = NatTable::new(64, PortRange::of_worker(0, 1), [7, 8]);
    let rule = snat_rule();
    let a = hdr([10, 0, 0, 5], 40000, [198, 51, 100, 1], 53, proto::UDP);
    let b = hdr([10, 0, 0, 5], 40000, [198, 51, 100, 2], 53, proto::UDP);
    let (sa, _) = new_flow(&mut flows, &mut nat, &a, &rule).unwrap();
    let (sb, _) = new_flow(&mut flows, &mut nat, &b, &rule).unwrap();
    nat.ended(sa);
    assert_eq!(nat.counters.mappings_active, 1);
    nat.ended(sb);
    assert_eq!(nat.counters.mappings_active, 0);
    let peer = hdr([198, 51, 100, 1], 53, [203, 0, 113, 1], 40000, proto::UDP);
    assert_eq!(nat.inbound(&peer), Inbound::NotMapped);
}

/// A worker's ports run out: the new flow is refused and counted, nothing else breaks, and
/// a freed port is used again.
#[test]
fn port_exhaustion_is_counted_never_a_crash() {
    let mut flows = FlowTable::new(4096, &crate::config::Timeouts::default(), [1, 2, 3, 4]);
    // A worker owning 16 ports.
    let mut nat = NatTable::new(4096, PortRange { lo: 2000, hi: 2015 }, [7, 8]);
    let rule = snat_rule();
    let mut slots = Vec::new();
    for i in 0..16u16 {
        let h = hdr([10, 0, 1, i as u8], 5000, [198, 51, 100, 1], 80, proto::TCP);
        let (s, b) = new_flow(&mut flows, &mut nat, &h, &rule).unwrap();
        assert!((2000..=2015).contains(&b.to[0].sport));
        slots.push(s);
    }
    let h = hdr([10, 0, 2, 1], 5000, [198, 51, 100, 1], 80, proto::TCP);
    assert!(new_flow(&mut flows, &mut nat, &h, &rule).is_none());
    assert_eq!(nat.counters.exhausted, 1);
    // The flow table ends a flow (its second key goes), then the NAT its binding.
    flows.remove(slots[3], crate::flow::EndReason::AgedOut, &mut |_, _, _| {});
    nat.ended(slots[3]);
    assert!(new_flow(&mut flows, &mut nat, &h, &rule).is_some());
}

#[test]
fn destination_nat_and_static_addresses() {
    let mut flows = table();
    let mut nat = NatTable::new(64, PortRange::of_worker(0, 1), [7, 8]);
    let rule = NatRule {
        source: SourceNat::None,
        destination: Some(DestinationNat {
            address: u32::from_be_bytes([192, 168, 1, 10]),
            port: Some(8080),
        }),
        ..snat_rule()
    };
    let h = hdr([198, 51, 100, 9], 33000, [203, 0, 113, 1], 80, proto::TCP);
    let (_, b) = new_flow(&mut flows, &mut nat, &h, &rule).unwrap();
    assert_eq!((b.to[0].dst, b.to[0].dport), ([192, 168, 1, 10], 8080));
    assert_eq!((b.to[1].src, b.to[1].sport), ([203, 0, 113, 1], 80));
    // The server's reply finds the flow.
    assert!(flows.contains(&hdr(
        [192, 168, 1, 10],
        8080,
        [198, 51, 100, 9],
        33000,
        proto::TCP
    )));
    let o = u32::from_be_bytes([10, 0, 0, 0]);
    let t = u32::from_be_bytes([203, 0, 113, 0]);
    assert_eq!(
        static_address(o, t, 24, u32::from_be_bytes([10, 0, 0, 77])),
        Some(u32::from_be_bytes([203, 0, 113, 77]))
    );
    assert_eq!(
        static_address(o, t, 24, u32::from_be_bytes([10, 0, 1, 77])),
        None
    );
    let pool = [1, 2, 3];
    assert_eq!(pool_address(&pool, 42), pool_address(&pool, 42));
    assert_eq!(pool_address(&[], 42), None);
}

#[test]
fn many_inside_hosts_on_one_port_share_an_address_without_exhaustion() {
    // 20,000 phones, all on port 5060, behind one external address: the first keeps 5060,
    // the others get ports spread by hash (linear probing from 5060 ran out after 512).
    let mut nat = NatTable::new(32_768, PortRange::of_worker(0, 1), [5, 6]);
    let ext = u32::from_be_bytes([203, 0, 113, 1]);
    let mut ports = std::collections::HashSet::new();
    for i in 0..20_000u32 {
        let inside = u32::from_be_bytes([10, 1, 0, 0]) + i;
        let (_, p) = nat
            .hold(crate::packet::proto::UDP, inside, 5060, ext)
            .unwrap_or_else(|| panic!("mapping {i} refused"));
        assert!(ports.insert(p), "port {p} given twice");
        if i == 0 {
            assert_eq!(p, 5060, "the first keeps its port");
        }
    }
    assert_eq!(nat.counters.exhausted, 0);
}
