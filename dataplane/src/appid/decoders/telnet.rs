//! Telnet (RFC 854) over TCP, on any port, from option negotiation: both sides open with
//! IAC commands (0xFF, then WILL/WONT/DO/DONT and an option, or a subnegotiation IAC SB ...
//! IAC SE). A first segment made only of whole negotiations, at least one, is `Certain`;
//! a negotiation still arriving is `NotYet`; anything else first is not Telnet (a server's
//! login prompt without negotiation is left unnamed: too weak to tell from other text).
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Telnet;

const IAC: u8 = 0xff;
const SB: u8 = 0xfa;
const SE: u8 = 0xf0;
/// WILL, WONT, DO, DONT.
const NEGOTIATE: std::ops::RangeInclusive<u8> = 0xfb..=0xfe;
/// Longest subnegotiation accepted (terminal type, window size, environment).
const MAX_SB: usize = 256;

impl Decoder for Telnet {
    fn name(&self) -> &'static str {
        "telnet"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[23]
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
        let mut i = 0;
        let mut whole = 0;
        while i < data.len() {
            if data[i] != IAC {
                // Data after negotiation is fine; data first is not Telnet's opening.
                break;
            }
            match data.get(i + 1) {
                None => return Probe::NotYet,
                Some(c) if NEGOTIATE.contains(c) => {
                    if data.len() < i + 3 {
                        return Probe::NotYet;
                    }
                    i += 3;
                }
                Some(&SB) => {
                    let end = data[i + 2..]
                        .windows(2)
                        .take(MAX_SB)
                        .position(|w| w == [IAC, SE]);
                    match end {
                        Some(e) => i += 2 + e + 2,
                        None if data.len() - i < MAX_SB => return Probe::NotYet,
                        None => return Probe::NotMe,
                    }
                }
                Some(_) => return Probe::NotMe,
            }
            whole += 1;
        }
        if whole > 0 {
            Probe::Match(Proto::Telnet, Confidence::Certain)
        } else if data.is_empty() {
            Probe::NotYet
        } else {
            Probe::NotMe
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn negotiation_opens_a_telnet_session() {
        let certain = Probe::Match(Proto::Telnet, Confidence::Certain);
        let c = ctx(Transport::Tcp, Dir::Orig, 1550, 23);
        // telnet.pcap: the client's DO/WILL list; a terminal-type subnegotiation.
        let opening = hex("fffd03fffb18fffb1ffffb20fffb21fffb22fffb27fffd05fffb23");
        assert_eq!(probe_once(&Telnet, &opening, &c).0, certain);
        assert_eq!(
            probe_once(&Telnet, &hex("fffa1800585445524dfff0"), &c).0,
            certain
        );
        assert_eq!(probe_once(&Telnet, &opening[..2], &c).0, Probe::NotYet);
        assert_eq!(
            probe_once(&Telnet, &hex("fffa18005854"), &c).0,
            Probe::NotYet
        );
        assert_eq!(probe_once(&Telnet, &hex("fff4"), &c).0, Probe::NotMe);
        assert_eq!(probe_once(&Telnet, b"login: ", &c).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Telnet, &[Proto::Telnet], &[]);
        assert_eq!(m.get(&Proto::Telnet), Some(&1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = probe_once(&Telnet, &data, &ctx(Transport::Tcp, Dir::Orig, 1, 23));
        }
    }
}
