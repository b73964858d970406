//! The routed (L3) forwarding decision: own addresses, connected and static routes with
//! longest-prefix match. The neighbour cache and the frame edits are done by the worker.
use super::neighbour::NeighbourCache;
use crate::config::{Forwarding, Prefix};
use crate::packet::MacAddr;
use std::net::Ipv4Addr;

/// An interface: a port with an address.
#[derive(Clone, Debug)]
pub struct Iface {
    pub port: usize,
    pub addr: Ipv4Addr,
    pub prefix: Prefix,
    pub mac: MacAddr,
}

#[derive(Clone, Copy, Debug)]
struct RouteEntry {
    prefix: Prefix,
    port: usize,
    /// None for a connected route: the destination itself is the next hop.
    via: Option<Ipv4Addr>,
}

/// Where a routed packet goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Out of `port` to the neighbour `next_hop`.
    Forward {
        port: usize,
        next_hop: Ipv4Addr,
    },
    /// Addressed to one of our own addresses.
    Local,
    NoRoute,
}

pub struct Router {
    pub ifaces: Vec<Iface>,
    routes: Vec<RouteEntry>,
    pub neighbours: NeighbourCache,
}

impl Router {
    /// Builds the router from config; `port_macs[i]` is the MAC of port i, `port_index` maps
    /// port names (validated by config) to indices.
    pub fn new(
        fwd: &Forwarding,
        port_index: impl Fn(&str) -> usize,
        port_macs: &[MacAddr],
    ) -> Option<Router> {
        let Forwarding::Routed {
            interfaces,
            routes,
            neighbours,
            neighbour_ttl,
        } = fwd
        else {
            return None;
        };
        let ifaces: Vec<Iface> = interfaces
            .iter()
            .map(|i| {
                let prefix: Prefix = i.address.parse().expect("validated by config");
                let port = port_index(&i.port);
                Iface {
                    port,
                    addr: prefix.addr,
                    prefix,
                    mac: port_macs.get(port).copied().unwrap_or_default(),
                }
            })
            .collect();
        let mut table: Vec<RouteEntry> = ifaces
            .iter()
            .map(|i| RouteEntry {
                prefix: i.prefix,
                port: i.port,
                via: None,
            })
            .collect();
        for r in routes {
            let prefix: Prefix = r.prefix.parse().expect("validated by config");
            let via: Ipv4Addr = r.via.parse().expect("validated by config");
            if let Some(i) = ifaces.iter().find(|i| i.prefix.contains(via)) {
                table.push(RouteEntry {
                    prefix,
                    port: i.port,
                    via: Some(via),
                });
            }
        }
        // Longest prefix first; a stable sort keeps connected routes ahead of equal statics.
        table.sort_by_key(|r| std::cmp::Reverse(r.prefix.len));
        Some(Router {
            ifaces,
            routes: table,
            neighbours: NeighbourCache::new(*neighbours, *neighbour_ttl),
        })
    }

    /// The interface on `port` that owns `addr`, if any.
    pub fn own(&self, port: usize, addr: Ipv4Addr) -> Option<&Iface> {
        self.ifaces
            .iter()
            .find(|i| i.port == port && i.addr == addr)
    }

    /// The first interface on `port`.
    pub fn iface_on(&self, port: usize) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.port == port)
    }

    pub fn route(&self, dst: Ipv4Addr) -> Hop {
        if self.ifaces.iter().any(|i| i.addr == dst) {
            return Hop::Local;
        }
        match self.routes.iter().find(|r| r.prefix.contains(dst)) {
            Some(r) => Hop::Forward {
                port: r.port,
                next_hop: r.via.unwrap_or(dst),
            },
            None => Hop::NoRoute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Interface, Route};

    fn router() -> Router {
        let fwd = Forwarding::Routed {
            interfaces: vec![
                Interface {
                    port: "in".into(),
                    address: "192.0.2.1/24".into(),
                },
                Interface {
                    port: "out".into(),
                    address: "198.51.100.1/24".into(),
                },
            ],
            routes: vec![
                Route {
                    prefix: "0.0.0.0/0".into(),
                    via: "198.51.100.254".into(),
                },
                Route {
                    prefix: "203.0.113.0/24".into(),
                    via: "192.0.2.9".into(),
                },
            ],
            neighbours: 4,
            neighbour_ttl: 300,
        };
        Router::new(
            &fwd,
            |n| if n == "in" { 0 } else { 1 },
            &[MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])],
        )
        .unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let r = router();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            r.route(ip("192.0.2.7")),
            Hop::Forward {
                port: 0,
                next_hop: ip("192.0.2.7")
            }
        );
        assert_eq!(
            r.route(ip("198.51.100.2")),
            Hop::Forward {
                port: 1,
                next_hop: ip("198.51.100.2")
            }
        );
        assert_eq!(
            r.route(ip("203.0.113.5")),
            Hop::Forward {
                port: 0,
                next_hop: ip("192.0.2.9")
            }
        );
        assert_eq!(
            r.route(ip("8.8.8.8")),
            Hop::Forward {
                port: 1,
                next_hop: ip("198.51.100.254")
            }
        );
        assert_eq!(r.route(ip("192.0.2.1")), Hop::Local);
        assert_eq!(r.own(0, ip("192.0.2.1")).map(|i| i.port), Some(0));
        assert!(r.own(1, ip("192.0.2.1")).is_none());
    }

    #[test]
    fn no_default_route_means_no_route() {
        let fwd = Forwarding::Routed {
            interfaces: vec![Interface {
                port: "in".into(),
                address: "192.0.2.1/24".into(),
            }],
            routes: vec![],
            neighbours: 4,
            neighbour_ttl: 300,
        };
        let r = Router::new(&fwd, |_| 0, &[MacAddr::default()]).unwrap();
        assert_eq!(r.route("10.1.1.1".parse().unwrap()), Hop::NoRoute);
    }
}
