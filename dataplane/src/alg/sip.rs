//! SIP messages (RFC 3261) as the ALG needs them: where a message ends, what it is, and the
//! addresses its headers carry, rewritten where NAT changed them.
//!
//! `scan` is a pure function over bytes returning offsets (start line, headers, body,
//! Content-Length), like a parser an in-place rewriter can use. `header_edits` lists the
//! address literals to change for one packet's translation. Neither allocates nor panics:
//! every slice is taken with `get`, lines are found by scanning, and folded header lines,
//! compact names, several values on one line and IPv6 literals are handled as the grammar
//! says (what is not an IPv4 literal that NAT changed is never touched).
use super::edit::{Edits, Text};
use super::find::{first, Finder, Lines};

/// Header lines looked at per message; a message with more is not rewritten.
pub const MAX_HEADERS: usize = 128;
/// A SIP message's header block longer than this is not believed (and not buffered).
pub const MAX_HEADER_BLOCK: usize = 16 * 1024;

/// An IPv4 endpoint as NAT sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub addr: [u8; 4],
    pub port: u16,
}

/// One endpoint NAT changed in a packet: `from` on one side, `to` on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub from: Endpoint,
    pub to: Endpoint,
}

/// What NAT did to one packet: its source and/or destination changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Xlate {
    pub src: Option<Change>,
    pub dst: Option<Change>,
}

impl Xlate {
    pub fn is_none(&self) -> bool {
        self.src.is_none() && self.dst.is_none()
    }
}

/// The changes of one packet with their original addresses written out, so the host of a
/// header is matched by comparing its text: a literal of the same address with leading
/// zeros is longer than the dotted quad, and only such a longer one is parsed.
struct Changed {
    list: [Option<(Change, Text)>; 2],
}

impl Changed {
    fn new(x: &Xlate) -> Changed {
        let with_text = |c: Change| {
            let mut t = Text::default();
            t.ipv4(c.from.addr);
            (c, t)
        };
        Changed {
            list: [x.src.map(with_text), x.dst.map(with_text)],
        }
    }

    #[inline]
    fn is(c: &Change, text: &Text, host: &[u8]) -> bool {
        let t = text.as_bytes();
        match host.len().cmp(&t.len()) {
            std::cmp::Ordering::Equal => host == t,
            // Leading zeros go before a group's digits: the last digit is the same.
            std::cmp::Ordering::Greater => {
                host.last() == t.last() && parse_ipv4(host) == Some(c.from.addr)
            }
            std::cmp::Ordering::Less => false,
        }
    }

    /// The change whose `from` is the IPv4 literal `host` and `port`, source first.
    #[inline]
    fn by_endpoint(&self, host: &[u8], port: u16) -> Option<Change> {
        self.list
            .iter()
            .flatten()
            .find(|(c, t)| c.from.port == port && Self::is(c, t, host))
            .map(|&(c, _)| c)
    }

    /// The change whose address is the IPv4 literal `host`, whatever the port.
    #[inline]
    fn by_addr(&self, host: &[u8]) -> Option<Change> {
        self.list
            .iter()
            .flatten()
            .find(|(c, t)| Self::is(c, t, host))
            .map(|&(c, _)| c)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Update,
    Prack,
    Options,
    Other,
}

impl Method {
    fn of(token: &[u8]) -> Method {
        match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request(Method),
    Response(u16),
}

/// The headers the ALG reads or rewrites (by long or compact name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    Via,
    Contact,
    From,
    To,
    Route,
    RecordRoute,
    ContentLength,
    ContentType,
    CallId,
    CSeq,
    Expires,
    Other,
}

impl Name {
    /// The header named by `b[at..at + len]`. By length first: one comparison at most.
    #[inline]
    fn at(b: &[u8], at: usize, len: usize) -> Name {
        let is = |lit: &Lit, n: Name| {
            if lit.matches(b, at, len) {
                n
            } else {
                Name::Other
            }
        };
        let first = b.get(at).map_or(0, |c| c | 0x20);
        match len {
            1 => match first {
                b'v' => Name::Via,
                b'm' => Name::Contact,
                b'f' => Name::From,
                b't' => Name::To,
                b'l' => Name::ContentLength,
                b'c' => Name::ContentType,
                b'i' => Name::CallId,
                _ => Name::Other,
            },
            2 => is(&TO, Name::To),
            3 => is(&VIA, Name::Via),
            4 => match first {
                b'f' => is(&FROM, Name::From),
                b'c' => is(&CSEQ, Name::CSeq),
                _ => Name::Other,
            },
            5 => is(&ROUTE, Name::Route),
            7 => match first {
                b'c' => match b.get(at + 1).map_or(0, |c| c | 0x20) {
                    b'o' => is(&CONTACT, Name::Contact),
                    _ => is(&CALL_ID, Name::CallId),
                },
                b'e' => is(&EXPIRES, Name::Expires),
                _ => Name::Other,
            },
            12 => match first {
                b'r' => is(&RECORD_ROUTE, Name::RecordRoute),
                b'c' => is(&CONTENT_TYPE, Name::ContentType),
                _ => Name::Other,
            },
            14 => is(&CONTENT_LENGTH, Name::ContentLength),
            _ => Name::Other,
        }
    }
}

/// A header name to compare without regard to case: its lower-case bytes and, for the
/// letters among them, the case bit, as 16-byte little-endian words (zero past its length),
/// so a comparison is one load, one OR and one compare.
struct Lit {
    text: &'static [u8],
    lower: u128,
    case: u128,
}

impl Lit {
    const fn new(text: &'static [u8]) -> Lit {
        let (mut lower, mut case) = (0u128, 0u128);
        let mut i = 0;
        while i < text.len() {
            lower |= (text[i] as u128) << (8 * i);
            if text[i].is_ascii_lowercase() {
                case |= 0x20u128 << (8 * i);
            }
            i += 1;
        }
        Lit { text, lower, case }
    }

    /// Whether `b[at..at + len]` is this name in any case.
    #[inline(always)]
    fn matches(&self, b: &[u8], at: usize, len: usize) -> bool {
        if len != self.text.len() {
            return false;
        }
        match b.get(at..at + 16) {
            Some(w) => {
                let w = u128::from_le_bytes(w.try_into().unwrap_or([0; 16]));
                let w = w & (u128::MAX >> (128 - 8 * len));
                w | self.case == self.lower
            }
            None => b
                .get(at..at + len)
                .is_some_and(|n| n.eq_ignore_ascii_case(self.text)),
        }
    }
}

const TO: Lit = Lit::new(b"to");
const VIA: Lit = Lit::new(b"via");
const FROM: Lit = Lit::new(b"from");
const CSEQ: Lit = Lit::new(b"cseq");
const ROUTE: Lit = Lit::new(b"route");
const CONTACT: Lit = Lit::new(b"contact");
const CALL_ID: Lit = Lit::new(b"call-id");
const EXPIRES: Lit = Lit::new(b"expires");
const RECORD_ROUTE: Lit = Lit::new(b"record-route");
const CONTENT_TYPE: Lit = Lit::new(b"content-type");
const CONTENT_LENGTH: Lit = Lit::new(b"content-length");

/// A byte range of the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    pub fn of<'a>(&self, msg: &'a [u8]) -> &'a [u8] {
        msg.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: Name,
    /// The value, from after the colon and its whitespace to the end of its last
    /// continuation line (line breaks of folded lines included, trailing whitespace not).
    pub value: Span,
}

/// Where one SIP message's parts are.
#[derive(Clone, Copy, Debug)]
pub struct Message {
    pub kind: Kind,
    /// The Request-URI (requests).
    pub uri: Span,
    /// The header lines the ALG cares about, in order (others are skipped).
    pub headers: [Header; MAX_HEADERS],
    pub n_headers: usize,
    /// The body: from after the blank line, Content-Length bytes (or the rest when absent).
    pub body: Span,
    /// The Content-Length value's digits, when the header is present.
    pub content_length: Option<Span>,
    /// The whole message's length (start line to the end of the body).
    pub len: usize,
    pub call_id: Span,
    /// The method in CSeq (what a response answers).
    pub cseq_method: Method,
    /// The Expires header's value.
    pub expires: Option<u32>,
    /// The body is SDP (Content-Type application/sdp, or a body that starts with "v=0").
    pub sdp: bool,
}

impl Default for Message {
    fn default() -> Self {
        Message {
            kind: Kind::Response(0),
            uri: Span::default(),
            headers: [Header {
                name: Name::Other,
                value: Span::default(),
            }; MAX_HEADERS],
            n_headers: 0,
            body: Span::default(),
            content_length: None,
            len: 0,
            call_id: Span::default(),
            cseq_method: Method::Other,
            expires: None,
            sdp: false,
        }
    }
}

impl Message {
    pub fn headers(&self) -> &[Header] {
        &self.headers[..self.n_headers]
    }

    pub fn is_request(&self) -> bool {
        matches!(self.kind, Kind::Request(_))
    }

    /// The method a request has, or a response answers.
    pub fn method(&self) -> Method {
        match self.kind {
            Kind::Request(m) => m,
            Kind::Response(_) => self.cseq_method,
        }
    }
}

/// Why `scan` found no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// The header block or the body does not end in the bytes given: more are needed.
    Incomplete,
    /// Not a SIP message, or one the ALG will not rewrite (unparseable Content-Length,
    /// too many headers, an oversized header block).
    Malformed,
}

/// Ends of line: `\r\n`, or a bare `\n` as lenient peers send. Returns (end of text, start
/// of the next line).
#[inline(always)]
fn line_end(b: &[u8], lines: &mut Lines, from: usize) -> Option<(usize, usize)> {
    let nl = lines.next_nl(b, from, b.len())?;
    let text_end = if nl > from && b[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    Some((text_end, nl + 1))
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

#[inline]
fn parse_u32(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &c in d {
        let k = c.wrapping_sub(b'0');
        if k > 9 {
            return None;
        }
        v = v * 10 + k as u32;
    }
    Some(v)
}

#[inline(always)]
fn trim_span(b: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && matches!(b[s], b' ' | b'\t' | b'\r' | b'\n') {
        s += 1;
    }
    while e > s && matches!(b[e - 1], b' ' | b'\t' | b'\r' | b'\n') {
        e -= 1;
    }
    (s, e)
}

/// Finds the SIP message at the start of `b` (after any CRLF keep-alives, which the caller
/// skips with `leading_blank`). `datagram`: a body without Content-Length runs to the end
/// (UDP); on a stream it is empty.
pub fn scan(b: &[u8], datagram: bool) -> Result<Message, ScanError> {
    let mut msg = Message::default();
    scan_into(b, datagram, &mut msg)?;
    Ok(msg)
}

/// `scan` into `msg` (reused: only the headers found are written, so a caller that keeps
/// one `Message` pays for no 1.5 KiB table per message).
pub fn scan_into(b: &[u8], datagram: bool, msg: &mut Message) -> Result<(), ScanError> {
    let mut lines = Lines::new(b);
    let Some((start_end, mut at)) = line_end(b, &mut lines, 0) else {
        return Err(if b.len() > MAX_HEADER_BLOCK {
            ScanError::Malformed
        } else {
            ScanError::Incomplete
        });
    };
    let start = &b[..start_end];
    msg.kind = Kind::Response(0);
    msg.uri = Span::default();
    msg.n_headers = 0;
    msg.body = Span::default();
    msg.content_length = None;
    msg.len = 0;
    msg.call_id = Span::default();
    msg.cseq_method = Method::Other;
    msg.expires = None;
    msg.sdp = false;
    if let Some(rest) = start.strip_prefix(b"SIP/2.0 ") {
        let code = parse_u32(rest.get(..3).ok_or(ScanError::Malformed)?)
            .filter(|c| (100..700).contains(c))
            .ok_or(ScanError::Malformed)?;
        msg.kind = Kind::Response(code as u16);
    } else {
        let sp1 = start
            .iter()
            .position(|&c| c == b' ')
            .ok_or(ScanError::Malformed)?;
        let sp2 = start
            .iter()
            .rposition(|&c| c == b' ')
            .ok_or(ScanError::Malformed)?;
        if sp2 <= sp1 + 1 || &start[sp2 + 1..] != b"SIP/2.0" {
            return Err(ScanError::Malformed);
        }
        let method = &start[..sp1];
        if method.is_empty() || !method.iter().all(|c| c.is_ascii_uppercase()) {
            return Err(ScanError::Malformed);
        }
        msg.kind = Kind::Request(Method::of(method));
        msg.uri = Span::new(sp1 + 1, sp2);
    }
    // Header lines, each with its continuation lines, up to the blank line.
    let body_start;
    loop {
        if at > MAX_HEADER_BLOCK {
            return Err(ScanError::Malformed);
        }
        let Some((text_end, next)) = line_end(b, &mut lines, at) else {
            return Err(if b.len() > MAX_HEADER_BLOCK {
                ScanError::Malformed
            } else {
                ScanError::Incomplete
            });
        };
        if text_end == at {
            body_start = next;
            break;
        }
        let line_start = at;
        let mut value_end = text_end;
        at = next;
        // Folded continuation lines belong to this header.
        loop {
            match b.get(at) {
                Some(&c) if is_ws(c) => {}
                Some(_) => break,
                None => return Err(ScanError::Incomplete),
            }
            let Some((e, n)) = line_end(b, &mut lines, at) else {
                return Err(ScanError::Incomplete);
            };
            value_end = e;
            at = n;
        }
        let line = &b[line_start..value_end];
        let colon = lines
            .next_colon(b, line_start, value_end)
            .ok_or(ScanError::Malformed)?
            - line_start;
        let mut name_end = colon;
        while name_end > 0 && is_ws(line[name_end - 1]) {
            name_end -= 1;
        }
        if name_end == 0 || is_ws(line[0]) {
            return Err(ScanError::Malformed);
        }
        let name = Name::at(b, line_start, name_end);
        let (vs, ve) = trim_span(b, line_start + colon + 1, value_end);
        let value = Span::new(vs, ve);
        let v = value.of(b);
        match name {
            Name::ContentLength => {
                if msg.content_length.is_some() {
                    return Err(ScanError::Malformed);
                }
                parse_u32(v).ok_or(ScanError::Malformed)?;
                msg.content_length = Some(value);
            }
            Name::ContentType => {
                msg.sdp = v.len() >= 15 && v[..15].eq_ignore_ascii_case(b"application/sdp");
            }
            Name::CallId => msg.call_id = value,
            Name::CSeq => {
                let sp = v.iter().position(|&c| is_ws(c)).unwrap_or(v.len());
                let m = v.get(sp..).unwrap_or_default();
                let (s, e) = trim_span(m, 0, m.len());
                msg.cseq_method = Method::of(&m[s..e]);
            }
            Name::Expires => msg.expires = parse_u32(v),
            _ => {}
        }
        if name != Name::Other {
            if msg.n_headers == MAX_HEADERS {
                return Err(ScanError::Malformed);
            }
            msg.headers[msg.n_headers] = Header { name, value };
            msg.n_headers += 1;
        }
    }
    let body_len = match msg.content_length {
        Some(cl) => parse_u32(cl.of(b)).unwrap_or(0) as usize,
        None if datagram => b.len() - body_start,
        None => 0,
    };
    let end = body_start + body_len;
    if end > b.len() {
        return Err(if datagram {
            ScanError::Malformed
        } else {
            ScanError::Incomplete
        });
    }
    msg.body = Span::new(body_start, end);
    msg.len = end;
    if !msg.sdp && msg.content_length.is_none() {
        msg.sdp = b
            .get(body_start..end)
            .is_some_and(|x| x.starts_with(b"v=0"));
    }
    if msg.call_id.is_empty() {
        return Err(ScanError::Malformed);
    }
    Ok(())
}

/// Whether a TCP stream's first bytes `b` begin like a SIP message (a request line
/// `METHOD sip:... SIP/2.0`, or a status line), as far as they go: a connection App-ID has
/// not named yet is followed from its first segment (App-ID waits for the header block, and
/// a first segment that went on untranslated cannot be taken back).
pub fn starts_like_sip(b: &[u8]) -> bool {
    let b = &b[leading_blank(b)..];
    let end = b.iter().take(1024).position(|&c| c == b'\n');
    let line = match end {
        Some(n) => b[..n].strip_suffix(b"\r").unwrap_or(&b[..n]),
        None if b.len() >= 1024 => return false,
        None => b,
    };
    if line.len() < 8 {
        return false;
    }
    if line.starts_with(b"SIP/2.0 ") {
        return true;
    }
    let Some(sp) = line.iter().position(|&c| c == b' ') else {
        return false;
    };
    if !(3..=10).contains(&sp) || !line[..sp].iter().all(u8::is_ascii_uppercase) {
        return false;
    }
    let uri = &line[sp + 1..];
    let scheme = [&b"sip:"[..], b"sips:", b"tel:"]
        .iter()
        .any(|s| uri.len() >= s.len() && uri[..s.len()].eq_ignore_ascii_case(s));
    scheme && (end.is_none() || line.ends_with(b" SIP/2.0"))
}

/// Bytes of CRLF (keep-alives, RFC 5626) before a message.
pub fn leading_blank(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

/// A dotted-quad IPv4 literal, exactly (no leading or trailing junk): four groups of one to
/// three digits, each at most 255. One pass, a group at a time.
#[inline]
pub fn parse_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let digit = |i: usize| s.get(i).map_or(10, |c| c.wrapping_sub(b'0'));
    let mut out = [0u8; 4];
    let mut i = 0;
    for (k, o) in out.iter_mut().enumerate() {
        let mut v = digit(i) as u32;
        if v > 9 {
            return None;
        }
        i += 1;
        for _ in 0..2 {
            let d = digit(i);
            if d > 9 {
                break;
            }
            v = v * 10 + d as u32;
            i += 1;
        }
        if v > 255 {
            return None;
        }
        *o = v as u8;
        if k < 3 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == s.len()).then_some(out)
}

/// A host and optional port inside a header value or URI.
#[derive(Clone, Copy, Debug)]
struct HostPort {
    host: Span,
    /// The port's digits (empty span at the host's end when there is none).
    port: Span,
    has_port: bool,
}

/// Parses `host[:port]` starting at `at`, ending before `;`, `?`, `>`, `,`, whitespace or
/// `end`. IPv6 references (`[...]`) are recognised so their colons are not a port.
#[inline]
fn host_port(b: &[u8], at: usize, end: usize) -> Option<HostPort> {
    let i = if b.get(at) == Some(&b'[') {
        first([b']'], b, at, end)? + 1
    } else {
        let end = end.min(b.len());
        let mut i = at;
        while i < end && !HOST_ENDS[b[i] as usize] {
            i += 1;
        }
        i
    };
    let host = Span::new(at, i);
    if host.is_empty() {
        return None;
    }
    if i < end && b[i] == b':' {
        let ps = i + 1;
        let mut pe = ps;
        while pe < end && b[pe].is_ascii_digit() {
            pe += 1;
        }
        return Some(HostPort {
            host,
            port: Span::new(ps, pe),
            has_port: pe > ps,
        });
    }
    Some(HostPort {
        host,
        port: Span::new(i, i),
        has_port: false,
    })
}

/// How a host[:port] is matched against the translation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Match {
    /// Address and port (an absent port is the scheme's default): where the peer will send
    /// (Via sent-by, Contact, Request-URI, Route).
    Endpoint,
    /// The address alone, port left as written unless it is the translated one (From, To:
    /// identities, not where anything is sent).
    Address,
}

/// Adds the edit for one host[:port] if NAT changed it.
#[inline]
fn edit_host_port(
    b: &[u8],
    hp: HostPort,
    default_port: u16,
    how: Match,
    x: &Changed,
    edits: &mut Edits,
) {
    let host = hp.host.of(b);
    let port = if hp.has_port {
        match parse_u32(hp.port.of(b)) {
            Some(p) if p <= 65535 => p as u16,
            _ => return,
        }
    } else {
        default_port
    };
    let change = match how {
        Match::Endpoint => x.by_endpoint(host, port),
        Match::Address => x.by_endpoint(host, port).or_else(|| x.by_addr(host)),
    };
    let Some(c) = change else {
        return;
    };
    let mut t = Text::default();
    t.ipv4(c.to.addr);
    let port_matches = c.from.port == port;
    let write_port = match how {
        Match::Endpoint => hp.has_port || c.to.port != default_port,
        Match::Address => hp.has_port && port_matches,
    };
    if write_port {
        let p = if port_matches { c.to.port } else { port };
        t.push(b":").number(p as u64);
    }
    let end = if hp.has_port {
        hp.port.end
    } else {
        hp.host.end
    };
    edits.replace(b, hp.host.start as usize, end as usize, t.as_bytes());
}

/// A table of the bytes in `set`: `table[c]` is whether `c` is one of them.
const fn byte_set(set: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < set.len() {
        t[set[i] as usize] = true;
        i += 1;
    }
    t
}

/// Where `values` has something to decide; every other byte is skipped in a tight loop.
static VALUE_STOPS: [bool; 256] = byte_set(b"\\\"<>,");
/// Where a host (not an IPv6 reference) ends.
static HOST_ENDS: [bool; 256] = byte_set(b":;?>, \t");

/// The values of a comma-separated header (commas inside quotes or `<...>` do not split).
fn values(b: &[u8], v: Span, mut each: impl FnMut(usize, usize)) {
    let (mut start, end) = (v.start as usize, (v.end as usize).min(b.len()));
    let (mut quoted, mut angle) = (false, false);
    // One value (the common case) has nothing to split: straight to its end.
    let mut i = if first([b','], b, start, end).is_none() {
        end
    } else {
        start
    };
    while i < end {
        if !VALUE_STOPS[b[i] as usize] {
            i += 1;
            continue;
        }
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                let (s, e) = trim_span(b, start, i);
                if s < e {
                    each(s, e);
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let (s, e) = trim_span(b, start, end.min(b.len()));
    if s < e {
        each(s, e);
    }
}

/// A SIP or SIPS URI in `s..e`: its host[:port] and default port.
#[inline]
fn uri_host(b: &[u8], s: usize, e: usize) -> Option<(HostPort, u16)> {
    let u = b.get(s..e)?;
    let (skip, default) = if u.len() >= 4 && u[..4].eq_ignore_ascii_case(b"sip:") {
        (4, 5060)
    } else if u.len() >= 5 && u[..5].eq_ignore_ascii_case(b"sips:") {
        (5, 5061)
    } else {
        return None;
    };
    // The user part ends at the first '@' before the host's parameters or headers begin.
    let rest = s + skip;
    let (mut stop, mut at) = (e, None);
    let mut f = Finder::new([b'>', b'?', b'@']);
    let mut i = rest;
    while let Some(k) = f.next(b, i, e) {
        if b[k] != b'@' {
            stop = k;
            break;
        }
        at = at.or(Some(k + 1));
        i = k + 1;
    }
    Some((host_port(b, at.unwrap_or(rest), stop)?, default))
}

/// The URI of a name-addr or addr-spec value in `s..e` (`"Name" <sip:...>;tag=x` or
/// `sip:...;tag=x`).
#[inline]
fn value_uri(b: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    let mut quoted = false;
    let mut f = Finder::new([b'"', b'<']);
    let mut i = s;
    while let Some(at) = f.next(b, i, e) {
        if b[at] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            let close = first([b'>'], b, at, e)?;
            return Some((at + 1, close));
        }
        i = at + 1;
    }
    // addr-spec: parameters after ';' belong to the header.
    Some((s, first([b';'], b, s, e).unwrap_or(e)))
}

/// Edits for one Via value: sent-by, and the received / rport / maddr parameters.
fn edit_via(b: &[u8], s: usize, e: usize, x: &Changed, edits: &mut Edits) {
    // SIP/2.0/UDP host:port;params, with whitespace allowed around the slashes.
    let v = &b[s..e];
    let mut slash = Finder::new([b'/']);
    let Some(second) = slash
        .next(b, s, e)
        .and_then(|one| slash.next(b, one + 1, e))
    else {
        return;
    };
    let mut i = second + 1 - s;
    while i < v.len() && is_ws(v[i]) {
        i += 1;
    }
    let transport_start = i;
    while i < v.len() && !matches!(v[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    let tls = v[transport_start..i].eq_ignore_ascii_case(b"TLS");
    while i < v.len() && matches!(v[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    let default = if tls { 5061 } else { 5060 };
    let Some(hp) = host_port(b, s + i, e) else {
        return;
    };
    edit_host_port(b, hp, default, Match::Endpoint, x, edits);
    let sent_port = if hp.has_port {
        parse_u32(hp.port.of(b)).unwrap_or(0) as u16
    } else {
        default
    };
    // The sent-by's change, if any: rport goes with it.
    let change = x.by_endpoint(hp.host.of(b), sent_port);
    // Parameters.
    let mut semis = Finder::new([b';']);
    let mut next = semis.next(b, hp.port.end.max(hp.host.end) as usize, e);
    while let Some(semi) = next {
        let ps = semi + 1;
        next = semis.next(b, ps, e);
        let (ps, pe) = trim_span(b, ps, next.unwrap_or(e));
        if let Some(eq) = first([b'='], b, ps, pe) {
            let (name, value) = (&b[ps..eq], eq + 1);
            let (vs, ve) = trim_span(b, value, pe);
            if name.eq_ignore_ascii_case(b"received") || name.eq_ignore_ascii_case(b"maddr") {
                if let Some(c) = x.by_addr(&b[vs..ve]) {
                    let mut t = Text::default();
                    t.ipv4(c.to.addr);
                    edits.replace(b, vs, ve, t.as_bytes());
                }
            } else if name.eq_ignore_ascii_case(b"rport") {
                let port = parse_u32(&b[vs..ve]);
                if let (Some(c), Some(p)) = (change, port) {
                    if p as u16 == c.from.port && p <= 65535 {
                        let mut t = Text::default();
                        t.number(c.to.port as u64);
                        edits.replace(b, vs, ve, t.as_bytes());
                    }
                }
            }
        }
    }
}

/// Edits for the start line and headers of `m` (in `b`) under translation `x`.
pub fn header_edits(b: &[u8], m: &Message, x: &Xlate, edits: &mut Edits) {
    if x.is_none() {
        return;
    }
    let x = &Changed::new(x);
    if m.is_request() {
        if let Some((hp, d)) = uri_host(b, m.uri.start as usize, m.uri.end as usize) {
            edit_host_port(b, hp, d, Match::Endpoint, x, edits);
        }
    }
    for h in m.headers() {
        header_line_edits(b, h, x, edits);
    }
}

/// The edits one header line needs (all its values).
fn header_line_edits(b: &[u8], h: &Header, x: &Changed, edits: &mut Edits) {
    let how = match h.name {
        Name::Via => {
            values(b, h.value, |s, e| edit_via(b, s, e, x, edits));
            return;
        }
        Name::Contact | Name::Route | Name::RecordRoute => Match::Endpoint,
        Name::From | Name::To => Match::Address,
        _ => return,
    };
    values(b, h.value, |s, e| {
        if let Some((us, ue)) = value_uri(b, s, e) {
            if let Some((hp, d)) = uri_host(b, us, ue) {
                edit_host_port(b, hp, d, how, x, edits);
            }
        }
    });
}

/// The registered contact of a REGISTER: its host's IPv4 address and port (default 5060),
/// and the expiry it asks for (the contact's `expires` parameter, else the Expires header,
/// else `default`). The first Contact with an IPv4 literal host; None for `Contact: *`.
pub fn register_contact(b: &[u8], m: &Message, default: u32) -> Option<(Endpoint, u32)> {
    let mut found = None;
    for h in m.headers().iter().filter(|h| h.name == Name::Contact) {
        values(b, h.value, |s, e| {
            if found.is_some() {
                return;
            }
            let Some((us, ue)) = value_uri(b, s, e) else {
                return;
            };
            let Some((hp, d)) = uri_host(b, us, ue) else {
                return;
            };
            let Some(addr) = parse_ipv4(hp.host.of(b)) else {
                return;
            };
            let port = if hp.has_port {
                parse_u32(hp.port.of(b)).unwrap_or(d as u32) as u16
            } else {
                d
            };
            // Header parameters after the URI (`>;expires=60` or `;expires=60`).
            let after = &b[ue.min(e)..e];
            let expires = find_param(after, b"expires").and_then(parse_u32);
            found = Some((Endpoint { addr, port }, expires));
        });
    }
    let (ep, expires) = found?;
    Some((ep, expires.or(m.expires).unwrap_or(default)))
}

/// The value of parameter `name` in `;a=1;name=v` text.
fn find_param<'a>(p: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    for part in p.split(|&c| c == b';').skip(1) {
        let (s, e) = trim_span(part, 0, part.len());
        let part = &part[s..e];
        if let Some(k) = part.iter().position(|&c| c == b'=') {
            let (n, v) = (&part[..k], &part[k + 1..]);
            let (ns, ne) = trim_span(n, 0, n.len());
            if n[ns..ne].eq_ignore_ascii_case(name) {
                let (vs, ve) = trim_span(v, 0, v.len());
                return Some(&v[vs..ve]);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [(&str, Name); 18] = [
        ("v", Name::Via),
        ("m", Name::Contact),
        ("f", Name::From),
        ("t", Name::To),
        ("l", Name::ContentLength),
        ("c", Name::ContentType),
        ("i", Name::CallId),
        ("to", Name::To),
        ("via", Name::Via),
        ("from", Name::From),
        ("cseq", Name::CSeq),
        ("route", Name::Route),
        ("contact", Name::Contact),
        ("call-id", Name::CallId),
        ("expires", Name::Expires),
        ("record-route", Name::RecordRoute),
        ("content-type", Name::ContentType),
        ("content-length", Name::ContentLength),
    ];

    fn by_text(name: &[u8]) -> Name {
        NAMES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map_or(Name::Other, |&(_, k)| k)
    }

    proptest::proptest! {
        /// Header names are told apart as a case-blind comparison would, near misses (one
        /// byte changed, case bit on a non-letter) and names at the very end included.
        #[test]
        fn header_names_match_without_regard_to_case(
            pick in 0usize..18,
            upper in proptest::collection::vec(proptest::prelude::any::<bool>(), 14),
            flip in proptest::option::of((0usize..14, proptest::prelude::any::<u8>())),
            tail in 0usize..20,
        ) {
            let mut name: Vec<u8> = NAMES[pick].0.bytes().zip(&upper)
                .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c }).collect();
            if let Some((at, c)) = flip {
                let at = at % name.len();
                name[at] = c;
            }
            let mut b = b"xx".to_vec();
            b.extend_from_slice(&name);
            b.extend(std::iter::repeat_n(b':', tail));
            proptest::prop_assert_eq!(Name::at(&b, 2, name.len()), by_text(&name));
        }
    }
}
