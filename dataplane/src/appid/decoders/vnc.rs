//! VNC's Remote Framebuffer protocol (RFC 6143) over TCP, on any port: the server opens with
//! its 12-byte ProtocolVersion, `RFB xxx.yyy\n` (three digits each: 003.003, 003.007,
//! 003.008, and vendors' own such as 003.889 or 004.001), and the client answers with its own.
//! Either side's version line is `Certain`. A client that sends something first keeps the flow
//! waiting for the server's line (a proxy's preamble); a server that does not open with one is
//! not VNC.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Vnc;

const VERSION_LEN: usize = 12;

impl Decoder for Vnc {
    fn name(&self) -> &'static str {
        "vnc"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[5900, 5901]
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
        match version(data) {
            Some(true) => Probe::Match(Proto::Vnc, Confidence::Certain),
            Some(false) if ctx.dir == Dir::Reply => Probe::NotMe,
            _ => Probe::NotYet,
        }
    }
}

/// Whether `d` starts with a version line (None: too short to tell, and right so far).
fn version(d: &[u8]) -> Option<bool> {
    const SHAPE: &[u8; VERSION_LEN] = b"RFB 000.000\n";
    for (i, want) in SHAPE.iter().enumerate() {
        let &c = d.get(i)?;
        let ok = if *want == b'0' {
            c.is_ascii_digit()
        } else {
            c == *want
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn version_lines_either_way() {
        let certain = Probe::Match(Proto::Vnc, Confidence::Certain);
        for dir in [Dir::Orig, Dir::Reply] {
            let c = ctx(Transport::Tcp, dir, 59791, 6900);
            assert_eq!(probe_once(&Vnc, b"RFB 004.001\n", &c).0, certain);
            assert_eq!(probe_once(&Vnc, b"RFB 003.8", &c).0, Probe::NotYet);
        }
        let r = ctx(Transport::Tcp, Dir::Reply, 59791, 6900);
        assert_eq!(probe_once(&Vnc, b"RFB 003.00x\n", &r).0, Probe::NotMe);
        assert_eq!(probe_once(&Vnc, b"SSH-2.0-x\r\n", &r).0, Probe::NotMe);
        // vnc.pcap: the client's first bytes are six zeros, before the server's line.
        let o = ctx(Transport::Tcp, Dir::Orig, 59791, 6900);
        assert_eq!(probe_once(&Vnc, &[0; 6], &o).0, Probe::NotYet);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Vnc, &[Proto::Vnc], &[]);
        assert_eq!(m.get(&Proto::Vnc), Some(&2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..40), reply in any::<bool>()) {
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let _ = probe_once(&Vnc, &data, &ctx(Transport::Tcp, dir, 1, 5900));
        }
    }
}
