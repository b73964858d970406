//! IPsec key exchange and NAT traversal over UDP, on any port: IKEv1 (ISAKMP) and IKEv2
//! messages, bare or behind NAT-T's four-zero-byte non-ESP marker (RFC 3948), and ESP in UDP.
//! (ESP itself, IP protocol 50, is named by the catalog's `ip-protocol`.)
//! - an IKE header (RFC 7296 section 3.1, RFC 2408 section 3.1): a non-zero initiator SPI,
//!   version 1.0 or 2.0, a known exchange type, and a length that is exactly the message's:
//!   `Certain`;
//! - on port 4500 (NAT-T), a datagram that is not IKE and starts with an ESP SPI outside the
//!   reserved 1-255 and is at least a header, IV and tag long: `Likely` (ESP picked up after
//!   the exchange); the single byte 0xff of a NAT keep-alive: `NotYet`.
//!
//! Never allocates, never panics.
use super::util::be32;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Ipsec;

const HEADER_LEN: usize = 28;
const NAT_T_PORT: u16 = 4500;
const NON_ESP_MARKER: [u8; 4] = [0; 4];
const NAT_KEEPALIVE: [u8; 1] = [0xff];
/// SPI, sequence number, then at least an 8-byte IV and a 12-byte ICV.
const ESP_MIN_LEN: usize = 28;

impl Decoder for Ipsec {
    fn name(&self) -> &'static str {
        "ipsec"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[500, NAT_T_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        if ike(data) {
            return Probe::Match(Proto::Ipsec, Confidence::Certain);
        }
        if !ctx.has_port(NAT_T_PORT) {
            return Probe::NotMe;
        }
        if data == NAT_KEEPALIVE {
            return Probe::NotYet;
        }
        match data.strip_prefix(&NON_ESP_MARKER) {
            Some(m) if ike(m) => Probe::Match(Proto::Ipsec, Confidence::Certain),
            Some(_) => Probe::NotMe,
            None if data.len() >= ESP_MIN_LEN && be32(data, 0).is_some_and(|spi| spi > 255) => {
                Probe::Match(Proto::Ipsec, Confidence::Likely)
            }
            None => Probe::NotMe,
        }
    }
}

/// Whether `m` is one whole IKE message.
fn ike(m: &[u8]) -> bool {
    let Some(h) = m.first_chunk::<HEADER_LEN>() else {
        return false;
    };
    // The next payload type is not checked: private-use types exist, and the length, version
    // and exchange type already pin the header down.
    let exchange = h[18];
    let known = match h[17] {
        // IKEv1 exchanges: none, base, identity protection, authentication only, aggressive,
        // informational, and quick mode / new group (32, 33).
        0x10 => matches!(exchange, 0..=5 | 32 | 33),
        // IKEv2: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL, IKE_SESSION_RESUME
        // (38), IKE_INTERMEDIATE (43), IKE_FOLLOWUP_KE (44).
        0x20 => matches!(exchange, 34..=38 | 43 | 44),
        _ => false,
    };
    known && h[..8] != [0; 8] && be32(h, 24) == Some(m.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    fn ike_sa_init() -> Vec<u8> {
        let mut m = vec![
            0xb6, 0x4e, 0xf3, 0x21, 0x31, 0xa4, 0x89, 0x52, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        m.extend_from_slice(&[0x21, 0x20, 0x22, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&[0x00, 0x00, 0x00, 0x08, 0, 0, 0, 0]);
        let len = m.len() as u32;
        m[24..28].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn ike_bare_and_behind_the_nat_t_marker() {
        let certain = Probe::Match(Proto::Ipsec, Confidence::Certain);
        let m = ike_sa_init();
        assert_eq!(
            probe_once(&Ipsec, &m, &ctx(Transport::Udp, Dir::Orig, 10500, 500)).0,
            certain
        );
        let mut n = NON_ESP_MARKER.to_vec();
        n.extend_from_slice(&m);
        assert_eq!(
            probe_once(&Ipsec, &n, &ctx(Transport::Udp, Dir::Orig, 14500, 4500)).0,
            certain
        );
        // A length that is not the message's, a zero SPI, version 3: not IKE.
        let mut bad = m.clone();
        bad.push(0);
        let mut zero = m.clone();
        zero[..8].fill(0);
        let mut v3 = m.clone();
        v3[17] = 0x30;
        for b in [bad, zero, v3] {
            assert_eq!(
                probe_once(&Ipsec, &b, &ctx(Transport::Udp, Dir::Orig, 10500, 500)).0,
                Probe::NotMe
            );
        }
    }

    #[test]
    fn esp_in_udp_and_keepalives_on_4500_only() {
        let c = ctx(Transport::Udp, Dir::Orig, 14500, 4500);
        let mut esp = vec![0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1];
        esp.resize(80, 0x5a);
        assert_eq!(
            probe_once(&Ipsec, &esp, &c).0,
            Probe::Match(Proto::Ipsec, Confidence::Likely)
        );
        assert_eq!(probe_once(&Ipsec, &[0xff], &c).0, Probe::NotYet);
        let elsewhere = ctx(Transport::Udp, Dir::Orig, 14500, 4501);
        assert_eq!(probe_once(&Ipsec, &esp, &elsewhere).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Ipsec, &[Proto::Ipsec], &[]);
        assert!(m.get(&Proto::Ipsec).is_some_and(|n| *n >= 12), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), port in prop::sample::select(vec![500u16, 4500, 9])) {
            let _ = probe_once(&Ipsec, &data, &ctx(Transport::Udp, Dir::Orig, 40000, port));
        }
    }
}
