//! PostgreSQL's frontend/backend protocol over TCP, on any port, from the client's first
//! message, which has no type byte: a 4-byte length (itself included), then a code:
//! - 196608 (protocol 3.0): a StartupMessage, NUL-terminated parameter names and values
//!   (`user` among them) ending with an empty name, exactly as long as stated: `Certain`;
//! - 80877103 (SSLRequest) or 80877104 (GSSENCRequest), 8 bytes exactly: `Certain` (both
//!   are fixed, specific byte strings);
//! - 80877102 (CancelRequest), 16 bytes: `Certain`.
//!
//! Read in either direction (a capture picked up after the SYN may orient the flow the other
//! way); the server's messages never have this shape.
//!
//! Never allocates, never panics.
use super::util::be32;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Postgres;

const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
const MAX_STARTUP: usize = 10_000;

impl Decoder for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[5432]
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
        let (Some(len), Some(code)) = (be32(data, 0), be32(data, 4)) else {
            return if data.len() < 4
                || be32(data, 0).is_some_and(|l| (8..=MAX_STARTUP as u32).contains(&l))
            {
                Probe::NotYet
            } else {
                Probe::NotMe
            };
        };
        let len = len as usize;
        let certain = Probe::Match(Proto::Postgres, Confidence::Certain);
        match code {
            SSL_REQUEST | GSSENC_REQUEST if len == 8 => certain,
            CANCEL_REQUEST if len == 16 => certain,
            PROTOCOL_3 if (9..=MAX_STARTUP).contains(&len) => {
                let Some(params) = data.get(8..len) else {
                    return Probe::NotYet;
                };
                if startup(params) {
                    certain
                } else {
                    Probe::NotMe
                }
            }
            _ => Probe::NotMe,
        }
    }
}

/// Name/value pairs, each NUL-terminated, printable, `user` among the names, then a NUL.
fn startup(p: &[u8]) -> bool {
    let Some(body) = p.strip_suffix(&[0]) else {
        return false;
    };
    let Some(body) = body.strip_suffix(&[0]) else {
        return false;
    };
    let mut fields = body.split(|&c| c == 0);
    let mut user = false;
    while let Some(name) = fields.next() {
        let Some(value) = fields.next() else {
            return false;
        };
        let printable = |s: &[u8]| s.iter().all(|c| (0x20..0x7f).contains(c) || *c >= 0x80);
        if name.is_empty() || !printable(name) || !printable(value) {
            return false;
        }
        user |= name == b"user";
    }
    user
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// pgsql.pcap: user orxy, database mailstore.
    const STARTUP: &str =
        "000000260003000075736572006f727978006461746162617365006d61696c73746f72650000";

    #[test]
    fn startup_and_the_fixed_requests() {
        let c = ctx(Transport::Tcp, Dir::Orig, 45930, 5432);
        let certain = Probe::Match(Proto::Postgres, Confidence::Certain);
        assert_eq!(probe_once(&Postgres, &hex(STARTUP), &c).0, certain);
        assert_eq!(
            probe_once(&Postgres, &hex("0000000804d2162f"), &c).0,
            certain
        );
        assert_eq!(
            probe_once(&Postgres, &hex("0000000804d21630"), &c).0,
            certain
        );
        assert_eq!(
            probe_once(&Postgres, &hex(&STARTUP[..30]), &c).0,
            Probe::NotYet
        );
        // No user, a wrong length, another protocol version.
        for bad in [
            "0000001a00030000646174616261736500706f7374677265730000",
            "0000000904d2162f00",
            "000000260002000075736572006f727978006461746162617365006d61696c73746f72650000",
        ] {
            assert_eq!(
                probe_once(&Postgres, &hex(bad), &c).0,
                Probe::NotMe,
                "{bad}"
            );
        }
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Postgres, &[Proto::Postgres], &[]);
        assert!(m.get(&Proto::Postgres).is_some_and(|n| *n >= 4), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = probe_once(&Postgres, &data, &ctx(Transport::Tcp, Dir::Orig, 1, 5432));
        }
    }
}
