//! SMB over TCP (MS-SMB, MS-SMB2): directly on 445 or inside a NetBIOS session on 139.
//!
//! A direction is SMB when its stream starts with session messages (type 0x00, then a
//! 24-bit length) carrying an SMB header: `\xffSMB` (SMB1: 32-byte header, then a word count
//! and byte count that fit the message), `\xfeSMB` (SMB2/3: structure size 64, a known
//! command), or `\xfdSMB` (SMB3 transform: encrypted, seen when a flow is picked up late).
//! That structure is strong, so ports 445 and 139 are hints for it. On port 139, and only
//! there, the session may open with a NetBIOS session request (0x81) carrying two
//! first-level-encoded NetBIOS names (the called name goes into `ev.host`), and the server's
//! positive response (0x82) or keepalives (0x85) may come before the first SMB message.
//!
//! TCP only: `data` is the direction's stream from its first byte, so a header split across
//! segments is answered `NotYet` until it is whole. Never allocates, never panics: every read
//! is bounds-checked.
use super::netbios::{encoded_name, NameError};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Smb;

pub const DIRECT_PORT: u16 = 445;
pub const NETBIOS_SESSION_PORT: u16 = 139;

/// NetBIOS session service message types (RFC 1002 4.3.1).
const SESSION_MESSAGE: u8 = 0x00;
const SESSION_REQUEST: u8 = 0x81;
const POSITIVE_RESPONSE: u8 = 0x82;
const KEEPALIVE: u8 = 0x85;
const SESSION_HEADER_LEN: usize = 4;

const SMB1_MAGIC: &[u8; 4] = b"\xffSMB";
const SMB2_MAGIC: &[u8; 4] = b"\xfeSMB";
const TRANSFORM_MAGIC: &[u8; 4] = b"\xfdSMB";
const SMB1_HEADER_LEN: usize = 32;
const SMB2_HEADER_LEN: usize = 64;
/// SMB2 commands run from NEGOTIATE (0) to OPLOCK_BREAK (0x12).
const SMB2_MAX_COMMAND: u16 = 0x12;
const TRANSFORM_HEADER_LEN: usize = 52;
/// Session messages before the first SMB one that are worth skipping (response, keepalives).
const MAX_SKIPPED: usize = 4;

impl Decoder for Smb {
    fn name(&self) -> &'static str {
        "smb"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[DIRECT_PORT, NETBIOS_SESSION_PORT]
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
        let netbios = ctx.has_port(NETBIOS_SESSION_PORT);
        let mut pos = 0;
        for _ in 0..=MAX_SKIPPED {
            let Some(&kind) = data.get(pos) else {
                return Probe::NotYet;
            };
            let Some(header) = data.get(pos..pos + SESSION_HEADER_LEN) else {
                return if kind == SESSION_MESSAGE || (netbios && session_kind(kind)) {
                    Probe::NotYet
                } else {
                    Probe::NotMe
                };
            };
            let len =
                ((header[1] as usize) << 16) | ((header[2] as usize) << 8) | header[3] as usize;
            let body = pos + SESSION_HEADER_LEN;
            match kind {
                SESSION_MESSAGE => return smb_message(data, body, len),
                SESSION_REQUEST if netbios && header[1] & 0xfe == 0 => {
                    return session_request(data, body, len, ev)
                }
                POSITIVE_RESPONSE | KEEPALIVE if netbios && len == 0 => pos = body,
                _ => return Probe::NotMe,
            }
        }
        Probe::NotMe
    }
}

/// Session-service types that may open a direction on port 139.
fn session_kind(kind: u8) -> bool {
    matches!(kind, SESSION_REQUEST | POSITIVE_RESPONSE | KEEPALIVE)
}

/// A session message of `len` bytes at `body`: SMB when it holds a valid SMB header.
fn smb_message(data: &[u8], body: usize, len: usize) -> Probe {
    let Some(magic) = data.get(body..body + 4) else {
        // Only a prefix of the magic so far: wait if it could still be one.
        let have = data.get(body..).unwrap_or_default();
        let could = [SMB1_MAGIC, SMB2_MAGIC, TRANSFORM_MAGIC]
            .iter()
            .any(|m| m.starts_with(have));
        return if could { Probe::NotYet } else { Probe::NotMe };
    };
    let need = match magic {
        m if m == SMB1_MAGIC => SMB1_HEADER_LEN + 3,
        m if m == SMB2_MAGIC => SMB2_HEADER_LEN,
        m if m == TRANSFORM_MAGIC => TRANSFORM_HEADER_LEN,
        _ => return Probe::NotMe,
    };
    if len < need {
        return Probe::NotMe;
    }
    let Some(h) = data.get(body..body + need) else {
        return Probe::NotYet;
    };
    let valid = match magic {
        m if m == SMB1_MAGIC => {
            // Word count, the words, and the byte count fit the message.
            let words = h[SMB1_HEADER_LEN] as usize;
            SMB1_HEADER_LEN + 1 + 2 * words + 2 <= len
        }
        m if m == SMB2_MAGIC => {
            let structure_size = u16::from_le_bytes([h[4], h[5]]);
            let command = u16::from_le_bytes([h[12], h[13]]);
            structure_size == 64 && command <= SMB2_MAX_COMMAND
        }
        _ => {
            // Transform header: the encrypted message fits, and Flags says "encrypted" (1).
            let size = u32::from_le_bytes([h[36], h[37], h[38], h[39]]) as usize;
            let flags = u16::from_le_bytes([h[42], h[43]]);
            flags == 1 && TRANSFORM_HEADER_LEN + size == len
        }
    };
    if valid {
        Probe::Match(Proto::Smb, Confidence::Certain)
    } else {
        Probe::NotMe
    }
}

/// A NetBIOS session request at `body`: called and calling names, filling `len` exactly.
fn session_request(data: &[u8], body: usize, len: usize, ev: &mut Evidence) -> Probe {
    let called = match encoded_name(data, body) {
        Ok(n) => n,
        Err(NameError::Short) => return Probe::NotYet,
        Err(NameError::Bad) => return Probe::NotMe,
    };
    let end = match encoded_name(data, called.1) {
        Ok((_, end)) => end,
        Err(NameError::Short) => return Probe::NotYet,
        Err(NameError::Bad) => return Probe::NotMe,
    };
    if end != body + len {
        return Probe::NotMe;
    }
    called.0.set_host(ev);
    Probe::Match(Proto::Smb, Confidence::Certain)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// SMB1 NEGOTIATE with the "NT LM 0.12" and SMB2 dialects, as Windows sends it.
    fn smb1_negotiate() -> Vec<u8> {
        let dialects: &[u8] = b"\x02NT LM 0.12\x00\x02SMB 2.002\x00\x02SMB 2.???\x00";
        let mut smb = SMB1_MAGIC.to_vec();
        smb.push(0x72); // NEGOTIATE
        smb.extend_from_slice(&[0; 4]); // status
        smb.push(0x18); // flags
        smb.extend_from_slice(&[0x53, 0xc8]); // flags2
        smb.extend_from_slice(&[0; 12]); // pid high, signature, reserved
        smb.extend_from_slice(&[0, 0, 0xff, 0xfe, 0, 0, 0, 0]); // tid, pid, uid, mid
        smb.push(0); // word count
        smb.extend_from_slice(&(dialects.len() as u16).to_le_bytes());
        smb.extend_from_slice(dialects);
        session(&smb)
    }

    fn smb2_negotiate() -> Vec<u8> {
        let mut smb = SMB2_MAGIC.to_vec();
        smb.extend_from_slice(&64u16.to_le_bytes());
        smb.extend_from_slice(&[0; 6]); // credit charge, status
        smb.extend_from_slice(&0u16.to_le_bytes()); // NEGOTIATE
        smb.resize(SMB2_HEADER_LEN, 0);
        smb.extend_from_slice(&[0x24, 0, 2, 0, 1, 0, 0, 0]);
        smb.resize(SMB2_HEADER_LEN + 36, 0);
        smb.extend_from_slice(&[0x02, 0x02, 0x10, 0x02]);
        session(&smb)
    }

    fn session(smb: &[u8]) -> Vec<u8> {
        let mut m = vec![0, 0];
        m.extend_from_slice(&(smb.len() as u16).to_be_bytes());
        m.extend_from_slice(smb);
        m
    }

    fn encode(name: &[u8; 16]) -> Vec<u8> {
        let mut v = vec![32];
        for &b in name {
            v.push(b'A' + (b >> 4));
            v.push(b'A' + (b & 0xf));
        }
        v.push(0);
        v
    }

    fn session_request_bytes() -> Vec<u8> {
        let mut names = encode(b"FILESERVER     \x20");
        names.extend_from_slice(&encode(b"WORKSTATION    \x00"));
        let mut m = vec![SESSION_REQUEST, 0, 0, names.len() as u8];
        m.extend_from_slice(&names);
        m
    }

    #[test]
    fn smb1_and_smb2_negotiate_are_smb() {
        let c = ctx(Transport::Tcp, Dir::Orig, 50000, 445);
        for m in [smb1_negotiate(), smb2_negotiate()] {
            assert_eq!(
                probe_once(&Smb, &m, &c).0,
                Probe::Match(Proto::Smb, Confidence::Certain)
            );
            // The structure, not the port, decides.
            assert_eq!(
                probe_once(&Smb, &m, &ctx(Transport::Tcp, Dir::Orig, 50000, 8445)).0,
                Probe::Match(Proto::Smb, Confidence::Certain)
            );
        }
    }

    #[test]
    fn a_header_split_across_segments_waits() {
        let c = ctx(Transport::Tcp, Dir::Orig, 50000, 445);
        let m = smb2_negotiate();
        for cut in [1, 3, 4, 6, 20, 67] {
            assert_eq!(probe_once(&Smb, &m[..cut], &c).0, Probe::NotYet, "{cut}");
        }
        assert_eq!(probe_once(&Smb, &[], &c).0, Probe::NotYet);
    }

    #[test]
    fn invalid_smb_headers_are_not_smb() {
        let c = ctx(Transport::Tcp, Dir::Orig, 50000, 445);
        let m = smb2_negotiate();
        let with = |i: usize, v: u8| {
            let mut x = m.clone();
            x[i] = v;
            probe_once(&Smb, &x, &c).0
        };
        assert_eq!(with(4, 0xfb), Probe::NotMe); // magic
        assert_eq!(with(8, 65), Probe::NotMe); // structure size
        assert_eq!(with(16, 0x13), Probe::NotMe); // command
        assert_eq!(with(0, 0x01), Probe::NotMe); // session message type
                                                 // A length too short for the header.
        let mut x = m.clone();
        x[2] = 0;
        x[3] = 40;
        assert_eq!(probe_once(&Smb, &x, &c).0, Probe::NotMe);
        // SMB1 whose word count does not fit the message.
        let mut x = smb1_negotiate();
        x[4 + 32] = 200;
        assert_eq!(probe_once(&Smb, &x, &c).0, Probe::NotMe);
        let at = |b: &[u8]| probe_once(&Smb, b, &c).0;
        assert_eq!(at(b"\x00\x00\x00\x10\xfeSMX"), Probe::NotMe);
    }

    #[test]
    fn netbios_session_request_on_139() {
        let c = ctx(Transport::Tcp, Dir::Orig, 50000, 139);
        let m = session_request_bytes();
        let (p, ev) = probe_once(&Smb, &m, &c);
        assert_eq!(p, Probe::Match(Proto::Smb, Confidence::Certain));
        assert_eq!(ev.host.as_str(), "fileserver");
        assert_eq!(probe_once(&Smb, &m[..30], &c).0, Probe::NotYet);
        // Only on 139.
        assert_eq!(
            probe_once(&Smb, &m, &ctx(Transport::Tcp, Dir::Orig, 50000, 445)).0,
            Probe::NotMe
        );
        // A length that does not match the names.
        let mut x = m.clone();
        x[3] += 1;
        x.push(0);
        assert_eq!(probe_once(&Smb, &x, &c).0, Probe::NotMe);
    }

    #[test]
    fn positive_response_then_smb_on_139() {
        let c = ctx(Transport::Tcp, Dir::Reply, 50000, 139);
        let mut m = vec![POSITIVE_RESPONSE, 0, 0, 0];
        assert_eq!(probe_once(&Smb, &m, &c).0, Probe::NotYet);
        m.extend_from_slice(&smb1_negotiate());
        assert_eq!(
            probe_once(&Smb, &m, &c).0,
            Probe::Match(Proto::Smb, Confidence::Certain)
        );
        // Not on 445.
        let c = ctx(Transport::Tcp, Dir::Reply, 50000, 445);
        assert_eq!(probe_once(&Smb, &m, &c).0, Probe::NotMe);
    }

    #[test]
    fn transform_header_when_picked_up_late() {
        let mut t = TRANSFORM_MAGIC.to_vec();
        t.resize(TRANSFORM_HEADER_LEN, 0);
        t[36..40].copy_from_slice(&100u32.to_le_bytes());
        t[42] = 1;
        t.resize(TRANSFORM_HEADER_LEN + 100, 0xaa);
        let m = session(&t);
        let c = ctx(Transport::Tcp, Dir::Orig, 50000, 445);
        assert_eq!(
            probe_once(&Smb, &m, &c).0,
            Probe::Match(Proto::Smb, Confidence::Certain)
        );
        let mut x = m.clone();
        x[4 + 42] = 2;
        assert_eq!(probe_once(&Smb, &x, &c).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_smb() {
        for port in [445, 139] {
            let c = ctx(Transport::Tcp, Dir::Orig, 50000, port);
            for m in [testkit::HTTP_GET, testkit::SIP_INVITE, testkit::TLS_HELLO] {
                assert_eq!(probe_once(&Smb, m, &c).0, Probe::NotMe);
            }
            let u = ctx(Transport::Udp, Dir::Orig, 50000, port);
            assert_eq!(probe_once(&Smb, &smb2_negotiate(), &u).0, Probe::NotMe);
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        // The corpus has no SMB over TCP (1kxun.pcap's NetBIOS.SMBv1 flows are browser
        // announcements in NetBIOS datagrams, UDP 138): nothing there may match.
        let (bad, matched) = testkit::compare_with_ndpi(&Smb, &[Proto::Smb]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        assert!(matched.is_empty());
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // SIP calls with RTP, SNMP, MGCP, H.225; FaceTime media; TRex's DNS, HTTP, mail,
        // Exchange (DCE-RPC), Oracle, Citrix and video-call mixes.
        assert_eq!(testkit::matches_elsewhere(&Smb), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            scratch in any::<[u8; 16]>(),
            ports in (any::<u16>(), prop_oneof![Just(139u16), Just(445u16), any::<u16>()]),
            tcp in any::<bool>(),
        ) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = Smb.probe(&data, &ctx(t, Dir::Orig, ports.0, ports.1), &mut s, &mut ev);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..120, any::<u8>()), 0..6),
            cut in 0usize..120,
        ) {
            let mut req = session_request_bytes();
            req.extend_from_slice(&smb1_negotiate());
            for base in [req, smb2_negotiate(), smb1_negotiate()] {
                let mut m = base;
                for &(i, b) in &flips {
                    if let Some(x) = m.get_mut(i) { *x = b; }
                }
                m.truncate(cut);
                let _ = probe_once(&Smb, &m, &ctx(Transport::Tcp, Dir::Orig, 50000, 139));
            }
        }
    }
}
