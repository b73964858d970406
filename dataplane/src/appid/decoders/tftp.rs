//! TFTP (RFC 1350, options RFC 2347) over UDP:
//! - a read or write request (opcode 1 or 2) to port 69: NUL-terminated printable fields, one
//!   of which is a transfer mode (`netascii`, `octet`, `mail`, any case), ending in NUL:
//!   `Certain`;
//! - a transfer, which runs between two other ports: its first packets are DATA block 1 or
//!   ACK block 0 (or the server's OACK), and the other side's answer acknowledges or continues
//!   exactly that block (kept in scratch): `Certain` then, `NotYet` before; a server's OACK
//!   naming known options (RFC 2348-2349, 7440: blksize, tsize, timeout, windowsize) is
//!   `Certain` alone; an ERROR packet (code 0-8, a NUL-terminated message) is `Likely`.
//!
//! Never allocates, never panics.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Tftp;

const PORT: u16 = 69;
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;
const MODES: [&[u8]; 3] = [b"netascii", b"octet", b"mail"];
/// Largest block (RFC 2348's blksize limit) plus the header.
const MAX_DATA: usize = 4 + 65464;
const MAX_REQUEST: usize = 512;

/// What scratch remembers: the packet a transfer opened with, and from which side.
const OPENED_DATA: u8 = 1;
const OPENED_ACK0: u8 = 2;
const OPENED_OACK: u8 = 3;

impl Decoder for Tftp {
    fn name(&self) -> &'static str {
        "tftp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        let Some(opcode) = be16(data, 0) else {
            return Probe::NotMe;
        };
        let block = be16(data, 2);
        let dir = ctx.dir as u8 + 1;
        let certain = Probe::Match(Proto::Tftp, Confidence::Certain);
        match opcode {
            RRQ | WRQ if ctx.server.1 == PORT && request(&data[2..]) => certain,
            OACK if known_options(&data[2..]) => certain,
            DATA | ACK | OACK if scratch[0] != 0 && scratch[1] != dir => {
                // The other side's answer to what opened the transfer.
                let expected = be16(scratch, 2);
                let answers = match (scratch[0], opcode) {
                    (OPENED_DATA, ACK) => block == expected && ack(data),
                    (OPENED_ACK0 | OPENED_OACK, DATA) => block == Some(1) && data.len() <= MAX_DATA,
                    (OPENED_OACK, ACK) => block == Some(0) && ack(data),
                    _ => false,
                };
                if answers {
                    certain
                } else {
                    Probe::NotMe
                }
            }
            DATA | ACK | OACK if scratch[0] == 0 => {
                let (state, b) = match opcode {
                    DATA if block == Some(1) && data.len() <= MAX_DATA => (OPENED_DATA, 1),
                    ACK if block == Some(0) && ack(data) => (OPENED_ACK0, 0),
                    OACK if options(&data[2..]) => (OPENED_OACK, 0),
                    _ => return Probe::NotMe,
                };
                scratch[0] = state;
                scratch[1] = dir;
                scratch[2..4].copy_from_slice(&(b as u16).to_be_bytes());
                Probe::NotYet
            }
            DATA | ACK | OACK => Probe::NotYet,
            ERROR if block.is_some_and(|c| c <= 8) && text(&data[4..]) => {
                Probe::Match(Proto::Tftp, Confidence::Likely)
            }
            _ => Probe::NotMe,
        }
    }
}

/// An ACK: four bytes (some stacks pad the datagram with zeros).
fn ack(d: &[u8]) -> bool {
    d.len() >= 4 && d[4..].iter().all(|&b| b == 0)
}

/// NUL-terminated printable fields.
fn fields(b: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    let body = b.strip_suffix(&[0])?;
    let ok = b.len() <= MAX_REQUEST && body.iter().all(|&c| c == 0 || (0x20..0x7f).contains(&c));
    ok.then(|| body.split(|&c| c == 0))
}

/// A request's fields: a file name, the mode, options.
fn request(b: &[u8]) -> bool {
    fields(b).is_some_and(|mut f| f.any(|x| MODES.iter().any(|m| x.eq_ignore_ascii_case(m))))
}

/// An OACK's option names and values: pairs of non-empty fields.
fn options(b: &[u8]) -> bool {
    fields(b).is_some_and(|f| {
        let mut n = 0;
        for x in f {
            if x.is_empty() {
                return false;
            }
            n += 1;
        }
        n > 0 && n % 2 == 0
    })
}

/// Options an OACK may acknowledge.
const OPTIONS: [&[u8]; 4] = [b"blksize", b"tsize", b"timeout", b"windowsize"];

/// An OACK's options, every name a known one.
fn known_options(b: &[u8]) -> bool {
    options(b)
        && fields(b).is_some_and(|f| {
            f.step_by(2)
                .all(|name| OPTIONS.iter().any(|o| name.eq_ignore_ascii_case(o)))
        })
}

/// An error message: printable, NUL-terminated.
fn text(b: &[u8]) -> bool {
    b.strip_suffix(&[0])
        .is_some_and(|t| t.len() <= MAX_REQUEST && t.iter().all(|&c| (0x20..0x7f).contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn requests_to_port_69() {
        let c = ctx(Transport::Udp, Dir::Orig, 50618, 69);
        let certain = Probe::Match(Proto::Tftp, Confidence::Certain);
        assert_eq!(
            probe_once(&Tftp, b"\x00\x01rfc1350.txt\x00octet\x00", &c).0,
            certain
        );
        assert_eq!(
            probe_once(
                &Tftp,
                b"\x00\x02zz.bin\x00NetASCII\x00blksize\x001428\x00",
                &c
            )
            .0,
            certain
        );
        // No mode, no final NUL, another port.
        assert_eq!(
            probe_once(&Tftp, b"\x00\x01file\x00binary\x00", &c).0,
            Probe::NotMe
        );
        assert_eq!(
            probe_once(&Tftp, b"\x00\x01file\x00octet", &c).0,
            Probe::NotMe
        );
        let other = ctx(Transport::Udp, Dir::Orig, 50618, 70);
        assert_eq!(
            probe_once(&Tftp, b"\x00\x01file\x00octet\x00", &other).0,
            Probe::NotMe
        );
    }

    #[test]
    fn a_transfer_is_certain_when_the_other_side_answers_its_block() {
        let o = ctx(Transport::Udp, Dir::Orig, 3445, 50618);
        let r = ctx(Transport::Udp, Dir::Reply, 3445, 50618);
        let mut s = [0u8; 16];
        let mut ev = Evidence::default();
        let mut data = hex("00030001");
        data.extend_from_slice(&[0x0a; 512]);
        assert_eq!(Tftp.probe(&data, &o, &mut s, &mut ev), Probe::NotYet);
        // tftp.pcap: the ACK of block 1, padded with zeros.
        let ack1 = hex("000400010000000000000000000000000000");
        assert_eq!(
            Tftp.probe(&ack1, &r, &mut s, &mut ev),
            Probe::Match(Proto::Tftp, Confidence::Certain)
        );
        // A write: ACK 0 from the server, then DATA 1 from the client.
        let mut s = [0u8; 16];
        assert_eq!(
            Tftp.probe(&hex("00040000"), &o, &mut s, &mut ev),
            Probe::NotYet
        );
        assert_eq!(
            Tftp.probe(&data, &r, &mut s, &mut ev),
            Probe::Match(Proto::Tftp, Confidence::Certain)
        );
        // An answer to the wrong block.
        let mut s = [0u8; 16];
        assert_eq!(Tftp.probe(&data, &o, &mut s, &mut ev), Probe::NotYet);
        assert_eq!(
            Tftp.probe(&hex("00040002"), &r, &mut s, &mut ev),
            Probe::NotMe
        );
    }

    #[test]
    fn an_oack_of_known_options_alone() {
        // tftp.pcap, 192.168.2.200:47649 -> 192.168.2.45:35840.
        let c = ctx(Transport::Udp, Dir::Orig, 47649, 35840);
        let oack = b"\x00\x06blksize\x001468\x00tsize\x00100000\x00";
        assert_eq!(
            probe_once(&Tftp, oack, &c).0,
            Probe::Match(Proto::Tftp, Confidence::Certain)
        );
        let odd = b"\x00\x06colour\x00blue\x00";
        assert_eq!(probe_once(&Tftp, odd, &c).0, Probe::NotYet);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Tftp, &[Proto::Tftp], &[]);
        assert!(m.get(&Proto::Tftp).is_some_and(|n| *n >= 7), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut s = [0u8; 16];
            for dir in [Dir::Orig, Dir::Reply, Dir::Orig] {
                let _ = Tftp.probe(&data, &ctx(Transport::Udp, dir, 1, 69), &mut s, &mut Evidence::default());
            }
        }
    }
}
