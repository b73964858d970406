//! XMPP (jabber) over TCP, recognised from the clear-text stream before any STARTTLS:
//! an optional `<?xml ...?>` declaration, then the `<stream:stream ...>` header of a client,
//! server or component stream (RFC 6120 4.2, XEP-0114), in either direction and with
//! attributes in any order and either quote. The client's `to` (or, seen from the server,
//! its `from`) is the service domain and goes into `ev.host`.
//!
//! A flow picked up mid-stream is XMPP when its first element is one an XMPP stream carries
//! at top level (`<iq`, `<presence`, `<message`, `<starttls`, `<stream:features`, ...) and the
//! text names an XMPP namespace; a lone `</stream:stream>` is `Likely`. Never allocates,
//! never panics (every read is `get`/slice-checked); keeps no per-flow state.
use super::tls::is_host_name;
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Xmpp;

const XML_DECL: &[u8] = b"<?xml";
const STREAM_OPEN: &[u8] = b"<stream:stream";
const STREAM_CLOSE: &[u8] = b"</stream:stream>";
const STREAMS_NS: &[u8] = b"http://etherx.jabber.org/streams";
/// Content namespaces of client, server and component streams.
const STREAM_CONTENT_NS: &[&[u8]] = &[
    b"jabber:client",
    b"jabber:server",
    b"jabber:component:accept",
    b"jabber:component:connect",
];
/// Namespace prefixes nothing but XMPP uses.
const XMPP_NS: &[&[u8]] = &[
    b"jabber:",
    b"http://jabber.org/",
    b"urn:xmpp:",
    b"urn:ietf:params:xml:ns:xmpp",
    STREAMS_NS,
];
/// Top-level elements of a stream (RFC 6120, XEP-0198 stream management, XEP-0138).
const TOP_LEVEL: &[&[u8]] = &[
    b"iq",
    b"presence",
    b"message",
    b"stream:features",
    b"stream:error",
    b"starttls",
    b"proceed",
    b"auth",
    b"challenge",
    b"response",
    b"success",
    b"failure",
    b"enable",
    b"enabled",
    b"resume",
    b"resumed",
    b"r",
    b"a",
    b"compress",
    b"compressed",
];
/// A declaration or start tag longer than this without its `>` is not XMPP.
const MAX_TAG: usize = 1024;

impl Decoder for Xmpp {
    fn name(&self) -> &'static str {
        "xmpp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[5222, 5269, 5223]
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
        let full = data.len() >= STREAM_BYTES;
        let s = skip_space(data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data));
        match opens_with(s, XML_DECL) {
            Opens::Yes => declaration(s, full, ctx, ev),
            Opens::Maybe => Probe::NotYet,
            Opens::No => match (opens_with(s, STREAM_OPEN), opens_with(s, STREAM_CLOSE)) {
                (Opens::Yes, _) => stream_header(s, full, ctx, ev),
                (Opens::Maybe, _) | (_, Opens::Maybe) => Probe::NotYet,
                (_, Opens::Yes) => Probe::Match(Proto::Jabber, Confidence::Likely),
                _ => mid_stream(s, full, ctx, ev),
            },
        }
    }
}

#[derive(PartialEq, Eq)]
enum Opens {
    Yes,
    /// `s` is a proper prefix of the pattern (or empty): more bytes may make it `Yes`.
    Maybe,
    No,
}

fn opens_with(s: &[u8], pat: &[u8]) -> Opens {
    if s.starts_with(pat) {
        Opens::Yes
    } else if pat.starts_with(s) {
        Opens::Maybe
    } else {
        Opens::No
    }
}

fn skip_space(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(s.len());
    &s[n..]
}

/// XML text: no control characters but tab, CR and LF.
fn is_text(s: &[u8]) -> bool {
    s.iter()
        .all(|&c| c >= 0x20 || matches!(c, b'\t' | b'\r' | b'\n'))
}

/// Where the tag starting at `s[0]` ends (its `>`), quotes respected.
fn tag_end(s: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &c) in s.iter().enumerate() {
        match (quote, c) {
            (None, b'\'' | b'"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// A tag that has not ended yet: `NotYet` while it could still be one, else `NotMe`.
fn unfinished(s: &[u8], full: bool) -> Probe {
    if full || s.len() > MAX_TAG || !is_text(s) {
        Probe::NotMe
    } else {
        Probe::NotYet
    }
}

/// `<?xml ...?>`, which must be followed by a stream header.
fn declaration(s: &[u8], full: bool, ctx: &FlowCtx, ev: &mut Evidence) -> Probe {
    let Some(end) = s.windows(2).position(|w| w == b"?>") else {
        return unfinished(s, full);
    };
    let inside = s.get(1..end).unwrap_or_default();
    if end > MAX_TAG || !is_text(inside) || inside.contains(&b'<') {
        return Probe::NotMe;
    }
    let rest = skip_space(&s[end + 2..]);
    match opens_with(rest, STREAM_OPEN) {
        Opens::Yes => stream_header(rest, full, ctx, ev),
        Opens::Maybe if !full => Probe::NotYet,
        _ => Probe::NotMe,
    }
}

/// `<stream:stream ...>`: XMPP when it declares a stream content namespace or the streams
/// namespace.
fn stream_header(s: &[u8], full: bool, ctx: &FlowCtx, ev: &mut Evidence) -> Probe {
    let after = &s[STREAM_OPEN.len()..];
    match after.first() {
        None => return Probe::NotYet,
        Some(c) if c.is_ascii_whitespace() || *c == b'>' => {}
        Some(_) => return Probe::NotMe, // e.g. `<stream:streamer`
    }
    let Some(end) = tag_end(after) else {
        return unfinished(after, full);
    };
    let tag = &after[..end];
    if !is_text(tag) {
        return Probe::NotMe;
    }
    let mut xmpp = false;
    let (mut to, mut from) = (None, None);
    let well_formed = attributes(tag, |name, value| match name {
        b"xmlns" => xmpp |= STREAM_CONTENT_NS.contains(&value),
        b"xmlns:stream" => xmpp |= value == STREAMS_NS,
        b"to" => to = Some(value),
        b"from" => from = Some(value),
        _ => {}
    });
    if !well_formed || !xmpp {
        return Probe::NotMe;
    }
    set_host(ev, ctx, to, from);
    Probe::Match(Proto::Jabber, Confidence::Certain)
}

/// A stream seen from its middle: a top-level XMPP element, and an XMPP namespace in sight.
fn mid_stream(s: &[u8], full: bool, ctx: &FlowCtx, ev: &mut Evidence) -> Probe {
    let Some(body) = s.strip_prefix(b"<") else {
        return Probe::NotMe;
    };
    let name_len = body
        .iter()
        .position(|c| c.is_ascii_whitespace() || matches!(c, b'>' | b'/'));
    let Some(name_len) = name_len else {
        // The name is still arriving.
        return if TOP_LEVEL.iter().any(|n| n.starts_with(body)) && !full {
            Probe::NotYet
        } else {
            Probe::NotMe
        };
    };
    if !TOP_LEVEL.contains(&&body[..name_len]) {
        return Probe::NotMe;
    }
    let Some(end) = tag_end(body) else {
        return unfinished(body, full);
    };
    let tag = body.get(name_len..end).unwrap_or_default();
    let (mut to, mut from) = (None, None);
    let well_formed = is_text(tag)
        && attributes(
            tag.strip_suffix(b"/").unwrap_or(tag),
            |name, value| match name {
                b"to" => to = Some(value),
                b"from" => from = Some(value),
                _ => {}
            },
        );
    if !well_formed {
        return Probe::NotMe;
    }
    let text_len = s
        .iter()
        .position(|&c| c < 0x20 && !matches!(c, b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len());
    let text = &s[..text_len];
    if XMPP_NS
        .iter()
        .any(|ns| text.windows(ns.len()).any(|w| w == *ns))
    {
        set_host(ev, ctx, to, from);
        Probe::Match(Proto::Jabber, Confidence::Certain)
    } else if full || text_len < s.len() {
        Probe::NotMe
    } else {
        Probe::NotYet
    }
}

/// Calls `f` with each `name='value'` (or `"value"`) of a start tag's attribute list; false
/// if the list is not well-formed.
fn attributes<'a>(tag: &'a [u8], mut f: impl FnMut(&'a [u8], &'a [u8])) -> bool {
    let mut rest = tag;
    loop {
        rest = skip_space(rest);
        if rest.is_empty() {
            return true;
        }
        let Some(eq) = rest.iter().position(|&c| c == b'=') else {
            return false;
        };
        let name = super::util::trim(&rest[..eq]);
        if name.is_empty()
            || name
                .iter()
                .any(|c| c.is_ascii_whitespace() || matches!(c, b'\'' | b'"' | b'<'))
        {
            return false;
        }
        let after = skip_space(&rest[eq + 1..]);
        let Some(&q) = after.first().filter(|&&q| q == b'\'' || q == b'"') else {
            return false;
        };
        let Some(close) = after[1..].iter().position(|&c| c == q) else {
            return false;
        };
        f(name, &after[1..1 + close]);
        rest = &after[close + 2..];
    }
}

/// The service domain: the `to` the client names, or the `from` the server answers with.
fn set_host(ev: &mut Evidence, ctx: &FlowCtx, to: Option<&[u8]>, from: Option<&[u8]>) {
    let v = match ctx.dir {
        Dir::Orig => to,
        Dir::Reply => from,
    };
    if let Some(d) = v.map(jid_domain).filter(|d| is_host_name(d)) {
        ev.host.set(d);
    }
}

/// The domain part of a JID (`local@domain/resource`, RFC 7622).
fn jid_domain(jid: &[u8]) -> &[u8] {
    let bare = jid.split(|&c| c == b'/').next().unwrap_or(jid);
    match bare.iter().rposition(|&c| c == b'@') {
        Some(at) => &bare[at + 1..],
        None => bare,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, find, replay_file, truth, Feed};
    use super::*;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Jabber, Confidence::Certain);

    fn probe_dir(data: &[u8], dir: Dir) -> (Probe, Evidence) {
        let mut ev = Evidence::default();
        let p = Xmpp.probe(
            data,
            &ctx(Transport::Tcp, dir, 56048, 5222),
            &mut [0; 16],
            &mut ev,
        );
        (p, ev)
    }

    fn probe(data: &[u8]) -> (Probe, Evidence) {
        probe_dir(data, Dir::Orig)
    }

    // From zeek_tls_xmpp-starttls.pcap (client, then server).
    const CLIENT: &[u8] = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:client' to='jabber.ccc.de' version='1.0'>";
    const SERVER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='3449578488' from='jabber.ccc.de' version='1.0' xml:lang='en'>";

    #[test]
    fn client_and_server_stream_headers() {
        let (p, ev) = probe(CLIENT);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "jabber.ccc.de");
        let (p, ev) = probe_dir(SERVER, Dir::Reply);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "jabber.ccc.de");
    }

    #[test]
    fn attributes_in_any_order_and_either_quote() {
        let s = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<stream:stream version=\"1.0\" to=\"im.example.com\" xmlns=\"jabber:server\" xmlns:stream=\"http://etherx.jabber.org/streams\">";
        let (p, ev) = probe(s);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "im.example.com");
        let s = b"<stream:stream\n  to='component.example.com'\n  xmlns='jabber:component:accept'>";
        assert_eq!(probe(s).0, CERTAIN);
    }

    #[test]
    fn a_stream_header_cut_at_every_offset_is_not_yet_until_complete() {
        for m in [CLIENT, SERVER] {
            for cut in 0..m.len() {
                assert_eq!(
                    probe(&m[..cut]).0,
                    Probe::NotYet,
                    "cut at {cut}: {:?}",
                    String::from_utf8_lossy(&m[..cut])
                );
            }
            assert_eq!(probe(m).0, CERTAIN);
        }
        // The declaration alone (jabber.pcap's clients send it as a segment of its own).
        assert_eq!(probe(b"<?xml version='1.0' ?>").0, Probe::NotYet);
    }

    #[test]
    fn starttls_and_mid_stream_stanzas() {
        let s = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        assert_eq!(probe(s).0, CERTAIN);
        let s = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        assert_eq!(probe_dir(s, Dir::Reply).0, CERTAIN);
        // jabber.pcap, a flow seen from its middle.
        let s = b"<iq type='set' id='purpledde80fda' to='cs-xmpp.lan'><command xmlns='http://jabber.org/protocol/commands' node='ping' action='execute'/></iq>";
        let (p, ev) = probe(s);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "cs-xmpp.lan");
        let s = b"<presence to='chat@conference.cs-xmpp.lan/tom'><c xmlns='http://jabber.org/protocol/caps'/></presence>";
        assert_eq!(probe(s).1.host.as_str(), "conference.cs-xmpp.lan");
        assert_eq!(
            probe(b"<message to='a@b'><body>hi</body></message>").0,
            Probe::NotYet
        );
        assert_eq!(
            probe(b"</stream:stream>").0,
            Probe::Match(Proto::Jabber, Confidence::Likely)
        );
        assert_eq!(probe(b"</stream:str").0, Probe::NotYet);
    }

    #[test]
    fn other_xml_and_other_protocols_are_not_xmpp() {
        for m in [
            &b"<?xml version='1.0'?><methodCall><methodName>x</methodName></methodCall>"[..],
            b"<stream:stream xmlns='urn:example:other'>",
            b"<stream:streamer xmlns='jabber:client'>",
            b"<html><head><title>x</title></head></html>",
            b"<policy-file-request/>\0",
            b"<iq type='get'\x01>",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"INVITE sip:bob@example.com SIP/2.0\r\n",
            b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
            &[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42],
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00],
        ] {
            assert_eq!(probe(m).0, Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let mut ev = Evidence::default();
        let udp = ctx(Transport::Udp, Dir::Orig, 1, 5222);
        assert_eq!(
            Xmpp.probe(CLIENT, &udp, &mut [0; 16], &mut ev),
            Probe::NotMe
        );
    }

    #[test]
    fn corpus_jabber_flows() {
        let runs = replay_file("ndpi/jabber.pcap", &Xmpp, Feed::budget(8));
        let mut found = 0;
        let mut binary_5223 = 0;
        for t in truth("ndpi/jabber.pcap") {
            let run = find(&runs, &t).expect("replayed");
            assert_eq!(t.label, "Jabber");
            if t.server.1 == 5223 {
                // A binary protocol on XMPP's legacy-TLS port: nothing in it says XMPP.
                binary_5223 += 1;
                assert_eq!(run.verdict, Probe::NotMe, "{t:?}");
                continue;
            }
            assert!(
                matches!(run.verdict, Probe::Match(Proto::Jabber, _)),
                "{t:?} -> {:?}",
                run.verdict
            );
            found += 1;
        }
        assert_eq!((found, binary_5223), (7, 5));
        let runs = replay_file("mix/zeek_tls_xmpp-starttls.pcap", &Xmpp, Feed::budget(8));
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].verdict, CERTAIN);
        assert_eq!(runs[0].ev.host.as_str(), "jabber.ccc.de");
    }

    #[test]
    fn other_captures_have_no_xmpp() {
        for f in [
            "ndpi/1kxun.pcap",
            "ndpi/iphone.pcap",
            "ndpi/http_connect.pcap",
            "ndpi/google_ssl.pcap",
            "ndpi/sip.pcap",
            "sip-calls/sipnab_sip-over-tcp.pcap",
            "mix/trex_sfr/delay_10_http_browsing_0.pcap",
            "mix/trex_sfr/delay_10_exchange_0.pcap",
            "mix/trex_sfr/delay_10_smtp_0.pcap",
        ] {
            for r in replay_file(f, &Xmpp, Feed::budget(8)) {
                assert_eq!(r.proto(), None, "{f}: {r:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2100), scratch in any::<[u8; 16]>(), reply in any::<bool>()) {
            let mut s = scratch;
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let _ = Xmpp.probe(&data, &ctx(Transport::Tcp, dir, 1, 5222), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_xml_like_text(s in "[<>?/='\" a-z:.@]{0,200}") {
            let _ = probe(s.as_bytes());
            let _ = probe(format!("<stream:stream {s}").as_bytes());
            let _ = probe(format!("<iq {s}").as_bytes());
        }
    }
}
