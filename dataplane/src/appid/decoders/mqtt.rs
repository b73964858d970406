//! MQTT (3.1, 3.1.1 and 5.0) over TCP, on any port, from the client's CONNECT: packet type 1
//! with zero flags, a variable-length remaining length (1-4 bytes), then the protocol name
//! `MQTT` with level 4 or 5, or `MQIsdp` with level 3, and connect flags whose reserved bit is
//! clear. `Certain` once the name and level are in (they are 8-10 specific bytes). Read in
//! either direction: a capture that starts mid-handshake may orient the flow the other way,
//! and a broker never sends CONNECT.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Mqtt;

const CONNECT: u8 = 0x10;
const NAMES: [(&[u8], &[u8]); 2] = [(b"\x00\x04MQTT", &[4, 5]), (b"\x00\x06MQIsdp", &[3])];
/// Remaining length: at most 4 bytes of 7 bits.
const MAX_VARINT: usize = 4;

impl Decoder for Mqtt {
    fn name(&self) -> &'static str {
        "mqtt"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[1883]
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
        match data.first() {
            None => return Probe::NotYet,
            Some(&CONNECT) => {}
            Some(_) => return Probe::NotMe,
        }
        // The remaining length's bytes: continuation bit set on all but the last.
        let mut n = 1;
        loop {
            let Some(&b) = data.get(n) else {
                return Probe::NotYet;
            };
            n += 1;
            if b & 0x80 == 0 {
                break;
            }
            if n > MAX_VARINT {
                return Probe::NotMe;
            }
        }
        let rest = &data[n..];
        for (name, levels) in NAMES {
            let shown = rest.len().min(name.len());
            if rest[..shown] != name[..shown] {
                continue;
            }
            let (Some(level), Some(flags)) = (rest.get(name.len()), rest.get(name.len() + 1))
            else {
                return Probe::NotYet;
            };
            return if levels.contains(level) && flags & 1 == 0 {
                Probe::Match(Proto::Mqtt, Confidence::Certain)
            } else {
                Probe::NotMe
            };
        }
        Probe::NotMe
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn connect_in_each_version() {
        let c = ctx(Transport::Tcp, Dir::Orig, 41892, 1883);
        let certain = Probe::Match(Proto::Mqtt, Confidence::Certain);
        // mqtt.pcap: 3.1 (MQIsdp, level 3) and 3.1.1 (MQTT 4, a two-byte remaining length).
        assert_eq!(
            probe_once(&Mqtt, &hex("104000064d514973647003c20014"), &c).0,
            certain
        );
        assert_eq!(
            probe_once(&Mqtt, &hex("109a0200044d51545404c00258"), &c).0,
            certain
        );
        assert_eq!(
            probe_once(&Mqtt, &hex("109a0200044d5154"), &c).0,
            Probe::NotYet
        );
        // Level 6, the reserved flag, another name, another packet type.
        for bad in [
            "109a0200044d51545406c00258",
            "109a0200044d51545404c10258",
            "109a0200044d51545804c00258",
            "209a0200044d51545404c00258",
        ] {
            assert_eq!(probe_once(&Mqtt, &hex(bad), &c).0, Probe::NotMe, "{bad}");
        }
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Mqtt, &[Proto::Mqtt], &[]);
        assert_eq!(m.get(&Proto::Mqtt), Some(&2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = probe_once(&Mqtt, &data, &ctx(Transport::Tcp, Dir::Orig, 1, 1883));
        }
    }
}
