//! FTP control connections (RFC 959) over TCP, on any port:
//! - the client's first line is an FTP command that may open a session (`USER name`,
//!   `AUTH TLS`/`AUTH SSL`, `FEAT`, `SYST`, `OPTS UTF8 ON`, `HOST name`), verbs in any case:
//!   `Certain`;
//! - the server's greeting is a 220 (or 120, "ready in n minutes") reply. Naming FTP in its
//!   text it is `Likely` at once; otherwise it waits for the client (SMTP servers greet with
//!   220 too: the client's first line tells them apart).
//!
//! Data connections (the listing and files) carry no protocol of their own and are left to
//! the flows' own content. Never allocates, never panics.
use super::util::starts_with_ci;
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Ftp;

/// Commands a client opens with; each is followed by a space or the line end.
const OPENING: [&[u8]; 6] = [b"USER", b"AUTH", b"FEAT", b"SYST", b"OPTS", b"HOST"];
const MAX_LINE: usize = 512;

impl Decoder for Ftp {
    fn name(&self) -> &'static str {
        "ftp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[21]
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
        let line_end = data.iter().position(|&c| c == b'\n');
        let Some(end) = line_end else {
            let full = data.len() >= STREAM_BYTES.min(MAX_LINE);
            let plausible = match ctx.dir {
                Dir::Orig => {
                    let n = data.len().min(4);
                    OPENING
                        .iter()
                        .any(|v| v[..n].eq_ignore_ascii_case(&data[..n]))
                }
                Dir::Reply => {
                    b"220".starts_with(&data[..data.len().min(3)])
                        || b"120".starts_with(&data[..data.len().min(3)])
                }
            };
            return if plausible && !full {
                Probe::NotYet
            } else {
                Probe::NotMe
            };
        };
        let line = data[..end].strip_suffix(b"\r").unwrap_or(&data[..end]);
        match ctx.dir {
            Dir::Orig => {
                let command = OPENING.iter().any(|v| {
                    starts_with_ci(line, v) && matches!(line.get(v.len()), None | Some(b' '))
                });
                if command
                    && line
                        .iter()
                        .all(|&c| c == b'\t' || (0x20..0x7f).contains(&c))
                {
                    Probe::Match(Proto::Ftp, Confidence::Certain)
                } else {
                    Probe::NotMe
                }
            }
            Dir::Reply => {
                let code = line.get(..3);
                if !matches!(code, Some(b"220") | Some(b"120"))
                    || !matches!(line.get(3), Some(b' ' | b'-'))
                {
                    return Probe::NotMe;
                }
                let names_ftp = line.windows(3).any(|w| w.eq_ignore_ascii_case(b"ftp"));
                if names_ftp {
                    Probe::Match(Proto::Ftp, Confidence::Likely)
                } else {
                    Probe::NotYet
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_clients_first_command_decides() {
        let o = ctx(Transport::Tcp, Dir::Orig, 50694, 21);
        let certain = Probe::Match(Proto::Ftp, Confidence::Certain);
        for line in [
            &b"USER anonymous\r\n"[..],
            b"AUTH TLS\r\n",
            b"feat\r\n",
            b"SYST\r\n",
        ] {
            assert_eq!(probe_once(&Ftp, line, &o).0, certain, "{line:?}");
        }
        for line in [
            &b"EHLO mail.example\r\n"[..],
            b"USERS x\r\n",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(probe_once(&Ftp, line, &o).0, Probe::NotMe, "{line:?}");
        }
        assert_eq!(probe_once(&Ftp, b"USER anon", &o).0, Probe::NotYet);
    }

    #[test]
    fn the_greeting_is_likely_only_when_it_says_ftp() {
        let r = ctx(Transport::Tcp, Dir::Reply, 50694, 21);
        // ftp.pcap's server.
        assert_eq!(
            probe_once(&Ftp, b"220 (vsFTPd 3.0.3)\r\n", &r).0,
            Probe::Match(Proto::Ftp, Confidence::Likely)
        );
        assert_eq!(
            probe_once(&Ftp, b"220 mail.example ESMTP\r\n", &r).0,
            Probe::NotYet
        );
        assert_eq!(
            probe_once(&Ftp, b"530 Login incorrect.\r\n", &r).0,
            Probe::NotMe
        );
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Ftp, &[Proto::Ftp], &[]);
        assert_eq!(m.get(&Proto::Ftp), Some(&1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..600), reply in any::<bool>()) {
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let _ = probe_once(&Ftp, &data, &ctx(Transport::Tcp, dir, 1, 21));
        }
    }
}
