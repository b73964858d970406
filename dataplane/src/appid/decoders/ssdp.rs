//! SSDP (UPnP discovery over HTTPU). (Placeholder: recognises nothing yet.)
use crate::appid::{Decoder, Evidence, FlowCtx, Probe, Scratch, Transport};

pub struct Ssdp;

impl Decoder for Ssdp {
    fn name(&self) -> &'static str {
        "ssdp"
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
