//! Kerberos V5 (RFC 4120) over UDP, and over TCP with its 4-byte record length, on any
//! port. A message is an ASN.1 application tag (AS-REQ 10 to AP-REP 15, SAFE, PRIV, CRED,
//! KRB-ERROR 30) around a SEQUENCE whose first two fields are the protocol version, 5, and
//! the message type, which must repeat the tag's number: `[1] pvno, [2] msg-type` in the
//! KDC requests, `[0] pvno, [1] msg-type` in the others. With the lengths agreeing (the
//! application's with the datagram or TCP record), that is `Certain` from the first bytes.
//!
//! Never allocates, never panics.
use super::util::{be32, der};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Kerberos;

/// Message types (the application tag numbers).
const TYPES: [u8; 10] = [10, 11, 12, 13, 14, 15, 20, 21, 22, 30];
const AS_REQ: u8 = 10;
const TGS_REQ: u8 = 12;
/// Enough to read the tags and the first two fields.
const NEED: usize = 14;
/// Longest record accepted over TCP (tickets with PACs are a few KiB).
const MAX_RECORD: u32 = 1 << 16;

impl Decoder for Kerberos {
    fn name(&self) -> &'static str {
        "kerberos"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp, Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[88]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        let (msg, total) = match ctx.transport {
            Transport::Udp => (data, Some(data.len())),
            Transport::Tcp => {
                let Some(len) = be32(data, 0) else {
                    return if data.iter().all(|&b| b == 0) {
                        Probe::NotYet
                    } else {
                        Probe::NotMe
                    };
                };
                if len == 0 || len > MAX_RECORD {
                    return Probe::NotMe;
                }
                (&data[4..], Some(len as usize))
            }
        };
        if msg.len() < NEED {
            // Over TCP the rest may come; a datagram is all there is.
            return match ctx.transport {
                Transport::Tcp
                    if msg
                        .first()
                        .is_none_or(|t| TYPES.contains(&(t & 0x1f)) && t & 0xe0 == 0x60) =>
                {
                    Probe::NotYet
                }
                _ => Probe::NotMe,
            };
        }
        if message(msg, total) {
            Probe::Match(Proto::Kerberos, Confidence::Certain)
        } else {
            Probe::NotMe
        }
    }
}

/// Whether `m` starts a Kerberos message `total` bytes long.
fn message(m: &[u8], total: Option<usize>) -> bool {
    let Some((tag, len, hl)) = der(m, 0) else {
        return false;
    };
    let kind = tag & 0x1f;
    if tag & 0xe0 != 0x60 || !TYPES.contains(&kind) || total != Some(hl + len) {
        return false;
    }
    let Some((0x30, seq_len, seq_hl)) = der(m, hl) else {
        return false;
    };
    if hl + seq_hl + seq_len != hl + len {
        return false;
    }
    let at = hl + seq_hl;
    let (pvno_tag, type_tag) = if matches!(kind, AS_REQ | TGS_REQ) {
        (0xa1, 0xa2)
    } else {
        (0xa0, 0xa1)
    };
    let pvno = [pvno_tag, 3, 2, 1, 5];
    let msg_type = [type_tag, 3, 2, 1, kind];
    m.get(at..at + 5) == Some(&pvno) && m.get(at + 5..at + 10) == Some(&msg_type)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// A minimal AS-REQ over TCP: record length, application 10, SEQUENCE, [1] pvno 5,
    /// [2] msg-type 10, then an empty [4] body.
    const AS_REQ: &str = "000000126a10300ea103020105a20302010aa4023000";

    #[test]
    fn requests_and_errors_by_structure() {
        let certain = Probe::Match(Proto::Kerberos, Confidence::Certain);
        let m = hex(AS_REQ);
        let c = ctx(Transport::Tcp, Dir::Orig, 49157, 88);
        assert_eq!(probe_once(&Kerberos, &m, &c).0, certain);
        // Over UDP, without the record length.
        let u = ctx(Transport::Udp, Dir::Orig, 49157, 88);
        assert_eq!(probe_once(&Kerberos, &m[4..], &u).0, certain);
        // The message type must repeat the tag; pvno must be 5; lengths must agree.
        let mut wrong = m.clone();
        wrong[17] = 0x0b;
        let mut v4 = m.clone();
        v4[12] = 4;
        let mut long = m.clone();
        long[3] = 0x13;
        long.push(0);
        for bad in [wrong, v4, long] {
            assert_eq!(probe_once(&Kerberos, &bad, &c).0, Probe::NotMe);
        }
        assert_eq!(probe_once(&Kerberos, &m[..6], &c).0, Probe::NotYet);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Kerberos, &[Proto::Kerberos], &[]);
        assert!(m.get(&Proto::Kerberos).is_some_and(|n| *n >= 10), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), tcp in any::<bool>()) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = probe_once(&Kerberos, &data, &ctx(t, Dir::Orig, 1, 88));
        }
    }
}
