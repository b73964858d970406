//! SIP (RFC 3261) over UDP and TCP, and inside TURN ChannelData framing.
//!
//! Owns the recognition of SIP requests and responses by their start line and headers, and
//! fills `Evidence::user_agent` from User-Agent (or Server in a response). It never allocates
//! and never panics: lines are found by scanning, every slice is taken with `get`. A start line
//! alone is only `Likely`; one of the headers every SIP message carries (Via, From, To,
//! Call-ID, CSeq) makes it `Certain`. Keep-alives (CRLF, blanks, "hello"...) are `NotYet`.
use super::util::{be16, starts_with_ci, trim};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

const METHODS: [&[u8]; 14] = [
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"REGISTER",
    b"OPTIONS",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
];

const SCHEMES: [&[u8]; 3] = [b"sip:", b"sips:", b"tel:"];
const VERSION: &[u8] = b"SIP/2.0";

/// Headers every SIP message carries, with their compact forms.
const KEY_HEADERS: [(&[u8], Option<u8>); 5] = [
    (b"via", Some(b'v')),
    (b"from", Some(b'f')),
    (b"to", Some(b't')),
    (b"call-id", Some(b'i')),
    (b"cseq", None),
];

/// Payloads that SIP user agents send as NAT keep-alives besides CRLF.
const KEEPALIVE_WORDS: [&[u8]; 5] = [b"hello", b"ping", b"jaK", b"keep-alive", b"keepalive"];

/// A start line longer than this is not SIP (a Request-URI is short in practice).
const MAX_START_LINE: usize = 1024;
/// Header lines looked at per message.
const MAX_HEADERS: usize = 96;
/// Messages looked at per call (TCP: several may be in view).
const MAX_MESSAGES: usize = 4;
/// A TCP header block still open past this many bytes will not end within the engine's
/// ~2 KiB stream view: decide on what is in view.
const LONG_HEADER_BLOCK: usize = 1536;
/// Or past this many segments in the direction (the engine's budget is a dozen).
const MANY_SEGMENTS: u8 = 4;

pub struct Sip;

impl Decoder for Sip {
    fn name(&self) -> &'static str {
        "sip"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[
            5060, 5061, 16393, 16394, 16395, 16396, 16397, 16398, 16399, 16400, 16401, 16402,
        ]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        let whole = ctx.transport == Transport::Udp;
        let open_ok = ctx.packets[ctx.dir as usize] >= MANY_SEGMENTS;
        match messages(data, whole, open_ok, ev) {
            Probe::NotMe => match channel_data(data, whole) {
                Some((inner, inner_whole)) => match messages(inner, inner_whole, open_ok, ev) {
                    // Keep-alives inside a channel are not evidence of anything.
                    Probe::NotYet if inner.iter().all(|&c| is_blank(c)) => Probe::NotMe,
                    p => p,
                },
                None => Probe::NotMe,
            },
            p => p,
        }
    }
}

/// The SIP message inside a TURN ChannelData frame at the start of `b` (channel number
/// 0x4000-0x7FFF, a 2-byte length), and whether all of it is there.
fn channel_data(b: &[u8], whole: bool) -> Option<(&[u8], bool)> {
    let channel = be16(b, 0)?;
    if !(0x4000..=0x7fff).contains(&channel) {
        return None;
    }
    let len = be16(b, 2)? as usize;
    let rest = b.get(4..)?;
    match rest.get(..len) {
        // Over UDP the frame fills the datagram (up to 3 bytes of padding).
        Some(inner) if !whole || rest.len() - len < 4 => Some((inner, true)),
        Some(_) => None,
        None if whole => None,
        None => Some((rest, false)),
    }
}

fn is_blank(c: u8) -> bool {
    matches!(c, b'\r' | b'\n' | b' ' | b'\t' | 0)
}

/// A datagram that is only a keep-alive word (possibly followed by blanks).
fn is_keepalive_word(b: &[u8]) -> bool {
    let end = b.iter().rposition(|&c| !is_blank(c)).map_or(0, |e| e + 1);
    let word = b.get(..end).unwrap_or(b);
    KEEPALIVE_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// Looks at the SIP messages at the start of `b`. `whole`: `b` is a whole datagram (nothing
/// more will arrive for it). `open_ok`: a header block still open may be decided on.
fn messages(b: &[u8], whole: bool, open_ok: bool, ev: &mut Evidence) -> Probe {
    if whole && b.len() <= 16 && is_keepalive_word(b) {
        return Probe::NotYet;
    }
    let mut off = 0;
    let mut likely = false;
    for _ in 0..MAX_MESSAGES {
        // CRLFs before a start line are keep-alives (RFC 3261 7.5, RFC 5626).
        let rest = b.get(off..).unwrap_or(&[]);
        let Some(start) = rest.iter().position(|&c| !is_blank(c)) else {
            break;
        };
        let rest = &rest[start..];
        let m = match message(rest, whole) {
            Parse::No if likely => break,
            Parse::No => return Probe::NotMe,
            Parse::Partial if likely => return Probe::Match(Proto::Sip, Confidence::Likely),
            Parse::Partial => return Probe::NotYet,
            Parse::Message(m) => m,
        };
        if let Some(ua) = m.user_agent {
            ev.user_agent.set(ua);
        } else if let Some(server) = m.server.filter(|_| ev.user_agent.is_empty()) {
            ev.user_agent.set(server);
        }
        if m.key_headers > 0 {
            let decided = m.headers_done || whole || open_ok || rest.len() >= LONG_HEADER_BLOCK;
            return if decided {
                Probe::Match(Proto::Sip, Confidence::Certain)
            } else {
                // Wait for the rest of the header block (the User-Agent may be in it).
                Probe::NotYet
            };
        }
        if !m.headers_done {
            let settled = whole || likely || open_ok || rest.len() >= LONG_HEADER_BLOCK;
            return if settled {
                Probe::Match(Proto::Sip, Confidence::Likely)
            } else {
                Probe::NotYet
            };
        }
        likely = true;
        if whole {
            break;
        }
        // On TCP the next message starts after this one's body.
        off += start + m.headers_len + m.content_length.unwrap_or(0);
    }
    if likely {
        Probe::Match(Proto::Sip, Confidence::Likely)
    } else {
        Probe::NotYet
    }
}

/// What `message` found.
enum Parse<'a> {
    Message(Message<'a>),
    /// A valid beginning: more bytes are needed.
    Partial,
    No,
}

struct Message<'a> {
    /// How many of Via, From, To, Call-ID, CSeq are present.
    key_headers: u8,
    user_agent: Option<&'a [u8]>,
    server: Option<&'a [u8]>,
    /// The empty line ending the header block was seen.
    headers_done: bool,
    /// Bytes of the start line and headers, the empty line included.
    headers_len: usize,
    content_length: Option<usize>,
}

/// Parses the message at the start of `b` (which starts with a non-blank byte).
fn message(b: &[u8], whole: bool) -> Parse<'_> {
    let nl = b.iter().take(MAX_START_LINE + 2).position(|&c| c == b'\n');
    let (line, mut off) = match nl {
        Some(n) => (strip_cr(&b[..n]), n + 1),
        None if whole || b.len() > MAX_START_LINE => return Parse::No,
        None => {
            return match start_line(strip_cr(b), false) {
                Line::No => Parse::No,
                _ => Parse::Partial,
            }
        }
    };
    let response = match start_line(line, true) {
        Line::Request => false,
        Line::Response => true,
        Line::Partial | Line::No => return Parse::No,
    };
    let mut m = Message {
        key_headers: 0,
        user_agent: None,
        server: None,
        headers_done: false,
        headers_len: 0,
        content_length: None,
    };
    let mut seen = [false; KEY_HEADERS.len()];
    let mut first = true;
    for _ in 0..MAX_HEADERS {
        let rest = b.get(off..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        let (line, next) = match rest.iter().position(|&c| c == b'\n') {
            Some(n) => (strip_cr(&rest[..n]), off + n + 1),
            // The last line of a datagram may lack its CRLF; on TCP it is still arriving.
            None if whole => (rest, b.len()),
            None => break,
        };
        off = next;
        if line.is_empty() {
            m.headers_done = true;
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded continuation of the previous header.
            if first {
                return Parse::No;
            }
            continue;
        }
        first = false;
        let Some((name, value)) = header(line) else {
            return Parse::No;
        };
        for (i, (long, compact)) in KEY_HEADERS.iter().enumerate() {
            let hit = name.eq_ignore_ascii_case(long)
                || compact.is_some_and(|c| name.len() == 1 && name[0].eq_ignore_ascii_case(&c));
            if hit && !seen[i] {
                seen[i] = true;
                m.key_headers += 1;
            }
        }
        if name.eq_ignore_ascii_case(b"user-agent") {
            m.user_agent = Some(value);
        } else if response && name.eq_ignore_ascii_case(b"server") {
            m.server = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") || name == b"l" || name == b"L" {
            m.content_length = parse_len(value);
        }
    }
    m.headers_len = off;
    Parse::Message(m)
}

fn strip_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// `name: value` with a token name; both trimmed.
fn header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|&c| c == b':')?;
    let name = trim(&line[..colon]);
    let token = |c: &u8| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(c);
    if name.is_empty() || !name.iter().all(token) {
        return None;
    }
    Some((name, trim(&line[colon + 1..])))
}

fn parse_len(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 6 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0, |n, &d| n * 10 + (d - b'0') as usize))
}

/// What a start line (or the beginning of one still arriving) is.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Request,
    Response,
    /// A valid beginning of either.
    Partial,
    No,
}

/// `line` without its CRLF; `complete` says whether it has ended.
fn start_line(line: &[u8], complete: bool) -> Line {
    if starts_with_ci(line, VERSION) || (!complete && starts_with_ci(VERSION, line)) {
        return status_line(line, complete);
    }
    request_line(line, complete)
}

/// Whether `part` is the beginning of `full` (ASCII case-insensitively), or all of it.
fn begins_ci(full: &[u8], part: &[u8]) -> bool {
    starts_with_ci(full, part)
}

/// `SIP/2.0 200 OK`
fn status_line(line: &[u8], complete: bool) -> Line {
    let partial = if complete { Line::No } else { Line::Partial };
    let Some(rest) = line.get(VERSION.len()..) else {
        return partial;
    };
    let Some((&sp, rest)) = rest.split_first() else {
        return partial;
    };
    if sp != b' ' {
        return Line::No;
    }
    let code = rest.get(..3).unwrap_or(rest);
    if !code.iter().all(u8::is_ascii_digit)
        || code.first().is_some_and(|c| !(b'1'..=b'6').contains(c))
    {
        return Line::No;
    }
    if code.len() < 3 {
        return partial;
    }
    let reason = &rest[3..];
    // The reason phrase is text (UTF-8 allowed); some stacks send none.
    let text = reason.first().is_none_or(|&c| c == b' ')
        && reason
            .iter()
            .all(|&c| (c >= 0x20 && c != 0x7f) || c == b'\t');
    match (text, complete) {
        (false, _) => Line::No,
        (true, true) => Line::Response,
        (true, false) => Line::Partial,
    }
}

/// `INVITE sip:bob@example.com SIP/2.0`
fn request_line(line: &[u8], complete: bool) -> Line {
    let partial = if complete { Line::No } else { Line::Partial };
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next().unwrap_or(&[]);
    let Some(uri) = parts.next() else {
        return if !complete && METHODS.iter().any(|m| m.starts_with(method)) {
            Line::Partial
        } else {
            Line::No
        };
    };
    if !METHODS.contains(&method) {
        return Line::No;
    }
    let uri_chars = uri.iter().all(|&c| c > 0x20 && c != 0x7f);
    let scheme_ok = SCHEMES
        .iter()
        .any(|s| uri.len() > s.len() && starts_with_ci(uri, s));
    let Some(version) = parts.next() else {
        let may_become = SCHEMES
            .iter()
            .any(|s| begins_ci(s, uri) || starts_with_ci(uri, s));
        return if uri_chars && may_become {
            partial
        } else {
            Line::No
        };
    };
    if !uri_chars || !scheme_ok {
        return Line::No;
    }
    if complete {
        if version.eq_ignore_ascii_case(VERSION) {
            Line::Request
        } else {
            Line::No
        }
    } else if begins_ci(VERSION, version) {
        Line::Partial
    } else {
        Line::No
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::appid::decoders::testkit;
    use crate::flow::Dir;
    use proptest::prelude::*;

    fn probe_as(data: &[u8], transport: Transport) -> (Probe, Evidence) {
        let mut scratch = [0u8; 16];
        let mut ev = Evidence::default();
        let p = Sip.probe(
            data,
            &testkit::ctx(transport, Dir::Orig, 40000, 40002),
            &mut scratch,
            &mut ev,
        );
        (p, ev)
    }

    const CERTAIN: Probe = Probe::Match(Proto::Sip, Confidence::Certain);

    // ndpi/sip.pcap frame 1.
    const REGISTER: &[u8] = b"REGISTER sip:sip.cybercity.dk SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.2;branch=z9hG4bKnp151248737-46ea715e192.168.1.2;rport\r\n\
From: <sip:voi18063@sip.cybercity.dk>;tag=903df0a\r\n\
To: <sip:voi18063@sip.cybercity.dk>\r\n\
Call-ID: 578222729-4665d775@578222732-4665d772\r\n\
Contact:  <sip:voi18063@192.168.1.2:5060;line=9c7d2dbd8822013c>;expires=1200;q=0.500\r\n\
Expires: 1200\r\n\
CSeq: 68 REGISTER\r\n\
Content-Length: 0\r\n\
Max-Forwards: 70\r\n\
User-Agent: Nero SIPPS IP Phone Version 2.0.51.16\r\n\
\r\n";

    #[test]
    fn request_over_udp_fills_the_user_agent() {
        let (p, ev) = probe_as(REGISTER, Transport::Udp);
        assert_eq!(p, CERTAIN);
        assert_eq!(
            ev.user_agent.as_str(),
            "Nero SIPPS IP Phone Version 2.0.51.16"
        );
    }

    #[test]
    fn response_uses_server_when_there_is_no_user_agent() {
        let m = b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 10.0.0.1:16402\r\ni: abc@x\r\nServer: Viceroy 1.4\r\nl: 0\r\n\r\n";
        let (p, ev) = probe_as(m, Transport::Udp);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.user_agent.as_str(), "Viceroy 1.4");
    }

    #[test]
    fn tel_and_sips_uris_and_every_method() {
        for method in METHODS {
            for uri in [
                "sip:bob@example.com",
                "sips:bob@example.com",
                "tel:+15551234",
            ] {
                let mut m = method.to_vec();
                m.extend_from_slice(format!(" {uri} SIP/2.0\r\nCSeq: 1 X\r\n\r\n").as_bytes());
                assert_eq!(probe_as(&m, Transport::Udp).0, CERTAIN, "{m:?}");
            }
        }
    }

    #[test]
    fn tcp_message_split_across_segments() {
        for cut in [1, 3, 9, 20, 38, 39, 60, REGISTER.len() - 3] {
            let (p, _) = probe_as(&REGISTER[..cut], Transport::Tcp);
            assert_eq!(p, Probe::NotYet, "cut at {cut}");
        }
        let (p, ev) = probe_as(REGISTER, Transport::Tcp);
        assert_eq!(p, CERTAIN);
        assert!(ev.user_agent.as_str().starts_with("Nero"));
    }

    #[test]
    fn tcp_several_messages_and_keepalives_before_them() {
        let mut s = b"\r\n\r\n".to_vec();
        s.extend_from_slice(b"OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 4\r\n\r\nabcd");
        s.extend_from_slice(REGISTER);
        assert_eq!(probe_as(&s, Transport::Tcp).0, CERTAIN);
        // A start line without any of the key headers is only likely.
        let m = b"OPTIONS sip:x@y SIP/2.0\r\nMax-Forwards: 70\r\n\r\n";
        assert_eq!(
            probe_as(m, Transport::Udp).0,
            Probe::Match(Proto::Sip, Confidence::Likely)
        );
    }

    #[test]
    fn keepalives_are_not_yet() {
        for k in [
            &b"\r\n\r\n"[..],
            b"\r\n",
            b"     ",
            b"hello",
            b"\0\0\0\0",
            b"jaK\n",
        ] {
            assert_eq!(probe_as(k, Transport::Udp).0, Probe::NotYet, "{k:?}");
            if k.iter().all(|&c| is_blank(c)) {
                assert_eq!(probe_as(k, Transport::Tcp).0, Probe::NotYet, "{k:?}");
            }
        }
    }

    #[test]
    fn inside_turn_channel_data() {
        let mut cd = vec![0x40, 0x01];
        cd.extend_from_slice(&(REGISTER.len() as u16).to_be_bytes());
        cd.extend_from_slice(REGISTER);
        let (p, ev) = probe_as(&cd, Transport::Udp);
        assert_eq!(p, CERTAIN);
        assert!(ev.user_agent.as_str().starts_with("Nero"));
        cd.extend_from_slice(&[0, 0]);
        assert_eq!(probe_as(&cd, Transport::Udp).0, CERTAIN);
        cd.extend_from_slice(&[0, 0]);
        assert_eq!(probe_as(&cd, Transport::Udp).0, Probe::NotMe);
    }

    #[test]
    fn near_misses_are_not_sip() {
        for m in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nVia: x\r\n\r\n",
            b"NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\n\r\n",
            b"INVITE http://x SIP/2.0\r\nVia: x\r\n\r\n",
            b"INVITE sip:x SIP/3.0\r\nVia: x\r\n\r\n",
            b"invite sip:x SIP/2.0\r\nVia: x\r\n\r\n",
            b"SIP/2.0 99 Odd\r\nVia: x\r\n\r\n",
            b"SIP/2.0 200 OK\r\nthis is no header\r\n\r\n",
            b"<stream:stream to='x'>",
        ] {
            for t in [Transport::Udp, Transport::Tcp] {
                assert_eq!(
                    probe_as(m, t).0,
                    Probe::NotMe,
                    "{t:?} {:?}",
                    String::from_utf8_lossy(m)
                );
            }
        }
    }

    #[test]
    fn other_protocols_are_not_sip() {
        for (p, t) in testkit::foreign_payloads() {
            assert_eq!(
                probe_as(&p, t).0,
                Probe::NotMe,
                "{t:?} {:02x?}",
                &p[..p.len().min(16)]
            );
        }
    }

    #[test]
    fn ndpi_captures() {
        for file in ["ndpi/sip.pcap", "ndpi/sip_hello.pcapng"] {
            for f in testkit::flows(file) {
                let o = testkit::replay(&Sip, &f, testkit::Feed::ENGINE);
                let expect = if f.has_port(5060) {
                    CERTAIN
                } else {
                    Probe::NotMe
                };
                assert_eq!(o.verdict, expect, "{file} {:?}", f.client);
            }
        }
        // HTTP on port 5060.
        for f in testkit::flows("ndpi/http_on_sip_port.pcap") {
            assert_eq!(
                testkit::replay(&Sip, &f, testkit::Feed::ENGINE).verdict,
                Probe::NotMe
            );
        }
    }

    #[test]
    fn sip_call_captures() {
        for file in [
            "sip-calls/sipnab_SIP_CALL_RTP_G711.pcap",
            "sip-calls/sipnab_sip-over-tcp.pcap",
            "sip-calls/sipnab_register-invite-reinvite-bye.pcap",
            "sip-calls/suricata-verify_sip-sdp_sdp.pcap",
            "sip-calls/suricata-verify_sip-tcp-method_sip-tcp.pcap",
        ] {
            let sip: Vec<_> = testkit::flows(file)
                .into_iter()
                .filter(|f| testkit::replay(&Sip, f, testkit::Feed::ENGINE).verdict == CERTAIN)
                .collect();
            assert!(!sip.is_empty(), "{file}");
            for f in sip {
                assert!(
                    [5060, 5061, 5080, 5082].iter().any(|&p| f.has_port(p)),
                    "{file}: {:?} {:?}",
                    f.client,
                    f.server
                );
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600),
                        scratch in any::<[u8; 16]>(), tcp in any::<bool>()) {
            let mut s = scratch;
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Sip.probe(&data, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }

        #[test]
        fn never_panics_on_sip_like_text(cut in 0usize..REGISTER.len(), noise in "[ -~\r\n:]{0,80}",
                                        tcp in any::<bool>()) {
            let mut m = REGISTER[..cut].to_vec();
            m.extend_from_slice(noise.as_bytes());
            let mut s = [0u8; 16];
            let mut ev = Evidence::default();
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = Sip.probe(&m, &testkit::ctx(t, Dir::Orig, 40000, 40002), &mut s, &mut ev);
        }
    }
}
