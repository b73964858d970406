//! DHCP (BOOTP with the magic cookie) and DHCPv6. (Placeholder: recognises nothing yet.)
use crate::appid::{Decoder, Evidence, FlowCtx, Probe, Scratch, Transport};

pub struct Dhcp;

impl Decoder for Dhcp {
    fn name(&self) -> &'static str {
        "dhcp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[]
    }
    fn probe(
        &self,
        _data: &[u8],
        _ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        Probe::NotMe
    }
}
