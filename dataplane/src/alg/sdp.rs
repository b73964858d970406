//! SDP (RFC 8866) bodies as the SIP ALG needs them: the origin and connection addresses, each
//! media description's port, its RTCP port (`a=rtcp`, RFC 3605) and direction attribute
//! (RFC 3264 hold), with where each sits so it can be rewritten.
//!
//! Only IPv4 connection data is ever rewritten; IPv6, FQDNs, ICE candidates and every other
//! line stay byte-identical. Never allocates, never panics.
use super::edit::{Edits, Text};
use super::find::{digits, digits_and_dots, positions};
use super::sip::{parse_ipv4, parse_u32, Message, Span};

/// Media descriptions looked at per body; more are left alone (no pinholes, not rewritten).
pub const MAX_MEDIA: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn of(attr: &[u8]) -> Option<Direction> {
        match attr {
            b"sendrecv" => Some(Direction::SendRecv),
            b"sendonly" => Some(Direction::SendOnly),
            b"recvonly" => Some(Direction::RecvOnly),
            b"inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the party that wrote it receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// An IPv4 address in the body and where its text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    pub addr: [u8; 4],
    pub span: Span,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Media {
    pub port: u16,
    pub port_span: Span,
    /// Where the line after the `m=` line starts (an inserted `a=rtcp` goes there).
    pub after_line: u32,
    /// Media-level `c=` (IPv4 only; `conn_other` when it is IPv6 or a name).
    pub conn: Option<Addr>,
    pub conn_other: bool,
    /// `a=rtcp:PORT [IN IP4 ADDR]`.
    pub rtcp: Option<(u16, Span)>,
    pub rtcp_addr: Option<Addr>,
    /// A media-level direction attribute.
    pub dir: Option<Direction>,
    /// The transport is RTP-based (`RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...) or plain
    /// `udp`: media the ALG opens pinholes for.
    pub udp: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Sdp {
    pub origin: Option<Addr>,
    pub conn: Option<Addr>,
    pub conn_other: bool,
    pub dir: Option<Direction>,
    pub media: [Media; MAX_MEDIA],
    pub n_media: usize,
    /// The body uses bare `\n` line ends.
    pub bare_lf: bool,
}

impl Sdp {
    pub fn media(&self) -> &[Media] {
        &self.media[..self.n_media]
    }

    /// The IPv4 address media `m` is sent to (media-level `c=`, else session-level), None
    /// for IPv6 or names.
    pub fn address_of(&self, m: &Media) -> Option<[u8; 4]> {
        if m.conn_other {
            return None;
        }
        match m.conn {
            Some(c) => Some(c.addr),
            None if self.conn_other => None,
            None => self.conn.map(|c| c.addr),
        }
    }

    pub fn direction_of(&self, m: &Media) -> Direction {
        m.dir.or(self.dir).unwrap_or_default()
    }

    /// The RTCP port of `m`: `a=rtcp`, else the next port up (RFC 3550).
    pub fn rtcp_port(m: &Media) -> u16 {
        m.rtcp.map_or(m.port.wrapping_add(1), |r| r.0)
    }
}

/// A port: one to five digits, at most 65535.
fn parse_u16(d: &[u8]) -> Option<u16> {
    parse_u32(d)
        .filter(|_| d.len() <= 5)
        .and_then(|v| u16::try_from(v).ok())
}

/// The spaces of `b[s..e]` when it is at most 32 bytes long (and 32 can be read from `s`),
/// one bit per byte, with every bit from `e - s` on set as if the text ended in spaces.
#[inline]
fn spaces(b: &[u8], s: usize, e: usize) -> Option<u64> {
    let len = e.checked_sub(s).filter(|&n| n <= 32)?;
    Some(positions(b, s, len, b' ')? | u64::MAX << len)
}

/// Where `b[s..e]` goes on after its `n`th space (at least one), or its end when it has fewer.
#[inline]
fn after_spaces(b: &[u8], s: usize, e: usize, n: usize) -> usize {
    let l = (e - s).min(32);
    if let Some(mut sp) = positions(b, s, l, b' ') {
        for _ in 1..n {
            sp &= sp.wrapping_sub(1);
        }
        if sp != 0 {
            return s + sp.trailing_zeros() as usize + 1;
        }
        if e - s <= 32 {
            return e;
        }
    }
    let (mut seen, mut k) = (0, s);
    while k < e && seen < n {
        if b[k] == b' ' {
            seen += 1;
        }
        k += 1;
    }
    k
}

/// The first three space-separated words of `b[s..e]`, as ranges from `s`.
#[inline]
fn words(b: &[u8], s: usize, e: usize) -> [Option<(usize, usize)>; 3] {
    let mut out = [None; 3];
    if let Some(sp) = spaces(b, s, e) {
        let mut word = !sp;
        for w in out.iter_mut() {
            if word == 0 {
                break;
            }
            let start = word.trailing_zeros();
            let end = (sp >> start).trailing_zeros() + start;
            *w = Some((start as usize, end as usize));
            word &= u64::MAX << end;
        }
        return out;
    }
    let v = b.get(s..e).unwrap_or_default();
    let mut i = 0;
    for w in out.iter_mut() {
        while i < v.len() && v[i] == b' ' {
            i += 1;
        }
        if i == v.len() {
            break;
        }
        let s = i;
        while i < v.len() && v[i] != b' ' {
            i += 1;
        }
        *w = Some((s, i));
    }
    out
}

/// `IN IP4 <addr>[/ttl]` at `at` in `b` (a `c=` value or the tail of `o=` / `a=rtcp`).
/// Some(Ok) for an IPv4 literal, Some(Err) for IPv6 or a name, None if not `IN`.
fn conn_addr(b: &[u8], s: usize, e: usize) -> Option<Result<Addr, ()>> {
    // The usual `IN IP4 ` and an address of digits and dots that ends its word or meets its
    // `/ttl`: no word splitting needed.
    if b.get(s..s + 7) == Some(b"IN IP4 ") {
        let a = s + 7;
        let end = a + digits_and_dots(b, a, e);
        if end > a && (end == e || b[end] == b' ' || b[end] == b'/') {
            return Some(
                parse_ipv4(&b[a..end])
                    .map(|ip| Addr {
                        addr: ip,
                        span: Span {
                            start: a as u32,
                            end: end as u32,
                        },
                    })
                    .ok_or(()),
            );
        }
    }
    let v = b.get(s..e)?;
    let [Some(net), Some(family), Some(addr)] = words(b, s, e) else {
        return None;
    };
    if &v[net.0..net.1] != b"IN" {
        return None;
    }
    if &v[family.0..family.1] != b"IP4" {
        return Some(Err(()));
    }
    let a = &v[addr.0..addr.1];
    let text = &a[..a.iter().position(|&c| c == b'/').unwrap_or(a.len())];
    let start = s + addr.0;
    match parse_ipv4(text) {
        Some(ip) => Some(Ok(Addr {
            addr: ip,
            span: Span {
                start: start as u32,
                end: (start + text.len()) as u32,
            },
        })),
        None => Some(Err(())),
    }
}

/// Parses the SDP body of `msg` (scanned from `b`). None when it is not SDP (no `v=` line
/// first).
pub fn parse(b: &[u8], msg: &Message) -> Option<Sdp> {
    let mut sdp = Sdp::default();
    parse_into(b, msg, &mut sdp).then_some(sdp)
}

/// `parse` into `sdp` (reused: a caller that keeps one pays for no 600-byte table per
/// message); false when the body is not SDP.
pub fn parse_into(b: &[u8], msg: &Message, sdp: &mut Sdp) -> bool {
    let body = msg.body;
    let (start, end) = (body.start as usize, (body.end as usize).min(b.len()));
    if !b.get(start..end).is_some_and(|x| x.starts_with(b"v=")) {
        return false;
    }
    // Media past `n_media` are stale and never read: each is written whole when found.
    sdp.origin = None;
    sdp.conn = None;
    sdp.conn_other = false;
    sdp.dir = None;
    sdp.n_media = 0;
    sdp.bare_lf = false;
    let mut at = start;
    let mut in_media = false;
    let mut skipping = false;
    let mut line_feeds = msg.marks.line_feeds(b, start, end);
    while at < end {
        let nl = line_feeds.next();
        let next = nl.map_or(end, |p| p + 1);
        let mut te = nl.unwrap_or(end);
        if te > at && b[te - 1] == b'\r' {
            te -= 1;
        } else if nl.is_some() {
            sdp.bare_lf = true;
        }
        let line = &b[at..te];
        if line.len() >= 2 && line[1] == b'=' {
            let (vs, ve) = (at + 2, te);
            let v = &b[vs..ve];
            match line[0] {
                b'o' if !in_media => {
                    // o=<username> <sess-id> <sess-version> IN IP4 <address>
                    let k = after_spaces(b, vs, ve, 3) - vs;
                    if let Some(Ok(a)) = conn_addr(b, vs + k, ve) {
                        sdp.origin = Some(a);
                    }
                }
                b'c' => {
                    let c = conn_addr(b, vs, ve);
                    if in_media && !skipping {
                        let m = &mut sdp.media[sdp.n_media - 1];
                        match c {
                            Some(Ok(a)) => m.conn = Some(a),
                            _ => m.conn_other = true,
                        }
                    } else if !in_media {
                        match c {
                            Some(Ok(a)) => sdp.conn = Some(a),
                            _ => sdp.conn_other = true,
                        }
                    }
                }
                b'm' => {
                    in_media = true;
                    if sdp.n_media == MAX_MEDIA {
                        skipping = true;
                    } else {
                        // m=audio 49170/2 RTP/AVP 0: the port (before any '/'), then the
                        // transport.
                        let w = words(b, vs, ve);
                        let (Some(port_word), proto) = (w[1], w[2]) else {
                            return false;
                        };
                        let proto = proto.map_or(&[][..], |(a, b)| &v[a..b]);
                        // The port's digits run to the word's end or its '/'.
                        let (ps, pe) = (vs + port_word.0, vs + port_word.1);
                        let de = ps + digits(b, ps, pe);
                        let port = (de == pe || b[de] == b'/')
                            .then(|| parse_u16(&b[ps..de]))
                            .flatten();
                        let Some(port) = port else {
                            // Unparseable media line: the body is not rewritten.
                            return false;
                        };
                        sdp.media[sdp.n_media] = Media {
                            port,
                            port_span: Span {
                                start: ps as u32,
                                end: de as u32,
                            },
                            after_line: next as u32,
                            udp: proto.windows(3).any(|x| x.eq_ignore_ascii_case(b"RTP"))
                                || proto.eq_ignore_ascii_case(b"UDP"),
                            ..Media::default()
                        };
                        sdp.n_media += 1;
                    }
                }
                b'a' => {
                    let target = if in_media {
                        if skipping {
                            None
                        } else {
                            Some(sdp.n_media - 1)
                        }
                    } else {
                        None
                    };
                    if let Some(d) = Direction::of(v) {
                        match target {
                            Some(i) => sdp.media[i].dir = Some(d),
                            None if !in_media => sdp.dir = Some(d),
                            None => {}
                        }
                    } else if let (Some(rest), Some(i)) = (v.strip_prefix(b"rtcp:"), target) {
                        let digits_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                        if let Some(p) = parse_u16(&rest[..digits_len]) {
                            let ps = vs + 5;
                            let m = &mut sdp.media[i];
                            m.rtcp = Some((
                                p,
                                Span {
                                    start: ps as u32,
                                    end: (ps + digits_len) as u32,
                                },
                            ));
                            if let Some(Ok(a)) = conn_addr(b, ps + digits_len, ve) {
                                m.rtcp_addr = Some(a);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        at = next;
    }
    true
}

/// A media port the ALG gives the translated party: RTP and RTCP as the outside sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedMedia {
    pub rtp: u16,
    pub rtcp: u16,
}

/// Edits for a body written by a party NAT translates: the origin and connection addresses
/// `to_of` translates (the sender's own, another inside host's), and each media port
/// `mapped` gives (index-aligned with `sdp.media()`; None: not translated, or not mapped).
/// An RTCP port that is no longer the RTP port plus one gets an `a=rtcp` line.
pub fn edits(
    b: &[u8],
    sdp: &Sdp,
    to_of: impl Fn([u8; 4]) -> Option<[u8; 4]>,
    mapped: &[Option<MappedMedia>],
    written: Option<([u8; 4], &Text)>,
    edits: &mut Edits,
) {
    // The origin and connection addresses are mostly one: its text is given (`written`, by
    // a caller that has it) or written once.
    let mut last: Option<([u8; 4], Text)> = None;
    let mut swap = |a: &Addr, edits: &mut Edits| {
        let Some(to) = to_of(a.addr) else {
            return;
        };
        let (s, e) = (a.span.start as usize, a.span.end as usize);
        match (written, &last) {
            (Some((addr, t)), _) if addr == to => edits.replace_text(b, s, e, t),
            (_, Some((addr, t))) if *addr == to => edits.replace_text(b, s, e, t),
            _ => {
                let mut t = Text::default();
                t.ipv4(to);
                edits.replace_text(b, s, e, &t);
                last = Some((to, t));
            }
        }
    };
    for a in [&sdp.origin, &sdp.conn].into_iter().flatten() {
        swap(a, edits);
    }
    for (i, m) in sdp.media().iter().enumerate() {
        for a in [&m.conn, &m.rtcp_addr].into_iter().flatten() {
            swap(a, edits);
        }
        let Some(Some(x)) = mapped.get(i) else {
            continue;
        };
        let (ps, pe) = (m.port_span.start as usize, m.port_span.end as usize);
        edits.replace_number(b, ps, pe, x.rtp as u64);
        match m.rtcp {
            Some((_, span)) => {
                edits.replace_number(b, span.start as usize, span.end as usize, x.rtcp as u64);
            }
            None if x.rtcp != x.rtp.wrapping_add(1) => {
                let mut t = Text::default();
                t.push(b"a=rtcp:").number(x.rtcp as u64);
                t.push(if sdp.bare_lf { b"\n" } else { b"\r\n" });
                edits.insert(m.after_line as usize, &t);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::sip::scan;

    fn sip_with(body: &str) -> String {
        format!(
            "INVITE sip:b@192.0.2.9 SIP/2.0\r\nCall-ID: x\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// A kept table parsed again reads as a fresh one: nothing of the message before (its
    /// origin, connection, direction, media, line ends) survives.
    #[test]
    fn a_reused_table_keeps_nothing_of_the_last_body() {
        let first = sip_with(
            "v=0\no=a 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\na=sendonly\nt=0 0\n\
             m=audio 4000 RTP/AVP 0\nm=video 4002 RTP/AVP 96\na=rtcp:4009\n",
        );
        let second = sip_with("v=0\r\ns=-\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n");
        let mut kept = Sdp::default();
        for text in [&first, &second] {
            let b = text.as_bytes();
            let m = scan(b, true).unwrap();
            assert!(parse_into(b, &m, &mut kept));
            let fresh = parse(b, &m).unwrap();
            assert_eq!(
                (
                    kept.origin,
                    kept.conn,
                    kept.conn_other,
                    kept.dir,
                    kept.bare_lf
                ),
                (
                    fresh.origin,
                    fresh.conn,
                    fresh.conn_other,
                    fresh.dir,
                    fresh.bare_lf
                )
            );
            assert_eq!(kept.media(), fresh.media());
        }
        assert_eq!(kept.media().len(), 1);
        assert!(kept.origin.is_none() && kept.dir.is_none() && !kept.bare_lf);
    }
}
