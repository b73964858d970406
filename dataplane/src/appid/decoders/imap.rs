//! IMAP (RFC 3501, RFC 9051) over TCP, on any port, recognised from how a session opens:
//! - the server's greeting, its first line: `* OK`, `* PREAUTH` or `* BYE` (the greeting of a
//!   server that refuses the connection), then a space and text or the line end. A
//!   `[CAPABILITY ...]` response code in it must list IMAP4rev1 (or IMAP4rev2, IMAP4):
//!   `Certain`;
//! - or the client's first line, a tagged command that opens a session: `<tag> CAPABILITY`,
//!   `<tag> STARTTLS`, `<tag> NOOP`, `<tag> LOGIN <arguments>` or
//!   `<tag> AUTHENTICATE <mechanism>` (command names in any case): `Certain`.
//!
//! Anything else as a side's first line is `NotMe`. The client's text is read from
//! `Dir::Orig`, the server's from `Dir::Reply`. Never allocates, never panics (every index is
//! checked); keeps no per-flow state.
use super::util::starts_with_ci;
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Imap;

const UNTAGGED: &[u8] = b"* ";
/// Greeting conditions (RFC 3501 `greeting`: `resp-cond-auth` or `resp-cond-bye`).
const GREETINGS: [&[u8]; 3] = [b"OK", b"PREAUTH", b"BYE"];
const CAPABILITY_CODE: &[u8] = b"[CAPABILITY ";
/// Capability names that say which IMAP this is; a server must list one.
const VERSIONS: [&[u8]; 3] = [b"IMAP4rev1", b"IMAP4rev2", b"IMAP4"];
/// Commands a client may open a session with, and whether they take arguments.
const OPENING_COMMANDS: [(&[u8], bool); 5] = [
    (b"CAPABILITY", false),
    (b"STARTTLS", false),
    (b"NOOP", false),
    (b"LOGIN", true),
    (b"AUTHENTICATE", true),
];
/// Longest tag accepted (the RFC sets none; clients use a few characters).
const MAX_TAG: usize = 64;

impl Decoder for Imap {
    fn name(&self) -> &'static str {
        "imap"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[143, 993]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Tcp {
            return Probe::NotMe;
        }
        let (line, complete) = first_line(data);
        if !complete && data.len() >= STREAM_BYTES {
            return Probe::NotMe; // a first line that fills the buffer is not IMAP's
        }
        let fit = match ctx.dir {
            Dir::Orig => command(line, complete),
            Dir::Reply => greeting(line, complete),
        };
        match fit {
            Fit::Yes => Probe::Match(Proto::Imap, Confidence::Certain),
            Fit::Maybe => Probe::NotYet,
            Fit::No => Probe::NotMe,
        }
    }
}

/// What a side's first line is so far.
#[derive(Debug, PartialEq, Eq)]
enum Fit {
    /// Complete, and what was expected.
    Yes,
    /// Right so far; its end has not arrived.
    Maybe,
    No,
}

/// The first line of `s` without its line end, and whether the LF has arrived (a CR at the
/// very end of an unfinished line may be the first half of one).
fn first_line(s: &[u8]) -> (&[u8], bool) {
    match s.iter().position(|&c| c == b'\n') {
        Some(lf) => (s[..lf].strip_suffix(b"\r").unwrap_or(&s[..lf]), true),
        None => (s.strip_suffix(b"\r").unwrap_or(s), false),
    }
}

/// `Maybe` for a line still arriving, `No` for a complete one that fell short.
fn pending(complete: bool) -> Fit {
    if complete {
        Fit::No
    } else {
        Fit::Maybe
    }
}

/// Response text (RFC 9051 `TEXT-CHAR`: no controls but tab; UTF-8 allowed).
fn is_text(c: u8) -> bool {
    c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80
}

/// A character of a tag: an `ASTRING-CHAR` but `+` (RFC 3501 `tag`).
fn is_tag_char(c: u8) -> bool {
    (0x21..=0x7e).contains(&c)
        && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+')
}

/// `* OK|PREAUTH|BYE` and text.
fn greeting(line: &[u8], complete: bool) -> Fit {
    if !line.iter().all(|&c| is_text(c)) {
        return Fit::No;
    }
    let Some(rest) = line.strip_prefix(UNTAGGED) else {
        return if UNTAGGED.starts_with(line) {
            pending(complete)
        } else {
            Fit::No
        };
    };
    let word_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let (word, text) = (&rest[..word_len], rest.get(word_len + 1..));
    if !GREETINGS.iter().any(|g| g.eq_ignore_ascii_case(word)) {
        let prefix = GREETINGS.iter().any(|g| starts_with_ci(g, word));
        return if prefix && text.is_none() {
            pending(complete)
        } else {
            Fit::No
        };
    }
    if !complete {
        return Fit::Maybe;
    }
    match text {
        Some(text) if !capabilities_name_imap(text) => Fit::No,
        _ => Fit::Yes,
    }
}

/// False if `text` opens with a `[CAPABILITY ...]` code that lists no IMAP version.
fn capabilities_name_imap(text: &[u8]) -> bool {
    if !starts_with_ci(text, CAPABILITY_CODE) {
        return true;
    }
    let list = &text[CAPABILITY_CODE.len()..];
    let Some(end) = list.iter().position(|&c| c == b']') else {
        return false;
    };
    list[..end]
        .split(|&c| c == b' ')
        .any(|cap| VERSIONS.iter().any(|v| v.eq_ignore_ascii_case(cap)))
}

/// `<tag> <command>[ <arguments>]` with one of `OPENING_COMMANDS`.
fn command(line: &[u8], complete: bool) -> Fit {
    if !line.iter().all(|&c| (0x20..=0x7e).contains(&c)) {
        return Fit::No;
    }
    let tag_len = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let tag = &line[..tag_len];
    if tag_len > MAX_TAG || !tag.iter().all(|&c| is_tag_char(c)) {
        return Fit::No;
    }
    let Some(rest) = line.get(tag_len + 1..) else {
        return pending(complete); // the tag is still arriving
    };
    if tag.is_empty() {
        return Fit::No;
    }
    let word_len = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let (word, args) = (&rest[..word_len], rest.get(word_len + 1..));
    let Some(&(_, takes_args)) = OPENING_COMMANDS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
    else {
        let prefix = OPENING_COMMANDS
            .iter()
            .any(|(name, _)| starts_with_ci(name, word));
        return if prefix && args.is_none() {
            pending(complete)
        } else {
            Fit::No
        };
    };
    match (takes_args, args) {
        (false, Some(_)) => Fit::No,
        (false, None) if complete => Fit::Yes,
        (true, Some(args)) if complete && !args.trim_ascii().is_empty() => Fit::Yes,
        _ => pending(complete),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Imap, Confidence::Certain);

    fn server(data: &[u8]) -> Probe {
        probe_once(&Imap, data, &ctx(Transport::Tcp, Dir::Reply, 40000, 1430)).0
    }

    fn client(data: &[u8]) -> Probe {
        probe_once(&Imap, data, &ctx(Transport::Tcp, Dir::Orig, 40000, 1430)).0
    }

    // Extracted with tshark from nDPI's imap.pcap (10.40.3.2:143 and its client) and
    // imap-starttls.pcap (212.227.17.186:143 and its client).
    const GREETING: &str =
        "2a204f4b20494d41503452657631205365727665722056657273696f6e20342e392e30342e3031320d0a";
    const CAPABILITY: &str = "433030303030204341504142494c4954590d0a";
    const LOGIN: &str = "433030303031204c4f47494e2073616d69722070667265730d0a";
    const GMX_GREETING: &str = "2a204f4b205b4341504142494c49545920494d41503472657631204348494c4452454e20454e41424c452049442049444c45204c4953542d455854454e444544204c4953542d535441545553204c49544552414c2b204d4f5645204e414d455350414345205341534c2d495220534f5254205350454349414c2d555345205448524541443d4f5244455245445355424a45435420554944504c555320554e53454c4543542057495448494e205354415254544c5320415554483d4c4f47494e20415554483d504c41494e5d20494d4150207365727665722072656164792048206d69676d783031332031303435363820494d41502d304d30556e622d315977494f733262354b2d3030754531780d0a";
    const DOT_CAPABILITY: &str = "2e204341504142494c4954590d0a";
    const DOT_STARTTLS: &str = "2e205354415254544c530d0a";

    #[test]
    fn server_greetings() {
        assert_eq!(server(&hex(GREETING)), CERTAIN);
        assert_eq!(server(&hex(GMX_GREETING)), CERTAIN);
        for g in [
            &b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN] Dovecot ready.\r\n"[..],
            b"* OK Gimap ready for requests from 192.0.2.7 a1mb12345678\r\n",
            b"* PREAUTH [CAPABILITY IMAP4rev2] Logged in as smith\r\n",
            b"* BYE Too many connections\n",
            b"* ok [capability imap4rev1] hi\r\n",
        ] {
            assert_eq!(server(g), CERTAIN, "{:?}", String::from_utf8_lossy(g));
        }
    }

    #[test]
    fn client_opening_commands() {
        for c in [
            hex(CAPABILITY),
            hex(LOGIN),
            hex(DOT_CAPABILITY),
            hex(DOT_STARTTLS),
            b"a001 login mrc secret\r\n".to_vec(),
            b"A1 AUTHENTICATE PLAIN\r\n".to_vec(),
            b"a2 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n".to_vec(),
            b"x NOOP\n".to_vec(),
            b"abc.1 LOGIN {5}\r\n".to_vec(),
        ] {
            assert_eq!(client(&c), CERTAIN, "{:?}", String::from_utf8_lossy(&c));
        }
    }

    #[test]
    fn a_message_cut_at_every_offset_is_never_not_me() {
        for (m, dir) in [
            (hex(GREETING), Dir::Reply),
            (hex(GMX_GREETING), Dir::Reply),
            (b"* BYE x\r\n".to_vec(), Dir::Reply),
            (hex(CAPABILITY), Dir::Orig),
            (hex(LOGIN), Dir::Orig),
            (hex(DOT_STARTTLS), Dir::Orig),
            (b"A1 AUTHENTICATE PLAIN\r\n".to_vec(), Dir::Orig),
        ] {
            let probe = if dir == Dir::Orig { client } else { server };
            for cut in 0..m.len() {
                assert_eq!(probe(&m[..cut]), Probe::NotYet, "cut at {cut}");
            }
            assert_eq!(probe(&m), CERTAIN);
        }
    }

    #[test]
    fn other_protocols_and_malformed_lines_are_not_imap() {
        for m in [
            testkit::HTTP_GET,
            b"HTTP/1.1 200 OK\r\n\r\n",
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01][..],
            b"220 mx.example.com ESMTP\r\n",
            b"+OK POP3 ready\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"* OKAY\r\n",
            b"* NO go away\r\n",
            b"*  OK\r\n",
            b"* OK [CAPABILITY POP3 SMTP] not imap\r\n",
            b"* OK [CAPABILITY IMAP4rev1\r\n",
            b"* OK \x01\r\n",
            b"a1 OK done\r\n",
        ] {
            assert_eq!(server(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        for m in [
            testkit::HTTP_GET,
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            b"EHLO example.com\r\n",
            b"USER bob\r\n",
            b"CAPA\r\n",
            b"a1 SELECT INBOX\r\n",
            b"a1 CAPABILITY x\r\n",
            b"a1 LOGIN\r\n",
            b"a1 LOGIN \r\n",
            b"* CAPABILITY\r\n",
            b"+ CAPABILITY\r\n",
            b" CAPABILITY\r\n",
            b"a1  CAPABILITY\r\n",
            b"a1 CAPABILITY\x00\r\n",
        ] {
            assert_eq!(client(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let mut long = b"* OK ".to_vec();
        long.resize(STREAM_BYTES, b'a');
        assert_eq!(server(&long), Probe::NotMe);
        let udp = ctx(Transport::Udp, Dir::Reply, 40000, 143);
        assert_eq!(probe_once(&Imap, &hex(GREETING), &udp).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        // nDPI's corpus has no IMAP: no flow of it may match.
        let (bad, matched) = testkit::compare_with_ndpi(&Imap, &[Proto::Imap]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert!(matched.is_empty());
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // TRex's SMTP and POP3 mixes among them: mail, but no IMAP.
        assert_eq!(testkit::matches_elsewhere(&Imap), Vec::<String>::new());
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
            let _ = Imap.probe(&data, &ctx(Transport::Tcp, dir, 1, 143), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_imap_like_text(head in "(\\* |a1 |\\* OK \\[CAPABILITY )?", t in "[ -~\t\r\n]{0,300}") {
            let m = format!("{head}{t}");
            let _ = client(m.as_bytes());
            let _ = server(m.as_bytes());
        }
    }
}
