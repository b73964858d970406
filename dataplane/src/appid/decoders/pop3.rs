//! POP3 (RFC 1939; CAPA from RFC 2449, STLS from RFC 2595) over TCP, on any port, recognised
//! from how a session opens:
//! - the server's first line is a `+OK` greeting: `Certain`;
//! - or the client's first line is `USER <name>`, `APOP <name> <digest>`, `CAPA` or `STLS`
//!   (keywords in any case) and the server's first line is `+OK` or `-ERR`: `Certain` once
//!   both have arrived, in either order.
//!
//! Anything else as a side's first line is `NotMe`. The client's text is read from
//! `Dir::Orig`, the server's from `Dir::Reply`. Scratch byte 0 remembers a complete client
//! command and a complete `-ERR`, since the two sides arrive separately. Never allocates,
//! never panics (every index is checked).
use super::util::starts_with_ci;
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Pop3;

/// Longest response line, CR LF included (RFC 2449 4).
const MAX_RESPONSE: usize = 512;
/// Longest command line, CR LF included (RFC 2449 4).
const MAX_COMMAND: usize = 255;
const OK: &[u8] = b"+OK";
const ERR: &[u8] = b"-ERR";
/// An APOP digest: MD5 in lower-case hex (RFC 1939 7).
const DIGEST_LEN: usize = 32;

/// Scratch byte 0: the client's first line was a complete POP3 command.
const CLIENT_COMMAND: u8 = 1;
/// Scratch byte 0: the server's first line was a complete `-ERR`.
const SERVER_ERR: u8 = 2;

/// Commands a client may open a session with, and whether they take arguments.
const OPENING_COMMANDS: [(&[u8], bool); 4] = [
    (b"USER", true),
    (b"APOP", true),
    (b"CAPA", false),
    (b"STLS", false),
];

impl Decoder for Pop3 {
    fn name(&self) -> &'static str {
        "pop3"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[110, 995]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Tcp {
            return Probe::NotMe;
        }
        let full = data.len() >= STREAM_BYTES;
        let state = &mut scratch[0];
        match ctx.dir {
            Dir::Orig => match command(data, full) {
                Line::Yes(()) if *state & SERVER_ERR != 0 => {
                    Probe::Match(Proto::Pop3, Confidence::Certain)
                }
                Line::Yes(()) => {
                    *state |= CLIENT_COMMAND;
                    Probe::NotYet
                }
                Line::Maybe => Probe::NotYet,
                Line::No => Probe::NotMe,
            },
            Dir::Reply => match status(data, full) {
                Line::Yes(Status::Ok) => Probe::Match(Proto::Pop3, Confidence::Certain),
                Line::Yes(Status::Err) if *state & CLIENT_COMMAND != 0 => {
                    Probe::Match(Proto::Pop3, Confidence::Certain)
                }
                Line::Yes(Status::Err) => {
                    *state |= SERVER_ERR;
                    Probe::NotYet
                }
                Line::Maybe => Probe::NotYet,
                Line::No => Probe::NotMe,
            },
        }
    }
}

/// What a side's first line is so far.
#[derive(Debug, PartialEq, Eq)]
enum Line<T> {
    /// Complete, and what was expected.
    Yes(T),
    /// Right so far; its end has not arrived.
    Maybe,
    No,
}

#[derive(Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Err,
}

/// The first line of `s` without its line end, and whether the LF has arrived (a CR at the
/// very end of an unfinished line may be the first half of one).
fn first_line(s: &[u8]) -> (&[u8], bool) {
    match s.iter().position(|&c| c == b'\n') {
        Some(lf) => (s[..lf].strip_suffix(b"\r").unwrap_or(&s[..lf]), true),
        None => (s.strip_suffix(b"\r").unwrap_or(s), false),
    }
}

/// An unfinished line that is right so far: `Maybe` unless it can no longer end in time.
fn unfinished<T>(line: &[u8], max: usize, full: bool) -> Line<T> {
    if full || line.len() + 2 > max {
        Line::No
    } else {
        Line::Maybe
    }
}

/// Response text: tab and printable ASCII (UTF-8 tolerated).
fn is_response_text(c: u8) -> bool {
    c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80
}

/// The server's first line: `+OK` or `-ERR`, then a space and text, or the line end.
fn status(s: &[u8], full: bool) -> Line<Status> {
    let (line, complete) = first_line(s);
    let (indicator, kind) = if line.first() == Some(&b'-') {
        (ERR, Status::Err)
    } else {
        (OK, Status::Ok)
    };
    let head = &line[..line.len().min(indicator.len())];
    let rest = line.get(indicator.len()..).unwrap_or_default();
    let text_ok = match rest.split_first() {
        None => true,
        Some((&sep, text)) => sep == b' ' && text.iter().all(|&c| is_response_text(c)),
    };
    if !indicator.starts_with(head) || !text_ok {
        return Line::No;
    }
    if !complete {
        return unfinished(line, MAX_RESPONSE, full);
    }
    if head.len() < indicator.len() || line.len() + 2 > MAX_RESPONSE {
        return Line::No;
    }
    Line::Yes(kind)
}

/// The client's first line: one of `OPENING_COMMANDS`, with arguments if it takes them.
fn command(s: &[u8], full: bool) -> Line<()> {
    let (line, complete) = first_line(s);
    if !line.iter().all(|&c| (0x20..=0x7e).contains(&c)) {
        return Line::No;
    }
    let word_len = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let (word, args) = (&line[..word_len], line.get(word_len + 1..));
    let Some(&(keyword, takes_args)) = OPENING_COMMANDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
    else {
        // The keyword may still be arriving.
        let prefix = OPENING_COMMANDS
            .iter()
            .any(|(k, _)| starts_with_ci(k, word));
        return if prefix && args.is_none() && !complete {
            unfinished(line, MAX_COMMAND, full)
        } else {
            Line::No
        };
    };
    if !complete {
        return match (takes_args, args) {
            (false, Some(_)) => Line::No,
            _ => unfinished(line, MAX_COMMAND, full),
        };
    }
    if line.len() + 2 > MAX_COMMAND {
        return Line::No;
    }
    let ok = match (takes_args, args) {
        (false, None) => true,
        (false, Some(_)) | (true, None) => false,
        (true, Some(args)) if keyword == b"APOP" => apop_args(args),
        (true, Some(args)) => !args.trim_ascii().is_empty(),
    };
    if ok {
        Line::Yes(())
    } else {
        Line::No
    }
}

/// `name digest`: a mailbox name and an MD5 digest in hex.
fn apop_args(args: &[u8]) -> bool {
    let Some(sp) = args.iter().rposition(|&c| c == b' ') else {
        return false;
    };
    let (name, digest) = (&args[..sp], &args[sp + 1..]);
    !name.trim_ascii().is_empty()
        && digest.len() == DIGEST_LEN
        && digest.iter().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Pop3, Confidence::Certain);

    fn probe_dir(data: &[u8], dir: Dir) -> Probe {
        probe_once(&Pop3, data, &ctx(Transport::Tcp, dir, 40000, 1100)).0
    }

    fn server(data: &[u8]) -> Probe {
        probe_dir(data, Dir::Reply)
    }

    fn client(data: &[u8]) -> Probe {
        probe_dir(data, Dir::Orig)
    }

    /// delay_10_mail_pop_0.pcap, 22.0.0.14:110 -> 21.0.0.17:8188.
    const SPIRENT_GREETING: &[u8] =
        b"+OK Spirent Communications, Web Reflector Pop3 Server (version 0.1)\r\n";
    /// nDPI's pop3.pcap (extracted with tshark): 74.208.5.28:110's greeting and the client's
    /// first command, in lower case.
    const GMX_GREETING: &str =
        "2b4f4b20504f50207365727665722072656164792048206d69676d7875733030350d0a";
    const LOWER_CASE_USER: &str =
        "757365722063696363696f7065726e61636368696f406d61696c2e636f6d0d0a";

    #[test]
    fn an_ok_greeting_is_pop3() {
        assert_eq!(server(SPIRENT_GREETING), CERTAIN);
        assert_eq!(server(&hex(GMX_GREETING)), CERTAIN);
        assert_eq!(server(b"+OK\r\n"), CERTAIN);
        // nDPI's pop3_stls.pcap.
        assert_eq!(server(b"+OK lavad\r\n"), CERTAIN);
    }

    #[test]
    fn a_client_command_with_a_server_answer_is_pop3() {
        let user = hex(LOWER_CASE_USER);
        let apop = b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n";
        for cmd in [&user[..], b"USER user1\r\n", apop, b"CAPA\r\n", b"stls\r\n"] {
            for answer in [&b"+OK\r\n"[..], b"-ERR unknown user\r\n"] {
                // Client first, then the server; and the server's line first.
                let mut scratch = [0; 16];
                let mut ev = Evidence::default();
                let orig = ctx(Transport::Tcp, Dir::Orig, 40000, 1100);
                let reply = ctx(Transport::Tcp, Dir::Reply, 40000, 1100);
                assert_eq!(Pop3.probe(cmd, &orig, &mut scratch, &mut ev), Probe::NotYet);
                assert_eq!(Pop3.probe(answer, &reply, &mut scratch, &mut ev), CERTAIN);
                let mut scratch = [0; 16];
                let first = Pop3.probe(answer, &reply, &mut scratch, &mut ev);
                if answer.starts_with(b"-") {
                    assert_eq!(first, Probe::NotYet);
                    assert_eq!(Pop3.probe(cmd, &orig, &mut scratch, &mut ev), CERTAIN);
                } else {
                    assert_eq!(first, CERTAIN);
                }
            }
        }
    }

    #[test]
    fn an_err_greeting_alone_is_not_enough() {
        let mut scratch = [0; 16];
        let mut ev = Evidence::default();
        let orig = ctx(Transport::Tcp, Dir::Orig, 40000, 1100);
        let reply = ctx(Transport::Tcp, Dir::Reply, 40000, 1100);
        assert_eq!(
            Pop3.probe(b"-ERR go away\r\n", &reply, &mut scratch, &mut ev),
            Probe::NotYet
        );
        assert_eq!(
            Pop3.probe(b"AUTH PLAIN\r\n", &orig, &mut scratch, &mut ev),
            Probe::NotMe
        );
    }

    #[test]
    fn a_message_cut_at_every_offset_is_never_not_me() {
        let gmx = hex(GMX_GREETING);
        for m in [SPIRENT_GREETING, &gmx, b"-ERR x\r\n"] {
            for cut in 0..m.len() {
                assert_eq!(server(&m[..cut]), Probe::NotYet, "cut at {cut}");
            }
        }
        let user = hex(LOWER_CASE_USER);
        let apop = b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n";
        for m in [&user[..], apop, b"CAPA\r\n", b"STLS\r\n"] {
            // Complete or not, a client command alone waits for the server.
            for cut in 0..=m.len() {
                assert_eq!(client(&m[..cut]), Probe::NotYet, "cut at {cut}");
            }
        }
    }

    #[test]
    fn other_protocols_and_malformed_lines_are_not_pop3() {
        for m in [
            testkit::HTTP_GET,
            b"HTTP/1.1 200 OK\r\n\r\n",
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01][..],
            b"220 mx.example.com ESMTP\r\n",
            b"* OK IMAP4rev1 ready\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"+OKAY\r\n",
            b"+ok hello\r\n",
            b"-ERROR\r\n",
            b"+OK \x01\r\n",
        ] {
            assert_eq!(server(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        for m in [
            testkit::HTTP_GET,
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            b"EHLO example.com\r\n",
            b"a1 CAPABILITY\r\n",
            b"USER\r\n",
            b"USER \r\n",
            b"CAPA x\r\n",
            b"STLSX\r\n",
            b"APOP mrose\r\n",
            b"APOP mrose c4c9334bac560ecc979e58001b3e22f\r\n",
            b"USER a\x00\r\n",
            b"*1\r\n$4\r\nPING\r\n", // Redis, whose server answers +OK
        ] {
            assert_eq!(client(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let udp = ctx(Transport::Udp, Dir::Reply, 40000, 110);
        assert_eq!(probe_once(&Pop3, SPIRENT_GREETING, &udp).0, Probe::NotMe);
    }

    #[test]
    fn trex_pop3_sessions_are_pop3_at_the_greeting() {
        for i in 0..3 {
            let path =
                testkit::corpus_dir().join(format!("mix/trex_sfr/delay_10_mail_pop_{i}.pcap"));
            let flows = testkit::payload_flows_in(&path);
            assert_eq!(flows.len(), 1);
            let out = testkit::replay(&Pop3, &flows[0], testkit::Feed::FIRST_ANSWER);
            assert_eq!(
                out.answer(),
                Some((Proto::Pop3, Confidence::Certain)),
                "pop_{i}"
            );
            assert_eq!(out.packets, 1);
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        // nDPI's corpus has no POP3: no flow of it may match.
        let (bad, matched) = testkit::compare_with_ndpi(&Pop3, &[Proto::Pop3]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert!(matched.is_empty());
    }

    #[test]
    fn only_pop3_sessions_match_in_the_other_captures() {
        let mut want: Vec<String> = (0..3)
            .map(|i| {
                format!(
                    "delay_10_mail_pop_{i}.pcap 21.0.0.17:{} <-> 22.0.0.14:110: Pop3",
                    8188 + i
                )
            })
            .collect();
        // The SIP call capture's background traffic has three mail checks (tshark: pop,
        // "+OK hello from popgate(2.27.5)" and "+OK ipvision.com.ar POP MDaemon 7.2.0 ready").
        want.extend([
            "sipnab_SIP_CALL_RTP_G711.pcap 200.57.7.205:4313 <-> 216.136.173.10:110: Pop3".into(),
            "sipnab_SIP_CALL_RTP_G711.pcap 200.57.7.205:4314 <-> 200.73.183.213:110: Pop3".into(),
            "sipnab_SIP_CALL_RTP_G711.pcap 200.57.7.205:4315 <-> 200.73.183.213:110: Pop3".into(),
        ]);
        assert_eq!(testkit::matches_elsewhere(&Pop3), want);
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
            let _ = Pop3.probe(&data, &ctx(Transport::Tcp, dir, 1, 110), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_pop3_like_text(head in "(\\+OK|-ERR|USER|APOP|CAPA|stls)?", t in "[ -~\t\r\n]{0,300}") {
            let m = format!("{head}{t}");
            let _ = client(m.as_bytes());
            let _ = server(m.as_bytes());
        }
    }
}
