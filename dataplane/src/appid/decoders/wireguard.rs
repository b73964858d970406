//! WireGuard over UDP, on any port. Each message starts with a type byte and three zero bytes:
//! - handshake initiation (1), response (2) and cookie reply (3) have fixed sizes (148, 92,
//!   64 bytes): `Certain`;
//! - transport data (4) is a 16-byte header, then the encrypted packet padded to 16 bytes
//!   with its 16-byte tag: a multiple of 16, at least 32 bytes. Alone that is weak, so a flow
//!   picked up after its handshake is `Certain` once two such datagrams in one direction carry
//!   the same receiver index with a counter that moved on (kept in scratch), `Likely` before.
//!
//! Never allocates, never panics.
use super::util::be32;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Wireguard;

const INITIATION_LEN: usize = 148;
const RESPONSE_LEN: usize = 92;
const COOKIE_LEN: usize = 64;
const DATA_MIN: usize = 32;

impl Decoder for Wireguard {
    fn name(&self) -> &'static str {
        "wireguard"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[51820]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp || data.get(1..4) != Some(&[0, 0, 0]) {
            return Probe::NotMe;
        }
        let certain = Probe::Match(Proto::Wireguard, Confidence::Certain);
        match (data[0], data.len()) {
            (1, INITIATION_LEN) | (2, RESPONSE_LEN) | (3, COOKIE_LEN) => certain,
            (4, n) if n >= DATA_MIN && n % 16 == 0 => {
                // Receiver index and the counter's low half, per direction.
                let (Some(receiver), Some(counter)) = (be32(data, 4), be32(data, 8)) else {
                    return Probe::NotMe;
                };
                let at = ctx.dir as usize * 8;
                let seen = be32(scratch, at).unwrap_or(0);
                let last = be32(scratch, at + 4).unwrap_or(0);
                scratch[at..at + 4].copy_from_slice(&receiver.to_be_bytes());
                scratch[at + 4..at + 8].copy_from_slice(&counter.to_be_bytes());
                if seen == receiver && receiver != 0 && counter != last {
                    certain
                } else {
                    Probe::Match(Proto::Wireguard, Confidence::Likely)
                }
            }
            _ => Probe::NotMe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn handshake_messages_by_type_and_size() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 51820);
        let mut m = vec![0u8; INITIATION_LEN];
        m[0] = 1;
        assert_eq!(
            probe_once(&Wireguard, &m, &c).0,
            Probe::Match(Proto::Wireguard, Confidence::Certain)
        );
        m.push(0);
        assert_eq!(probe_once(&Wireguard, &m, &c).0, Probe::NotMe);
        let mut r = vec![0u8; RESPONSE_LEN];
        r[0] = 2;
        assert_eq!(
            probe_once(&Wireguard, &r, &c).0,
            Probe::Match(Proto::Wireguard, Confidence::Certain)
        );
        r[2] = 1; // reserved bytes must be zero
        assert_eq!(probe_once(&Wireguard, &r, &c).0, Probe::NotMe);
    }

    #[test]
    fn transport_data_needs_a_second_datagram_of_the_same_session() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 51820);
        let mut s = [0u8; 16];
        let mut ev = Evidence::default();
        let mut d = vec![4, 0, 0, 0, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 7];
        d.resize(64, 0xaa);
        let likely = Probe::Match(Proto::Wireguard, Confidence::Likely);
        assert_eq!(Wireguard.probe(&d, &c, &mut s, &mut ev), likely);
        d[11] = 8;
        assert_eq!(
            Wireguard.probe(&d, &c, &mut s, &mut ev),
            Probe::Match(Proto::Wireguard, Confidence::Certain)
        );
        d.push(0); // not a multiple of 16
        assert_eq!(Wireguard.probe(&d, &c, &mut s, &mut ev), Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Wireguard, &[Proto::Wireguard], &[]);
        assert_eq!(m.get(&Proto::Wireguard), Some(&2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut s = [0u8; 16];
            let mut ev = Evidence::default();
            for dir in [Dir::Orig, Dir::Reply] {
                let _ = Wireguard.probe(&data, &ctx(Transport::Udp, dir, 1, 2), &mut s, &mut ev);
            }
        }
    }
}
