//! HTTP/1.x over TCP, on any port: a request line (`METHOD target HTTP/1.0|1.1`) or a status
//! line (`HTTP/1.x NNN`) at the start of a direction's stream is web-browsing (`Proto::Http`);
//! a `CONNECT host:port` request or a request with an absolute-form target
//! (`GET http://host/...`) is a proxy flow (`Proto::HttpProxy`). A request is decided once its
//! header block has arrived (or the stream buffer is full), so that the Host (without port;
//! for a proxy, the target's host) and the User-Agent are in the evidence. The HTTP/2
//! prior-knowledge preface (`PRI * HTTP/2.0`) is web-browsing too.
//!
//! UDP is never HTTP here (SSDP, `M-SEARCH * HTTP/1.1` over UDP, is another decoder's).
//! Never allocates, never panics; keeps no per-flow state.
use super::util::{header_value, trim};
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Http;

/// Request methods: RFC 9110, WebDAV (RFC 4918, 3253, 5323, 4791), UPnP eventing (GENA),
/// common cache extensions, and the HTTP/2 preface's `PRI`.
const METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"TRACE",
    b"CONNECT",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"MERGE",
    b"MKCALENDAR",
    b"ACL",
    b"NOTIFY",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PURGE",
    b"LINK",
    b"UNLINK",
    b"PRI",
];
const VERSIONS: &[&[u8]] = &[b"HTTP/1.1", b"HTTP/1.0"];
const PREFACE_VERSION: &[u8] = b"HTTP/2.0";

impl Decoder for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[80, 8080, 8000, 3128]
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
        // Servers ignore empty lines before a request line (RFC 9112 2.2).
        let start = data
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .unwrap_or(data.len());
        let s = &data[start..];
        if s.is_empty() {
            return if full { Probe::NotMe } else { Probe::NotYet };
        }
        if s.starts_with(b"HTTP/") || b"HTTP/".starts_with(s) {
            status_line(s)
        } else {
            request(s, full, ev)
        }
    }
}

/// `HTTP/1.x NNN` followed by a space or the end of the line.
fn status_line(s: &[u8]) -> Probe {
    let checks: [fn(u8) -> bool; 13] = [
        |c| c == b'H',
        |c| c == b'T',
        |c| c == b'T',
        |c| c == b'P',
        |c| c == b'/',
        |c| c == b'1',
        |c| c == b'.',
        |c| c == b'0' || c == b'1',
        |c| c == b' ',
        |c| (b'1'..=b'5').contains(&c),
        |c| c.is_ascii_digit(),
        |c| c.is_ascii_digit(),
        |c| matches!(c, b' ' | b'\r' | b'\n'),
    ];
    for (i, ok) in checks.iter().enumerate() {
        match s.get(i) {
            None => return Probe::NotYet,
            Some(&c) if !ok(c) => return Probe::NotMe,
            Some(_) => {}
        }
    }
    Probe::Match(Proto::Http, Confidence::Certain)
}

/// A request: the request line checked as far as it has arrived, then its header block.
fn request(s: &[u8], full: bool, ev: &mut Evidence) -> Probe {
    let line_end = s.iter().position(|&c| c == b'\n');
    let line = &s[..line_end.unwrap_or(s.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let more = line_end.is_none() && !full; // the line may still grow
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next().unwrap_or_default();
    let (Some(target), version) = (parts.next(), parts.next()) else {
        // No space yet: the method is still arriving.
        return if more && METHODS.iter().any(|m| m.starts_with(method)) {
            Probe::NotYet
        } else {
            Probe::NotMe
        };
    };
    if !METHODS.contains(&method) || target.iter().any(|&c| c < 0x21 || c == 0x7f) {
        return Probe::NotMe;
    }
    let preface = method == b"PRI";
    let Some(version) = version else {
        // The target is still arriving; a request line longer than the buffer is HTTP's.
        return match (more, full && !target.is_empty()) {
            (true, _) => Probe::NotYet,
            (false, true) => decide(s, method, target, ev),
            (false, false) => Probe::NotMe,
        };
    };
    if target.is_empty() {
        return Probe::NotMe;
    }
    let versions: &[&[u8]] = if preface {
        &[PREFACE_VERSION]
    } else {
        VERSIONS
    };
    if line_end.is_none() {
        return match (versions.iter().any(|v| v.starts_with(version)), full) {
            (true, false) => Probe::NotYet,
            (true, true) => decide(s, method, target, ev),
            (false, _) => Probe::NotMe,
        };
    }
    if !versions.contains(&version) {
        return Probe::NotMe;
    }
    // The request line is complete; wait for the header block unless the buffer is full.
    let rest = &s[line_end.unwrap_or(s.len())..];
    let headers_done =
        rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n");
    if !headers_done && !full {
        return Probe::NotYet;
    }
    decide(s, method, target, ev)
}

/// The request line is HTTP's: proxy or not, and the evidence.
fn decide(s: &[u8], method: &[u8], target: &[u8], ev: &mut Evidence) -> Probe {
    let host_header = header_value(s, b"host", None).map(strip_port);
    if let Some(ua) = header_value(s, b"user-agent", None).filter(|v| !v.is_empty()) {
        ev.user_agent.set(ua);
    }
    let (proto, host) = if method == b"CONNECT" {
        (Proto::HttpProxy, Some(strip_port(target)))
    } else if let Some(authority) = absolute_form(target) {
        (
            Proto::HttpProxy,
            Some(authority).filter(|a| !a.is_empty()).or(host_header),
        )
    } else {
        (Proto::Http, host_header)
    };
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        ev.host.set(h);
    }
    Probe::Match(proto, Confidence::Certain)
}

/// The host of an absolute-form target (`scheme://[user@]host[:port]/...`), if it is one.
fn absolute_form(target: &[u8]) -> Option<&[u8]> {
    let sep = target.windows(3).position(|w| w == b"://")?;
    let scheme = &target[..sep];
    if scheme.is_empty()
        || !scheme
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    {
        return None;
    }
    let rest = &target[sep + 3..];
    let end = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = match authority.iter().rposition(|&c| c == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    Some(strip_port(host_port))
}

/// `host:port` -> `host`; `[v6]:port` -> `v6`.
fn strip_port(v: &[u8]) -> &[u8] {
    let v = trim(v);
    if let Some(inner) = v.strip_prefix(b"[") {
        let end = inner.iter().position(|&c| c == b']').unwrap_or(inner.len());
        return &inner[..end];
    }
    match v.iter().position(|&c| c == b':') {
        Some(colon) if !v[colon + 1..].contains(&b':') => &v[..colon],
        _ => v,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, find, first_payload, replay_file, truth, Feed};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    const HTTP: Probe = Probe::Match(Proto::Http, Confidence::Certain);
    const PROXY: Probe = Probe::Match(Proto::HttpProxy, Confidence::Certain);

    fn probe_dir(data: &[u8], dir: Dir) -> (Probe, Evidence) {
        let mut ev = Evidence::default();
        let p = Http.probe(
            data,
            &ctx(Transport::Tcp, dir, 40000, 5060),
            &mut [0; 16],
            &mut ev,
        );
        (p, ev)
    }

    fn probe(data: &[u8]) -> (Probe, Evidence) {
        probe_dir(data, Dir::Orig)
    }

    #[test]
    fn request_gives_host_without_port_and_user_agent() {
        let r = b"GET /star-123456/index.m3u8?token=89b1 HTTP/1.1\r\nUser-Agent: exoplayer-codelab\r\nHost: 45.58.148.2:8888\r\nAccept: */*\r\n\r\n";
        let (p, ev) = probe(r);
        assert_eq!(p, HTTP);
        assert_eq!(ev.host.as_str(), "45.58.148.2");
        assert_eq!(ev.user_agent.as_str(), "exoplayer-codelab");
        let (p, ev) = probe(b"HEAD / HTTP/1.0\r\nhost: [2001:db8::1]:8080\r\n\r\n");
        assert_eq!(p, HTTP);
        assert_eq!(ev.host.as_str(), "2001:db8::1");
    }

    #[test]
    fn responses() {
        assert_eq!(probe_dir(b"HTTP/1.1 200 OK\r\n", Dir::Reply).0, HTTP);
        assert_eq!(probe_dir(b"HTTP/1.0 404\r\n", Dir::Reply).0, HTTP);
        assert_eq!(probe_dir(b"HTTP/1.1 2", Dir::Reply).0, Probe::NotYet);
        assert_eq!(
            probe_dir(b"HTTP/1.1 600 Nope\r\n", Dir::Reply).0,
            Probe::NotMe
        );
        assert_eq!(
            probe_dir(b"HTTP/3.0 200 OK\r\n", Dir::Reply).0,
            Probe::NotMe
        );
    }

    #[test]
    fn connect_and_absolute_form_are_proxy() {
        let r = b"CONNECT apache.org:443 HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:92.0) Gecko/20100101 Firefox/92.0\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nHost: apache.org:443\r\n\r\n";
        let (p, ev) = probe(r);
        assert_eq!(p, PROXY);
        assert_eq!(ev.host.as_str(), "apache.org");
        assert!(ev
            .user_agent
            .as_str()
            .starts_with("Mozilla/5.0 (Windows NT 10.0"));
        let (p, ev) =
            probe(b"GET http://user@www.example.com:8080/a?b HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(p, PROXY);
        assert_eq!(ev.host.as_str(), "www.example.com");
        let (p, ev) = probe(b"CONNECT [2001:db8::7]:443 HTTP/1.1\r\n\r\n");
        assert_eq!(p, PROXY);
        assert_eq!(ev.host.as_str(), "2001:db8::7");
    }

    #[test]
    fn a_request_cut_at_every_offset_is_not_yet_until_its_headers_end() {
        let get = first_payload("mix/trex_sfr/delay_10_http_get_0.pcap", b"GET ");
        let connect = first_payload("ndpi/http_connect.pcap", b"CONNECT ");
        for r in [&get[..], &connect, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"] {
            let end = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            for cut in 0..end {
                assert_eq!(
                    probe(&r[..cut]).0,
                    Probe::NotYet,
                    "cut at {cut}: {:?}",
                    String::from_utf8_lossy(&r[..cut])
                );
            }
            assert!(matches!(
                probe(&r[..end]).0,
                Probe::Match(_, Confidence::Certain)
            ));
        }
    }

    #[test]
    fn a_request_line_longer_than_the_buffer_is_decided() {
        let mut r = b"GET /".to_vec();
        r.resize(STREAM_BYTES, b'a');
        assert_eq!(probe(&r[..STREAM_BYTES - 1]).0, Probe::NotYet);
        assert_eq!(probe(&r).0, HTTP);
    }

    #[test]
    fn sip_rtsp_ssdp_and_binary_are_not_http() {
        for m in [
            &b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com\r\n\r\n"[..],
            b"OPTIONS sip:carol@chicago.com SIP/2.0\r\n",
            b"NOTIFY sip:a@b SIP/2.0\r\n",
            b"REGISTER sip:example.com SIP/2.0\r\n",
            b"SIP/2.0 200 OK\r\n",
            b"OPTIONS rtsp://example.com/media.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/1.1x\r\n",
            b"GET /\x01 HTTP/1.1\r\n",
            b"get / HTTP/1.1\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"EHLO mail.example.com\r\n",
            b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
            &[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42],
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00],
        ] {
            assert_eq!(probe(m).0, Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let mut ev = Evidence::default();
        let udp = ctx(Transport::Udp, Dir::Orig, 50000, 1900);
        let ssdp =
            b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n";
        assert_eq!(Http.probe(ssdp, &udp, &mut [0; 16], &mut ev), Probe::NotMe);
        assert_eq!(
            Http.probe(b"GET / HTTP/1.1\r\n\r\n", &udp, &mut [0; 16], &mut ev),
            Probe::NotMe
        );
    }

    #[test]
    fn corpus_http_flows_match_ndpi() {
        // (capture, HTTP flows nDPI recognised from their payload)
        for (file, want) in [
            ("ndpi/http_on_sip_port.pcap", 1),
            ("ndpi/http_connect.pcap", 1),
            ("ndpi/1kxun.pcap", 86),
            ("ndpi/iphone.pcap", 1),
        ] {
            let runs = replay_file(file, &Http, Feed::budget(8));
            let mut http = 0;
            for t in truth(file) {
                let Some(run) = find(&runs, &t) else { continue };
                if run.payloads == [0, 0] || t.guessed {
                    continue; // nDPI went by the port
                }
                let want = match t.label.split('.').next() {
                    Some("HTTP") => Some(Proto::Http),
                    Some("HTTP_Connect") => Some(Proto::HttpProxy),
                    _ => None,
                };
                if t.transport == Transport::Udp || want.is_none() {
                    assert_eq!(run.proto(), None, "{file}: {t:?} must not be http");
                    continue;
                }
                http += 1;
                assert_eq!(run.proto(), want, "{file}: {t:?} -> {:?}", run.verdict);
                if let Some(h) = &t.host {
                    assert_eq!(run.ev.host.as_str(), h, "{file}: {t:?}");
                }
                if let Some(ua) = &t.user_agent {
                    assert!(
                        !run.ev.user_agent.is_empty() && ua.starts_with(run.ev.user_agent.as_str()),
                        "{file}: {t:?}"
                    );
                }
            }
            assert_eq!(http, want, "{file}");
        }
    }

    #[test]
    fn trex_http_mixes() {
        for f in [
            "delay_10_http_get_0",
            "delay_10_http_post_0",
            "delay_10_http_browsing_0",
        ] {
            let runs = replay_file(&format!("mix/trex_sfr/{f}.pcap"), &Http, Feed::budget(8));
            assert!(!runs.is_empty());
            for r in runs {
                assert_eq!(r.verdict, HTTP, "{f}: {r:?}");
                let host = if f.contains("browsing") {
                    "22.0.0.3"
                } else {
                    "22.0.0.2"
                };
                assert_eq!(r.ev.host.as_str(), host, "{f}");
            }
        }
        for f in [
            "ndpi/sip.pcap",
            "sip-calls/sipnab_sip-over-tcp.pcap",
            "ndpi/jabber.pcap",
            "ndpi/google_ssl.pcap",
            "mix/trex_sfr/delay_10_https_0.pcap",
        ] {
            for r in replay_file(f, &Http, Feed::budget(8)) {
                assert_eq!(r.proto(), None, "{f}: {r:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..2100), scratch in any::<[u8; 16]>()) {
            let mut s = scratch;
            let _ = Http.probe(&data, &ctx(Transport::Tcp, Dir::Orig, 1, 80), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_request_like_text(m in "(GET|CONNECT|POST|HTTP/1.1) ?", t in "[ -~]{0,80}", h in "[ -~\r\n]{0,200}") {
            let _ = probe(format!("{m}{t} HTTP/1.1\r\n{h}").as_bytes());
            let _ = probe(format!("{m}{t}").as_bytes());
        }
    }
}
