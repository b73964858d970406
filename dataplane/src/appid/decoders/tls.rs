//! TLS (ssl) over TCP. A direction is ssl when its stream starts with a handshake record
//! carrying a ClientHello (SSL 3.0 to TLS 1.3, or the SSLv2-compatible hello of old clients)
//! or a ServerHello (when that is the first thing seen of the flow); the ClientHello's SNI and
//! first ALPN protocol go into the evidence. A ClientHello without SNI is `Likely` (the
//! server's first flight may name the server); a ServerHello followed by a Certificate (TLS
//! 1.2 and earlier send it in clear) gives the certificate's name (`x509::server_name`) when
//! no SNI did, and waits for that Certificate while it may still come. A flow picked up
//! mid-connection is `Likely` ssl when its stream is a chain of well-formed records.
//!
//! Never allocates, never panics: every read goes through `Cursor`, which answers "the bytes
//! ran out" (`Stop::Short`: a valid beginning, ask again) or "this field cannot be TLS"
//! (`Stop::Bad`) instead of indexing. Keeps no per-flow state (the scratch is unused): the
//! engine hands over the whole stream prefix each time.
use super::x509;
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Tls;

const CHANGE_CIPHER_SPEC: u8 = 20;
const HEARTBEAT: u8 = 24;
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;
const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
/// The largest record a peer may send: 2^14 bytes of plaintext plus the ciphertext expansion
/// RFC 5246 allows.
const MAX_RECORD: usize = (1 << 14) + 2048;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const RANDOM_LEN: usize = 32;
const MAX_SESSION_ID: usize = 32;

impl Decoder for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[443, 465, 563, 636, 853, 993, 995, 5223, 5061, 8443]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Tcp {
            return Probe::NotMe;
        }
        // The engine stops calling once its stream buffer is full: decide on what is there.
        let full = data.len() >= STREAM_BYTES;
        match data.first() {
            None => Probe::NotYet,
            Some(b) if b & 0x80 != 0 => sslv2_hello(data, full),
            Some(&HANDSHAKE)
                if matches!(data.get(5), None | Some(&(CLIENT_HELLO | SERVER_HELLO))) =>
            {
                hello_record(data, full, ev)
            }
            Some(_) => record_chain(data, full),
        }
    }
}

/// Why a parse stopped before the end of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The bytes ran out inside the declared length: a valid beginning so far.
    Short,
    /// A field contradicts the protocol.
    Bad,
}

/// A bounds-checked reader over a message that declares `len` bytes, of which only a prefix
/// may have arrived. Reading past `len` is `Bad`; reading past what arrived is `Short`.
pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    len: usize,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A message of `len` declared bytes whose first bytes are `b` (extra bytes are ignored).
    pub(crate) fn new(b: &'a [u8], len: usize) -> Cursor<'a> {
        Cursor {
            b: b.get(..len).unwrap_or(b),
            len,
            pos: 0,
        }
    }
    /// Declared bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.len - self.pos
    }
    pub(crate) fn is_done(&self) -> bool {
        self.pos == self.len
    }
    /// Whether part of the declared message has not arrived.
    pub(crate) fn is_truncated(&self) -> bool {
        self.b.len() < self.len
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Bad)?;
        if end > self.len {
            return Err(Stop::Bad);
        }
        let s = self.b.get(self.pos..end).ok_or(Stop::Short)?;
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Stop> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// The next `n` declared bytes as a cursor of their own; this one moves past them even
    /// if they have not (all) arrived.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Cursor<'a>, Stop> {
        let end = self.pos.checked_add(n).ok_or(Stop::Bad)?;
        if end > self.len {
            return Err(Stop::Bad);
        }
        let start = self.pos.min(self.b.len());
        let c = Cursor {
            b: &self.b[start..end.min(self.b.len())],
            len: n,
            pos: 0,
        };
        self.pos = end;
        Ok(c)
    }
    /// `Short` if the message was valid but not all of it arrived.
    pub(crate) fn complete(&self) -> Result<(), Stop> {
        if self.is_truncated() {
            Err(Stop::Short)
        } else {
            Ok(())
        }
    }
}

/// What a hello carried, kept apart until the hello is known not to be garbage.
#[derive(Default)]
pub(crate) struct Hello<'a> {
    pub sni: Option<&'a [u8]>,
    pub alpn: Option<&'a [u8]>,
}

impl Hello<'_> {
    pub(crate) fn commit(&self, ev: &mut Evidence) {
        if let Some(h) = self.sni {
            ev.host.set(h);
        }
        if let Some(a) = self.alpn {
            ev.alpn.set(a);
        }
    }
}

fn is_tls_version(v: u16) -> bool {
    (0x0300..=0x0304).contains(&v)
}

/// DTLS 1.0, 1.2 and 1.3 (the versions count down), and 0x0100: OpenSSL's pre-RFC DTLS
/// ("DTLS1_BAD_VER"), which Cisco AnyConnect still speaks.
pub(crate) fn is_dtls_version(v: u16) -> bool {
    matches!(v, 0xfeff | 0xfefd | 0xfefc | 0x0100)
}

/// A ClientHello body (after the handshake header). DTLS adds a cookie after the session id.
pub(crate) fn client_hello<'a>(
    c: &mut Cursor<'a>,
    dtls: bool,
    out: &mut Hello<'a>,
) -> Result<(), Stop> {
    let version = c.u16()?;
    let version_ok = if dtls {
        is_dtls_version(version)
    } else {
        is_tls_version(version)
    };
    if !version_ok {
        return Err(Stop::Bad);
    }
    c.take(RANDOM_LEN)?;
    let session_id = c.u8()? as usize;
    if session_id > MAX_SESSION_ID {
        return Err(Stop::Bad);
    }
    c.take(session_id)?;
    if dtls {
        let cookie = c.u8()? as usize;
        c.take(cookie)?;
    }
    let suites = c.u16()? as usize;
    if suites == 0 || suites & 1 != 0 {
        return Err(Stop::Bad);
    }
    c.take(suites)?;
    let methods = c.u8()? as usize;
    if methods == 0 {
        return Err(Stop::Bad);
    }
    c.take(methods)?;
    if c.is_done() {
        return Ok(()); // SSL 3.0 style: no extensions
    }
    extensions(c, true, out)
}

/// A ServerHello body (TLS and DTLS have the same layout).
pub(crate) fn server_hello(c: &mut Cursor<'_>, dtls: bool) -> Result<(), Stop> {
    let version = c.u16()?;
    let version_ok = if dtls {
        is_dtls_version(version)
    } else {
        is_tls_version(version)
    };
    if !version_ok {
        return Err(Stop::Bad);
    }
    c.take(RANDOM_LEN)?;
    let session_id = c.u8()? as usize;
    if session_id > MAX_SESSION_ID {
        return Err(Stop::Bad);
    }
    c.take(session_id)?;
    c.u16()?; // cipher suite
    c.u8()?; // compression method
    if c.is_done() {
        return Ok(());
    }
    extensions(c, false, &mut Hello::default())
}

/// The extensions block, which must fill the rest of the hello exactly.
fn extensions<'a>(c: &mut Cursor<'a>, client: bool, out: &mut Hello<'a>) -> Result<(), Stop> {
    let len = c.u16()? as usize;
    if len != c.remaining() {
        return Err(Stop::Bad);
    }
    let mut exts = c.sub(len)?;
    while !exts.is_done() {
        let kind = exts.u16()?;
        let n = exts.u16()? as usize;
        let mut body = exts.sub(n)?;
        match (kind, client) {
            (EXT_SERVER_NAME, true) => server_name(&mut body, out)?,
            (EXT_ALPN, true) => alpn(&mut body, out)?,
            (EXT_SUPPORTED_VERSIONS, true) => {
                let list = body.u8()? as usize;
                if list == 0 || list & 1 != 0 || list != body.remaining() {
                    return Err(Stop::Bad);
                }
            }
            (EXT_SUPPORTED_VERSIONS, false) => {
                body.u16()?;
                if !body.is_done() {
                    return Err(Stop::Bad);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// server_name (RFC 6066): the first host_name entry.
fn server_name<'a>(body: &mut Cursor<'a>, out: &mut Hello<'a>) -> Result<(), Stop> {
    if body.is_done() {
        return Ok(());
    }
    let list = body.u16()? as usize;
    if list != body.remaining() {
        return Err(Stop::Bad);
    }
    while !body.is_done() {
        let kind = body.u8()?;
        let n = body.u16()? as usize;
        let name = body.take(n)?;
        if kind == 0 && out.sni.is_none() && is_host_name(name) {
            out.sni = Some(name);
        }
    }
    Ok(())
}

/// application_layer_protocol_negotiation (RFC 7301): the first protocol offered.
fn alpn<'a>(body: &mut Cursor<'a>, out: &mut Hello<'a>) -> Result<(), Stop> {
    let list = body.u16()? as usize;
    if list != body.remaining() {
        return Err(Stop::Bad);
    }
    let n = body.u8()? as usize;
    if n == 0 {
        return Err(Stop::Bad);
    }
    out.alpn = Some(body.take(n)?);
    Ok(())
}

/// A DNS name as SNI carries it: letters, digits, '-', '_', '.'.
pub(crate) fn is_host_name(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A record header checked as far as it has arrived: `Ok(None)` while it is a valid but
/// incomplete beginning, `Err` as soon as a byte cannot be TLS. `version` is the version the
/// previous records had, which every later record repeats.
fn record_header(h: &[u8], version: Option<u16>) -> Result<Option<(u8, u16, usize)>, Stop> {
    let kind = *h.first().ok_or(Stop::Short)?;
    if !(CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&kind) {
        return Err(Stop::Bad);
    }
    match h.get(1) {
        None => return Ok(None),
        Some(3) => {}
        Some(_) => return Err(Stop::Bad),
    }
    let Some(&minor) = h.get(2) else {
        return Ok(None);
    };
    let v = 0x0300 | minor as u16;
    if !is_tls_version(v) || version.is_some_and(|p| p != v) {
        return Err(Stop::Bad);
    }
    let (Some(&hi), Some(&lo)) = (h.get(3), h.get(4)) else {
        return Ok(None);
    };
    let len = u16::from_be_bytes([hi, lo]) as usize;
    if len == 0 || len > MAX_RECORD {
        return Err(Stop::Bad);
    }
    Ok(Some((kind, v, len)))
}

/// A stream that starts with a handshake record holding a ClientHello or ServerHello.
fn hello_record(data: &[u8], full: bool, ev: &mut Evidence) -> Probe {
    let (version, rec_len) = match record_header(data, None) {
        Err(_) => return Probe::NotMe,
        Ok(None) => return Probe::NotYet,
        Ok(Some((_, v, len))) => (v, len),
    };
    let payload = data.get(RECORD_HEADER..).unwrap_or_default();
    let declared = |b: &[u8]| match (b.get(1), b.get(2), b.get(3)) {
        (Some(&x), Some(&y), Some(&z)) => Some(u32::from_be_bytes([0, x, y, z]) as usize),
        _ => None,
    };
    let result = match declared(payload) {
        // The usual case: the whole message sits in the first record.
        Some(hs_len) if HANDSHAKE_HEADER + hs_len <= rec_len => {
            hello_body(payload.get(..rec_len).unwrap_or(payload), hs_len, ev)
        }
        // The message (or even its header) continues in further records: join them.
        _ => {
            let mut joined = [0u8; STREAM_BYTES];
            match join_handshake(data, version, &mut joined) {
                Ok(n) => match declared(&joined[..n]) {
                    Some(hs_len) => hello_body(&joined[..n], hs_len, ev),
                    None => Err(Stop::Short),
                },
                Err(e) => Err(e),
            }
        }
    };
    let certain = Probe::Match(Proto::Ssl, Confidence::Certain);
    match result {
        Ok(()) if payload.first() == Some(&SERVER_HELLO) => {
            if server_flight(data, version, full, ev) {
                certain
            } else {
                Probe::NotYet
            }
        }
        // No SNI: the server's certificate may still name the server.
        Ok(()) if ev.host.is_empty() && !full => Probe::Match(Proto::Ssl, Confidence::Likely),
        Ok(()) => certain,
        Err(Stop::Short) if full => certain,
        Err(Stop::Short) => Probe::NotYet,
        Err(Stop::Bad) => Probe::NotMe,
    }
}

/// After a ServerHello at the start of `data`: the name in the Certificate that follows it,
/// into `ev.host` unless an SNI is there. True when there is nothing more to learn (the name
/// was found; TLS 1.3, whose certificate is encrypted; a resumed session; another message; the
/// buffer full); false while the Certificate or its name may still arrive.
fn server_flight(data: &[u8], version: u16, full: bool, ev: &mut Evidence) -> bool {
    let mut hs = [0u8; STREAM_BYTES];
    let (n, ended) = handshake_bytes(data, version, &mut hs);
    let hs = &hs[..n];
    let done = ended || full;
    let len_at = |at: usize| -> Option<usize> {
        let b = hs.get(at + 1..at + 4)?;
        Some(u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize)
    };
    let Some(hello_len) = len_at(0) else {
        return done;
    };
    let next = HANDSHAKE_HEADER + hello_len;
    // TLS 1.3 (the ServerHello's supported_versions picks 0x0304): the certificate will be
    // encrypted.
    let tls13 = [0x00, 0x2b, 0x00, 0x02, 0x03, 0x04];
    if hs
        .get(..next)
        .is_some_and(|h| h.windows(6).any(|w| w == tls13))
    {
        return true;
    }
    match hs.get(next) {
        None => return done,
        Some(&CERTIFICATE) => {}
        Some(_) => return true,
    }
    // The Certificate: its header, the list's 3-byte length, then the first (leaf)
    // certificate's 3-byte length and DER.
    let first = next + HANDSHAKE_HEADER + 3;
    let (Some(leaf_len), Some(cert)) = (len_at(first - 1), hs.get(first + 3..)) else {
        return done;
    };
    let leaf = &cert[..cert.len().min(leaf_len)];
    match x509::server_name(leaf) {
        Some(name) => {
            if ev.host.is_empty() {
                ev.host.set(name);
            }
            true
        }
        None => done || leaf.len() >= leaf_len,
    }
}

/// The payloads of the handshake records at the start of `data`, joined into `out`: how many
/// bytes, and whether they end for good (another record type follows, or `out` is full)
/// rather than for want of bytes.
fn handshake_bytes(data: &[u8], version: u16, out: &mut [u8]) -> (usize, bool) {
    let mut off = 0;
    let mut n = 0;
    loop {
        let (kind, len) = match record_header(data.get(off..).unwrap_or_default(), Some(version)) {
            Ok(Some((kind, _, len))) => (kind, len),
            Ok(None) | Err(Stop::Short) => return (n, false),
            Err(Stop::Bad) => return (n, true),
        };
        if kind != HANDSHAKE {
            // ChangeCipherSpec, encrypted application data (TLS 1.3), an alert: no more.
            return (n, true);
        }
        let start = off + RECORD_HEADER;
        let end = (start + len).min(data.len());
        let part = data.get(start..end).unwrap_or_default();
        let k = part.len().min(out.len() - n);
        out[n..n + k].copy_from_slice(&part[..k]);
        n += k;
        if n == out.len() {
            return (n, true);
        }
        if end < start + len {
            return (n, false);
        }
        off = start + len;
    }
}

/// Parses the handshake message at the start of `msg` (header included) whose body declares
/// `hs_len` bytes; fills `ev` unless the hello turned out not to be TLS.
fn hello_body(msg: &[u8], hs_len: usize, ev: &mut Evidence) -> Result<(), Stop> {
    let body = msg.get(HANDSHAKE_HEADER..).unwrap_or_default();
    let mut c = Cursor::new(body, hs_len);
    let mut hello = Hello::default();
    let r = match msg.first() {
        Some(&CLIENT_HELLO) => client_hello(&mut c, false, &mut hello),
        Some(&SERVER_HELLO) => server_hello(&mut c, false),
        _ => Err(Stop::Bad),
    };
    let r = r.and_then(|()| c.complete());
    if r != Err(Stop::Bad) {
        hello.commit(ev);
    }
    r
}

/// Copies the payloads of the leading handshake records into `out`, up to the end of the
/// first handshake message or of `data`. Returns the bytes copied.
fn join_handshake(data: &[u8], version: u16, out: &mut [u8]) -> Result<usize, Stop> {
    let mut off = 0;
    let mut n = 0;
    loop {
        let (kind, len) = match record_header(data.get(off..).unwrap_or_default(), Some(version)) {
            Ok(Some((kind, _, len))) => (kind, len),
            Ok(None) | Err(Stop::Short) => return Ok(n), // the next header has not arrived
            Err(Stop::Bad) => return Err(Stop::Bad),
        };
        if kind != HANDSHAKE {
            return Err(Stop::Bad); // the hello was cut short by another record type
        }
        let start = off + RECORD_HEADER;
        let end = (start + len).min(data.len());
        let part = data.get(start..end).unwrap_or_default();
        let room = out.len() - n;
        let k = part.len().min(room);
        out[n..n + k].copy_from_slice(&part[..k]);
        n += k;
        if end < start + len || k < part.len() {
            return Ok(n);
        }
        if let (Some(&x), Some(&y), Some(&z)) = (out.get(1), out.get(2), out.get(3)) {
            if n >= HANDSHAKE_HEADER + u32::from_be_bytes([0, x, y, z]) as usize {
                return Ok(n);
            }
        }
        off = start + len;
    }
}

/// The SSLv2-compatible ClientHello (RFC 5246 appendix E.2) that old clients open with:
/// a 2-byte length with the top bit set, type 1, version, then three lengths that must add up.
fn sslv2_hello(data: &[u8], full: bool) -> Probe {
    let at = |i: usize| data.get(i).copied();
    let be = |i: usize| Some(u16::from_be_bytes([at(i)?, at(i + 1)?]) as usize);
    let Some(len) = be(0).map(|l| l & 0x7fff) else {
        return Probe::NotYet;
    };
    // Smallest hello: 9 bytes of fixed fields, one 3-byte cipher spec, a 16-byte challenge.
    if !(9 + 3 + 16..=2048).contains(&len) {
        return Probe::NotMe;
    }
    let checks = [
        at(2).map(|t| t == 1),
        at(3).map(|v| v == 0 || v == 3),
        be(3).map(|v| v == 0x0002 || (0x0300..=0x0303).contains(&v)),
        be(5).map(|n| n > 0 && n % 3 == 0),
        be(7).map(|n| n == 0 || n == 16),
        be(9).map(|n| (16..=32).contains(&n)),
    ];
    for c in checks {
        match c {
            Some(true) => {}
            Some(false) => return Probe::NotMe,
            None => return Probe::NotYet,
        }
    }
    let (Some(suites), Some(sid), Some(challenge)) = (be(5), be(7), be(9)) else {
        return Probe::NotYet;
    };
    if 9 + suites + sid + challenge != len {
        return Probe::NotMe;
    }
    if data.len() >= 2 + len || full {
        Probe::Match(Proto::Ssl, Confidence::Certain)
    } else {
        Probe::NotYet
    }
}

/// A stream that does not open with a hello: a connection already under way. Two complete,
/// chained records of one version are `Likely` ssl (one if it fills the whole buffer).
fn record_chain(data: &[u8], full: bool) -> Probe {
    let mut off = 0;
    let mut version = None;
    let mut complete = 0;
    while off < data.len() {
        match record_header(&data[off..], version) {
            Err(_) => return Probe::NotMe,
            Ok(None) => break,
            Ok(Some((_, v, len))) => {
                version = Some(v);
                off += RECORD_HEADER + len;
                if off > data.len() {
                    break;
                }
                complete += 1;
            }
        }
    }
    if complete >= 2 || (full && version.is_some()) {
        Probe::Match(Proto::Ssl, Confidence::Likely)
    } else {
        Probe::NotYet
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, find, replay_file, truth, Feed};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    fn probe(data: &[u8]) -> (Probe, Evidence) {
        let mut ev = Evidence::default();
        let p = Tls.probe(
            data,
            &ctx(Transport::Tcp, Dir::Orig, 50000, 443),
            &mut [0; 16],
            &mut ev,
        );
        (p, ev)
    }

    const CERTAIN: Probe = Probe::Match(Proto::Ssl, Confidence::Certain);

    /// A ClientHello record with the given extensions (type, body).
    fn client_hello_record(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([0x11; 32]);
        body.push(0);
        body.extend([0x00, 0x04, 0x13, 0x01, 0x13, 0x02, 0x01, 0x00]);
        let mut e = Vec::new();
        for (t, b) in exts {
            e.extend(t.to_be_bytes());
            e.extend((b.len() as u16).to_be_bytes());
            e.extend(b);
        }
        body.extend((e.len() as u16).to_be_bytes());
        body.extend(e);
        let mut hs = vec![CLIENT_HELLO, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![HANDSHAKE, 3, 1, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend(hs);
        rec
    }

    fn sni_ext(host: &str) -> (u16, Vec<u8>) {
        let mut b = ((host.len() + 3) as u16).to_be_bytes().to_vec();
        b.push(0);
        b.extend((host.len() as u16).to_be_bytes());
        b.extend(host.as_bytes());
        (EXT_SERVER_NAME, b)
    }

    fn alpn_ext(protos: &[&str]) -> (u16, Vec<u8>) {
        let mut l = Vec::new();
        for p in protos {
            l.push(p.len() as u8);
            l.extend(p.as_bytes());
        }
        let mut b = (l.len() as u16).to_be_bytes().to_vec();
        b.extend(l);
        (EXT_ALPN, b)
    }

    #[test]
    fn client_hello_gives_sni_and_first_alpn() {
        let rec = client_hello_record(&[
            sni_ext("init.ess.apple.com"),
            alpn_ext(&["h2", "http/1.1"]),
            (EXT_SUPPORTED_VERSIONS, vec![4, 0x03, 0x04, 0x03, 0x03]),
        ]);
        let (p, ev) = probe(&rec);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "init.ess.apple.com");
        assert_eq!(ev.alpn.as_str(), "h2");
    }

    #[test]
    fn client_hello_cut_at_every_offset_is_not_yet_until_complete() {
        for file in [
            "ndpi/tls_esni_sni_both.pcap",
            "mix/trex_sfr/delay_10_https_0.pcap",
            "ndpi/iphone.pcap",
        ] {
            let hello = testkit::first_payload(file, &[0x16, 0x03]);
            let total = 5 + u16::from_be_bytes([hello[3], hello[4]]) as usize;
            assert!(hello.len() >= total, "{file}: the hello is in one segment");
            for cut in 0..total {
                assert_eq!(
                    probe(&hello[..cut]).0,
                    Probe::NotYet,
                    "{file}: cut at {cut}"
                );
            }
            // A hello without SNI is Likely: the server's certificate may name the server.
            let (p, ev) = probe(&hello[..total]);
            let want = if ev.host.is_empty() {
                Probe::Match(Proto::Ssl, Confidence::Likely)
            } else {
                CERTAIN
            };
            assert_eq!(p, want, "{file}");
        }
    }

    /// A server seen alone (tls_1.2_unidirectional_server.pcapng): its certificate, in clear
    /// in TLS 1.2, names the server as nDPI reads it (the first of its ServerNames); and a
    /// client's hello without SNI (TRex's HTTPS) waits for the server's certificate.
    #[test]
    fn the_server_certificate_names_the_server_when_no_sni_did() {
        let runs = testkit::replay_file(
            "ndpi/tls_1.2_unidirectional_server.pcapng",
            &Tls,
            testkit::Feed::ENGINE,
        );
        let run = runs.iter().find(|r| r.proto() == Some(Proto::Ssl)).unwrap();
        assert_eq!(run.answer(), Some((Proto::Ssl, Confidence::Certain)));
        assert_eq!(run.ev.host.as_str(), "upload.video.google.com");
        let runs = testkit::replay_file(
            "mix/trex_sfr/delay_10_https_0.pcap",
            &Tls,
            testkit::Feed::ENGINE,
        );
        let named: Vec<&str> = runs
            .iter()
            .map(|r| r.ev.host.as_str())
            .filter(|h| !h.is_empty())
            .collect();
        assert!(!named.is_empty(), "no certificate name in TRex's HTTPS");
        assert!(runs
            .iter()
            .all(|r| r.answer() == Some((Proto::Ssl, Confidence::Certain))));
    }

    #[test]
    fn a_hello_larger_than_the_buffer_is_decided_on_its_prefix() {
        let big = "a".repeat(200);
        let mut exts = vec![sni_ext("push.apple.com")];
        for i in 0..12u16 {
            exts.push((0xff00 + i, big.clone().into_bytes()));
        }
        let rec = client_hello_record(&exts);
        assert!(rec.len() > STREAM_BYTES);
        assert_eq!(probe(&rec[..STREAM_BYTES - 1]).0, Probe::NotYet);
        let (p, ev) = probe(&rec[..STREAM_BYTES]);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "push.apple.com");
    }

    #[test]
    fn a_hello_split_over_two_records_is_joined() {
        let rec = client_hello_record(&[sni_ext("gateway.icloud.com")]);
        let hs = &rec[5..];
        let (a, b) = hs.split_at(30);
        let mut two = vec![HANDSHAKE, 3, 1, 0, a.len() as u8];
        two.extend(a);
        two.extend([HANDSHAKE, 3, 1, (b.len() >> 8) as u8, b.len() as u8]);
        two.extend(b);
        for cut in 0..two.len() {
            assert_eq!(probe(&two[..cut]).0, Probe::NotYet, "cut at {cut}");
        }
        let (p, ev) = probe(&two);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "gateway.icloud.com");
        // Another record type in the middle of the hello is not TLS.
        let mut bad = two.clone();
        bad[5 + a.len()] = 23;
        assert_eq!(probe(&bad).0, Probe::NotMe);
        // The SNI in the first record is evidence already, while the rest is awaited.
        let rec = client_hello_record(&[sni_ext("gateway.icloud.com"), alpn_ext(&["h2"])]);
        let (a, b) = rec[5..].split_at(4 + 45 + 27);
        let mut two = vec![HANDSHAKE, 3, 1, 0, a.len() as u8];
        two.extend(a);
        let (p, ev) = probe(&two);
        assert_eq!((p, ev.host.as_str()), (Probe::NotYet, "gateway.icloud.com"));
        two.extend([HANDSHAKE, 3, 1, 0, b.len() as u8]);
        two.extend(b);
        let (p, ev) = probe(&two);
        assert_eq!((p, ev.alpn.as_str()), (CERTAIN, "h2"));
    }

    #[test]
    fn inconsistent_hellos_are_not_tls() {
        let good = client_hello_record(&[sni_ext("example.com")]);
        let mut bad_version = good.clone();
        bad_version[9] = 0x07; // client_version 0x0307
        let mut bad_record = good.clone();
        bad_record[2] = 9; // record version 0x0309
        let mut ext_len = good.clone();
        let n = good.len();
        ext_len.push(0); // extensions no longer fill the hello
        ext_len[4] += 1;
        ext_len[8] += 1;
        let mut sid = good.clone();
        sid[5 + 4 + 2 + 32] = 33; // session id longer than 32
        for (what, m) in [
            ("version", &bad_version),
            ("record", &bad_record),
            ("ext", &ext_len),
            ("sid", &sid),
        ] {
            assert_eq!(probe(m).0, Probe::NotMe, "{what} ({n} bytes)");
        }
    }

    #[test]
    fn server_hello_first_is_ssl() {
        let mut body = vec![0x03, 0x03];
        body.extend([7; 32]);
        body.push(0);
        body.extend([0x13, 0x01, 0x00]);
        body.extend([0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]);
        let mut rec = vec![
            HANDSHAKE,
            3,
            3,
            0,
            (body.len() + 4) as u8,
            SERVER_HELLO,
            0,
            0,
            body.len() as u8,
        ];
        rec.extend(body);
        let mut ev = Evidence::default();
        let c = ctx(Transport::Tcp, Dir::Reply, 50000, 443);
        assert_eq!(Tls.probe(&rec, &c, &mut [0; 16], &mut ev), CERTAIN);
        assert!(ev.host.is_empty());
    }

    #[test]
    fn sslv2_compatible_hello() {
        // From google_ssl.pcap: an SSLv2 CLIENT-HELLO offering TLS 1.0.
        let hello = testkit::first_payload("ndpi/google_ssl.pcap", &[0x80, 0x7c, 0x01]);
        for cut in 0..hello.len() {
            assert_eq!(probe(&hello[..cut]).0, Probe::NotYet, "cut at {cut}");
        }
        assert_eq!(probe(&hello).0, CERTAIN);
        let mut bad = hello.clone();
        bad[10] = 40; // challenge length no longer adds up
        assert_eq!(probe(&bad).0, Probe::NotMe);
    }

    #[test]
    fn mid_stream_records_are_likely() {
        let mut s = vec![23, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3, 0, 2, 9, 9];
        assert_eq!(probe(&s[..10]).0, Probe::NotYet);
        assert_eq!(probe(&s).0, Probe::Match(Proto::Ssl, Confidence::Likely));
        s[10] = 1; // the second record changes version
        assert_eq!(probe(&s).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_tls() {
        let sip = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1\r\n\r\n";
        let stun = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        let dns = [
            0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 7, b'e', b'x',
        ];
        let http = b"GET / HTTP/1.1\r\n";
        let ssh = b"SSH-2.0-OpenSSH_9.6\r\n";
        let dtls = [22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10];
        for m in [&sip[..], &stun, &dns, http, ssh, &dtls] {
            assert_eq!(probe(m).0, Probe::NotMe, "{m:02x?}");
        }
        let mut ev = Evidence::default();
        let udp = ctx(Transport::Udp, Dir::Orig, 5000, 443);
        let hello = client_hello_record(&[]);
        assert_eq!(Tls.probe(&hello, &udp, &mut [0; 16], &mut ev), Probe::NotMe);
    }

    #[test]
    fn corpus_tls_flows_are_ssl_with_ndpi_sni() {
        // (capture, TLS flows nDPI recognised from their payload)
        for (file, want) in [
            ("ndpi/tls_esni_sni_both.pcap", 2),
            ("ndpi/iphone.pcap", 14),
            ("ndpi/1kxun.pcap", 6),
            ("ndpi/http_connect.pcap", 1),
        ] {
            let runs = replay_file(file, &Tls, Feed::budget(8));
            let mut tls = 0;
            for t in truth(file) {
                let run = find(&runs, &t).unwrap_or_else(|| panic!("{file}: {t:?} not replayed"));
                if run.payloads == [0, 0] || t.guessed {
                    continue; // nDPI went by the port
                }
                if t.label.starts_with("TLS") {
                    tls += 1;
                    match &t.host {
                        Some(h) => {
                            assert_eq!(run.verdict, CERTAIN, "{file}: {t:?}");
                            assert_eq!(run.ev.host.as_str(), h, "{file}: {t:?}");
                        }
                        // Picked up mid-connection: application data records only.
                        None => assert_eq!(run.proto(), Some(Proto::Ssl), "{file}: {t:?}"),
                    }
                } else {
                    assert_eq!(run.proto(), None, "{file}: {t:?} must not be ssl");
                }
            }
            assert_eq!(tls, want, "{file}");
        }
    }

    #[test]
    fn google_ssl_sslv2_hello_flow_is_ssl() {
        // nDPI only guessed this flow by its port: its client opens with an SSLv2 hello.
        let runs = replay_file("ndpi/google_ssl.pcap", &Tls, Feed::budget(8));
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].verdict, CERTAIN);
    }

    #[test]
    fn trex_https_is_ssl_and_other_mixes_are_not() {
        let runs = replay_file("mix/trex_sfr/delay_10_https_0.pcap", &Tls, Feed::budget(8));
        assert!(runs.iter().any(|r| r.verdict == CERTAIN));
        for f in [
            "mix/trex_sfr/delay_10_http_get_0.pcap",
            "mix/trex_sfr/delay_10_mail_pop_0.pcap",
            "mix/trex_sfr/delay_10_smtp_0.pcap",
            "mix/trex_sfr/delay_10_sip_video_call_full.pcap",
            "mix/trex_sfr/delay_10_citrix_0.pcap",
            "mix/trex_sfr/delay_10_oracle_0.pcap",
            "mix/trex_sfr/delay_10_exchange_0.pcap",
            "ndpi/jabber.pcap",
            "ndpi/sip.pcap",
            "ndpi/stun.pcap",
            "ndpi/dns.pcap",
        ] {
            for r in replay_file(f, &Tls, Feed::budget(8)) {
                assert_eq!(r.proto(), None, "{f}: {r:?}");
            }
        }
    }

    #[test]
    fn the_xmpp_starttls_flow_is_not_ssl_from_its_first_bytes() {
        // The stream opens in clear XML; TLS starts later. The flow is jabber's to name.
        for r in replay_file("mix/zeek_tls_xmpp-starttls.pcap", &Tls, Feed::budget(8)) {
            assert_eq!(r.verdict, Probe::NotMe, "{r:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2100), scratch in any::<[u8; 16]>(), reply in any::<bool>()) {
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let mut s = scratch;
            let _ = Tls.probe(&data, &ctx(Transport::Tcp, dir, 1, 443), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_mutated_hellos(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
            let mut rec = client_hello_record(&[sni_ext("a.example"), alpn_ext(&["h2"])]);
            if let Some(b) = rec.get_mut(pos) { *b = byte; }
            rec.truncate(cut.max(1));
            let _ = probe(&rec);
        }
    }
}
