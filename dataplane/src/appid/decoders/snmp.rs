//! SNMP (RFC 1157, 3416, 3412) over UDP, on any port: a SEQUENCE exactly as long as the
//! datagram, holding the version (INTEGER 0, 1 or 3), then for v1 and v2c the community
//! (OCTET STRING) and a PDU (context tags 0-8: get, get-next, response, set, trap, get-bulk,
//! inform, v2-trap, report) that ends the message; for v3 the header data (a SEQUENCE of the
//! message id, maximum size, flags and security model). `Certain`.
//!
//! Never allocates, never panics.
use super::util::der;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Snmp;

impl Decoder for Snmp {
    fn name(&self) -> &'static str {
        "snmp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[161, 162]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport == Transport::Udp && message(data).is_some() {
            Probe::Match(Proto::Snmp, Confidence::Certain)
        } else {
            Probe::NotMe
        }
    }
}

fn message(d: &[u8]) -> Option<()> {
    let (0x30, len, hl) = der(d, 0)? else {
        return None;
    };
    (hl + len == d.len()).then_some(())?;
    let (0x02, 1, vhl) = der(d, hl)? else {
        return None;
    };
    let version = *d.get(hl + vhl)?;
    let at = hl + vhl + 1;
    match version {
        0 | 1 => {
            let (0x04, clen, chl) = der(d, at)? else {
                return None;
            };
            let pdu = at + chl + clen;
            let (tag, plen, phl) = der(d, pdu)?;
            (matches!(tag, 0xa0..=0xa8) && pdu + phl + plen == d.len()).then_some(())
        }
        3 => {
            let (0x30, glen, ghl) = der(d, at)? else {
                return None;
            };
            // msgID INTEGER first.
            let (0x02, _, _) = der(d, at + ghl)? else {
                return None;
            };
            (at + ghl + glen <= d.len()).then_some(())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// A v1 get-next of 1.3 with community "public" (snmp.pcap's shape).
    const GET_NEXT: &str = "302002010004067075626c6963a1130201010201000201003008300606022b060500";

    #[test]
    fn v1_request_and_its_variants() {
        let c = ctx(Transport::Udp, Dir::Orig, 43015, 161);
        let m = hex(GET_NEXT);
        assert_eq!(
            probe_once(&Snmp, &m, &c).0,
            Probe::Match(Proto::Snmp, Confidence::Certain)
        );
        let mut v2 = m.clone();
        v2[4] = 2;
        let mut long = m.clone();
        long.push(0);
        let mut pdu = m.clone();
        pdu[13] = 0xb0;
        for bad in [v2, long, pdu] {
            assert_eq!(probe_once(&Snmp, &bad, &c).0, Probe::NotMe);
        }
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        // SNMP in a capture of the SIP set (its background traffic).
        let elsewhere = [
            "sipnab_SIP_CALL_RTP_G711.pcap 200.57.7.194:1161 <-> 200.57.7.197:161: Snmp",
            "sipnab_SIP_CALL_RTP_G711.pcap 200.57.7.205:1026 <-> 10.52.10.15:161: Snmp",
        ];
        let m = testkit::standard_checks(&Snmp, &[Proto::Snmp], &elsewhere);
        assert!(m.get(&Proto::Snmp).is_some_and(|n| *n >= 15), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = probe_once(&Snmp, &data, &ctx(Transport::Udp, Dir::Orig, 1, 161));
        }
    }
}
