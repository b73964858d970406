//! LDAP (RFC 4511) over TCP, and CLDAP over UDP, on any port. A message is an ASN.1 SEQUENCE
//! of a message id (an INTEGER of 1-4 bytes) and a protocol operation: one of LDAP's
//! application tags (bind, search, modify, add, delete, compare, extended...; unbind and
//! delete as primitives), whose length fits inside the message, which may end with controls
//! ([0]). The message's length must be the datagram's over UDP; over TCP the first message
//! may continue in later segments. `Certain` from the first message's header.
//!
//! Never allocates, never panics.
use super::util::der;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Ldap;

/// Constructed protocol operations: bind request/response (0, 1), search request, entry,
/// done (3, 4, 5), modify (6, 7), add (8, 9), delete response (11), modify DN (12, 13),
/// compare (14, 15), search reference (19), extended (23, 24), intermediate (25).
const CONSTRUCTED: [u8; 18] = [
    0, 1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 19, 23, 24, 25,
];
/// Primitive operations: unbind (2), delete request (10), abandon (16).
const PRIMITIVE: [u8; 3] = [2, 10, 16];
const CONTROLS: u8 = 0xa0;
const MAX_MESSAGE: usize = 1 << 24;

impl Decoder for Ldap {
    fn name(&self) -> &'static str {
        "ldap"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[389, 3268]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        match message(data, ctx.transport == Transport::Udp) {
            Some(true) => Probe::Match(Proto::Ldap, Confidence::Certain),
            Some(false) => Probe::NotMe,
            None if ctx.transport == Transport::Tcp => Probe::NotYet,
            None => Probe::NotMe,
        }
    }
}

/// Whether `d` starts with an LDAP message (None: too short to tell). `whole`: `d` must be
/// exactly one message.
fn message(d: &[u8], whole: bool) -> Option<bool> {
    if d.first().is_some_and(|&t| t != 0x30) {
        return Some(false);
    }
    let (_, len, hl) = der(d, 0)?;
    let end = hl + len;
    if len > MAX_MESSAGE || (whole && end != d.len()) {
        return Some(false);
    }
    let (id_tag, id_len, id_hl) = der(d, hl)?;
    if id_tag != 0x02 || !(1..=4).contains(&id_len) {
        return Some(false);
    }
    let op_at = hl + id_hl + id_len;
    let (op, op_len, op_hl) = der(d, op_at)?;
    let number = op & 0x1f;
    let known = match op & 0xe0 {
        0x60 => CONSTRUCTED.contains(&number),
        0x40 => PRIMITIVE.contains(&number),
        _ => false,
    };
    let op_end = op_at + op_hl + op_len;
    if !known || op_end > end {
        return Some(false);
    }
    // The operation ends the message, or controls follow it.
    Some(op_end == end || d.get(op_end).is_none_or(|&t| t == CONTROLS))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// A simple bind request (id 1, version 3, empty name, empty password) and its success.
    const BIND: &str = "300c020101600702010304008000";
    const BIND_OK: &str = "300c02010161070a010004000400";

    #[test]
    fn bind_and_its_response() {
        let certain = Probe::Match(Proto::Ldap, Confidence::Certain);
        for (m, dir) in [(BIND, Dir::Orig), (BIND_OK, Dir::Reply)] {
            for t in [Transport::Tcp, Transport::Udp] {
                assert_eq!(
                    probe_once(&Ldap, &hex(m), &ctx(t, dir, 50000, 389)).0,
                    certain
                );
            }
        }
        let tcp = ctx(Transport::Tcp, Dir::Orig, 50000, 389);
        assert_eq!(probe_once(&Ldap, &hex(&BIND[..6]), &tcp).0, Probe::NotYet);
        // An unknown operation (application 30), an id of 5 bytes, a longer datagram.
        for bad in [
            "300c0201017e0702010304008000",
            "30100205010203040560070201030400800000",
        ] {
            assert_eq!(probe_once(&Ldap, &hex(bad), &tcp).0, Probe::NotMe);
        }
        let mut long = hex(BIND);
        long.push(0);
        let udp = ctx(Transport::Udp, Dir::Orig, 50000, 389);
        assert_eq!(probe_once(&Ldap, &long, &udp).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        // kerberos.pcap's LDAP flows are nDPI's port guesses: each is picked up with the
        // client's side already sealed (SASL), so no flow starts with an LDAP message.
        let m = testkit::standard_checks(&Ldap, &[Proto::Ldap], &[]);
        assert_eq!(m.get(&Proto::Ldap), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), tcp in any::<bool>()) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = probe_once(&Ldap, &data, &ctx(t, Dir::Orig, 1, 389));
        }
    }
}
