//! NetBIOS name service and datagram service. (Placeholder: recognises nothing yet.)
use crate::appid::{Decoder, Evidence, FlowCtx, Probe, Scratch, Transport};

pub struct Netbios;

impl Decoder for Netbios {
    fn name(&self) -> &'static str {
        "netbios"
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
