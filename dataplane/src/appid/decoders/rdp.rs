//! Microsoft RDP (MS-RDPBCGR) over TCP, on any port, from its first PDU: a TPKT header
//! (version 3, reserved 0, a length covering the X.224 part, RFC 1006) around an X.224
//! Connection Request (0xE0, client) or Connection Confirm (0xD0, server) whose length
//! indicator is the rest of the TPKT. The client's request usually carries the routing cookie
//! (`Cookie: mstshash=`) and RDP's negotiation request; the structure alone is `Certain` once
//! the whole PDU is there, as both lengths must agree.
//!
//! Never allocates, never panics.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Rdp;

const TPKT_LEN: usize = 4;
const X224_CR: u8 = 0xe0;
const X224_CC: u8 = 0xd0;
/// TPKT, length indicator, code, destination and source references, class.
const MIN_LEN: usize = TPKT_LEN + 7;
/// A connection request with a cookie and negotiation data stays far below this.
const MAX_LEN: usize = 1024;

impl Decoder for Rdp {
    fn name(&self) -> &'static str {
        "ms-rdp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[3389]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Tcp || data.len() < 2 {
            return if data.first().is_none_or(|&b| b == 3) {
                Probe::NotYet
            } else {
                Probe::NotMe
            };
        }
        if data[0] != 3 || data[1] != 0 {
            return Probe::NotMe;
        }
        let Some(len) = be16(data, 2).map(usize::from) else {
            return Probe::NotYet;
        };
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Probe::NotMe;
        }
        if data.len() < len {
            return Probe::NotYet;
        }
        // A request or a confirm, in either direction (a capture picked up after the SYN may
        // orient the flow the other way).
        if data[4] as usize == len - TPKT_LEN - 1 && matches!(data[5] & 0xf0, X224_CR | X224_CC) {
            Probe::Match(Proto::Rdp, Confidence::Certain)
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

    /// rdp.pcap: the client's connection request (negotiation: TLS) and the server's confirm.
    const REQUEST: &str = "030000130ee00000000000010008000b000000";
    const CONFIRM: &str = "030000130ed00000123400021f080008000000";

    #[test]
    fn request_and_confirm() {
        let certain = Probe::Match(Proto::Rdp, Confidence::Certain);
        let o = ctx(Transport::Tcp, Dir::Orig, 52494, 3389);
        let r = ctx(Transport::Tcp, Dir::Reply, 52494, 3389);
        assert_eq!(probe_once(&Rdp, &hex(REQUEST), &o).0, certain);
        assert_eq!(probe_once(&Rdp, &hex(CONFIRM), &r).0, certain);
        // A cut PDU, a wrong length indicator.
        assert_eq!(probe_once(&Rdp, &hex(&REQUEST[..20]), &o).0, Probe::NotYet);
        let mut bad = hex(REQUEST);
        bad[4] = 0x0d;
        assert_eq!(probe_once(&Rdp, &bad, &o).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Rdp, &[Proto::Rdp], &[]);
        assert_eq!(m.get(&Proto::Rdp), Some(&1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100), reply in any::<bool>()) {
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let _ = probe_once(&Rdp, &data, &ctx(Transport::Tcp, dir, 1, 3389));
        }
    }
}
