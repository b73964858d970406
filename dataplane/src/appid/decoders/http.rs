//! HTTP/1.x requests and responses (web-browsing) and CONNECT (http-proxy). (Placeholder: recognises nothing yet.)
use crate::appid::{Decoder, Evidence, FlowCtx, Probe, Scratch, Transport};

pub struct Http;

impl Decoder for Http {
    fn name(&self) -> &'static str {
        "http"
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
