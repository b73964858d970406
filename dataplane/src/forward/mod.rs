//! Where a packet goes, in two steps around the flow stage: `decide` (before it: egress port
//! and next hop from the headers, no I/O, no frame edits) and `finish` (after it: TTL, MAC
//! rewrite, the neighbour cache's hold). ARP for the appliance's own addresses is answered
//! here too (`arp.rs`), so the worker never sees ARP. Nothing here allocates; ARP requests
//! come back as a fixed-size frame for the worker to send.
pub mod arp;
pub mod neighbour;
pub mod reject;
pub mod routed;

pub use routed::Router;

use crate::packet::{ethernet, ipv4, Headers, L3};
use crate::stats::DropReason;
use aperture_dpdk::Mbuf;
use neighbour::Lookup;
use routed::Hop;
use std::net::Ipv4Addr;

/// Virtual-wire peers: `peer[p]` is the port a packet received on `p` leaves on.
#[derive(Clone, Debug)]
pub struct VirtualWire {
    pub peer: Vec<Option<usize>>,
}

impl VirtualWire {
    pub fn new(ports: usize, pairs: &[(usize, usize)]) -> VirtualWire {
        let mut peer = vec![None; ports];
        for &(a, b) in pairs {
            peer[a] = Some(b);
            peer[b] = Some(a);
        }
        VirtualWire { peer }
    }
}

/// How a worker forwards.
pub enum Mode {
    Wire(VirtualWire),
    Routed(Router),
}

/// What `decide` found for one packet. Kept to 8 bytes with a `u8` tag: it sits in every
/// packet's per-burst metadata (ports are `u16`, as DPDK's are; see the worker's size test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Decision {
    /// Out of `port`, unchanged (virtual wire).
    Wire { port: u16 },
    /// Routed out of `port` towards `next_hop`.
    Routed { port: u16, next_hop: Ipv4Addr },
    /// ARP on a routed port: for `arp::handle`, never for the flow stage.
    Arp,
}

impl Decision {
    /// Egress port, if the packet is forwarded.
    pub fn port(&self) -> Option<usize> {
        match *self {
            Decision::Wire { port } | Decision::Routed { port, .. } => Some(port as usize),
            Decision::Arp => None,
        }
    }
}

/// Where a packet received on `in_port` with headers `h` goes (`frame`: its first segment).
/// A packet refused here never reaches the flow stage.
#[inline(always)]
pub fn decide(
    mode: &Mode,
    in_port: usize,
    frame: &[u8],
    h: &Headers,
) -> Result<Decision, DropReason> {
    match mode {
        Mode::Wire(w) => match w.peer.get(in_port).copied().flatten() {
            Some(port) => Ok(Decision::Wire { port: port as u16 }),
            None => Err(DropReason::NoEgress),
        },
        Mode::Routed(r) => decide_routed(r, in_port, frame, h),
    }
}

fn decide_routed(
    router: &Router,
    in_port: usize,
    frame: &[u8],
    h: &Headers,
) -> Result<Decision, DropReason> {
    let iface_mac = router
        .iface_on(in_port)
        .map(|i| i.mac)
        .ok_or(DropReason::NotRoutable)?;
    let dst_mac = ethernet::dst_mac(frame);
    if !dst_mac.is_multicast() && dst_mac != iface_mac {
        return Err(DropReason::NotOurMac);
    }
    if h.l3 == L3::Arp {
        return Ok(Decision::Arp);
    }
    let dst = (h.l3 == L3::Ipv4)
        .then(|| h.dst.v4())
        .flatten()
        .map(Ipv4Addr::from)
        .ok_or(DropReason::NotRoutable)?;
    if dst.is_broadcast() || dst.is_multicast() || dst_mac.is_multicast() {
        return Err(DropReason::NotRoutable);
    }
    match router.route(dst) {
        Hop::Forward { .. } if h.ttl <= 1 => Err(DropReason::TtlExceeded),
        Hop::Forward { port, next_hop } => Ok(Decision::Routed {
            port: port as u16,
            next_hop,
        }),
        Hop::Local => Err(DropReason::LocalDelivery),
        Hop::NoRoute => Err(DropReason::NoRoute),
    }
}

/// What `finish` did with a packet. Small (returned per packet): an ARP request to send is
/// described, and built into a frame only on that rare path (`ArpRequest::frame`).
pub enum Finished {
    /// Ready to go out of the port.
    Send(usize, Mbuf),
    /// Held until its next hop resolves. `replaced` is an older packet the hold pushed out
    /// (to be dropped as `neighbour-unresolved`); `ask` an ARP request to send.
    Held {
        replaced: Option<Mbuf>,
        ask: Option<ArpRequest>,
    },
    Drop(DropReason, Mbuf),
}

/// An ARP request the neighbour cache wants sent: who has `target`, asked from the
/// interface (`src_mac`, `src_ip`) on `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRequest {
    pub port: usize,
    pub src_mac: ethernet::MacAddr,
    pub src_ip: Ipv4Addr,
    pub target: Ipv4Addr,
}

impl ArpRequest {
    /// The broadcast request frame.
    pub fn frame(&self) -> [u8; arp::REQUEST_FRAME_LEN] {
        arp::request_frame(self.src_mac, self.src_ip, self.target)
    }
}

/// Completes the forwarding `decide` chose, after the flow stage: for a routed packet the TTL
/// decrement (incremental checksum) and the MAC rewrite, or a hold while its next hop's MAC
/// is resolved.
#[inline(always)]
pub fn finish(mode: &mut Mode, d: Decision, mut m: Mbuf, h: &Headers, now: u64) -> Finished {
    let (router, port, next_hop) = match (mode, d) {
        (_, Decision::Wire { port }) => return Finished::Send(port as usize, m),
        (Mode::Routed(r), Decision::Routed { port, next_hop }) => (r, port as usize, next_hop),
        _ => return Finished::Drop(DropReason::NotRoutable, m),
    };
    let l3 = h.l3_offset as usize;
    if m.data_mut()
        .get_mut(l3..)
        .and_then(ipv4::decrement_ttl)
        .is_none()
    {
        return Finished::Drop(DropReason::TtlExceeded, m);
    }
    let Some((src_mac, src_ip)) = router.iface_on(port).map(|i| (i.mac, i.addr)) else {
        return Finished::Drop(DropReason::NoRoute, m);
    };
    match router.neighbours.lookup(next_hop, now) {
        Lookup::Mac(mac) => {
            ethernet::set_macs(m.data_mut(), mac, src_mac);
            Finished::Send(port, m)
        }
        Lookup::Pending => hold(router, port, src_mac, src_ip, next_hop, m, now),
    }
}

/// The neighbour cache holds a packet whose next hop's MAC is unknown (rare: off the fast
/// path).
#[cold]
#[inline(never)]
fn hold(
    router: &mut Router,
    port: usize,
    src_mac: ethernet::MacAddr,
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
    m: Mbuf,
    now: u64,
) -> Finished {
    let (replaced, ask) = router.neighbours.hold(target, port, m, now);
    Finished::Held {
        replaced,
        ask: ask.then_some(ArpRequest {
            port,
            src_mac,
            src_ip,
            target,
        }),
    }
}
