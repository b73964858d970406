//! ARP on routed ports (RFC 826): answers requests for the appliance's own addresses, learns
//! the sender, refreshes entries it already has, and releases a packet that waited for the
//! sender's MAC. Edits the request in place into the reply; never allocates.
use super::Router;
use crate::packet::{arp, ethernet, Headers, MacAddr};
use crate::stats::DropReason;
use aperture_dpdk::Mbuf;
use std::net::Ipv4Addr;

/// Length of the ARP request frame `request_frame` builds (the Ethernet minimum).
pub const REQUEST_FRAME_LEN: usize = 60;

/// What became of an ARP frame.
pub enum Handled {
    /// The reply, to send out of the port the request came in on.
    Reply(usize, Mbuf),
    /// Consumed: a reply, or a request for another host (the frame is freed).
    Consumed,
    Drop(DropReason, Mbuf),
}

/// Handles an ARP frame received on `port` (headers `h`). Also returns a held packet the
/// sender's MAC released, MACs already set, with its egress port.
pub fn handle(
    router: &mut Router,
    port: usize,
    mut m: Mbuf,
    h: &Headers,
    now: u64,
) -> (Handled, Option<(usize, Mbuf)>) {
    let l3 = h.l3_offset as usize;
    let Some(a) = m.data().get(l3..).and_then(arp::parse) else {
        return (Handled::Drop(DropReason::NotRoutable, m), None);
    };
    let sender_ip = Ipv4Addr::from(a.sender_ip);
    let Some(iface) = router.own(port, Ipv4Addr::from(a.target_ip)).cloned() else {
        // Not for us: only refresh what we already know (RFC 826 merge).
        let released = router.neighbours.refresh(sender_ip, a.sender_mac, now);
        return (Handled::Consumed, release(router, released, a.sender_mac));
    };
    let released = router.neighbours.learn(sender_ip, a.sender_mac, port, now);
    let released = release(router, released, a.sender_mac);
    if a.oper != arp::REQUEST {
        return (Handled::Consumed, released);
    }
    let reply = arp::Arp {
        oper: arp::REPLY,
        sender_mac: iface.mac,
        sender_ip: iface.addr.octets(),
        target_mac: a.sender_mac,
        target_ip: a.sender_ip,
    };
    let f = m.data_mut();
    ethernet::set_macs(f, a.sender_mac, iface.mac);
    if f.get_mut(l3..).is_some_and(|b| arp::emit(b, &reply)) {
        (Handled::Reply(port, m), released)
    } else {
        (Handled::Drop(DropReason::NotRoutable, m), released)
    }
}

/// A packet that waited for `mac`, addressed to it and ready to send.
fn release(router: &Router, held: Option<(Mbuf, usize)>, mac: MacAddr) -> Option<(usize, Mbuf)> {
    let (mut m, out) = held?;
    let src = router.iface_on(out).map(|i| i.mac).unwrap_or_default();
    ethernet::set_macs(m.data_mut(), mac, src);
    Some((out, m))
}

/// A broadcast ARP request for `target` from the interface (`src_mac`, `src_ip`).
pub fn request_frame(
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
) -> [u8; REQUEST_FRAME_LEN] {
    let mut f = [0u8; REQUEST_FRAME_LEN];
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    ethernet::set_macs(&mut f, MacAddr::BROADCAST, src_mac);
    let req = arp::Arp {
        oper: arp::REQUEST,
        sender_mac: src_mac,
        sender_ip: src_ip.octets(),
        target_mac: MacAddr::default(),
        target_ip: target.octets(),
    };
    arp::emit(&mut f[ethernet::HEADER_LEN..], &req);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_parses_back() {
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let f = request_frame(
            mac,
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 7),
        );
        assert_eq!(ethernet::dst_mac(&f), MacAddr::BROADCAST);
        assert_eq!(ethernet::src_mac(&f), mac);
        let a = arp::parse(&f[ethernet::HEADER_LEN..]).expect("an ARP packet");
        assert_eq!(a.oper, arp::REQUEST);
        assert_eq!(a.sender_ip, [192, 0, 2, 1]);
        assert_eq!(a.target_ip, [192, 0, 2, 7]);
    }
}
