//! Which worker owns a packet's flow when several workers share a NAT (DESIGN.md, sharding and
//! handoff). Symmetric RSS keeps both directions of an untranslated flow on one worker, but the
//! two directions of a translated flow carry different tuples, and an inside endpoint's
//! mapping must be the same whatever it talks to (RFC 4787 REQ-1): so, as VPP's NAT44 does
//! (inside to outside by the inside address, outside to inside by the port's owner), the
//! owner is a function of the packet alone, the same in every worker:
//! - to an address and service destination NAT forwards (a port forward, a static NAT's
//!   translated prefix): the worker of the inside address it goes to;
//! - to an address source NAT gives out (a pool, an interface's address): the worker whose
//!   port range holds the destination port, which made the mapping (for an ICMP error the
//!   quoted source port, for an echo reply its identifier);
//! - from an inside endpoint (an address on a port some NAT rule translates from, or a
//!   forwarded address where it routes to) to one that is not: the worker of the source
//!   address; back: of the destination address. An inside host's flows, its mappings and its calls' pinholes are
//!   then all on one worker, where the media from outside comes too (the ALG maps media
//!   ports from that worker's range);
//! - between two inside endpoints: a symmetric hash of both addresses;
//! - anything else stays where it arrived (RSS).
use super::{static_address, NatRule, PortRange, SourceNat};
use crate::packet::{icmp, proto, Headers};

/// A destination translation the steering must follow: packets to `dst` (inclusive range)
/// and `service` (empty: any) belong with the inside address they are sent to.
#[derive(Clone, Debug)]
struct Forward {
    dst: (u32, u32),
    service: Vec<(u8, u16, u16)>,
    /// A fixed inside address, or the static prefix mapping (translated, original, len).
    to: ForwardTo,
}

#[derive(Clone, Copy, Debug)]
enum ForwardTo {
    Address(u32),
    Static {
        translated: u32,
        original: u32,
        len: u8,
    },
}

/// Inclusive IPv4 address ranges (None: any address).
type Ranges = Option<Vec<(u32, u32)>>;

/// The steering table of one policy, for `workers` workers.
#[derive(Clone, Debug)]
pub struct Steer {
    workers: usize,
    seed: u64,
    /// Addresses source NAT gives out, sorted.
    external: Vec<u32>,
    forwards: Vec<Forward>,
    /// Where the inside of each translation is: ports (a bit per port index) and addresses
    /// (None: any). An endpoint is inside when one entry has both its port and address.
    inside: Vec<(u64, Ranges)>,
}

impl Steer {
    /// The table for `rules` (None when there is nothing to steer: one worker, no rule).
    /// `zone_of_port` gives each port's zone, `iface` a port's IPv4 address, `route` the
    /// port an address is routed to (None in virtual-wire mode).
    pub fn of(
        rules: &[NatRule],
        zone_of_port: &[u8],
        workers: usize,
        seed: u64,
        iface: impl Fn(usize) -> Option<u32>,
        route: impl Fn(u32) -> Option<usize>,
    ) -> Option<Steer> {
        if workers < 2 || rules.is_empty() {
            return None;
        }
        let mut s = Steer {
            workers,
            seed,
            external: Vec::new(),
            forwards: Vec::new(),
            inside: Vec::new(),
        };
        let ports_of_zones = |mask: u64| {
            (0..zone_of_port.len().min(64))
                .filter(|&p| {
                    let z = zone_of_port[p];
                    mask == u64::MAX || (z < 64 && mask & (1 << z) != 0)
                })
                .fold(0u64, |m, p| m | 1 << p)
        };
        let port_bit = |p: Option<usize>| p.filter(|&p| p < 64).map_or(0, |p| 1u64 << p);
        for r in rules {
            match &r.source {
                SourceNat::None => {}
                SourceNat::Interface(p) => {
                    s.inside.push((ports_of_zones(r.from), r.src.clone()));
                    s.external.extend(iface(*p));
                }
                SourceNat::Pool(pool) => {
                    s.inside.push((ports_of_zones(r.from), r.src.clone()));
                    s.external.extend(pool);
                }
                SourceNat::Static {
                    original,
                    translated,
                    len,
                    ..
                } => {
                    let span = if *len == 0 {
                        u32::MAX
                    } else {
                        (1u64 << (32 - *len)) as u32 - 1
                    };
                    s.inside.push((
                        ports_of_zones(r.from) | port_bit(route(*original)),
                        Some(vec![(*original, original | span)]),
                    ));
                    s.forwards.push(Forward {
                        dst: (*translated, translated | span),
                        service: Vec::new(),
                        to: ForwardTo::Static {
                            translated: *translated,
                            original: *original,
                            len: *len,
                        },
                    });
                }
            }
            if let (Some(d), Some(dst)) = (&r.destination, &r.dst) {
                let bit = port_bit(route(d.address));
                s.inside.push((
                    if bit == 0 { u64::MAX } else { bit },
                    Some(vec![(d.address, d.address)]),
                ));
                for &range in dst {
                    s.forwards.push(Forward {
                        dst: range,
                        service: r.service.clone(),
                        to: ForwardTo::Address(d.address),
                    });
                }
            }
        }
        s.external.sort_unstable();
        s.external.dedup();
        Some(s)
    }

    /// The worker of address `a` (the same in every worker).
    #[inline]
    fn of_addr(&self, a: u32) -> usize {
        let k = ((a as u64) ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        (k % self.workers as u64) as usize
    }

    /// The worker that owns the flow of an IPv4 packet (`h`, first segment `frame`) that came
    /// in on `in_port` and goes out of `out_port` (None: to the appliance itself), or None
    /// when it stays where it arrived.
    #[inline]
    pub fn owner(
        &self,
        h: &Headers,
        frame: &[u8],
        in_port: usize,
        out_port: Option<usize>,
    ) -> Option<usize> {
        let (src, dst) = (h.src.v4()?, h.dst.v4()?);
        let (src, dst) = (u32::from_be_bytes(src), u32::from_be_bytes(dst));
        for f in &self.forwards {
            if f.dst.0 <= dst
                && dst <= f.dst.1
                && (f.service.is_empty()
                    || f.service
                        .iter()
                        .any(|&(p, lo, hi)| p == h.proto && lo <= h.dst_port && h.dst_port <= hi))
            {
                let inside = match f.to {
                    ForwardTo::Address(a) => a,
                    ForwardTo::Static {
                        translated,
                        original,
                        len,
                    } => static_address(translated, original, len, dst)?,
                };
                return Some(self.of_addr(inside));
            }
        }
        if self.external.binary_search(&dst).is_ok() {
            let port = if h.proto == proto::ICMP && icmp::is_error_v4(h.icmp_type) {
                let end = h.l3_offset as usize + h.ip_len as usize;
                icmp::embedded_v4(frame, h.l4_offset as usize, end)?.sport
            } else {
                h.dst_port
            };
            return Some(PortRange::owner(port, self.workers));
        }
        let inside = |port: Option<usize>, a: u32| {
            port.is_some_and(|p| {
                p < 64
                    && self.inside.iter().any(|(ports, addrs)| {
                        ports & (1 << p) != 0
                            && addrs
                                .as_ref()
                                .is_none_or(|v| v.iter().any(|&(lo, hi)| lo <= a && a <= hi))
                    })
            })
        };
        match (inside(Some(in_port), src), inside(out_port, dst)) {
            (true, false) => Some(self.of_addr(src)),
            (false, true) => Some(self.of_addr(dst)),
            (true, true) => Some(self.of_addr(src ^ dst)),
            (false, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::DestinationNat;
    use crate::packet::IpAddr16;

    fn rule(from: u64, source: SourceNat, destination: Option<DestinationNat>) -> NatRule {
        NatRule {
            name: "r".into(),
            from,
            to: u64::MAX,
            src: None,
            dst: destination.map(|_| vec![(0xcb00_7101, 0xcb00_7101)]),
            service: if destination.is_some() {
                vec![(proto::UDP, 2080, 2080)]
            } else {
                Vec::new()
            },
            source,
            destination,
        }
    }

    fn pkt(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Headers {
        let mut h = Headers::empty();
        h.l3 = crate::packet::L3::Ipv4;
        h.proto = proto::UDP;
        h.src = IpAddr16::from_v4(src);
        h.dst = IpAddr16::from_v4(dst);
        h.src_port = sport;
        h.dst_port = dport;
        h
    }

    /// Port 0 inside (zone 0), port 1 outside (zone 1); source NAT to 203.0.113.1 and a
    /// forward of 203.0.113.1 to 10.0.0.9.
    fn steer(workers: usize) -> Option<Steer> {
        Steer::of(
            &[
                rule(1, SourceNat::Pool(vec![0xcb00_7101]), None),
                rule(
                    2,
                    SourceNat::None,
                    Some(DestinationNat {
                        address: 0x0a00_0009,
                        port: Some(8080),
                    }),
                ),
            ],
            &[0, 1],
            workers,
            7,
            |_| None,
            |a| (a >> 24 == 10).then_some(0),
        )
    }

    #[test]
    fn both_directions_of_a_translated_flow_have_one_owner() {
        assert!(steer(1).is_none(), "one worker: nothing to steer");
        for workers in [2, 3, 4] {
            let s = steer(workers).unwrap();
            for host in 1..=50u8 {
                let inside = [10, 0, 0, host];
                // Outbound from the inside host, and the return to the mapping the owner
                // gives out from its own range.
                let out = s.owner(&pkt(inside, 5060, [198, 51, 100, 7], 5060), &[], 0, Some(1));
                let w = out.unwrap();
                let mapped = PortRange::of_worker(w, workers).lo + host as u16;
                let back = s.owner(
                    &pkt([198, 51, 100, 7], 5060, [203, 0, 113, 1], mapped),
                    &[],
                    1,
                    None,
                );
                assert_eq!(back, Some(w), "{workers} workers, host {host}");
                // Every flow of the host, to any peer, is on the same worker.
                let other = s.owner(&pkt(inside, 40000, [192, 0, 2, 9], 443), &[], 0, Some(1));
                assert_eq!(other, Some(w));
                // An untranslated reply toward the inside goes by the destination.
                let reply = s.owner(&pkt([192, 0, 2, 9], 443, inside, 40000), &[], 1, Some(0));
                assert_eq!(reply, Some(w));
            }
            // The port forward: inbound to the forwarded address and the inside host's reply.
            let fwd = s.owner(
                &pkt([198, 51, 100, 7], 999, [203, 0, 113, 1], 2080),
                &[],
                1,
                None,
            );
            let reply = s.owner(
                &pkt([10, 0, 0, 9], 8080, [198, 51, 100, 7], 999),
                &[],
                0,
                Some(1),
            );
            assert_eq!(fwd, reply);
            // Inside to inside: symmetric.
            let ab = s.owner(&pkt([10, 0, 0, 1], 1, [10, 0, 0, 2], 2), &[], 0, Some(0));
            let ba = s.owner(&pkt([10, 0, 0, 2], 2, [10, 0, 0, 1], 1), &[], 0, Some(0));
            assert_eq!(ab, ba);
            // Outside to outside: not steered.
            assert_eq!(
                s.owner(&pkt([1, 1, 1, 1], 1, [2, 2, 2, 2], 2), &[], 1, Some(1)),
                None
            );
        }
    }

    #[test]
    fn inside_hosts_spread_over_the_workers() {
        let s = steer(4).unwrap();
        let mut per = [0usize; 4];
        for host in 0..4000u32 {
            let a = (0x0a00_0000 + host).to_be_bytes();
            per[s
                .owner(&pkt(a, 1, [8, 8, 8, 8], 53), &[], 0, Some(1))
                .unwrap()] += 1;
        }
        assert!(per.iter().all(|&n| n > 800), "{per:?}");
    }
}
