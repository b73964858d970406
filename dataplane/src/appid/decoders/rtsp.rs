//! RTSP 1.0 (RFC 2326) over TCP, on any port: a request line
//! `METHOD rtsp://...|* RTSP/1.0` with one of the RFC's methods (`rtsps://` and `rtspu://`
//! URIs too), or a status line `RTSP/1.0 NNN`, at the start of a direction's stream, in
//! either direction (servers send requests too: ANNOUNCE, GET_PARAMETER, SET_PARAMETER).
//! A message is decided once its header block has arrived (or the stream buffer is full):
//! `Certain` with a CSeq header, which every RTSP message carries, `Likely` without. The
//! User-Agent goes into `ev.user_agent`.
//!
//! HTTP shares the shape but not the version (`HTTP/1.1`), SIP neither the URI nor the version
//! (`SIP/2.0`). Never allocates, never panics (every index is checked); keeps no per-flow
//! state.
use super::util::{header_value, starts_with_ci};
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Rtsp;

/// Request methods (RFC 2326 10); method names are case-sensitive.
const METHODS: [&[u8]; 10] = [
    b"OPTIONS",
    b"DESCRIBE",
    b"SETUP",
    b"PLAY",
    b"PAUSE",
    b"TEARDOWN",
    b"ANNOUNCE",
    b"RECORD",
    b"GET_PARAMETER",
    b"SET_PARAMETER",
];
const VERSION: &[u8] = b"RTSP/1.0";
/// URI schemes (RFC 2326 3.2; rtsps from RFC 7826), compared without case.
const SCHEMES: [&[u8]; 3] = [b"rtsp://", b"rtsps://", b"rtspu://"];
/// The request-URI of a request to the server itself (OPTIONS *).
const ANY: &[u8] = b"*";
/// CSeq is at most nine digits (RFC 7826 18.20).
const MAX_CSEQ_DIGITS: usize = 9;

impl Decoder for Rtsp {
    fn name(&self) -> &'static str {
        "rtsp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[554, 8554]
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
        let lf = data.iter().position(|&c| c == b'\n');
        let line = &data[..lf.unwrap_or(data.len())];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let fit = if VERSION.starts_with(&line[..line.len().min(VERSION.len())]) {
            status_line(line)
        } else {
            request_line(line)
        };
        match (fit, lf) {
            (Fit::No, _) => Probe::NotMe,
            (Fit::Maybe, None) if !full => Probe::NotYet,
            // A start line cut short by its end or by the full buffer.
            (Fit::Maybe, _) => Probe::NotMe,
            (Fit::Yes, Some(lf)) => {
                let rest = &data[lf..];
                let headers_done = rest.windows(2).any(|w| w == b"\n\n")
                    || rest.windows(3).any(|w| w == b"\n\r\n");
                if headers_done || full {
                    decide(data, ev)
                } else {
                    Probe::NotYet
                }
            }
            (Fit::Yes, None) if !full => Probe::NotYet,
            (Fit::Yes, None) => Probe::NotMe,
        }
    }
}

/// How much of a start line is right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// All that is required is there and right (its end, a reason phrase, the headers may
    /// still be arriving).
    Yes,
    /// Right so far, but its end has not arrived.
    Maybe,
    No,
}

/// `s` against a fixed `want`: `Yes` if equal, `Maybe` if a proper prefix.
fn fixed(s: &[u8], want: &[u8]) -> Fit {
    if s == want {
        Fit::Yes
    } else if want.starts_with(s) {
        Fit::Maybe
    } else {
        Fit::No
    }
}

/// `RTSP/1.0 NNN[ reason]` (an unfinished line is judged as far as it goes).
fn status_line(line: &[u8]) -> Fit {
    let rest = line.get(VERSION.len()..).unwrap_or_default();
    let code = rest.get(1..4).unwrap_or(rest.get(1..).unwrap_or_default());
    let after = rest.get(4..).unwrap_or_default();
    let ok = matches!(rest.first(), None | Some(b' '))
        && matches!(code.first(), None | Some(b'1'..=b'5'))
        && code.iter().all(u8::is_ascii_digit)
        && matches!(after.first(), None | Some(b' '))
        && after
            .iter()
            .all(|&c| c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80);
    match (ok, code.len()) {
        (false, _) => Fit::No,
        (true, 3) => Fit::Yes,
        (true, _) => Fit::Maybe,
    }
}

/// `METHOD SP Request-URI SP RTSP/1.0` (an unfinished line is judged as far as it goes).
fn request_line(line: &[u8]) -> Fit {
    let mut parts = line.splitn(3, |&c| c == b' ');
    let method = parts.next().unwrap_or_default();
    let (uri, version) = (parts.next(), parts.next());
    let Some(uri) = uri else {
        // The method is still arriving.
        return if METHODS.iter().any(|m| m.starts_with(method)) {
            Fit::Maybe
        } else {
            Fit::No
        };
    };
    if !METHODS.contains(&method) {
        return Fit::No;
    }
    let uri_fit = if uri.first() == Some(&b'*') {
        fixed(uri, ANY)
    } else if uri.iter().any(|&c| !(0x21..=0x7e).contains(&c)) {
        Fit::No
    } else if SCHEMES.iter().any(|s| starts_with_ci(uri, s)) {
        Fit::Yes
    } else if SCHEMES.iter().any(|s| starts_with_ci(s, uri)) {
        Fit::Maybe
    } else {
        Fit::No
    };
    match (uri_fit, version) {
        (Fit::No, _) => Fit::No,
        (_, None) => Fit::Maybe,
        // The URI ended with a space: it must be whole.
        (Fit::Maybe, Some(_)) => Fit::No,
        (Fit::Yes, Some(v)) => fixed(v, VERSION),
    }
}

/// The start line is RTSP's: `Certain` with a CSeq, and the User-Agent as evidence.
fn decide(message: &[u8], ev: &mut Evidence) -> Probe {
    if let Some(ua) = header_value(message, b"user-agent", None).filter(|v| !v.is_empty()) {
        ev.user_agent.set(ua);
    }
    let cseq = header_value(message, b"cseq", None).is_some_and(|v| {
        !v.is_empty() && v.len() <= MAX_CSEQ_DIGITS && v.iter().all(u8::is_ascii_digit)
    });
    let confidence = if cseq {
        Confidence::Certain
    } else {
        Confidence::Likely
    };
    Probe::Match(Proto::Rtsp, confidence)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Rtsp, Confidence::Certain);
    const LIKELY: Probe = Probe::Match(Proto::Rtsp, Confidence::Likely);

    fn probe_dir(data: &[u8], dir: Dir) -> (Probe, Evidence) {
        probe_once(&Rtsp, data, &ctx(Transport::Tcp, dir, 40000, 5540))
    }

    fn probe(data: &[u8]) -> Probe {
        probe_dir(data, Dir::Orig).0
    }

    /// The first request of delay_10_rtp_160k_full.pcap (21.0.0.12:32218 -> 22.0.0.10:554),
    /// with the LF padding its client sends after it.
    fn trex_describe() -> Vec<u8> {
        let mut m = b"DESCRIBE rtsp://22.0.0.10/cawsample_250k_60s_va.mov RTSP/1.0\r\nCSeq: 1\r\nBandwidth: 1500000\r\nAccept: application/sdp\r\nAccept-Language: en-US\r\nUser-Agent: -- None --\r\n\r\n".to_vec();
        m.extend_from_slice(&[b'\n'; 6]);
        m
    }
    /// The response to it, abridged (some headers and most of the SDP left out).
    const TREX_OK: &[u8] = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContentBase: rtsp://22.0.0.10/cawsample_250k_60s_va.mov\r\nContent-Type: application/sdp\r\nContent-length: 375\r\n\r\nv=0\r\n";
    /// nDPI's rtsp_setup_http.pcapng (extracted with tshark): a VLC SETUP on port 8554.
    const VLC_SETUP: &str = "534554555020727473703a2f2f3137322e32382e342e32363a383535342f747261636b49443d383820525453502f312e300d0a435365713a20340d0a557365722d4167656e743a204c6962564c432f332e302e313620284c4956453535352053747265616d696e67204d656469612076323031362e31312e3238290d0a5472616e73706f72743a205254502f4156503b756e69636173743b636c69656e745f706f72743d35303232302d35303232310d0a0d0a";

    #[test]
    fn requests_and_responses_with_cseq_are_certain() {
        let (p, ev) = probe_dir(&trex_describe(), Dir::Orig);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.user_agent.as_str(), "-- None --");
        let (p, ev) = probe_dir(&hex(VLC_SETUP), Dir::Orig);
        assert_eq!(p, CERTAIN);
        // Cut to the evidence's 48 bytes.
        assert_eq!(
            ev.user_agent.as_str(),
            "LibVLC/3.0.16 (LIVE555 Streaming Media v2016.11."
        );
        assert_eq!(probe_dir(TREX_OK, Dir::Reply).0, CERTAIN);
        for m in [
            &b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"[..],
            b"GET_PARAMETER rtsp://10.2.2.2:8554/ RTSP/1.0\r\nCSeq: 7\r\nSession: 660fc4c0c6ad43a1\r\n\r\n",
            b"ANNOUNCE RTSPS://cam.example.com/live RTSP/1.0\nCSeq: 312\n\n",
            b"RTSP/1.0 454 Session Not Found\r\ncseq: 9\r\n\r\n",
            b"RTSP/1.0 200\r\nCSeq: 2\r\n\r\n",
        ] {
            assert_eq!(probe(m), CERTAIN, "{:?}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn without_cseq_it_is_only_likely() {
        assert_eq!(
            probe(b"PLAY rtsp://example.com/a RTSP/1.0\r\nSession: 1\r\n\r\n"),
            LIKELY
        );
        assert_eq!(probe(b"RTSP/1.0 200 OK\r\nCSeq: one\r\n\r\n"), LIKELY);
        // A header block longer than the buffer is decided on what arrived.
        let mut m = b"SETUP rtsp://example.com/a RTSP/1.0\r\nCSeq: 3\r\nX-Pad: ".to_vec();
        m.resize(STREAM_BYTES, b'p');
        assert_eq!(probe(&m[..STREAM_BYTES - 1]), Probe::NotYet);
        assert_eq!(probe(&m), CERTAIN);
    }

    #[test]
    fn a_message_cut_at_every_offset_is_never_not_me() {
        let describe = trex_describe();
        let setup = hex(VLC_SETUP);
        for m in [
            &describe[..],
            &setup,
            TREX_OK,
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        ] {
            let end = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            for cut in 0..end {
                assert_eq!(
                    probe(&m[..cut]),
                    Probe::NotYet,
                    "cut at {cut}: {:?}",
                    String::from_utf8_lossy(&m[..cut])
                );
            }
            assert_eq!(probe(&m[..end]), CERTAIN);
        }
    }

    #[test]
    fn http_sip_and_others_are_not_rtsp() {
        for m in [
            testkit::HTTP_GET,
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"OPTIONS rtsp://example.com/ HTTP/1.1\r\n\r\n",
            testkit::SIP_INVITE,
            b"OPTIONS sip:carol@chicago.com SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n",
            b"SIP/2.0 200 OK\r\n",
            testkit::TLS_HELLO,
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01][..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"options rtsp://example.com/ RTSP/1.0\r\n",
            b"PLAY  rtsp://example.com/ RTSP/1.0\r\n",
            b"PLAY rtsp://example.com/ RTSP/1.0 \r\n",
            b"PLAY rtsp:/ RTSP/1.0\r\n",
            b"PLAY ** RTSP/1.0\r\n",
            b"PLAY rtsp://a\x01b RTSP/1.0\r\n",
            b"PLAY rtsp://example.com/\r\n",
            b"RTSP/1.0 600 Nope\r\n",
            b"RTSP/1.0 20x\r\n",
            b"RTSP/1.1 200 OK\r\n",
            b"RTSP/2.0 200 OK\r\n",
            b"RTSP/1.0  200\r\n",
            b"RTSP/1.0\r\n",
        ] {
            assert_eq!(probe(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let mut long = b"PLAY rtsp://example.com/".to_vec();
        long.resize(STREAM_BYTES, b'a');
        assert_eq!(probe(&long), Probe::NotMe);
        let udp = ctx(Transport::Udp, Dir::Orig, 40000, 554);
        assert_eq!(probe_once(&Rtsp, &trex_describe(), &udp).0, Probe::NotMe);
    }

    #[test]
    fn trex_rtsp_sessions_are_rtsp_with_the_user_agent() {
        for f in ["delay_10_rtp_160k_full", "delay_10_rtp_250k_full"] {
            let path = testkit::corpus_dir().join(format!("mix/trex_sfr/{f}.pcap"));
            let tcp: Vec<_> = testkit::payload_flows_in(&path)
                .into_iter()
                .filter(|fl| fl.transport == Transport::Tcp)
                .collect();
            assert_eq!(tcp.len(), 1);
            let out = testkit::replay(&Rtsp, &tcp[0], testkit::Feed::FIRST_ANSWER);
            assert_eq!(
                out.answer(),
                Some((Proto::Rtsp, Confidence::Certain)),
                "{f}"
            );
            assert_eq!(out.packets, 1);
            assert_eq!(out.ev.user_agent.as_str(), "-- None --");
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        // nDPI's corpus has no RTSP: no flow of it may match.
        let (bad, matched) = testkit::compare_with_ndpi(&Rtsp, &[Proto::Rtsp]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert!(matched.is_empty());
    }

    #[test]
    fn only_the_rtsp_sessions_match_in_the_other_captures() {
        // The RTP the RTSP sessions set up is UDP, which this decoder never looks at.
        assert_eq!(
            testkit::matches_elsewhere(&Rtsp),
            [
                "delay_10_rtp_160k_full.pcap 21.0.0.12:32218 <-> 22.0.0.10:554: Rtsp",
                "delay_10_rtp_250k_full.pcap 21.0.0.12:32218 <-> 22.0.0.10:554: Rtsp",
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..2100),
            scratch in any::<[u8; 16]>(),
            reply in any::<bool>(),
        ) {
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let mut s = scratch;
            let _ = Rtsp.probe(&data, &ctx(Transport::Tcp, dir, 1, 554), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_rtsp_like_text(
            m in "(PLAY|GET_PARAMETER|RTSP/1.0|OPTIONS \\*) ?",
            t in "[ -~]{0,80}",
            h in "[ -~\r\n]{0,200}",
        ) {
            let _ = probe(format!("{m}{t} RTSP/1.0\r\n{h}").as_bytes());
            let _ = probe(format!("{m}{t}").as_bytes());
        }
    }
}
