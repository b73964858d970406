//! DTLS (dtls) over UDP (also relayed by TURN, inside ChannelData or Send/Data indications):
//! DTLS 1.0/1.2/1.3 records (RFC 6347, 9147) with the plaintext header
//! (content type, version 0xfeff/0xfefd/0xfefc, epoch, 48-bit sequence number, length).
//! A datagram is DTLS when its records tile it exactly; it is `Certain` when it carries a
//! ClientHello, ServerHello or HelloVerifyRequest whose fields parse, `Likely` for other
//! records (a session already under way). The ClientHello's SNI and first ALPN protocol go
//! into the evidence.
//!
//! WebRTC and FaceTime-style flows run STUN first and DTLS on the same 5-tuple (RFC 7983
//! demultiplexes on the first byte), so a STUN-looking datagram (first byte 0 or 1) is
//! `NotYet`, never `NotMe`. Never allocates, never panics; keeps no per-flow state.
use super::tls::{client_hello, is_dtls_version, server_hello, Cursor, Hello, Stop};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Dtls;

const RECORD_HEADER: usize = 13;
const HANDSHAKE_HEADER: usize = 12;
const CHANGE_CIPHER_SPEC: u8 = 20;
/// ack (RFC 9147); 25 is tls12_cid (RFC 9146).
const ACK: u8 = 26;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const HELLO_VERIFY_REQUEST: u8 = 3;

impl Decoder for Dtls {
    fn name(&self) -> &'static str {
        "dtls"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[443, 853, 3478, 4433, 5349, 5061]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        // Relayed through TURN: the DTLS inside ChannelData or a Send/Data indication.
        let data = super::util::turn_payload(data).unwrap_or(data);
        match data.first() {
            None | Some(0 | 1) => return Probe::NotYet, // STUN: DTLS may follow
            Some(_) => {}
        }
        let mut hello = Hello::default();
        match records(data, &mut hello) {
            Ok(true) => {
                hello.commit(ev);
                Probe::Match(Proto::Dtls, Confidence::Certain)
            }
            Ok(false) => Probe::Match(Proto::Dtls, Confidence::Likely),
            // A plaintext DTLS record header that goes wrong later (stun.pcap's Zoom client
            // sends one mangled hello before a good one): wait for the next datagram.
            Err(()) if first_record_header(data) => Probe::NotYet,
            Err(()) => Probe::NotMe,
        }
    }
}

/// Whether the datagram opens with a plaintext handshake record header of epoch 0.
fn first_record_header(data: &[u8]) -> bool {
    match data.get(..RECORD_HEADER) {
        Some(h) => {
            h[0] == HANDSHAKE
                && is_dtls_version(u16::from_be_bytes([h[1], h[2]]))
                && h[3..5] == [0, 0]
        }
        None => false,
    }
}

/// Walks the records of a datagram. `Ok(true)`: they tile it and one carries a hello that
/// parses; `Ok(false)`: they tile it, no hello; `Err`: not DTLS.
fn records<'a>(data: &'a [u8], hello: &mut Hello<'a>) -> Result<bool, ()> {
    let mut off = 0;
    let mut saw_hello = false;
    while off < data.len() {
        let h = data.get(off..off + RECORD_HEADER).ok_or(())?;
        let kind = h[0];
        let version = u16::from_be_bytes([h[1], h[2]]);
        let epoch = u16::from_be_bytes([h[3], h[4]]);
        let len = u16::from_be_bytes([h[11], h[12]]) as usize;
        if !(CHANGE_CIPHER_SPEC..=ACK).contains(&kind) || !is_dtls_version(version) || len == 0 {
            return Err(());
        }
        let start = off + RECORD_HEADER;
        let body = data.get(start..start + len).ok_or(())?;
        match (kind, epoch) {
            (HANDSHAKE, 0) => saw_hello |= handshake(body, hello)?,
            (APPLICATION_DATA, 0) => return Err(()), // application data needs keys: epoch >= 1
            _ => {}
        }
        off = start + len;
    }
    Ok(saw_hello)
}

/// The handshake messages (or fragments of them) of one plaintext record: whether one is a
/// hello. Each fragment must lie within its message and within the record.
fn handshake<'a>(mut b: &'a [u8], hello: &mut Hello<'a>) -> Result<bool, ()> {
    let mut saw_hello = false;
    while !b.is_empty() {
        let h = b.get(..HANDSHAKE_HEADER).ok_or(())?;
        let kind = h[0];
        let be24 = |i: usize| u32::from_be_bytes([0, h[i], h[i + 1], h[i + 2]]) as usize;
        let (msg_len, frag_off, frag_len) = (be24(1), be24(6), be24(9));
        if frag_off + frag_len > msg_len {
            return Err(());
        }
        let frag = b
            .get(HANDSHAKE_HEADER..HANDSHAKE_HEADER + frag_len)
            .ok_or(())?;
        if frag_off == 0 && matches!(kind, CLIENT_HELLO | SERVER_HELLO | HELLO_VERIFY_REQUEST) {
            // A first fragment: its fields must parse as far as they go.
            let mut c = Cursor::new(frag, msg_len);
            let r = match kind {
                CLIENT_HELLO => client_hello(&mut c, true, hello),
                SERVER_HELLO => server_hello(&mut c, true),
                _ => hello_verify_request(&mut c),
            };
            match r.and_then(|()| c.complete()) {
                Ok(()) | Err(Stop::Short) => saw_hello = true,
                Err(Stop::Bad) => return Err(()),
            }
        }
        b = &b[HANDSHAKE_HEADER + frag_len..];
    }
    Ok(saw_hello)
}

/// HelloVerifyRequest (RFC 6347 4.2.1): server version and a cookie, nothing else.
fn hello_verify_request(c: &mut Cursor<'_>) -> Result<(), Stop> {
    if !is_dtls_version(c.u16()?) {
        return Err(Stop::Bad);
    }
    let cookie = c.u8()? as usize;
    c.take(cookie)?;
    if c.is_done() {
        Ok(())
    } else {
        Err(Stop::Bad)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, find, first_payload, replay_file, truth, Feed};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    const CERTAIN: Probe = Probe::Match(Proto::Dtls, Confidence::Certain);

    fn probe(data: &[u8]) -> (Probe, Evidence) {
        let mut ev = Evidence::default();
        let p = Dtls.probe(
            data,
            &ctx(Transport::Udp, Dir::Orig, 49153, 3478),
            &mut [0; 16],
            &mut ev,
        );
        (p, ev)
    }

    /// A DTLS 1.2 ClientHello datagram with the given SNI.
    fn client_hello(sni: &str) -> Vec<u8> {
        let mut body = vec![0xfe, 0xfd];
        body.extend([5; 32]);
        body.push(0); // session id
        body.extend([4, 1, 2, 3, 4]); // cookie
        body.extend([0, 2, 0xc0, 0x2b, 1, 0]);
        let mut sn = ((sni.len() + 3) as u16).to_be_bytes().to_vec();
        sn.push(0);
        sn.extend((sni.len() as u16).to_be_bytes());
        sn.extend(sni.as_bytes());
        let mut exts = vec![0, 0];
        exts.extend((sn.len() as u16).to_be_bytes());
        exts.extend(sn);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let n = body.len();
        let mut hs = vec![
            CLIENT_HELLO,
            0,
            (n >> 8) as u8,
            n as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            (n >> 8) as u8,
            n as u8,
        ];
        hs.extend(body);
        let mut rec = vec![
            HANDSHAKE,
            0xfe,
            0xff,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            (hs.len() >> 8) as u8,
            hs.len() as u8,
        ];
        rec.extend(hs);
        rec
    }

    #[test]
    fn client_hello_gives_sni() {
        let (p, ev) = probe(&client_hello("turn.example.net"));
        assert_eq!(p, CERTAIN);
        assert_eq!(ev.host.as_str(), "turn.example.net");
    }

    #[test]
    fn real_client_hello_and_hello_verify_request() {
        // stun.pcap, flow 192.168.12.169:49153 -> 142.250.82.99:3478 (Google Meet).
        let hello = first_payload("ndpi/stun.pcap", &[0x16, 0xfe, 0xff]);
        assert_eq!(probe(&hello).0, CERTAIN);
        let hvr = [
            22, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 3, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5,
            0xfe, 0xff, 2, 9, 9,
        ];
        assert_eq!(probe(&hvr).0, CERTAIN);
        let mut bad = hvr;
        bad[27] = 3; // the cookie runs past the message: no match, but a hello may follow
        assert_eq!(probe(&bad).0, Probe::NotYet);
    }

    #[test]
    fn records_must_tile_the_datagram() {
        let hello = client_hello("a.example");
        for cut in 1..hello.len() {
            // A cut datagram is not DTLS; one with a whole hello header waits for the next.
            let want = if cut < RECORD_HEADER {
                Probe::NotMe
            } else {
                Probe::NotYet
            };
            assert_eq!(probe(&hello[..cut]).0, want, "cut at {cut}");
        }
        let mut mangled = hello.clone();
        mangled[0] = 23;
        assert_eq!(probe(&mangled).0, Probe::NotMe);
        let mut two = hello.clone();
        two.extend([20, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1]); // + ChangeCipherSpec
        assert_eq!(probe(&two).0, CERTAIN);
        two.push(0);
        assert_eq!(probe(&two).0, Probe::NotYet);
        two[0] = 21; // an alert record that does not tile the datagram
        assert_eq!(probe(&two).0, Probe::NotMe);
        let app = [23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 7, 0, 3, 1, 2, 3];
        assert_eq!(probe(&app).0, Probe::Match(Proto::Dtls, Confidence::Likely));
        let mut epoch0 = app;
        epoch0[4] = 0;
        assert_eq!(probe(&epoch0).0, Probe::NotMe);
    }

    #[test]
    fn a_fragmented_hello_counts_by_its_first_fragment() {
        let hello = client_hello("frag.example");
        let n = hello.len() - RECORD_HEADER - HANDSHAKE_HEADER;
        let first = 40;
        let mut frag = hello[..RECORD_HEADER + HANDSHAKE_HEADER + first].to_vec();
        frag[11..13].copy_from_slice(&((HANDSHAKE_HEADER + first) as u16).to_be_bytes());
        frag[RECORD_HEADER + 9..RECORD_HEADER + 12].copy_from_slice(&[0, 0, first as u8]);
        assert!(n > first);
        assert_eq!(probe(&frag).0, CERTAIN);
        frag[RECORD_HEADER + 9..RECORD_HEADER + 12].copy_from_slice(&[0, 1, 0]); // past the message
        assert_eq!(probe(&frag).0, Probe::NotYet);
    }

    #[test]
    fn stun_waits_and_rtp_sip_dns_tls_are_not_dtls() {
        let stun = [
            0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ];
        assert_eq!(probe(&stun).0, Probe::NotYet);
        let rtp = [
            0x80, 0x00, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff,
        ];
        let sip = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n";
        let dns = [
            0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 0, 0, 1, 0,
            1,
        ];
        let tls = [22, 3, 1, 0, 5, 1, 0, 0, 1, 0, 0, 0, 0, 0];
        for m in [&rtp[..], sip, &dns, &tls] {
            assert_eq!(probe(m).0, Probe::NotMe, "{m:02x?}");
        }
        let mut ev = Evidence::default();
        let tcp = ctx(Transport::Tcp, Dir::Orig, 1, 443);
        assert_eq!(
            Dtls.probe(&client_hello("x"), &tcp, &mut [0; 16], &mut ev),
            Probe::NotMe
        );
    }

    #[test]
    fn corpus_dtls_flows_are_dtls_after_their_stun() {
        // (capture, DTLS flows nDPI recognised)
        for (file, want) in [("ndpi/stun.pcap", 2), ("ndpi/stun_dtls_rtp.pcapng", 1)] {
            let runs = replay_file(file, &Dtls, Feed::budget(64));
            let mut dtls = 0;
            for t in truth(file) {
                let Some(run) = find(&runs, &t) else { continue };
                if run.payloads == [0, 0] || t.guessed {
                    continue; // nDPI went by the port
                }
                if t.label.starts_with("DTLS") {
                    dtls += 1;
                    assert_eq!(run.verdict, CERTAIN, "{file}: {t:?}");
                } else {
                    assert_eq!(run.proto(), None, "{file}: {t:?} must not be dtls");
                }
            }
            assert_eq!(dtls, want, "{file}");
        }
    }

    #[test]
    fn media_and_signalling_captures_have_no_dtls() {
        for f in [
            "ndpi/rtp.pcapng",
            "ndpi/sip.pcap",
            "ndpi/stun_classic.pcap",
            "ndpi/dns.pcap",
            "ndpi/rtcp_multiple_pkts_in_the_same_datagram.pcap",
            "ndpi/iphone.pcap",
            "ndpi/1kxun.pcap",
            "mix/USTC-TFC2016_Facetime.pcap",
            "mix/trex_sfr/delay_10_rtp_160k_full.pcap",
            "sip-calls/sipnab_SIP_CALL_RTP_G711.pcap",
        ] {
            for r in replay_file(f, &Dtls, Feed::budget(16)) {
                assert_eq!(r.proto(), None, "{f}: {r:?}");
            }
        }
    }

    /// Cisco AnyConnect's DTLS (OpenSSL's pre-RFC version 0x0100), picked up mid-session:
    /// an application-data record of epoch 1 that fills the datagram.
    #[test]
    fn pre_rfc_dtls_mid_session_is_dtls() {
        let mut d = vec![23, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0xd4, 0x15, 0, 40];
        d.extend([0x5a; 40]);
        assert_eq!(probe(&d).0, Probe::Match(Proto::Dtls, Confidence::Likely));
        // The same bytes with a version no DTLS has are not DTLS.
        d[1] = 0x02;
        assert_eq!(probe(&d).0, Probe::NotMe);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600), scratch in any::<[u8; 16]>()) {
            let mut s = scratch;
            let _ = Dtls.probe(&data, &ctx(Transport::Udp, Dir::Reply, 1, 2), &mut s, &mut Evidence::default());
        }

        #[test]
        fn never_panics_on_mutated_hellos(pos in 0usize..120, byte in any::<u8>(), cut in 1usize..120) {
            let mut d = client_hello("m.example");
            if let Some(b) = d.get_mut(pos) { *b = byte; }
            d.truncate(cut);
            let _ = probe(&d);
        }
    }
}
