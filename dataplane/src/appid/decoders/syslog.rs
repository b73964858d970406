//! Syslog over UDP (RFC 5426, BSD syslog RFC 3164) and TCP (RFC 6587). A message starts with
//! its priority, `<N>` where N is 0-191 written without leading zeros, followed by printable
//! text: an RFC 3164 date, host or tag, or RFC 5424's version 1 and a full timestamp. Over TCP
//! the message may be preceded by its octet count and a space. `Certain` on the first message:
//! on syslog's ports (514/udp, 514 and 601/tcp) any such message; elsewhere only the RFC 5424
//! form (`<N>1 2021-04-18T...`), as BSD syslog's is too weak to claim another port.
//!
//! Never allocates, never panics.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Syslog;

const PORTS: [u16; 2] = [514, 601];
/// Printable characters required after the priority.
const TEXT: usize = 8;
const MAX_PRIORITY: u16 = 191;

impl Decoder for Syslog {
    fn name(&self) -> &'static str {
        "syslog"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp, Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &PORTS
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        let port = match ctx.transport {
            Transport::Udp => ctx.has_port(PORTS[0]),
            Transport::Tcp => PORTS.iter().any(|p| ctx.has_port(*p)),
        };
        let mut d = data;
        if ctx.transport == Transport::Tcp {
            // Octet counting: digits, a space, then the message.
            let digits = d.iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 && digits <= 6 && d.get(digits) == Some(&b' ') {
                d = &d[digits + 1..];
            }
        }
        match message(d) {
            Some(true) if port || rfc5424(d) => Probe::Match(Proto::Syslog, Confidence::Certain),
            Some(true) if d.len() < RFC5424_PREFIX + 8 && ctx.transport == Transport::Tcp => {
                Probe::NotYet
            }
            Some(_) => Probe::NotMe,
            None if ctx.transport == Transport::Tcp => Probe::NotYet,
            None => Probe::NotMe,
        }
    }
}

/// `<N>`, `1 `, a date and `T`: the longest priority and the shape RFC 5424 requires.
const RFC5424_PREFIX: usize = 5 + 2 + 11;

/// Whether message `d` (its priority checked) is in RFC 5424's form: version 1, then the
/// timestamp's date and `T`.
fn rfc5424(d: &[u8]) -> bool {
    let Some(gt) = d.iter().take(5).position(|&c| c == b'>') else {
        return false;
    };
    let Some(rest) = d[gt + 1..].strip_prefix(b"1 ") else {
        return false;
    };
    const SHAPE: &[u8; 11] = b"0000-00-00T";
    rest.len() >= SHAPE.len()
        && SHAPE.iter().zip(rest).all(|(w, c)| {
            if *w == b'0' {
                c.is_ascii_digit()
            } else {
                c == w
            }
        })
}

/// Whether `d` starts with a syslog message (None: right so far, too short to tell).
fn message(d: &[u8]) -> Option<bool> {
    match d.first() {
        None => return None,
        Some(b'<') => {}
        Some(_) => return Some(false),
    }
    let digits = d[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return if d.len() == 1 { None } else { Some(false) };
    }
    if digits > 3 || (digits > 1 && d[1] == b'0') {
        return Some(false);
    }
    let n = d[1..1 + digits]
        .iter()
        .fold(0u16, |a, c| a * 10 + (c - b'0') as u16);
    if n > MAX_PRIORITY {
        return Some(false);
    }
    match d.get(1 + digits) {
        None => return None,
        Some(b'>') => {}
        Some(_) => return Some(false),
    }
    let text = &d[2 + digits..];
    let printable = |c: &u8| (0x20..0x7f).contains(c) || *c == b'\t' || *c >= 0x80;
    let n = text.iter().take(TEXT).take_while(|c| printable(c)).count();
    if n == TEXT {
        Some(true)
    } else if n == text.len() {
        None
    } else {
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn bsd_and_rfc5424_messages_on_the_syslog_ports() {
        let certain = Probe::Match(Proto::Syslog, Confidence::Certain);
        let u = ctx(Transport::Udp, Dir::Orig, 59194, 514);
        for m in [
            &b"<147>Jan  2 10:09:52 nb6 chill"[..],
            b"<26>Jan 01 00:01:47 nb6 nbd: 0",
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
            b"<0>Oct 11 22:14:15 host kernel: x",
        ] {
            assert_eq!(probe_once(&Syslog, m, &u).0, certain, "{m:?}");
        }
        for m in [
            &b"<192>Jan  2 10:09:52"[..],
            b"<013>Jan  2 10:09:52",
            b"<13>\x01Jan 2 x",
            b"GET / HTTP/1.1",
        ] {
            assert_eq!(probe_once(&Syslog, m, &u).0, Probe::NotMe, "{m:?}");
        }
        let t = ctx(Transport::Tcp, Dir::Orig, 40000, 601);
        assert_eq!(
            probe_once(&Syslog, b"87 <34>1 2003-10-11T22:14:15.003Z host", &t).0,
            certain
        );
        assert_eq!(probe_once(&Syslog, b"<34", &t).0, Probe::NotYet);
        let elsewhere = ctx(Transport::Udp, Dir::Orig, 59194, 515);
        assert_eq!(
            probe_once(&Syslog, b"<147>Jan  2 10:09:52 nb6", &elsewhere).0,
            Probe::NotMe
        );
        // syslog.pcap: an iPhone's RFC 5424 messages over TCP to port 52173.
        let t = ctx(Transport::Tcp, Dir::Orig, 49948, 52173);
        let m = b"<22>1 2021-04-18T14:51:48+04:00 iPhone7,2 com.dts.freefireth";
        assert_eq!(probe_once(&Syslog, m, &t).0, certain);
        assert_eq!(probe_once(&Syslog, &m[..12], &t).0, Probe::NotYet);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Syslog, &[Proto::Syslog], &[]);
        assert!(m.get(&Proto::Syslog).is_some_and(|n| *n >= 19), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..100), tcp in any::<bool>()) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let _ = probe_once(&Syslog, &data, &ctx(t, Dir::Orig, 1, 514));
        }
    }
}
