//! Where a packet goes: virtual-wire pairs (bump in the wire) or the routed IPv4 path.
pub mod neighbour;
pub mod routed;

pub use routed::Router;

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
