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
use super::find::{digits, digits_and_dots, first, positions, Finder, Marks};
use wide::{u8x16, u8x32, CmpEq};

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

/// One change of a packet with its addresses written out once: the original address to
/// compare a header's host with, the translated address and endpoint to write in its place.
struct Shift {
    c: Change,
    /// The original address as a dotted quad: `from_len` bytes of `from_word` (little-endian,
    /// zero past them), so a comparison is a load, a mask and a compare.
    from_word: u128,
    from_len: usize,
    from_last: u8,
    to: Text,
    /// `to` and its port (`addr:port`).
    to_ep: Text,
    /// The original address's first digit and where the dot after its first group is (`1`
    /// and 2 for 10.0.0.1): leading zeros go before the digit, so every literal of the
    /// address has the two so far apart.
    first_digit: u8,
    first_dot: usize,
}

/// The changes of one packet, source first, with their texts. A host is matched by comparing
/// its text with the original address written out: a literal of the same address with
/// leading zeros is longer than the dotted quad, and only such a longer one is parsed. A
/// rewriter keeps one while the translation stays the same (every message of a flow).
pub struct Changed {
    x: Xlate,
    list: [Option<Shift>; 2],
}

impl Changed {
    pub fn new(x: &Xlate) -> Changed {
        let shift = |c: Change| {
            let mut from = Text::default();
            from.ipv4(c.from.addr);
            let f = from.as_bytes();
            let mut word = [0u8; 16];
            word[..f.len()].copy_from_slice(f);
            let mut to = Text::default();
            to.ipv4(c.to.addr);
            let mut to_ep = to;
            to_ep.push(b":").number(c.to.port as u64);
            Shift {
                c,
                from_word: u128::from_le_bytes(word),
                from_len: f.len(),
                from_last: f[f.len() - 1],
                to,
                to_ep,
                first_digit: f[0],
                first_dot: f.iter().position(|&c| c == b'.').unwrap_or(0),
            }
        };
        Changed {
            x: *x,
            list: [x.src.map(shift), x.dst.map(shift)],
        }
    }

    /// The translation these are the texts of.
    pub fn xlate(&self) -> &Xlate {
        &self.x
    }

    /// The source's translated address and its text.
    pub fn source_to(&self) -> Option<([u8; 4], &Text)> {
        self.list[0].as_ref().map(|t| (t.c.to.addr, &t.to))
    }

    /// Whether `b[s..e]` may hold a literal of an original address: somewhere in it the first
    /// digit of the address's first group has the dot after that group where it belongs
    /// (`1` and `.` two bytes on for 10.0.0.1). Every literal of the address has them, with
    /// or without leading zeros, so where none does there is no host, `received` or `maddr`
    /// to change and no `rport` that goes with one. 32 places are tried at once.
    #[inline]
    fn may_be_in(&self, b: &[u8], s: usize, e: usize) -> bool {
        let e = e.min(b.len());
        self.list.iter().flatten().any(|t| {
            let (digit, k) = (t.first_digit, t.first_dot);
            let mut i = s;
            while i + k < e {
                let (Some(a), Some(d)) = (b.get(i..i + 32), b.get(i + k..i + k + 32)) else {
                    return b[i..e]
                        .windows(k + 1)
                        .any(|w| w[0] == digit && w[k] == b'.');
                };
                let a = u8x32::new(a.try_into().unwrap_or([0; 32]));
                let d = u8x32::new(d.try_into().unwrap_or([0; 32]));
                let hit = a.cmp_eq(u8x32::splat(digit)) & d.cmp_eq(u8x32::splat(b'.'));
                let mut m = hit.move_mask() as u32;
                // Places whose dot lies before `e`.
                let room = e - i - k;
                if room < 32 {
                    m &= (1u32 << room) - 1;
                }
                if m != 0 {
                    return true;
                }
                i += 32;
            }
            false
        })
    }

    /// Whether `b[s..e]` is `t`'s original address.
    #[inline(always)]
    fn is(t: &Shift, b: &[u8], s: usize, e: usize) -> bool {
        let len = e - s;
        if len == t.from_len {
            match b.get(s..s + 16) {
                Some(w) => {
                    let w = u128::from_le_bytes(w.try_into().unwrap_or([0; 16]));
                    w & (u128::MAX >> (128 - 8 * len)) == t.from_word
                }
                None => b.get(s..e) == Some(&t.from_word.to_le_bytes()[..len]),
            }
        } else {
            // Leading zeros go before a group's digits: the last digit is the same.
            len > t.from_len
                && b.get(e - 1) == Some(&t.from_last)
                && b.get(s..e).and_then(parse_ipv4) == Some(t.c.from.addr)
        }
    }

    /// The change whose `from` is the IPv4 literal `b[s..e]` and `port`, source first.
    #[inline]
    fn by_endpoint(&self, b: &[u8], s: usize, e: usize, port: u16) -> Option<&Shift> {
        self.list
            .iter()
            .flatten()
            .find(|t| t.c.from.port == port && Self::is(t, b, s, e))
    }

    /// The change whose address is the IPv4 literal `b[s..e]`, whatever the port.
    #[inline]
    fn by_addr(&self, b: &[u8], s: usize, e: usize) -> Option<&Shift> {
        self.list.iter().flatten().find(|t| Self::is(t, b, s, e))
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
    #[inline]
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
    /// The header whose name is the first `len` bytes of `head` (a line's first 16 bytes,
    /// `word_at`). By length first: one comparison at most.
    #[inline(always)]
    fn of(head: u128, len: usize) -> Name {
        let is = |lit: &Lit, n: Name| {
            if lit.is(head, len) {
                n
            } else {
                Name::Other
            }
        };
        let first = head as u8 | 0x20;
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
                b'c' => match (head >> 8) as u8 | 0x20 {
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

/// The 16 bytes of `b` from `at` as a little-endian word (zeros past the end of `b`).
#[inline(always)]
fn word_at(b: &[u8], at: usize) -> u128 {
    match b.get(at..at + 16) {
        Some(w) => u128::from_le_bytes(w.try_into().unwrap_or([0; 16])),
        None => {
            let mut w = [0u8; 16];
            let rest = b.get(at..).unwrap_or_default();
            w[..rest.len()].copy_from_slice(rest);
            u128::from_le_bytes(w)
        }
    }
}

/// Where the first colon of a 16-byte word is (one compare of all 16 bytes).
#[inline(always)]
fn colon_in(w: u128) -> Option<usize> {
    let v = u8x16::new(w.to_le_bytes());
    let m = v.cmp_eq(u8x16::splat(b':')).move_mask() as u32;
    (m != 0).then(|| m.trailing_zeros() as usize)
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

    /// Whether the first `len` bytes of `w` (the rest zero or not) are this name in any case.
    #[inline(always)]
    fn is(&self, w: u128, len: usize) -> bool {
        len == self.text.len() && (w & (u128::MAX >> (128 - 8 * len))) | self.case == self.lower
    }

    /// Whether `b[at..at + len]` begins with this text in any case.
    #[inline]
    fn starts(&self, b: &[u8], at: usize, len: usize) -> bool {
        len >= self.text.len() && self.matches(b, at, self.text.len())
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
const RECEIVED: Lit = Lit::new(b"received");
const MADDR: Lit = Lit::new(b"maddr");
const RPORT: Lit = Lit::new(b"rport");
const APPLICATION_SDP: Lit = Lit::new(b"application/sdp");

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
    /// Where the message's line feeds are (its first `find::MARKED` bytes).
    pub marks: Marks,
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
            marks: Marks::default(),
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

/// Ends of line: `\r\n`, or a bare `\n` as lenient peers send. The line from `from` whose
/// line feed is `nl`: (end of its text, start of the next line).
#[inline(always)]
fn line_end(b: &[u8], from: usize, nl: usize) -> (usize, usize) {
    let text_end = if nl > from && b.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    (text_end, nl + 1)
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// One to nine decimal digits.
#[inline]
pub(super) fn parse_u32(d: &[u8]) -> Option<u32> {
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
fn trim_span(b: &[u8], mut s: usize, e: usize) -> (usize, usize) {
    // Within `b`, so no byte read needs its own bounds check.
    let v = &b[..e.min(b.len())];
    let mut e = v.len();
    while s < e && matches!(v[s], b' ' | b'\t' | b'\r' | b'\n') {
        s += 1;
    }
    while e > s && matches!(v[e - 1], b' ' | b'\t' | b'\r' | b'\n') {
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
    msg.marks.mark(b);
    // Every line (and continuation line) ends at the next line feed: they are taken in order.
    let mut line_feeds = msg.marks.line_feeds(b, 0, b.len());
    let Some((start_end, mut at)) = line_feeds.next().map(|nl| line_end(b, 0, nl)) else {
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
        // The first and last spaces: from a mask when the line is at most 64 bytes long.
        let spaces = match start.len() {
            0 => None,
            n => positions(b, 0, n, b' ')
                .map(|m| (m != 0).then(|| (m.trailing_zeros(), 63 - m.leading_zeros()))),
        };
        let (sp1, sp2) = match spaces {
            Some(found) => {
                let (a, z) = found.ok_or(ScanError::Malformed)?;
                (a as usize, z as usize)
            }
            None => (
                start
                    .iter()
                    .position(|&c| c == b' ')
                    .ok_or(ScanError::Malformed)?,
                start
                    .iter()
                    .rposition(|&c| c == b' ')
                    .ok_or(ScanError::Malformed)?,
            ),
        };
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
    let mut content_length = 0;
    let mut n = 0;
    let more = || {
        if b.len() > MAX_HEADER_BLOCK {
            ScanError::Malformed
        } else {
            ScanError::Incomplete
        }
    };
    loop {
        if at > MAX_HEADER_BLOCK {
            return Err(ScanError::Malformed);
        }
        let Some((text_end, next)) = line_feeds.next().map(|nl| line_end(b, at, nl)) else {
            return Err(more());
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
            let Some((e, n)) = line_feeds.next().map(|nl| line_end(b, at, nl)) else {
                return Err(ScanError::Incomplete);
            };
            value_end = e;
            at = n;
        }
        // The name and its colon: a short name's are in the line's first 16 bytes.
        let head = word_at(b, line_start);
        let colon = match colon_in(head) {
            Some(k) => line_start + k,
            None => memchr::memchr(b':', b.get(line_start + 16..).unwrap_or_default())
                .map_or(usize::MAX, |k| line_start + 16 + k),
        };
        if colon >= value_end || is_ws(head as u8) {
            return Err(ScanError::Malformed);
        }
        let mut name_end = colon;
        while name_end > line_start && is_ws(b[name_end - 1]) {
            name_end -= 1;
        }
        if name_end == line_start {
            return Err(ScanError::Malformed);
        }
        let name = Name::of(head, name_end - line_start);
        if name == Name::Other {
            continue;
        }
        let (vs, ve) = trim_span(b, colon + 1, value_end);
        let value = Span::new(vs, ve);
        match name {
            Name::ContentLength => {
                if msg.content_length.is_some() {
                    return Err(ScanError::Malformed);
                }
                content_length = parse_u32(&b[vs..ve]).ok_or(ScanError::Malformed)?;
                msg.content_length = Some(value);
            }
            Name::ContentType => msg.sdp = APPLICATION_SDP.starts(b, vs, ve - vs),
            Name::CallId => msg.call_id = value,
            Name::CSeq => {
                // The number, whitespace, the method: the first blank of a short value is
                // found with one 16-byte compare.
                let w = u8x16::new(word_at(b, vs).to_le_bytes());
                let blank = w.cmp_eq(u8x16::splat(b' ')) | w.cmp_eq(u8x16::splat(b'\t'));
                let sp = match blank.move_mask() as u32 {
                    0 => b[vs..ve].iter().position(|&c| is_ws(c)),
                    m => Some(m.trailing_zeros() as usize),
                };
                let sp = sp.map_or(ve, |k| (vs + k).min(ve));
                let (s, e) = trim_span(b, sp, ve);
                msg.cseq_method = Method::of(&b[s..e]);
            }
            Name::Expires => msg.expires = parse_u32(&b[vs..ve]),
            _ => {}
        }
        let Some(h) = msg.headers.get_mut(n) else {
            return Err(ScanError::Malformed);
        };
        *h = Header { name, value };
        n += 1;
    }
    msg.n_headers = n;
    let body_len = match msg.content_length {
        Some(_) => content_length as usize,
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
        // An IPv4 literal is digits and dots, found 16 bytes at a time; a name goes on.
        let end = end.min(b.len());
        let mut i = at + digits_and_dots(b, at, end);
        while i < end && !HOST_ENDS[b[i] as usize] {
            i += 1;
        }
        i
    };
    HostPort::of(b, at, i, end)
}

impl HostPort {
    /// The host `b[at..i]` (None when empty) and the port after it when a colon follows,
    /// its digits up to `end`.
    #[inline]
    fn of(b: &[u8], at: usize, i: usize, end: usize) -> Option<HostPort> {
        let host = Span::new(at, i);
        if host.is_empty() {
            return None;
        }
        if i < end && b[i] == b':' {
            let ps = i + 1;
            let pe = ps + digits(b, ps, end);
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
    let Some(port) = port_of(b, hp, default_port) else {
        return;
    };
    let (hs, he) = (hp.host.start as usize, hp.host.end as usize);
    let change = match how {
        Match::Endpoint => x.by_endpoint(b, hs, he, port),
        Match::Address => x
            .by_endpoint(b, hs, he, port)
            .or_else(|| x.by_addr(b, hs, he)),
    };
    if let Some(t) = change {
        edit_change(b, hp, port, default_port, how, t, edits);
    }
}

/// The port of `hp` (`default` when none is written), None when it is not one.
#[inline]
fn port_of(b: &[u8], hp: HostPort, default: u16) -> Option<u16> {
    if !hp.has_port {
        return Some(default);
    }
    parse_u32(hp.port.of(b))
        .filter(|&p| p <= 65535)
        .map(|p| p as u16)
}

/// The edit for host[:port] `hp` (its port `port`) that change `t` matched.
#[inline]
fn edit_change(
    b: &[u8],
    hp: HostPort,
    port: u16,
    default_port: u16,
    how: Match,
    t: &Shift,
    edits: &mut Edits,
) {
    let port_matches = t.c.from.port == port;
    let write_port = match how {
        Match::Endpoint => hp.has_port || t.c.to.port != default_port,
        Match::Address => hp.has_port && port_matches,
    };
    // The kept texts by reference; only an endpoint with another port is written here.
    let other;
    let text = match (write_port, port_matches) {
        (false, _) => &t.to,
        (true, true) => &t.to_ep,
        (true, false) => {
            let mut text = t.to;
            text.push(b":").number(port as u64);
            other = text;
            &other
        }
    };
    let end = if hp.has_port {
        hp.port.end
    } else {
        hp.host.end
    };
    edits.replace_text(b, hp.host.start as usize, end as usize, text);
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

/// The length of a SIP or SIPS URI's scheme and its default port.
#[inline]
fn scheme(u: &[u8]) -> Option<(usize, u16)> {
    // Letters compared without case: their case bit set, the colon as it is.
    const SIP: u64 = u32::from_le_bytes(*b"sip:") as u64;
    const SIPS: u64 = SIP & 0xff_ffff | (u16::from_le_bytes(*b"s:") as u64) << 24;
    let Some(w) = u.get(..8) else {
        return if u.len() >= 4 && u[..4].eq_ignore_ascii_case(b"sip:") {
            Some((4, 5060))
        } else if u.len() >= 5 && u[..5].eq_ignore_ascii_case(b"sips:") {
            Some((5, 5061))
        } else {
            None
        };
    };
    let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
    if w & 0xffff_ffff | 0x20_2020 == SIP {
        Some((4, 5060))
    } else if w & 0xff_ffff_ffff | 0x2020_2020 == SIPS {
        Some((5, 5061))
    } else {
        None
    }
}

/// A SIP or SIPS URI in `s..e`: its host[:port] and default port.
#[inline]
fn uri_host(b: &[u8], s: usize, e: usize) -> Option<(HostPort, u16)> {
    let (skip, default) = scheme(b.get(s..e)?)?;
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
    let tls = is_tls(b, s + transport_start, s + i);
    while i < v.len() && matches!(v[i], b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    let default = if tls { 5061 } else { 5060 };
    let Some(hp) = host_port(b, s + i, e) else {
        return;
    };
    let change = via_sent_by(b, hp, default, x, edits);
    // Parameters.
    let mut semis = Finder::new([b';']);
    let mut next = semis.next(b, hp.port.end.max(hp.host.end) as usize, e);
    while let Some(semi) = next {
        let ps = semi + 1;
        next = semis.next(b, ps, e);
        let (ps, pe) = trim_span(b, ps, next.unwrap_or(e));
        if let Some(eq) = first([b'='], b, ps, pe).filter(|&eq| via_param_len(eq - ps)) {
            via_param(b, ps, eq, pe, change, x, edits);
        }
    }
}

/// Whether `b[s..e]` is Via's transport `TLS` (any case).
#[inline]
fn is_tls(b: &[u8], s: usize, e: usize) -> bool {
    e.wrapping_sub(s) == 3
        && match b.get(s..s + 4) {
            Some(w) => {
                u32::from_le_bytes(w.try_into().unwrap_or([0; 4])) & 0xff_ffff | 0x20_2020
                    == u32::from_le_bytes(*b"tls\0")
            }
            None => b[s..e].eq_ignore_ascii_case(b"TLS"),
        }
}

/// The edit for a Via's sent-by; returns its change, which the rport parameter goes with.
#[inline]
fn via_sent_by<'x>(
    b: &[u8],
    hp: HostPort,
    default: u16,
    x: &'x Changed,
    edits: &mut Edits,
) -> Option<&'x Shift> {
    let (hs, he) = (hp.host.start as usize, hp.host.end as usize);
    let Some(port) = port_of(b, hp, default) else {
        // Not a port: nothing to edit, and an rport goes with what its digits name.
        return x.by_endpoint(b, hs, he, parse_u32(hp.port.of(b)).unwrap_or(0) as u16);
    };
    let change = x.by_endpoint(b, hs, he, port);
    if let Some(t) = change {
        edit_change(b, hp, port, default, Match::Endpoint, t, edits);
    }
    change
}

/// Whether a Via parameter name `n` bytes long may be one `via_param` edits (`received`,
/// `maddr`, `rport`): the others (`branch`, `ttl`, ...) are not looked at.
#[inline(always)]
fn via_param_len(n: usize) -> bool {
    n == RECEIVED.text.len() || n == MADDR.text.len() || n == RPORT.text.len()
}

/// The edit for one Via parameter `b[ps..pe]` whose `=` is at `eq`: a received or maddr
/// address NAT changed, an rport that goes with the sent-by's `change`.
#[inline]
fn via_param(
    b: &[u8],
    ps: usize,
    eq: usize,
    pe: usize,
    change: Option<&Shift>,
    x: &Changed,
    edits: &mut Edits,
) {
    let name_len = eq - ps;
    let (vs, ve) = trim_span(b, eq + 1, pe);
    if RECEIVED.matches(b, ps, name_len) || MADDR.matches(b, ps, name_len) {
        if let Some(t) = x.by_addr(b, vs, ve) {
            edits.replace_text(b, vs, ve, &t.to);
        }
    } else if RPORT.matches(b, ps, name_len) {
        let port = parse_u32(&b[vs..ve]);
        if let (Some(t), Some(p)) = (change, port) {
            if p as u16 == t.c.from.port && p <= 65535 {
                edits.replace_number(b, vs, ve, t.c.to.port as u64);
            }
        }
    }
}

/// Edits for the start line and headers of `m` (in `b`) under translation `x`.
pub fn header_edits(b: &[u8], m: &Message, x: &Changed, edits: &mut Edits) {
    if x.xlate().is_none() {
        return;
    }
    // Text without an original address in it (see `Changed::may_be_in`) has nothing to change.
    let uri = m.uri;
    if m.is_request() && x.may_be_in(b, uri.start as usize, uri.end as usize) {
        if let Some((hp, d)) = uri_host(b, uri.start as usize, uri.end as usize) {
            edit_host_port(b, hp, d, Match::Endpoint, x, edits);
        }
    }
    for h in m.headers() {
        header_line_edits(b, h, x, edits);
    }
}

/// The edits one header line needs (all its values).
fn header_line_edits(b: &[u8], h: &Header, x: &Changed, edits: &mut Edits) {
    // How a URI header's host is matched; Via (None) has its own grammar.
    let how = match h.name {
        Name::Via => None,
        Name::Contact | Name::Route | Name::RecordRoute => Some(Match::Endpoint),
        Name::From | Name::To => Some(Match::Address),
        _ => return,
    };
    let (s, e) = (h.value.start as usize, h.value.end as usize);
    if !x.may_be_in(b, s, e) {
        return;
    }
    let Some(how) = how else {
        match Simple::of(b, s, e, true) {
            Some(v) => v.edit_via(b, s, x, edits),
            None => general_line_edits(b, h, None, x, edits),
        }
        return;
    };
    if let Some(v) = Simple::of(b, s, e, false) {
        if let Some((hp, d)) = v.uri_host(b, s) {
            edit_host_port(b, hp, d, how, x, edits);
        }
        return;
    }
    general_line_edits(b, h, Some(how), x, edits);
}

/// `header_line_edits` by the general parser (values `Simple` does not take), kept out of
/// line so the usual path stays small.
#[cold]
#[inline(never)]
fn general_line_edits(b: &[u8], h: &Header, how: Option<Match>, x: &Changed, edits: &mut Edits) {
    let Some(how) = how else {
        values(b, h.value, |s, e| edit_via(b, s, e, x, edits));
        return;
    };
    values(b, h.value, |s, e| {
        if let Some((us, ue)) = value_uri(b, s, e) {
            if let Some((hp, d)) = uri_host(b, us, ue) {
                edit_host_port(b, hp, d, how, x, edits);
            }
        }
    });
}

/// A header value of at most 64 bytes with nothing that asks for the general parser (no
/// quote, backslash, comma or IPv6 reference): one value, its delimiters found in one pass
/// (bit k is byte `s + k`). What `value_uri`, `uri_host` and `host_port` find in it, found
/// from the masks.
struct Simple {
    len: usize,
    /// Bits of the value's bytes (`len` of them).
    valid: u64,
    lt: u64,
    gt: u64,
    at: u64,
    semi: u64,
    stop: u64,
    host_end: u64,
    /// Via's: slashes, equals signs, spaces and tabs (line breaks are left to the general
    /// parser).
    slash: u64,
    eq: u64,
    ws: u64,
}

impl Simple {
    #[inline]
    fn of(b: &[u8], s: usize, e: usize, via: bool) -> Option<Simple> {
        let len = e.checked_sub(s)?;
        if len > 64 {
            return None;
        }
        let load = |at: usize| Some(u8x32::new(b.get(at..at + 32)?.try_into().ok()?));
        let lo = load(s)?;
        let hi = if len > 32 { load(s + 32)? } else { u8x32::ZERO };
        let valid = if len == 0 { 0 } else { u64::MAX >> (64 - len) };
        let bits = |c: u8| {
            let c = u8x32::splat(c);
            let l = lo.cmp_eq(c).move_mask() as u32 as u64;
            let h = hi.cmp_eq(c).move_mask() as u32 as u64;
            (l | h << 32) & valid
        };
        let mut bail = bits(b'"') | bits(b'\\') | bits(b',') | bits(b'[');
        if via {
            bail |= bits(b'\r') | bits(b'\n');
        }
        if bail != 0 {
            return None;
        }
        let (ws, semi, qm, gt) = (bits(b' ') | bits(b'\t'), bits(b';'), bits(b'?'), bits(b'>'));
        let (slash, eq) = if via {
            (bits(b'/'), bits(b'='))
        } else {
            (0, 0)
        };
        Some(Simple {
            len,
            valid,
            lt: bits(b'<'),
            gt,
            at: bits(b'@'),
            semi,
            stop: qm | gt,
            host_end: bits(b':') | semi | qm | gt | ws,
            ws,
            slash,
            eq,
        })
    }

    /// The first byte at or after `from` that is not in `m`, or the end.
    #[inline]
    fn skip(&self, m: u64, from: usize) -> usize {
        Self::next(!m & self.valid, from).unwrap_or(self.len)
    }

    /// `edit_via` for the value at `s`: sent-by, and the received / rport / maddr parameters.
    #[inline]
    fn edit_via(&self, b: &[u8], s: usize, x: &Changed, edits: &mut Edits) {
        // SIP/2.0/UDP host:port;params, with whitespace allowed around the slashes.
        let Some(second) =
            Self::next(self.slash, 0).and_then(|one| Self::next(self.slash, one + 1))
        else {
            return;
        };
        let transport = self.skip(self.ws, second + 1);
        let i = Self::next(self.ws, transport).unwrap_or(self.len);
        let tls = is_tls(b, s + transport, s + i);
        let i = self.skip(self.ws, i);
        let default = if tls { 5061 } else { 5060 };
        let Some(hp) = self.host_port(b, s, i, self.len) else {
            return;
        };
        let change = via_sent_by(b, hp, default, x, edits);
        // Parameters.
        let after = hp.port.end.max(hp.host.end) as usize - s;
        let mut next = Self::next(self.semi, after);
        while let Some(semi) = next {
            let ps = semi + 1;
            next = Self::next(self.semi, ps);
            let (ps, pe) = trim_span(b, s + ps, s + next.unwrap_or(self.len));
            if let Some(eq) = Self::next(self.eq, ps - s)
                .map(|k| s + k)
                .filter(|&k| k < pe && via_param_len(k - ps))
            {
                via_param(b, ps, eq, pe, change, x, edits);
            }
        }
    }

    /// `host_port` of the value at `s`, from `hs` to `stop` (offsets in the value).
    #[inline]
    fn host_port(&self, b: &[u8], s: usize, hs: usize, stop: usize) -> Option<HostPort> {
        let he = Self::next(self.host_end, hs)
            .filter(|&k| k < stop)
            .unwrap_or(stop);
        HostPort::of(b, s + hs, s + he, s + stop)
    }

    /// The first bit of `m` at or after `from`, or None.
    #[inline]
    fn next(m: u64, from: usize) -> Option<usize> {
        let m = if from >= 64 { 0 } else { m >> from << from };
        (m != 0).then(|| m.trailing_zeros() as usize)
    }

    /// `value_uri` then `uri_host` of the value at `s`.
    #[inline]
    fn uri_host(&self, b: &[u8], s: usize) -> Option<(HostPort, u16)> {
        // name-addr (`<...>`, the first `>` after it closing) or addr-spec (to the first ';').
        let (us, ue) = match Self::next(self.lt, 0) {
            Some(a) => (a + 1, Self::next(self.gt, a)?),
            None => (0, Self::next(self.semi, 0).unwrap_or(self.len)),
        };
        let (skip, default) = scheme(b.get(s + us..s + ue)?)?;
        let rest = us + skip;
        let stop = Self::next(self.stop, rest)
            .filter(|&k| k < ue)
            .unwrap_or(ue);
        let hs = Self::next(self.at, rest)
            .filter(|&k| k < stop)
            .map_or(rest, |k| k + 1);
        Some((self.host_port(b, s, hs, stop)?, default))
    }
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
    use crate::alg::edit::Edit;

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

    /// Pieces of header values: delimiters, addresses (with leading zeros, neighbours),
    /// schemes and parameters.
    const PIECES: &[&str] = &[
        "<",
        ">",
        "@",
        ";",
        ":",
        "?",
        ",",
        "\"",
        "\\",
        "[",
        "]",
        " ",
        "\t",
        "/",
        "=",
        "sip:",
        "SIPS:",
        "alice",
        "SIP/2.0/UDP ",
        "SIP / 2.0 / TLS ",
        "10.0.0.1",
        "010.0.0.01",
        "10.0.0.10",
        "192.0.2.1",
        ":5060",
        ":40000",
        ";received=10.0.0.1",
        ";rport=5060",
        ";rport",
        ";maddr=192.0.2.1",
        ";branch=z9hG4bK7",
        "\r\n ",
        "Bob ",
    ];

    /// The edits the general parser makes for one header value, and those of `Simple` when
    /// it takes the value.
    fn both_ways(name: Name, value: &[u8]) -> (Vec<Edit>, Option<Vec<Edit>>) {
        let mut b = b"X: ".to_vec();
        b.extend_from_slice(value);
        let end = b.len();
        b.extend_from_slice(&[b'\n'; 64]);
        let (s, e) = trim_span(&b, 3, end);
        let h = Header {
            name,
            value: Span::new(s, e),
        };
        let change = |a: [u8; 4], to: [u8; 4]| Change {
            from: Endpoint {
                addr: a,
                port: 5060,
            },
            to: Endpoint {
                addr: to,
                port: 40000,
            },
        };
        let x = Changed::new(&Xlate {
            src: Some(change([10, 0, 0, 1], [203, 0, 113, 7])),
            dst: Some(change([192, 0, 2, 1], [198, 51, 100, 9])),
        });
        let how = if name == Name::From {
            Match::Address
        } else {
            Match::Endpoint
        };
        let mut general = Edits::default();
        values(&b, h.value, |s, e| {
            if name == Name::Via {
                edit_via(&b, s, e, &x, &mut general);
            } else if let Some((us, ue)) = value_uri(&b, s, e) {
                if let Some((hp, d)) = uri_host(&b, us, ue) {
                    edit_host_port(&b, hp, d, how, &x, &mut general);
                }
            }
        });
        let simple = Simple::of(&b, s, e, name == Name::Via).map(|v| {
            let mut edits = Edits::default();
            if name == Name::Via {
                v.edit_via(&b, s, &x, &mut edits);
            } else if let Some((hp, d)) = v.uri_host(&b, s) {
                edit_host_port(&b, hp, d, how, &x, &mut edits);
            }
            edits.as_slice().to_vec()
        });
        (general.as_slice().to_vec(), simple)
    }

    #[test]
    fn simple_values_are_taken_and_rewritten() {
        for (name, v) in [
            (Name::Contact, "<sip:alice@10.0.0.1:5060;transport=udp>"),
            (Name::From, "Alice <sip:alice@10.0.0.1>;tag=1928301774"),
            (
                Name::Via,
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport=5060",
            ),
        ] {
            let (general, simple) = both_ways(name, v.as_bytes());
            assert!(!general.is_empty(), "{v}");
            assert_eq!(simple, Some(general), "{v}");
        }
    }

    proptest::proptest! {
        /// The scheme and Via's TLS, read as words, are what a byte comparison without case
        /// reads (case bits set on letters only: `\x1a` is no colon).
        #[test]
        fn scheme_and_tls_words_read_as_bytes_do(
            u in proptest::collection::vec(proptest::sample::select(&b"sSiIpP:\x1a\x13tTlL0"[..]), 0..10),
            cut in 0usize..10,
        ) {
            let want = if u.len() >= 4 && u[..4].eq_ignore_ascii_case(b"sip:") {
                Some((4, 5060))
            } else if u.len() >= 5 && u[..5].eq_ignore_ascii_case(b"sips:") {
                Some((5, 5061))
            } else {
                None
            };
            proptest::prop_assert_eq!(scheme(&u), want);
            let e = cut.min(u.len());
            let s = e.saturating_sub(3);
            proptest::prop_assert_eq!(is_tls(&u, s, e), u[s..e].eq_ignore_ascii_case(b"TLS"));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// A header value `Simple` takes is rewritten as the general parser rewrites it.
        #[test]
        fn simple_values_are_read_as_the_general_parser_reads_them(
            parts in proptest::collection::vec(proptest::sample::select(PIECES), 1..10),
            kind in 0usize..3,
        ) {
            let name = [Name::Via, Name::Contact, Name::From][kind];
            let (general, simple) = both_ways(name, parts.concat().as_bytes());
            if let Some(simple) = simple {
                proptest::prop_assert_eq!(simple, general);
            }
        }

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
            proptest::prop_assert_eq!(Name::of(word_at(&b, 2), name.len()), by_text(&name));
        }
    }
}
