//! WhatsApp's own chat protocol over TCP (443, 5222, or any port), from the client's first
//! bytes: the Noise handshake's prologue `ED` 0 1, then the routing header and the protocol
//! header `WA` with its version (`WA` 5 2, ...); or, from older clients, `WA` and a version
//! straight away. The prologue alone waits for the `WA` that follows it; `WA` with a
//! plausible version is `Certain`.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Whatsapp;

const PROLOGUE: &[u8] = b"ED\x00\x01";
/// How far after the prologue the protocol header may sit (the routing header before it).
const HEADER_WITHIN: usize = 32;

impl Decoder for Whatsapp {
    fn name(&self) -> &'static str {
        "whatsapp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[5222]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Tcp {
            return Probe::NotMe;
        }
        let certain = Probe::Match(Proto::Whatsapp, Confidence::Certain);
        if wa_header(data) {
            return certain;
        }
        let n = data.len().min(PROLOGUE.len());
        if data[..n] != PROLOGUE[..n] {
            return Probe::NotMe;
        }
        let after = &data[n..];
        let window = &after[..after.len().min(HEADER_WITHIN)];
        if (0..window.len()).any(|i| wa_header(&window[i..])) {
            certain
        } else if after.len() < HEADER_WITHIN {
            Probe::NotYet
        } else {
            Probe::NotMe
        }
    }
}

/// `WA`, a protocol major version 1-9 and a minor one 0-9 (as bytes).
fn wa_header(d: &[u8]) -> bool {
    matches!(d, [b'W', b'A', 1..=9, 0..=9, ..])
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn prologue_then_protocol_header() {
        let c = ctx(Transport::Tcp, Dir::Orig, 44804, 5222);
        let certain = Probe::Match(Proto::Whatsapp, Confidence::Certain);
        // whatsapp.pcap: "ED" 0 1 in the first segment, the header in the second.
        assert_eq!(probe_once(&Whatsapp, &hex("45440001"), &c).0, Probe::NotYet);
        let stream = hex("45440001000004080908025741050200010e128b");
        assert_eq!(probe_once(&Whatsapp, &stream, &c).0, certain);
        assert_eq!(probe_once(&Whatsapp, b"WA\x01\x05\x00\x00", &c).0, certain);
        assert_eq!(probe_once(&Whatsapp, b"EE\x00\x01", &c).0, Probe::NotMe);
        let mut none = hex("45440001");
        none.extend_from_slice(&[0x11; 40]);
        assert_eq!(probe_once(&Whatsapp, &none, &c).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Whatsapp, &[Proto::Whatsapp], &[]);
        assert!(m.get(&Proto::Whatsapp).is_some_and(|n| *n >= 80), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = probe_once(&Whatsapp, &data, &ctx(Transport::Tcp, Dir::Orig, 1, 5222));
        }
    }
}
