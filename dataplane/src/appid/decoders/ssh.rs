//! SSH (RFC 4253 4.2) over TCP, on any port: the identification string a side sends first,
//! `SSH-2.0-softwareversion[ comments]` or `SSH-1.99-...` (a server that also speaks SSH 1),
//! from either side: a line of printable ASCII ending in CR LF, at most 255 bytes with them.
//! It is `Certain`, and the software version goes into `ev.user_agent`. A software version
//! with a `-` in it (`SSH-2.0-Cisco-1.25`) is accepted, as servers send them.
//!
//! Not accepted: SSH 1 alone (`SSH-1.5-`), an identification ending in a bare LF, and the
//! lines of text RFC 4253 lets a server send before its identification (this looks at the
//! first line only). Never allocates, never panics (every index is checked); keeps no
//! per-flow state.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Ssh;

/// Identification prefixes: protocol 2.0, and 1.99 for servers compatible with both.
const PREFIXES: [&[u8]; 2] = [b"SSH-2.0-", b"SSH-1.99-"];
/// Longest identification string, CR LF included (RFC 4253 4.2).
const MAX_IDENT: usize = 255;

impl Decoder for Ssh {
    fn name(&self) -> &'static str {
        "ssh"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[22]
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
        let Some(prefix) = PREFIXES.iter().find(|p| data.starts_with(p)) else {
            return if PREFIXES.iter().any(|p| p.starts_with(data)) {
                Probe::NotYet
            } else {
                Probe::NotMe
            };
        };
        let rest = &data[prefix.len()..];
        // The CR must come early enough for the LF after it to fit in MAX_IDENT.
        let last_cr = MAX_IDENT - prefix.len() - 2;
        for (i, &c) in rest.iter().enumerate().take(last_cr + 1) {
            match c {
                b'\r' => {
                    return match rest.get(i + 1) {
                        None => Probe::NotYet,
                        Some(b'\n') => identified(&rest[..i], ev),
                        Some(_) => Probe::NotMe,
                    }
                }
                0x20..=0x7e => {}
                _ => return Probe::NotMe,
            }
        }
        if rest.len() > last_cr {
            Probe::NotMe
        } else {
            Probe::NotYet
        }
    }
}

/// `softwareversion[ comments]`, the identification after its prefix.
fn identified(ident: &[u8], ev: &mut Evidence) -> Probe {
    let software = ident.split(|&c| c == b' ').next().unwrap_or_default();
    if software.is_empty() {
        return Probe::NotMe;
    }
    ev.user_agent.set(software);
    Probe::Match(Proto::Ssh, Confidence::Certain)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Ssh, Confidence::Certain);

    fn probe_dir(data: &[u8], dir: Dir) -> (Probe, Evidence) {
        probe_once(&Ssh, data, &ctx(Transport::Tcp, dir, 40000, 2222))
    }

    fn probe(data: &[u8]) -> Probe {
        probe_dir(data, Dir::Orig).0
    }

    // Extracted with tshark from nDPI's ssh.pcap: a server on port 22 and its client, a
    // client and an Apache MINA server on port 8000.
    const OPENSSH_SERVER: &str = "5353482d322e302d4f70656e5353485f352e330d0a";
    const OPENSSH_CLIENT: &str = "5353482d322e302d4f70656e5353485f352e360d0a";
    const UBUNTU_CLIENT: &str =
        "5353482d322e302d4f70656e5353485f382e327031205562756e74752d347562756e7475302e31310d0a";
    const MINA_SERVER: &str = "5353482d322e302d4150414348452d535348442d322e352e300d0a";
    /// nDPI's ssh_unidirectional.pcap: a server identification ending in a bare LF.
    const BARE_LF: &str =
        "5353482d322e302d4f70656e5353485f372e3470312044656269616e2d31302b6465623975370a";

    #[test]
    fn identification_strings_from_either_side() {
        for (m, dir, software) in [
            (hex(OPENSSH_SERVER), Dir::Reply, "OpenSSH_5.3"),
            (hex(OPENSSH_CLIENT), Dir::Orig, "OpenSSH_5.6"),
            (hex(UBUNTU_CLIENT), Dir::Orig, "OpenSSH_8.2p1"),
            (hex(MINA_SERVER), Dir::Reply, "APACHE-SSHD-2.5.0"),
            (
                b"SSH-1.99-Cisco-1.25\r\n".to_vec(),
                Dir::Reply,
                "Cisco-1.25",
            ),
            (
                b"SSH-2.0-PuTTY_Release_0.81\r\n".to_vec(),
                Dir::Orig,
                "PuTTY_Release_0.81",
            ),
        ] {
            let (p, ev) = probe_dir(&m, dir);
            assert_eq!(p, CERTAIN, "{:?}", String::from_utf8_lossy(&m));
            assert_eq!(ev.user_agent.as_str(), software);
        }
        // The key exchange that follows in the same stream does not matter.
        let mut m = hex(OPENSSH_CLIENT);
        m.extend_from_slice(&[0, 0, 3, 0x84, 4, 0x14, 0x18, 0xba]);
        assert_eq!(probe(&m), CERTAIN);
    }

    #[test]
    fn the_length_limit_counts_cr_lf() {
        let mut m = b"SSH-2.0-x".to_vec();
        m.resize(MAX_IDENT - 2, b'y');
        m.extend_from_slice(b"\r\n");
        assert_eq!(m.len(), MAX_IDENT);
        assert_eq!(probe(&m), CERTAIN);
        m.insert(10, b'z');
        assert_eq!(probe(&m), Probe::NotMe);
        assert_eq!(probe(&m[..MAX_IDENT - 2]), Probe::NotYet);
        assert_eq!(probe(&m[..MAX_IDENT - 1]), Probe::NotMe);
    }

    #[test]
    fn an_identification_cut_at_every_offset_is_not_yet() {
        for m in [
            hex(OPENSSH_SERVER),
            hex(UBUNTU_CLIENT),
            hex(MINA_SERVER),
            b"SSH-1.99-Cisco-1.25\r\n".to_vec(),
        ] {
            for cut in 0..m.len() {
                assert_eq!(probe(&m[..cut]), Probe::NotYet, "cut at {cut}");
            }
            assert_eq!(probe(&m), CERTAIN);
        }
    }

    #[test]
    fn other_protocols_and_malformed_identifications_are_not_ssh() {
        let bare_lf = hex(BARE_LF);
        for m in [
            testkit::HTTP_GET,
            b"HTTP/1.1 200 OK\r\n\r\n",
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[0x00, 0x1d, 0xab, 0xcd, 0x01, 0x00, 0x00, 0x01][..],
            b"220 mx.example.com ESMTP\r\n",
            b"+OK POP3 ready\r\n",
            b"* OK IMAP4rev1 ready\r\n",
            b"SSH-1.5-OpenSSH_3.0\r\n",
            b"SSH-2.0\r\n",
            b"SSH-2.0-\r\n",
            b"SSH-2.0- comment\r\n",
            b"SSH-2.0-OpenSSH\x01\r\n",
            b"SSH-2.0-OpenSSH\t9\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\r\n",
            b"ssh-2.0-OpenSSH_9.6\r\n",
            &bare_lf,
        ] {
            assert_eq!(probe(m), Probe::NotMe, "{:?}", String::from_utf8_lossy(m));
        }
        let udp = ctx(Transport::Udp, Dir::Orig, 40000, 22);
        assert_eq!(probe_once(&Ssh, &hex(OPENSSH_CLIENT), &udp).0, Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        // nDPI's corpus has no SSH: no flow of it may match.
        let (bad, matched) = testkit::compare_with_ndpi(&Ssh, &[Proto::Ssh]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert!(matched.is_empty());
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        assert_eq!(testkit::matches_elsewhere(&Ssh), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            scratch in any::<[u8; 16]>(),
            reply in any::<bool>(),
        ) {
            let dir = if reply { Dir::Reply } else { Dir::Orig };
            let mut s = scratch;
            let _ = Ssh.probe(&data, &ctx(Transport::Tcp, dir, 1, 22), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_ssh_like_text(head in "(SSH-2\\.0-|SSH-1\\.99-|SSH-)?", t in "[ -~\r\n]{0,300}") {
            let _ = probe(format!("{head}{t}").as_bytes());
        }
    }
}
