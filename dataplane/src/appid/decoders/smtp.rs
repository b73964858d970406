//! SMTP (RFC 5321) over TCP, on any port, recognised from how a session opens:
//! - the client's first line is `EHLO <domain>` or `HELO <domain>` (verbs in any case; an
//!   address literal `[192.0.2.1]` or `[IPv6:...]` in place of the domain): `Certain`, and the
//!   domain (or the literal's address) goes into `ev.host`;
//! - the server's greeting is a 220 reply, on one line (`220 text`) or several (`220-text` lines,
//!   then `220 text`). One whose text names SMTP (ESMTP, gsmtp...) or the word "mail", and not
//!   FTP, is `Likely` at once, so that a flow whose client never speaks is still SMTP, while
//!   the client's EHLO (with the domain) is still awaited. Any other 220 greeting waits for
//!   the client: FTP servers greet with 220 too.
//!
//! Anything else as a side's first line is `NotMe`. The client's text is read from `Dir::Orig`,
//! the server's from `Dir::Reply`. Never allocates, never panics (every index is checked);
//! keeps no per-flow state: each side's first line is judged when it arrives.
use super::util::starts_with_ci;
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Smtp;

/// Longest command or reply line, CR LF included (RFC 5321 4.5.3.1.4 and 4.5.3.1.5).
const MAX_LINE: usize = 512;
const GREETING_CODE: &[u8] = b"220";
const HELLO_VERBS: [&[u8]; 2] = [b"EHLO ", b"HELO "];
/// Longest domain name (RFC 5321 4.5.3.1.2).
const MAX_DOMAIN: usize = 255;

impl Decoder for Smtp {
    fn name(&self) -> &'static str {
        "smtp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[25, 465, 587]
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
        match ctx.dir {
            Dir::Orig => hello(data, full, ev),
            Dir::Reply => greeting(data, full),
        }
    }
}

/// The first line of `s` without its line end, and where the next line starts (`None` while
/// the LF has not arrived; a CR at the very end may be the first half of one).
fn split_line(s: &[u8]) -> (&[u8], Option<usize>) {
    match s.iter().position(|&c| c == b'\n') {
        Some(lf) => (
            s[..lf].strip_suffix(b"\r").unwrap_or(&s[..lf]),
            Some(lf + 1),
        ),
        None => (s.strip_suffix(b"\r").unwrap_or(s), None),
    }
}

/// An unfinished line that is right so far: more may come unless it is already too long.
fn unfinished(line: &[u8], full: bool) -> Probe {
    if full || line.len() + 2 > MAX_LINE {
        Probe::NotMe
    } else {
        Probe::NotYet
    }
}

/// Reply text (RFC 5321 `textstring`: tab and printable ASCII; UTF-8 tolerated).
fn is_reply_text(c: u8) -> bool {
    c == b'\t' || (0x20..=0x7e).contains(&c) || c >= 0x80
}

/// Command text: tab and printable ASCII.
fn is_command_text(c: u8) -> bool {
    c == b'\t' || (0x20..=0x7e).contains(&c)
}

/// The server's first reply: 220, on one line or several.
fn greeting(s: &[u8], full: bool) -> Probe {
    let (mut smtp, mut ftp) = (false, false);
    let mut rest = s;
    loop {
        let (line, next) = split_line(rest);
        let code = &line[..line.len().min(GREETING_CODE.len())];
        let sep = line.get(GREETING_CODE.len());
        let text = line.get(GREETING_CODE.len() + 1..).unwrap_or_default();
        if !GREETING_CODE.starts_with(code)
            || sep.is_some_and(|&c| c != b' ' && c != b'-')
            || !text.iter().all(|&c| is_reply_text(c))
        {
            return Probe::NotMe;
        }
        let Some(next) = next else {
            return unfinished(line, full);
        };
        if line.len() < GREETING_CODE.len() || line.len() + 2 > MAX_LINE {
            return Probe::NotMe;
        }
        smtp |= names_smtp(text);
        ftp |= contains_ci(text, b"ftp");
        if sep != Some(&b'-') {
            // The last line of the greeting.
            return if smtp && !ftp {
                Probe::Match(Proto::Smtp, Confidence::Likely)
            } else {
                Probe::NotYet
            };
        }
        rest = &rest[next..];
    }
}

/// Whether greeting text names SMTP, or has "mail" as a word of its own (not a host name's
/// label such as `mail.example.com`, which FTP servers have too).
fn names_smtp(text: &[u8]) -> bool {
    if contains_ci(text, b"smtp") {
        return true;
    }
    text.split(|c| !(c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_')))
        .any(|word| word.eq_ignore_ascii_case(b"mail"))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The client's first line: `EHLO` or `HELO`, a space, a domain or an address literal.
fn hello(s: &[u8], full: bool, ev: &mut Evidence) -> Probe {
    let head = &s[..s.len().min(HELLO_VERBS[0].len())];
    if !HELLO_VERBS.iter().any(|v| starts_with_ci(v, head)) {
        return Probe::NotMe;
    }
    let (line, next) = split_line(s);
    if !line.iter().all(|&c| is_command_text(c)) {
        return Probe::NotMe;
    }
    if next.is_none() {
        return unfinished(line, full);
    }
    if line.len() + 2 > MAX_LINE {
        return Probe::NotMe;
    }
    let arg = line.get(HELLO_VERBS[0].len()..).unwrap_or_default();
    let arg = &arg[arg.iter().position(|&c| c != b' ').unwrap_or(arg.len())..];
    let name = arg
        .split(|&c| c == b' ' || c == b'\t')
        .next()
        .unwrap_or_default();
    match client_host(name) {
        Some(host) => {
            ev.host.set(host);
            Probe::Match(Proto::Smtp, Confidence::Certain)
        }
        None => Probe::NotMe,
    }
}

/// The client's name from EHLO's argument: a domain, or the address of an address literal.
fn client_host(name: &[u8]) -> Option<&[u8]> {
    if let Some(inner) = name.strip_prefix(b"[").and_then(|n| n.strip_suffix(b"]")) {
        let addr = if starts_with_ci(inner, b"IPv6:") {
            &inner[5..]
        } else {
            inner
        };
        let ok = !addr.is_empty()
            && addr
                .iter()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, b'.' | b':'));
        return ok.then_some(addr);
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_DOMAIN
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Smtp, Confidence::Certain);
    const LIKELY: Probe = Probe::Match(Proto::Smtp, Confidence::Likely);

    fn client(data: &[u8]) -> (Probe, Evidence) {
        probe_once(&Smtp, data, &ctx(Transport::Tcp, Dir::Orig, 40000, 2525))
    }

    fn server(data: &[u8]) -> Probe {
        probe_once(&Smtp, data, &ctx(Transport::Tcp, Dir::Reply, 40000, 2525)).0
    }

    /// delay_10_smtp_0.pcap, 22.0.0.13:25 -> 21.0.0.9:29556, and the client's answer.
    const SPIRENT_GREETING: &[u8] =
        b"220 Spirent Communications, Web Reflector SMTP Server (version 0.1)\r\n";
    const SPIRENT_HELO: &[u8] = b"HELO from.com\r\n";
    /// nDPI's smtp-starttls.pcap (extracted with tshark), 173.194.68.26:25 and its client.
    const GOOGLE_GREETING: &str =
        "323230206d782e676f6f676c652e636f6d2045534d54502073347369393639363335387163632e3633202d2067736d74700d0a";
    const GOOGLE_EHLO: &str = "45484c4f20787878787878787878787878782e7878782e636f6d0d0a";
    /// nDPI's ftp.pcap: a vsftpd greeting and the client's first command.
    const VSFTPD_GREETING: &str = "323230202876734654506420332e302e33290d0a";
    const FTP_USER: &str = "5553455220616e6f6e796d6f75730d0a";

    #[test]
    fn greetings_that_name_smtp_are_likely() {
        assert_eq!(server(SPIRENT_GREETING), LIKELY);
        assert_eq!(server(&hex(GOOGLE_GREETING)), LIKELY);
        for g in [
            &b"220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n"[..],
            b"220 EXCH01.corp.example Microsoft ESMTP MAIL Service ready at Mon, 1 Jan 2024\r\n",
            b"220-mx.example.net ESMTP Exim 4.96\r\n220-No UCE.\r\n220 \r\n",
            b"220-smtp.example.org\r\n220 Mail service ready\n",
        ] {
            assert_eq!(server(g), LIKELY, "{:?}", String::from_utf8_lossy(g));
        }
    }

    #[test]
    fn client_hello_is_certain_with_the_domain() {
        let (p, ev) = client(SPIRENT_HELO);
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "from.com");
        let (p, ev) = client(&hex(GOOGLE_EHLO));
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "xxxxxxxxxxxxx.xxx.com");
        let (p, ev) = client(b"ehlo [192.168.1.10]\r\n");
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "192.168.1.10");
        let (p, ev) = client(b"EHLO [IPv6:2001:db8::1]\r\n");
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "2001:db8::1");
        assert_eq!(client(b"EHLO DESKTOP-7K3J2Q1\n").0, CERTAIN);
    }

    #[test]
    fn a_bare_220_greeting_waits_for_the_client() {
        // FTP: greeting without SMTP evidence, then USER: never SMTP.
        let (greet, user) = (hex(VSFTPD_GREETING), hex(FTP_USER));
        assert_eq!(server(&greet), Probe::NotYet);
        assert_eq!(client(&user).0, Probe::NotMe);
        // "mail" as a host name label, and an FTP server that names mail: not evidence.
        assert_eq!(server(b"220 mail.example.com\r\n"), Probe::NotYet);
        assert_eq!(
            server(b"220 Mail server FTP service ready\r\n"),
            Probe::NotYet
        );
        // A quiet greeting followed by EHLO is SMTP.
        let mut scratch = [0; 16];
        let mut ev = Evidence::default();
        let reply = ctx(Transport::Tcp, Dir::Reply, 40000, 10025);
        let orig = ctx(Transport::Tcp, Dir::Orig, 40000, 10025);
        assert_eq!(
            Smtp.probe(b"220 mx1.example.com\r\n", &reply, &mut scratch, &mut ev),
            Probe::NotYet
        );
        assert_eq!(
            Smtp.probe(b"EHLO client.example.com\r\n", &orig, &mut scratch, &mut ev),
            CERTAIN
        );
        assert_eq!(ev.host.as_str(), "client.example.com");
    }

    #[test]
    fn a_message_cut_at_every_offset_is_never_not_me() {
        let google = hex(GOOGLE_GREETING);
        let multi = b"220-mx.example.net ESMTP Exim 4.96\r\n220 ready\r\n";
        for m in [SPIRENT_GREETING, &google, multi] {
            for cut in 0..m.len() {
                assert_eq!(server(&m[..cut]), Probe::NotYet, "cut at {cut}");
            }
            assert_eq!(server(m), LIKELY);
        }
        let ehlo = hex(GOOGLE_EHLO);
        for m in [SPIRENT_HELO, &ehlo, b"EHLO [IPv6:2001:db8::1]\r\n"] {
            for cut in 0..m.len() {
                assert_eq!(client(&m[..cut]).0, Probe::NotYet, "cut at {cut}");
            }
            assert_eq!(client(m).0, CERTAIN);
        }
    }

    #[test]
    fn other_protocols_and_malformed_lines_are_not_smtp() {
        for m in [
            testkit::HTTP_GET,
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01][..], // DNS over TCP
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"USER anonymous\r\n",
            b"EHLO\r\n",
            b"EHLO \r\n",
            b"HELO a b\x01\r\n",
            b"EHLO exa$mple.com\r\n",
            b"EHLOexample.com\r\n",
        ] {
            let (p, _) = client(m);
            assert_eq!(p, Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        for m in [
            testkit::HTTP_GET,
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"SIP/2.0 200 OK\r\n",
            testkit::TLS_HELLO,
            b"+OK POP3 server ready\r\n",
            b"* OK IMAP4rev1 ready\r\n",
            b"554 No SMTP service here\r\n",
            b"2200 SMTP\r\n",
            b"220_SMTP\r\n",
            b"220-ESMTP\r\n221 bye\r\n",
            b"220 ESMTP \x01\r\n",
        ] {
            assert_eq!(server(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let mut long = b"220 ".to_vec();
        long.resize(MAX_LINE, b'a');
        assert_eq!(server(&long), Probe::NotMe);
        let udp = ctx(Transport::Udp, Dir::Orig, 40000, 25);
        assert_eq!(probe_once(&Smtp, SPIRENT_HELO, &udp).0, Probe::NotMe);
    }

    #[test]
    fn trex_smtp_sessions_are_smtp_with_the_helo_domain() {
        for i in 0..3 {
            let path = testkit::corpus_dir().join(format!("mix/trex_sfr/delay_10_smtp_{i}.pcap"));
            let flows = testkit::payload_flows_in(&path);
            assert_eq!(flows.len(), 1);
            // The greeting alone is enough...
            let first = testkit::replay(&Smtp, &flows[0], testkit::Feed::FIRST_ANSWER);
            assert_eq!(first.answer(), Some((Proto::Smtp, Confidence::Likely)));
            assert_eq!(first.packets, 1);
            // ...and the HELO that follows makes it certain, with the client's domain.
            // (Replayed as the engine does: a `Likely` is kept while the decoder is asked on,
            // until `Certain`, `NotMe` or the end of the budget.)
            let session = testkit::replay(&Smtp, &flows[0], testkit::Feed::budget(8));
            assert_eq!(session.verdict, CERTAIN, "smtp_{i}");
            assert_eq!(session.ev.host.as_str(), "from.com");
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        // nDPI's corpus has no SMTP: no flow of it may match.
        let (bad, matched) = testkit::compare_with_ndpi(&Smtp, &[Proto::Smtp]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert!(matched.is_empty());
    }

    #[test]
    fn only_the_smtp_mixes_match_in_the_other_captures() {
        let want: Vec<String> = (0..3)
            .map(|i| {
                format!(
                    "delay_10_smtp_{i}.pcap 21.0.0.9:{} <-> 22.0.0.13:25: Smtp",
                    29556 + i
                )
            })
            .collect();
        assert_eq!(testkit::matches_elsewhere(&Smtp), want);
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
            let _ = Smtp.probe(&data, &ctx(Transport::Tcp, dir, 1, 25), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_smtp_like_text(head in "(220[ -]|EHLO |HELO |ehlo )?", t in "[ -~\t\r\n\\[\\]]{0,300}") {
            let m = format!("{head}{t}");
            let _ = client(m.as_bytes());
            let _ = server(m.as_bytes());
        }
    }
}
