//! NetBIOS over UDP (RFC 1002): the name service (NBNS, UDP 137) and the datagram service
//! (UDP 138). Both formats are weak on their own (a DNS-like header; a 10-byte datagram
//! header), so the well-known port on at least one side is required, and then the message
//! must be structurally valid: for NBNS a header whose opcode, flags and counts fit the message
//! kind and a first-level-encoded name (a 32-byte label of 'A'..='P', RFC 1001 section 14.1),
//! with a sane type, class and record; for the datagram service a known message type, a length
//! that matches the datagram, and encoded source and destination names. The NetBIOS name
//! (query name for NBNS, source name for datagrams) goes into `ev.host`, lowercased.
//!
//! Never allocates, never panics: every read is bounds-checked.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Netbios;

pub const NS_PORT: u16 = 137;
pub const DGM_PORT: u16 = 138;

const NS_HEADER_LEN: usize = 12;
/// Datagram header up to and including the source port.
const DGM_HEADER_LEN: usize = 10;
/// Direct/broadcast datagram header: plus datagram length and packet offset.
const DGM_DATA_HEADER_LEN: usize = 14;
/// Label length of a first-level-encoded NetBIOS name: 16 bytes, two characters each.
const ENCODED_LEN: u8 = 32;
/// Longest encoded name with its scope (as a DNS name).
const MAX_NAME_WIRE: usize = 255;

/// A decoded NetBIOS name: the 15 name bytes (space padded) and the suffix byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetbiosName {
    pub bytes: [u8; 16],
}

impl NetbiosName {
    /// The name without its suffix and trailing padding, as it is meant to be read.
    pub fn trimmed(&self) -> &[u8] {
        let name = &self.bytes[..15];
        let end = name
            .iter()
            .rposition(|&c| c != b' ' && c != 0)
            .map_or(0, |e| e + 1);
        &name[..end]
    }

    /// Writes the trimmed name, lowercased, into `ev.host`.
    pub fn set_host(&self, ev: &mut Evidence) {
        let mut buf = [0u8; 15];
        let t = self.trimmed();
        for (d, s) in buf.iter_mut().zip(t) {
            *d = s.to_ascii_lowercase();
        }
        if !t.is_empty() {
            ev.host.set(&buf[..t.len()]);
        }
    }
}

/// Why an encoded name could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The data ends inside the name (a stream may bring the rest).
    Short,
    /// Not a first-level-encoded NetBIOS name.
    Bad,
}

/// Reads the first-level-encoded NetBIOS name (RFC 1001 14.1) at `off`: a 32-byte label of
/// 'A'..='P' pairs, then the scope's labels, then the root label. Compression pointers are not
/// accepted (callers that allow them handle them). Returns the name and the offset after it.
pub fn encoded_name(data: &[u8], off: usize) -> Result<(NetbiosName, usize), NameError> {
    let short = NameError::Short;
    let first = *data.get(off).ok_or(short)?;
    if first != ENCODED_LEN {
        return Err(NameError::Bad);
    }
    let enc = data.get(off + 1..off + 33).ok_or(short)?;
    let mut name = NetbiosName { bytes: [0; 16] };
    for (i, pair) in enc.chunks_exact(2).enumerate() {
        let (hi, lo) = (pair[0].wrapping_sub(b'A'), pair[1].wrapping_sub(b'A'));
        if hi > 15 || lo > 15 {
            return Err(NameError::Bad);
        }
        name.bytes[i] = (hi << 4) | lo;
    }
    // The scope: ordinary DNS labels up to the root.
    let mut pos = off + 33;
    loop {
        let len = *data.get(pos).ok_or(short)? as usize;
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return Err(NameError::Bad);
        }
        pos += 1 + len;
        if pos - off >= MAX_NAME_WIRE {
            return Err(NameError::Bad);
        }
    }
    Ok((name, pos))
}

impl Decoder for Netbios {
    fn name(&self) -> &'static str {
        "netbios"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[NS_PORT, DGM_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        let found = if ctx.has_port(NS_PORT) {
            name_service(data).map(|n| (Proto::NetbiosNs, Some(n)))
        } else if ctx.has_port(DGM_PORT) {
            datagram(data).map(|n| (Proto::NetbiosDgm, n))
        } else {
            None
        };
        match found {
            Some((proto, name)) => {
                if let Some(n) = name {
                    n.set_host(ev);
                }
                Probe::Match(proto, Confidence::Certain)
            }
            None => Probe::NotMe,
        }
    }
}

/// NBNS opcodes (RFC 1002 4.2.1.1): query, registration, release, WACK, refresh, and the
/// refresh value 9 that Microsoft stacks use for the same.
fn ns_opcode_ok(op: u16) -> bool {
    matches!(op, 0 | 5 | 6 | 7 | 8 | 9)
}

/// Resource record types of NBNS: A, NS, NULL (WACK), NB, NBSTAT.
fn ns_type_ok(t: u16) -> bool {
    matches!(t, 0x0001 | 0x0002 | 0x000a | 0x0020 | 0x0021)
}

const CLASS_IN: u16 = 1;

/// A name service message: its (first) name when valid. Bytes after the records walked are
/// tolerated (responses' authority and additional records are not walked).
fn name_service(msg: &[u8]) -> Option<NetbiosName> {
    if msg.len() < NS_HEADER_LEN {
        return None;
    }
    let flags = be16(msg, 2)?;
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let rcode = flags & 0xf;
    // The two bits between RA and B are reserved and zero.
    if !ns_opcode_ok(opcode) || flags & 0x0060 != 0 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(msg, 4)?, be16(msg, 6)?, be16(msg, 8)?, be16(msg, 10)?);
    if !response {
        // A request carries one question; registrations, releases and refreshes add the
        // record being registered.
        if rcode != 0 || qd != 1 || an != 0 || ns != 0 || ar > 1 {
            return None;
        }
    } else if rcode > 7 || qd != 0 || an != 1 || ns > 1 || ar > 1 {
        return None;
    }
    let (name, mut pos) = encoded_name(msg, NS_HEADER_LEN).ok()?;
    let rtype = be16(msg, pos)?;
    let class = be16(msg, pos + 2)?;
    if !ns_type_ok(rtype) || class != CLASS_IN {
        return None;
    }
    pos += 4;
    if response {
        record_tail(msg, pos)?;
    } else if ar == 1 {
        // The additional record names the question by pointer, or repeats the name.
        pos = match msg.get(pos) {
            Some(&b) if b & 0xc0 == 0xc0 => {
                let target = be16(msg, pos)? & 0x3fff;
                if target as usize != NS_HEADER_LEN {
                    return None;
                }
                pos + 2
            }
            _ => encoded_name(msg, pos).ok()?.1,
        };
        let (t, c) = (be16(msg, pos)?, be16(msg, pos + 2)?);
        if !ns_type_ok(t) || c != CLASS_IN {
            return None;
        }
        record_tail(msg, pos + 4)?;
    }
    Some(name)
}

/// TTL and RDATA of a record whose name, type and class end at `pos`: the offset after it.
fn record_tail(msg: &[u8], pos: usize) -> Option<usize> {
    let rdlen = be16(msg, pos + 4)? as usize;
    let end = pos + 6 + rdlen;
    (end <= msg.len()).then_some(end)
}

/// Datagram service message types (RFC 1002 4.4.1).
const DIRECT_UNIQUE: u8 = 0x10;
const BROADCAST: u8 = 0x12;
const DGM_ERROR: u8 = 0x13;
const QUERY_REQUEST: u8 = 0x14;
const NEGATIVE_QUERY_RESPONSE: u8 = 0x16;

/// A datagram service message; `Some(source name)` when valid.
fn datagram(msg: &[u8]) -> Option<Option<NetbiosName>> {
    let kind = *msg.first()?;
    let flags = *msg.get(1)?;
    // Only M, F and the two node-type bits are defined.
    if flags & 0xf0 != 0 || msg.len() < DGM_HEADER_LEN {
        return None;
    }
    match kind {
        DIRECT_UNIQUE..=BROADCAST => {
            let len = be16(msg, 10)? as usize;
            let offset = be16(msg, 12)?;
            if DGM_DATA_HEADER_LEN + len != msg.len() {
                return None;
            }
            let first_fragment = flags & 0x02 != 0;
            if first_fragment != (offset == 0) {
                return None;
            }
            if !first_fragment {
                // A later fragment carries no names: nothing more to check.
                return Some(None);
            }
            let (source, pos) = encoded_name(msg, DGM_DATA_HEADER_LEN).ok()?;
            let (_, end) = encoded_name(msg, pos).ok()?;
            (end <= msg.len()).then_some(Some(source))
        }
        DGM_ERROR => {
            let code = *msg.get(10)?;
            (msg.len() == 11 && (0x82..=0x84).contains(&code)).then_some(None)
        }
        QUERY_REQUEST..=NEGATIVE_QUERY_RESPONSE => {
            let (_, end) = encoded_name(msg, DGM_HEADER_LEN).ok()?;
            (end == msg.len()).then_some(None)
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

    /// NBNS name query for "GFILE<20>", broadcast (1kxun.pcap, 192.168.5.45:59461 -> :137).
    const NS_QUERY: &str =
        "0017011000010000000000002045484547454a454d454643414341434143414341434143414341434143\
        4143410000200001";

    /// Browser announcement in a direct-group datagram (1kxun.pcap, 192.168.5.45:138 -> :138).
    const DGM_ANNOUNCEMENT: &str = "110245eec0a8052d000000a0000020454e45424544454345504550454c4542\
        454a4643434e454644424545444141410020464845504643454c45484643455046464641434143414341434143\
        414341424e00ff534d4225000000000000000000000000000000000000000000d5340000ed4511000006000000\
        0000000002000000000000000000000006005600030001000100020017005c4d41494c534c4f545c42524f5753\
        45000904ec450000";

    fn ns_registration() -> Vec<u8> {
        // Registration of "WORKGROUP<00>" with its NB record by pointer.
        let mut m = vec![0x12, 0x34, 0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        m.extend_from_slice(&encode(b"WORKGROUP      \x00"));
        m.extend_from_slice(&[0x00, 0x20, 0x00, 0x01]);
        m.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x20, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0, 6]);
        m.extend_from_slice(&[0x60, 0x00, 192, 168, 1, 10]);
        m
    }

    fn encode(name: &[u8; 16]) -> Vec<u8> {
        let mut v = vec![32];
        for &b in name {
            v.push(b'A' + (b >> 4));
            v.push(b'A' + (b & 0xf));
        }
        v.push(0);
        v
    }

    #[test]
    fn name_query_is_netbios_ns_with_its_name() {
        let (p, ev) = probe_once(
            &Netbios,
            &hex(NS_QUERY),
            &ctx(Transport::Udp, Dir::Orig, 59461, 137),
        );
        assert_eq!(p, Probe::Match(Proto::NetbiosNs, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "gfile");
    }

    #[test]
    fn registration_with_additional_record_is_netbios_ns() {
        let m = ns_registration();
        let (p, ev) = probe_once(&Netbios, &m, &ctx(Transport::Udp, Dir::Orig, 137, 137));
        assert_eq!(p, Probe::Match(Proto::NetbiosNs, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "workgroup");
    }

    #[test]
    fn the_port_is_required() {
        let (p, _) = probe_once(
            &Netbios,
            &hex(NS_QUERY),
            &ctx(Transport::Udp, Dir::Orig, 59461, 5000),
        );
        assert_eq!(p, Probe::NotMe);
        let (p, _) = probe_once(
            &Netbios,
            &hex(NS_QUERY),
            &ctx(Transport::Tcp, Dir::Orig, 59461, 137),
        );
        assert_eq!(p, Probe::NotMe);
    }

    #[test]
    fn broken_name_service_messages_are_not_netbios() {
        let c = ctx(Transport::Udp, Dir::Orig, 59461, 137);
        // A character outside 'A'..='P' in the encoded name.
        let mut m = hex(NS_QUERY);
        m[20] = b'Z';
        assert_eq!(probe_once(&Netbios, &m, &c).0, Probe::NotMe);
        // A DNS-style name instead of the 32-byte encoded label.
        let mut m = hex(NS_QUERY)[..12].to_vec();
        m.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(probe_once(&Netbios, &m, &c).0, Probe::NotMe);
        // Two questions; a truncated question; reserved flag bits.
        let mut m = hex(NS_QUERY);
        m[5] = 2;
        assert_eq!(probe_once(&Netbios, &m, &c).0, Probe::NotMe);
        assert_eq!(
            probe_once(&Netbios, &hex(NS_QUERY)[..40], &c).0,
            Probe::NotMe
        );
        let mut m = hex(NS_QUERY);
        m[3] |= 0x40;
        assert_eq!(probe_once(&Netbios, &m, &c).0, Probe::NotMe);
        // Registration whose record runs past the datagram.
        let m = ns_registration();
        assert_eq!(probe_once(&Netbios, &m[..m.len() - 1], &c).0, Probe::NotMe);
    }

    fn dgm(kind: u8, flags: u8, offset: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind, flags, 0x81, 0x0e, 192, 168, 5, 45, 0, 138];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&offset.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn browser_announcement_is_netbios_dgm() {
        let (p, ev) = probe_once(
            &Netbios,
            &hex(DGM_ANNOUNCEMENT),
            &ctx(Transport::Udp, Dir::Orig, 138, 138),
        );
        assert_eq!(p, Probe::Match(Proto::NetbiosDgm, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "macbookair-e1d0");
    }

    #[test]
    fn broadcast_datagram_is_netbios_dgm_with_the_source_name() {
        let mut body = encode(b"SANJI-LIFEBOOK \x00");
        body.extend_from_slice(&encode(b"WORKGROUP      \x1e"));
        body.extend_from_slice(b"\xffSMB\x25 browser announcement follows");
        let m = dgm(0x11, 0x02, 0, &body);
        let (p, ev) = probe_once(&Netbios, &m, &ctx(Transport::Udp, Dir::Orig, 138, 138));
        assert_eq!(p, Probe::Match(Proto::NetbiosDgm, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "sanji-lifebook");
        // The datagram length must match.
        let mut bad = m.clone();
        bad[11] ^= 1;
        assert_eq!(
            probe_once(&Netbios, &bad, &ctx(Transport::Udp, Dir::Orig, 138, 138)).0,
            Probe::NotMe
        );
        // An unknown message type, reserved flag bits.
        let mut bad = m.clone();
        bad[0] = 0x17;
        assert_eq!(
            probe_once(&Netbios, &bad, &ctx(Transport::Udp, Dir::Orig, 138, 138)).0,
            Probe::NotMe
        );
        let mut bad = m;
        bad[1] |= 0x10;
        assert_eq!(
            probe_once(&Netbios, &bad, &ctx(Transport::Udp, Dir::Orig, 138, 138)).0,
            Probe::NotMe
        );
    }

    #[test]
    fn datagram_error_and_query_messages() {
        let c = ctx(Transport::Udp, Dir::Orig, 138, 138);
        let err = [0x13, 0x02, 0, 1, 10, 0, 0, 1, 0, 138, 0x82];
        assert_eq!(
            probe_once(&Netbios, &err, &c).0,
            Probe::Match(Proto::NetbiosDgm, Confidence::Certain)
        );
        let mut bad = err;
        bad[10] = 0x85;
        assert_eq!(probe_once(&Netbios, &bad, &c).0, Probe::NotMe);
        let mut q = vec![0x14, 0x02, 0, 1, 10, 0, 0, 1, 0, 138];
        q.extend_from_slice(&encode(b"FILESERVER     \x20"));
        assert_eq!(
            probe_once(&Netbios, &q, &c).0,
            Probe::Match(Proto::NetbiosDgm, Confidence::Certain)
        );
        q.push(0);
        assert_eq!(probe_once(&Netbios, &q, &c).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_netbios() {
        for port in [137, 138] {
            let c = ctx(Transport::Udp, Dir::Orig, 50000, port);
            for m in [
                testkit::HTTP_GET,
                testkit::SIP_INVITE,
                testkit::TLS_HELLO,
                &[][..],
            ] {
                assert_eq!(probe_once(&Netbios, m, &c).0, Probe::NotMe);
            }
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        let (bad, matched) =
            testkit::compare_with_ndpi(&Netbios, &[Proto::NetbiosNs, Proto::NetbiosDgm]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        // 1kxun.pcap: NetBIOS x6 on 137, NetBIOS.SMBv1 x2 on 138 (browser announcements);
        // zoom.pcap and telegram.pcap the rest.
        assert_eq!(matched.get(&Proto::NetbiosNs), Some(&8));
        assert_eq!(matched.get(&Proto::NetbiosDgm), Some(&3));
    }

    #[test]
    fn corpus_names_are_extracted() {
        let flows = testkit::payload_flows("ndpi/1kxun.pcap");
        let f = flows
            .iter()
            .find(|f| f.client.1 == 59789 && f.server.1 == 137)
            .expect("the NBNS flow from port 59789");
        let out = testkit::replay(&Netbios, f, testkit::Feed::FIRST_ANSWER);
        assert_eq!(out.ev.host.as_str(), "sanji-lifebook-");
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // SIP calls with RTP, SNMP, MGCP, H.225; FaceTime media; TRex's DNS, HTTP, mail,
        // Exchange (DCE-RPC), Oracle, Citrix and video-call mixes.
        assert_eq!(testkit::matches_elsewhere(&Netbios), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            scratch in any::<[u8; 16]>(),
            ports in (any::<u16>(), prop_oneof![Just(137u16), Just(138u16), any::<u16>()]),
            tcp in any::<bool>(),
        ) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = Netbios.probe(&data, &ctx(t, Dir::Orig, ports.0, ports.1), &mut s, &mut ev);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..6),
            cut in 0usize..120,
        ) {
            let mut m = ns_registration();
            for (i, b) in flips {
                if let Some(x) = m.get_mut(i) { *x = b; }
            }
            m.truncate(cut);
            let _ = probe_once(&Netbios, &m, &ctx(Transport::Udp, Dir::Orig, 137, 137));
            let _ = probe_once(&Netbios, &m, &ctx(Transport::Udp, Dir::Orig, 138, 138));
        }
    }
}
