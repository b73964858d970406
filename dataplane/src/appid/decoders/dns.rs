//! DNS over UDP and TCP, and the two protocols that reuse its message format: mDNS (port 5353)
//! and LLMNR (port 5355). The content decides that a flow carries DNS-formatted messages: a
//! header whose opcode, reserved bit, rcode and counts are consistent with the message length,
//! then every question and record walked to the end (labels and compression pointers checked,
//! types and classes sane). The port then decides which of the three applications it is, since
//! their formats are the same: 5353 on either side is mDNS, 5355 is LLMNR, anything else DNS.
//! Ports 53, 5353 and 5355 are hints: a valid message on another port is still DNS, but there
//! its names must be printable and the message must end where its last record ends. Port 137
//! is left to NetBIOS-NS, whose messages are DNS-formatted too.
//!
//! Over TCP each message has a two-byte length prefix; the first message decides (it may be
//! longer than the classifier's buffer: then what is there must be valid, and must reach at
//! least the end of the question section). The first name (a question, else the first record)
//! goes into `ev.host`, dotted and lowercased.
//!
//! Never allocates, never panics: every read is bounds-checked, and a name follows at most
//! `MAX_POINTERS` compression pointers, each strictly before the previous one, so name walks
//! end even on hostile input.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Dns;

pub const DNS_PORT: u16 = 53;
pub const MDNS_PORT: u16 = 5353;
pub const LLMNR_PORT: u16 = 5355;
/// NetBIOS name service: DNS-formatted, but another decoder's.
const NBNS_PORT: u16 = 137;

const HEADER_LEN: usize = 12;
const MAX_QUESTIONS: u16 = 16;
/// Records walked one by one; beyond this the length check on the counts stands for the rest.
const MAX_WALKED_RECORDS: usize = 64;
const MAX_POINTERS: usize = 16;
/// Longest name in wire form (RFC 1035 3.1).
const MAX_NAME_WIRE: usize = 255;
/// Smallest question (root name, type, class) and record (plus TTL and RDLENGTH).
const MIN_QUESTION: usize = 5;
const MIN_RECORD: usize = 11;

const OPCODE_DSO: u16 = 6;
const TYPE_OPT: u16 = 41;

impl Decoder for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[DNS_PORT, MDNS_PORT, LLMNR_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        if ctx.has_port(NBNS_PORT) {
            return Probe::NotMe;
        }
        let strict = ![DNS_PORT, MDNS_PORT, LLMNR_PORT]
            .iter()
            .any(|&p| ctx.has_port(p));
        let mut name = NameBuf::default();
        let verdict = match ctx.transport {
            Transport::Udp => match message(data, data.len(), false, strict, &mut name) {
                // A datagram is whole: a walk that runs off its end is not DNS.
                Verdict::Short => Verdict::Bad,
                v => v,
            },
            Transport::Tcp => {
                let Some(len) = be16(data, 0) else {
                    return Probe::NotYet;
                };
                let len = len as usize;
                if len < HEADER_LEN {
                    return Probe::NotMe;
                }
                let msg = &data[2..data.len().min(2 + len)];
                message(msg, len, true, strict, &mut name)
            }
        };
        match verdict {
            Verdict::Valid { whole } => {
                if name.len > 0 {
                    ev.host.set(name.as_bytes());
                }
                let confidence = if whole {
                    Confidence::Certain
                } else {
                    Confidence::Likely
                };
                Probe::Match(proto_of(ctx), confidence)
            }
            Verdict::Short => Probe::NotYet,
            Verdict::Bad => Probe::NotMe,
        }
    }
}

/// Which application a DNS-formatted flow is: the port decides.
fn proto_of(ctx: &FlowCtx) -> Proto {
    if ctx.has_port(MDNS_PORT) {
        Proto::Mdns
    } else if ctx.has_port(LLMNR_PORT) {
        Proto::Llmnr
    } else {
        Proto::Dns
    }
}

/// What the walk of one message found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// A DNS message; `whole` when it was walked to its declared end.
    Valid {
        whole: bool,
    },
    /// Consistent so far, but the data ends before anything could be validated.
    Short,
    Bad,
}

/// Why a walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// Ran past the data available (which may be less than the declared message).
    Short,
    Bad,
}

/// The first name of a message, dotted and lowercased, for the evidence.
struct NameBuf {
    buf: [u8; MAX_NAME_WIRE],
    len: usize,
}

impl Default for NameBuf {
    fn default() -> Self {
        NameBuf {
            buf: [0; MAX_NAME_WIRE],
            len: 0,
        }
    }
}

impl NameBuf {
    fn push_label(&mut self, label: &[u8]) {
        if self.len > 0 && self.len < self.buf.len() {
            self.buf[self.len] = b'.';
            self.len += 1;
        }
        for &c in label {
            if self.len == self.buf.len() {
                return;
            }
            self.buf[self.len] = c.to_ascii_lowercase();
            self.len += 1;
        }
    }
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Walks one message. `msg` holds the bytes available (at most `declared`); `stream` says
/// whether more may come (TCP); `strict` asks for printable names and no trailing bytes.
/// The first name goes into `name`.
fn message(msg: &[u8], declared: usize, stream: bool, strict: bool, name: &mut NameBuf) -> Verdict {
    let whole = msg.len() >= declared;
    // What running off the available data means: more may come, or the message is broken.
    let short = if whole { Verdict::Bad } else { Verdict::Short };
    if msg.len() < HEADER_LEN {
        return short;
    }
    let (Some(flags), Some(qd), Some(an), Some(ns), Some(ar)) = (
        be16(msg, 2),
        be16(msg, 4),
        be16(msg, 6),
        be16(msg, 8),
        be16(msg, 10),
    ) else {
        return Verdict::Bad;
    };
    let response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    let truncated = flags & 0x0200 != 0;
    let rcode = flags & 0xf;
    // The Z bit is zero (AD and CD, the other two of the old Z field, are in use).
    if flags & 0x0040 != 0 {
        return Verdict::Bad;
    }
    let records = an as usize + ns as usize + ar as usize;
    match opcode {
        // QUERY, IQUERY, STATUS, NOTIFY, UPDATE.
        0 | 1 | 2 | 4 | 5 => {}
        // DNS Stateful Operations (RFC 8490): TCP only, no sections, TLVs instead.
        OPCODE_DSO => {
            return if stream && qd == 0 && records == 0 {
                dso(msg, declared)
            } else {
                Verdict::Bad
            };
        }
        _ => return Verdict::Bad,
    }
    if response {
        if qd > MAX_QUESTIONS || rcode > 11 || qd as usize + records == 0 {
            return Verdict::Bad;
        }
    } else if rcode != 0 || qd == 0 || qd > MAX_QUESTIONS {
        return Verdict::Bad;
    }
    if HEADER_LEN + qd as usize * MIN_QUESTION + records * MIN_RECORD > declared {
        return Verdict::Bad;
    }

    let mut pos = HEADER_LEN;
    let mut first = true;
    let mut validated = 0usize;
    for _ in 0..qd {
        let out = if first { Some(&mut *name) } else { None };
        first = false;
        match question(msg, pos, strict, out) {
            Ok(next) => pos = next,
            Err(Stop::Short) if validated == 0 => return short,
            // A stream whose buffer ends inside the questions: what is there was valid.
            Err(Stop::Short) if !whole => return Verdict::Valid { whole: false },
            Err(_) => return Verdict::Bad,
        }
        validated += 1;
    }
    for _ in 0..records.min(MAX_WALKED_RECORDS) {
        let out = if first { Some(&mut *name) } else { None };
        first = false;
        match record(msg, pos, strict, out) {
            Ok(next) => pos = next,
            Err(Stop::Short) if validated == 0 => return short,
            // The buffer ends inside the records, or a truncated datagram was cut mid-record.
            Err(Stop::Short) if !whole || (truncated && response) => {
                return Verdict::Valid { whole: false }
            }
            Err(_) => return Verdict::Bad,
        }
        validated += 1;
    }
    if records > MAX_WALKED_RECORDS {
        return Verdict::Valid { whole: false };
    }
    if pos > declared || (strict && whole && pos != declared) {
        return Verdict::Bad;
    }
    Verdict::Valid { whole }
}

/// A DSO message body: TLVs (type, length, value) filling the message.
fn dso(msg: &[u8], declared: usize) -> Verdict {
    let mut pos = HEADER_LEN;
    let mut tlvs = 0;
    while pos < declared {
        let (Some(t), Some(len)) = (be16(msg, pos), be16(msg, pos + 2)) else {
            return if tlvs > 0 {
                Verdict::Valid { whole: false }
            } else {
                Verdict::Short
            };
        };
        if t == 0 {
            return Verdict::Bad;
        }
        pos += 4 + len as usize;
        tlvs += 1;
    }
    if pos != declared || tlvs == 0 {
        return Verdict::Bad;
    }
    Verdict::Valid {
        whole: msg.len() >= declared,
    }
}

/// A question at `pos`: the offset after it.
fn question(
    msg: &[u8],
    pos: usize,
    strict: bool,
    out: Option<&mut NameBuf>,
) -> Result<usize, Stop> {
    let pos = name(msg, pos, strict, out)?;
    let (Some(qtype), Some(qclass)) = (be16(msg, pos), be16(msg, pos + 2)) else {
        return Err(Stop::Short);
    };
    if !type_ok(qtype) || !class_ok(qclass) {
        return Err(Stop::Bad);
    }
    Ok(pos + 4)
}

/// A resource record at `pos`: the offset after it.
fn record(msg: &[u8], pos: usize, strict: bool, out: Option<&mut NameBuf>) -> Result<usize, Stop> {
    let pos = name(msg, pos, strict, out)?;
    let (Some(rtype), Some(class), Some(rdlen)) =
        (be16(msg, pos), be16(msg, pos + 2), be16(msg, pos + 8))
    else {
        return Err(Stop::Short);
    };
    // OPT (EDNS) puts the UDP payload size where the class goes.
    if !type_ok(rtype) || (rtype != TYPE_OPT && !class_ok(class)) {
        return Err(Stop::Bad);
    }
    let end = pos + 10 + rdlen as usize;
    if end > msg.len() {
        return Err(Stop::Short);
    }
    Ok(end)
}

/// Walks the name at `start`; returns the offset after it in the record (after its first
/// compression pointer, or its root label). Labels go into `out`, if given.
fn name(
    msg: &[u8],
    start: usize,
    strict: bool,
    mut out: Option<&mut NameBuf>,
) -> Result<usize, Stop> {
    let mut pos = start;
    let mut after: Option<usize> = None;
    // Each pointer must jump strictly before this: before the name's start for the first,
    // before the previous target after that. Strictly decreasing targets cannot loop.
    let mut limit = start;
    let mut jumps = 0;
    let mut wire = 1; // the root label
    loop {
        let len = *msg.get(pos).ok_or(Stop::Short)? as usize;
        match len {
            0 => return Ok(after.unwrap_or(pos + 1)),
            1..=63 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(Stop::Short)?;
                wire += 1 + len;
                if wire > MAX_NAME_WIRE {
                    return Err(Stop::Bad);
                }
                if strict && label.iter().any(|&c| c < 0x20 || c == 0x7f) {
                    return Err(Stop::Bad);
                }
                if let Some(o) = out.as_deref_mut() {
                    o.push_label(label);
                }
                pos += 1 + len;
            }
            0xc0..=0xff => {
                let lo = *msg.get(pos + 1).ok_or(Stop::Short)? as usize;
                let target = ((len & 0x3f) << 8) | lo;
                jumps += 1;
                if target < HEADER_LEN || target >= limit || jumps > MAX_POINTERS {
                    return Err(Stop::Bad);
                }
                after.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            // 0x40 (extended label types, never deployed) and 0x80 (reserved).
            _ => return Err(Stop::Bad),
        }
    }
}

/// Record types that are assigned (RFC 6895 registry): the ordinary range, the former
/// NetBIOS-era and experimental ones, the meta and query types, TA/DLV, and private use.
fn type_ok(t: u16) -> bool {
    matches!(t, 1..=70 | 99..=109 | 249..=261 | 32768 | 32769 | 65280..=65534)
}

/// IN, CH, HS, NONE and ANY; the top bit is mDNS's unicast-response / cache-flush flag.
fn class_ok(c: u16) -> bool {
    matches!(c & 0x7fff, 1 | 3 | 4 | 254 | 255)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// Query for e7.whatsapp.net A (dns.pcap, VLAN 785, 82.178.113.245:47255 -> :53).
    const WHATSAPP_QUERY: &str =
        "784301000001000000000000026537087768617473617070036e65740000010001";

    /// A query with a pointer that points at itself.
    fn looping_query() -> Vec<u8> {
        let mut m = hex("1234010000010000000000000161");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        m
    }

    fn response_with(answers: &[&[u8]]) -> Vec<u8> {
        let mut m = hex("12348180000100000000000003777777076578616d706c6503636f6d0000010001");
        m[7] = answers.len() as u8;
        for a in answers {
            m.extend_from_slice(a);
        }
        m
    }

    /// An A record for the question's name, by pointer.
    const ANSWER_A: &[u8] = &[
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
    ];

    #[test]
    fn query_is_dns_with_its_name() {
        let (p, ev) = probe_once(
            &Dns,
            &hex(WHATSAPP_QUERY),
            &ctx(Transport::Udp, Dir::Orig, 47255, 53),
        );
        assert_eq!(p, Probe::Match(Proto::Dns, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "e7.whatsapp.net");
    }

    #[test]
    fn response_with_compressed_answer_is_dns() {
        let m = response_with(&[ANSWER_A]);
        let c = ctx(Transport::Udp, Dir::Reply, 40000, 53);
        let (p, ev) = probe_once(&Dns, &m, &c);
        assert_eq!(p, Probe::Match(Proto::Dns, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "www.example.com");
    }

    #[test]
    fn the_port_decides_between_dns_mdns_and_llmnr() {
        let q = hex(WHATSAPP_QUERY);
        let at = |a, b| probe_once(&Dns, &q, &ctx(Transport::Udp, Dir::Orig, a, b)).0;
        assert_eq!(
            at(5353, 5353),
            Probe::Match(Proto::Mdns, Confidence::Certain)
        );
        assert_eq!(
            at(50000, 5355),
            Probe::Match(Proto::Llmnr, Confidence::Certain)
        );
        assert_eq!(
            at(5355, 50000),
            Probe::Match(Proto::Llmnr, Confidence::Certain)
        );
        // Off the well-known ports a valid message is still DNS.
        assert_eq!(
            at(40000, 8053),
            Probe::Match(Proto::Dns, Confidence::Certain)
        );
        // NetBIOS-NS is DNS-formatted but not ours.
        assert_eq!(at(137, 137), Probe::NotMe);
    }

    #[test]
    fn off_port_needs_printable_names_and_an_exact_end() {
        let mut q = hex(WHATSAPP_QUERY);
        q.push(0);
        assert!(matches!(
            probe_once(&Dns, &q, &ctx(Transport::Udp, Dir::Orig, 40000, 53)).0,
            Probe::Match(Proto::Dns, _)
        ));
        assert_eq!(
            probe_once(&Dns, &q, &ctx(Transport::Udp, Dir::Orig, 40000, 8053)).0,
            Probe::NotMe
        );
        let mut q = hex(WHATSAPP_QUERY);
        q[13] = 0x01; // a control character in the first label
        assert!(matches!(
            probe_once(&Dns, &q, &ctx(Transport::Udp, Dir::Orig, 40000, 53)).0,
            Probe::Match(Proto::Dns, _)
        ));
        assert_eq!(
            probe_once(&Dns, &q, &ctx(Transport::Udp, Dir::Orig, 40000, 8053)).0,
            Probe::NotMe
        );
    }

    #[test]
    fn broken_headers_are_not_dns() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 53);
        let q = hex(WHATSAPP_QUERY);
        let with = |i: usize, v: u8| {
            let mut m = q.clone();
            m[i] = v;
            probe_once(&Dns, &m, &c).0
        };
        assert_eq!(with(2, 0x19), Probe::NotMe); // opcode 3 (unassigned)
        assert_eq!(with(2, 0x39), Probe::NotMe); // opcode 7
        assert_eq!(with(3, 0x40), Probe::NotMe); // Z bit
        assert_eq!(with(3, 0x03), Probe::NotMe); // a query with an rcode
        assert_eq!(with(5, 0), Probe::NotMe); // a query without a question
        assert_eq!(with(5, 17), Probe::NotMe); // 17 questions
        assert_eq!(with(7, 1), Probe::NotMe); // counts the datagram cannot hold
        assert_eq!(with(30, 0), Probe::NotMe); // qtype 0
        assert_eq!(with(32, 9), Probe::NotMe); // class 9
        assert_eq!(with(12, 0x41), Probe::NotMe); // extended label type
        assert_eq!(probe_once(&Dns, &q[..q.len() - 1], &c).0, Probe::NotMe);
        assert_eq!(probe_once(&Dns, &q[..11], &c).0, Probe::NotMe);
        // A response with nothing in it.
        let empty = hex("123481800000000000000000");
        assert_eq!(probe_once(&Dns, &empty, &c).0, Probe::NotMe);
    }

    #[test]
    fn compression_pointers_are_checked() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 53);
        assert_eq!(probe_once(&Dns, &looping_query(), &c).0, Probe::NotMe);
        // A pointer into the header.
        let mut m = response_with(&[ANSWER_A]);
        let a = m.len() - ANSWER_A.len();
        m[a + 1] = 4;
        assert_eq!(probe_once(&Dns, &m, &c).0, Probe::NotMe);
        // A forward pointer.
        let mut m = response_with(&[ANSWER_A]);
        m[a + 1] = 0x40;
        assert_eq!(probe_once(&Dns, &m, &c).0, Probe::NotMe);
        // A name whose pointer leads back into the name itself.
        let mut m = response_with(&[&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]]);
        let second = m.len();
        m.extend_from_slice(&[
            1,
            b'x',
            0xc0,
            (second + 2) as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            0,
            1,
            0,
            0,
        ]);
        m[7] = 2;
        assert_eq!(probe_once(&Dns, &m, &c).0, Probe::NotMe);
    }

    #[test]
    fn edns_opt_record_is_accepted() {
        let opt: &[u8] = &[0, 0, 41, 0x10, 0x00, 0, 0, 0, 0, 0, 0];
        let mut m = hex(WHATSAPP_QUERY);
        m[11] = 1;
        m.extend_from_slice(opt);
        let (p, _) = probe_once(&Dns, &m, &ctx(Transport::Udp, Dir::Orig, 40000, 53));
        assert_eq!(p, Probe::Match(Proto::Dns, Confidence::Certain));
    }

    #[test]
    fn tcp_messages_have_a_length_prefix_and_may_arrive_in_pieces() {
        let q = hex(WHATSAPP_QUERY);
        let mut s = (q.len() as u16).to_be_bytes().to_vec();
        s.extend_from_slice(&q);
        let c = ctx(Transport::Tcp, Dir::Orig, 40000, 53);
        assert_eq!(probe_once(&Dns, &s[..1], &c).0, Probe::NotYet);
        assert_eq!(probe_once(&Dns, &s[..10], &c).0, Probe::NotYet);
        assert_eq!(probe_once(&Dns, &s[..20], &c).0, Probe::NotYet);
        let (p, ev) = probe_once(&Dns, &s, &c);
        assert_eq!(p, Probe::Match(Proto::Dns, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "e7.whatsapp.net");
        // Two messages in one segment.
        let mut two = s.clone();
        two.extend_from_slice(&s);
        assert_eq!(
            probe_once(&Dns, &two, &c).0,
            Probe::Match(Proto::Dns, Confidence::Certain)
        );
        // The datagram form without the prefix is not TCP DNS.
        assert_eq!(probe_once(&Dns, &q, &c).0, Probe::NotMe);
    }

    #[test]
    fn long_tcp_response_is_judged_on_what_the_buffer_holds() {
        let answers: Vec<&[u8]> = vec![ANSWER_A; 200];
        let m = response_with(&answers);
        let mut s = (m.len() as u16).to_be_bytes().to_vec();
        s.extend_from_slice(&m);
        s.truncate(testkit::STREAM_BYTES);
        let c = ctx(Transport::Tcp, Dir::Reply, 40000, 53);
        assert_eq!(
            probe_once(&Dns, &s, &c).0,
            Probe::Match(Proto::Dns, Confidence::Likely)
        );
    }

    #[test]
    fn dso_keepalive_over_tcp() {
        // DSO request with a Keepalive TLV (type 1, 8 bytes).
        let mut m = hex("0001300000000000000000000001000800000e1000000e10");
        let mut s = (m.len() as u16).to_be_bytes().to_vec();
        s.append(&mut m);
        assert_eq!(
            probe_once(&Dns, &s, &ctx(Transport::Tcp, Dir::Orig, 40000, 853)).0,
            Probe::Match(Proto::Dns, Confidence::Certain)
        );
        assert_eq!(
            probe_once(&Dns, &s[2..], &ctx(Transport::Udp, Dir::Orig, 40000, 53)).0,
            Probe::NotMe
        );
    }

    #[test]
    fn other_protocols_are_not_dns() {
        for t in [Transport::Udp, Transport::Tcp] {
            for port in [53, 5353, 5355, 5060, 443, 80] {
                let c = ctx(t, Dir::Orig, 50000, port);
                for m in [testkit::HTTP_GET, testkit::SIP_INVITE, testkit::TLS_HELLO] {
                    assert_eq!(probe_once(&Dns, m, &c).0, Probe::NotMe, "{t:?} {port}");
                }
            }
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        let (bad, matched) =
            testkit::compare_with_ndpi(&Dns, &[Proto::Dns, Proto::Mdns, Proto::Llmnr]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        // dns.pcap 2 (one is PPPoE inside QinQ), http_connect.pcap 1, iphone.pcap 19,
        // 1kxun.pcap 6.
        assert_eq!(matched.get(&Proto::Dns), Some(&67));
        // iphone.pcap 5, 1kxun.pcap 1, and the round-two captures (telegram, teams, zoom...).
        assert_eq!(matched.get(&Proto::Mdns), Some(&16));
        assert_eq!(matched.get(&Proto::Llmnr), Some(&48));
    }

    #[test]
    fn corpus_names_match_ndpi() {
        let flows = testkit::payload_flows("ndpi/1kxun.pcap");
        let host = |port: u16| {
            let f = flows.iter().find(|f| f.client.1 == port).unwrap();
            testkit::replay(&Dns, f, testkit::Feed::FIRST_ANSWER)
                .ev
                .host
        };
        assert_eq!(host(50030).as_str(), "charming-pc"); // LLMNR
        assert_eq!(host(54888).as_str(), "小佛專機"); // LLMNR, a UTF-8 name
        let mdns = flows.iter().find(|f| f.client.1 == 5353).unwrap();
        let out = testkit::replay(&Dns, mdns, testkit::Feed::FIRST_ANSWER);
        assert_eq!(out.answer(), Some((Proto::Mdns, Confidence::Certain)));
        assert_eq!(out.ev.host.as_str(), "_googlecast._tcp.local");
    }

    #[test]
    fn the_other_captures_hold_one_dns_flow() {
        // trex_sfr/delay_10_dns_0.pcap; nothing in the SIP calls, FaceTime or TRex mixes.
        assert_eq!(
            testkit::matches_elsewhere(&Dns),
            ["delay_10_dns_0.pcap 21.0.0.2:1024 <-> 22.0.0.12:53: Dns"]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..2100),
            scratch in any::<[u8; 16]>(),
            ports in (any::<u16>(), prop_oneof![Just(53u16), Just(5353u16), any::<u16>()]),
            tcp in any::<bool>(),
        ) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = Dns.probe(&data, &ctx(t, Dir::Orig, ports.0, ports.1), &mut s, &mut ev);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..80, any::<u8>()), 0..6),
            cut in 0usize..80,
            tcp in any::<bool>(),
        ) {
            let mut m = response_with(&[ANSWER_A, ANSWER_A]);
            for (i, b) in flips {
                if let Some(x) = m.get_mut(i) { *x = b; }
            }
            m.truncate(cut);
            if tcp {
                let mut s = (m.len() as u16).to_be_bytes().to_vec();
                s.extend_from_slice(&m);
                let _ = probe_once(&Dns, &s, &ctx(Transport::Tcp, Dir::Orig, 40000, 53));
            } else {
                let _ = probe_once(&Dns, &m, &ctx(Transport::Udp, Dir::Orig, 40000, 8053));
            }
        }
    }
}
