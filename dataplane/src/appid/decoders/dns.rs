//! DNS over UDP and TCP; mDNS (5353) and LLMNR (5355) by port. (Placeholder: recognises nothing yet.)
use crate::appid::{Decoder, Evidence, FlowCtx, Probe, Scratch, Transport};

pub struct Dns;

impl Decoder for Dns {
    fn name(&self) -> &'static str {
        "dns"
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
