//! MySQL and MariaDB's client/server protocol over TCP, on any port, from the server's first
//! packet: a 3-byte little-endian payload length, sequence number 0, then either the
//! handshake (protocol version 10, a NUL-terminated server version starting with a digit, a
//! 4-byte connection id, 8 bytes of the auth challenge and a zero filler) or an error packet
//! (0xFF, a 2-byte code, text: "Host ... is not allowed to connect"). A handshake whose
//! length agrees is `Certain`; the error packet `Likely`. Read in either direction (a capture
//! picked up after the SYN may orient the flow the other way); the client's first packet
//! (sequence 1) never has this shape.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Mysql;

const PROTOCOL_10: u8 = 10;
const ERROR: u8 = 0xff;
/// Longest server version string accepted.
const MAX_VERSION: usize = 64;
/// Longest greeting accepted (about 80-120 bytes in practice).
const MAX_GREETING: usize = 1024;

impl Decoder for Mysql {
    fn name(&self) -> &'static str {
        "mysql"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[3306]
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
        let Some(h) = data.first_chunk::<5>() else {
            return Probe::NotYet;
        };
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        if h[3] != 0 || !(1..=MAX_GREETING).contains(&len) {
            return Probe::NotMe;
        }
        if data.len() < 4 + len {
            return Probe::NotYet;
        }
        let p = &data[4..4 + len];
        match p[0] {
            PROTOCOL_10 => {
                let v = &p[1..];
                let Some(nul) = v.iter().take(MAX_VERSION + 1).position(|&c| c == 0) else {
                    return Probe::NotMe;
                };
                let version = &v[..nul];
                let printable = version.iter().all(|c| (0x20..0x7f).contains(c));
                // Connection id (4), challenge (8), filler 0.
                let filler = v.get(nul + 1 + 4 + 8);
                if version.first().is_some_and(u8::is_ascii_digit)
                    && printable
                    && filler == Some(&0)
                {
                    Probe::Match(Proto::Mysql, Confidence::Certain)
                } else {
                    Probe::NotMe
                }
            }
            ERROR if len > 3 && p[3..].iter().all(|c| (0x20..0x7f).contains(c)) => {
                Probe::Match(Proto::Mysql, Confidence::Likely)
            }
            _ => Probe::NotMe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// mysql.pcapng: MySQL 8.0.36's greeting, cut after the filler (length set to match).
    fn greeting() -> Vec<u8> {
        let mut g = hex("000000000a382e302e3336000c00000031747567785f235600");
        let len = (g.len() - 4) as u32;
        g[..3].copy_from_slice(&len.to_le_bytes()[..3]);
        g
    }

    #[test]
    fn the_servers_greeting() {
        let r = ctx(Transport::Tcp, Dir::Reply, 36272, 3306);
        let g = greeting();
        assert_eq!(
            probe_once(&Mysql, &g, &r).0,
            Probe::Match(Proto::Mysql, Confidence::Certain)
        );
        assert_eq!(probe_once(&Mysql, &g[..10], &r).0, Probe::NotYet);
        let mut seq1 = g.clone();
        seq1[3] = 1;
        let mut v9 = g.clone();
        v9[4] = 9;
        for bad in [seq1, v9] {
            assert_eq!(probe_once(&Mysql, &bad, &r).0, Probe::NotMe);
        }
        let refused = b"\x2a\x00\x00\x00\xff\x6a\x04Host '10.0.0.1' is not allowed to connect";
        assert_eq!(
            probe_once(&Mysql, refused, &r).0,
            Probe::Match(Proto::Mysql, Confidence::Likely)
        );
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Mysql, &[Proto::Mysql], &[]);
        assert_eq!(m.get(&Proto::Mysql), Some(&2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = probe_once(&Mysql, &data, &ctx(Transport::Tcp, Dir::Reply, 1, 3306));
        }
    }
}
