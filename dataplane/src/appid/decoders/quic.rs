//! QUIC (quic) over UDP: a client's Initial packet, decrypted to read its TLS ClientHello.
//!
//! Initial packets are protected with keys anyone can derive from the packet itself (RFC 9001
//! section 5.2; RFC 9369 for QUIC v2; the salts of drafts 23-28 and 29-32, which browsers
//! shipped before v1):
//! HKDF-Extract(version salt, Destination Connection ID), then HKDF-Expand-Label for the
//! client's key, IV and header-protection key. The decoder removes header protection (AES-ECB
//! of a 16-byte sample), decrypts the payload (AES-128-GCM, with the header as associated
//! data), gathers the CRYPTO frames in offset order (clients scatter the ClientHello over
//! several frames, in any order, between PING and PADDING frames) and parses the ClientHello
//! with the TLS decoder's parser: SNI and the first ALPN protocol go into the evidence, and the
//! catalog shifts the flow by SNI as it does TLS.
//!
//! `Certain` for an Initial that decrypts (the AEAD tag is the proof). When its ClientHello
//! continues in a later Initial (post-quantum key shares make it longer than one datagram),
//! the CRYPTO bytes so far wait in the flow's gathering buffer (their contiguous length in
//! scratch) and the answer is `Likely` until the next Initial completes the hello: then
//! `Certain`, with the SNI. (Without a gathering buffer, `Certain` at once, without the SNI.) A long header of a known version that does not
//! decrypt (a server's Initial, which uses the server's keys; 0-RTT; a Retry) is `Likely`.
//! The cost (key derivation, one AES-GCM decryption of about 1200 bytes) is paid once per
//! flow, while App-ID classifies it; decided flows never come here. Crypto is RustCrypto's
//! (`hkdf`, `sha2`, `aes`, `aes-gcm`); nothing allocates, nothing panics on any input.
use super::tls::{client_hello, Cursor, Hello, Stop};
use crate::appid::engine::STREAM_BYTES;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;
use aes::cipher::{BlockEncrypt, KeyInit};
use aes_gcm::aead::AeadInPlace;

pub struct Quic;

const V1: u32 = 0x0000_0001;
const V2: u32 = 0x6b33_43cf;
const DRAFT29: u32 = 0xff00_001d;
/// Drafts 23 to 28 share another salt (draft-29 changed it).
const DRAFTS_23_28: std::ops::RangeInclusive<u32> = 0xff00_0017..=0xff00_001c;
/// The largest datagram decrypted (a client's Initial is at least 1200 bytes; paths rarely
/// carry more than 1500).
const MAX_PACKET: usize = 1600;
/// CRYPTO bytes gathered from one Initial.
const MAX_CRYPTO: usize = 2048;
/// A handshake message's header: type and 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
const CLIENT_HELLO: u8 = 1;

/// What one version's Initial keys are made from.
struct Version {
    salt: [u8; 20],
    key: &'static [u8],
    iv: &'static [u8],
    hp: &'static [u8],
    /// The long-header packet type of an Initial.
    initial_type: u8,
}

fn keys_of(v: u32) -> Option<Version> {
    const SALT_V1: [u8; 20] = [
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c,
        0xad, 0xcc, 0xbb, 0x7f, 0x0a,
    ];
    const SALT_V2: [u8; 20] = [
        0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d,
        0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
    ];
    const SALT_DRAFT29: [u8; 20] = [
        0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11,
        0xe0, 0x43, 0x90, 0xa8, 0x99,
    ];
    const SALT_DRAFT23: [u8; 20] = [
        0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63,
        0x65, 0xbe, 0xf9, 0xf5, 0x02,
    ];
    Some(match v {
        v if DRAFTS_23_28.contains(&v) => Version {
            salt: SALT_DRAFT23,
            key: b"quic key",
            iv: b"quic iv",
            hp: b"quic hp",
            initial_type: 0,
        },
        V1 => Version {
            salt: SALT_V1,
            key: b"quic key",
            iv: b"quic iv",
            hp: b"quic hp",
            initial_type: 0,
        },
        DRAFT29 => Version {
            salt: SALT_DRAFT29,
            key: b"quic key",
            iv: b"quic iv",
            hp: b"quic hp",
            initial_type: 0,
        },
        V2 => Version {
            salt: SALT_V2,
            key: b"quicv2 key",
            iv: b"quicv2 iv",
            hp: b"quicv2 hp",
            initial_type: 1,
        },
        _ => return None,
    })
}

/// The client's Initial keys for `dcid` under `v`: (key, iv, header protection key).
fn client_keys(v: &Version, dcid: &[u8]) -> ([u8; 16], [u8; 12], [u8; 16]) {
    let (_, initial) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(&v.salt), dcid);
    let mut client = [0u8; 32];
    expand_label(&initial, b"client in", &mut client);
    let client = hkdf::Hkdf::<sha2::Sha256>::from_prk(&client).expect("a SHA-256 PRK");
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    expand_label(&client, v.key, &mut key);
    expand_label(&client, v.iv, &mut iv);
    expand_label(&client, v.hp, &mut hp);
    (key, iv, hp)
}

/// TLS 1.3's HKDF-Expand-Label with an empty context (RFC 8446 section 7.1).
fn expand_label(prk: &hkdf::Hkdf<sha2::Sha256>, label: &[u8], out: &mut [u8]) {
    let mut info = [0u8; 2 + 1 + 6 + 16 + 1];
    let n = 6 + label.len();
    info[..2].copy_from_slice(&(out.len() as u16).to_be_bytes());
    info[2] = n as u8;
    info[3..9].copy_from_slice(b"tls13 ");
    info[9..9 + label.len()].copy_from_slice(label);
    info[3 + n] = 0;
    // Lengths of 12, 16 and 32 bytes are far below HKDF-SHA256's limit.
    prk.expand(&info[..4 + n], out)
        .expect("a short HKDF output");
}

/// A QUIC variable-length integer at `*at`.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..*at + len)?;
    let mut v = (first & 0x3f) as u64;
    for &x in &bytes[1..] {
        v = v << 8 | x as u64;
    }
    *at += len;
    Some(v)
}

/// A long-header packet's fields up to its (protected) packet number.
struct LongHeader<'a> {
    version: u32,
    kind: u8,
    dcid: &'a [u8],
    /// Offset of the packet number, and the end of this packet (the Length field's extent).
    pn_at: usize,
    end: usize,
}

fn long_header(b: &[u8]) -> Option<LongHeader<'_>> {
    let first = *b.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(b.get(1..5)?.try_into().ok()?);
    let mut at = 5;
    let dcid_len = *b.get(at)? as usize;
    if dcid_len > 20 {
        return None;
    }
    let dcid = b.get(at + 1..at + 1 + dcid_len)?;
    at += 1 + dcid_len;
    let scid_len = *b.get(at)? as usize;
    if scid_len > 20 {
        return None;
    }
    at += 1 + scid_len;
    let kind = (first >> 4) & 0x03;
    let v = keys_of(version);
    if v.as_ref().is_some_and(|v| kind == v.initial_type) {
        let token = varint(b, &mut at)? as usize;
        at = at.checked_add(token)?;
    }
    let length = varint(b, &mut at)? as usize;
    let end = at.checked_add(length)?;
    if end > b.len() {
        return None;
    }
    Some(LongHeader {
        version,
        kind,
        dcid,
        pn_at: at,
        end,
    })
}

/// Decrypts the client Initial at the start of `b` into `buf`; returns the plaintext
/// payload (frames).
fn decrypt_initial<'b>(
    b: &[u8],
    h: &LongHeader<'_>,
    buf: &'b mut [u8; MAX_PACKET],
) -> Option<&'b [u8]> {
    let v = keys_of(h.version)?;
    let (key, iv, hp) = client_keys(&v, h.dcid);
    // Header protection: the sample starts 4 bytes after the packet number's start.
    let sample = b.get(h.pn_at + 4..h.pn_at + 20)?;
    let mut mask = aes::Block::clone_from_slice(sample);
    aes::Aes128::new(&hp.into()).encrypt_block(&mut mask);
    let len = h.end;
    if len > MAX_PACKET || len < h.pn_at + 20 {
        return None;
    }
    let packet = &mut buf[..len];
    packet.copy_from_slice(&b[..len]);
    packet[0] ^= mask[0] & 0x0f;
    let pn_len = (packet[0] & 0x03) as usize + 1;
    let mut pn = 0u64;
    for i in 0..pn_len {
        packet[h.pn_at + i] ^= mask[1 + i];
        pn = pn << 8 | packet[h.pn_at + i] as u64;
    }
    let mut nonce = iv;
    for (n, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let body = h.pn_at + pn_len;
    if len < body + 16 {
        return None;
    }
    let (header, rest) = packet.split_at_mut(body);
    let (ciphertext, tag) = rest.split_at_mut(len - body - 16);
    let aead = aes_gcm::Aes128Gcm::new(&key.into());
    aead.decrypt_in_place_detached(
        aes_gcm::Nonce::from_slice(&nonce),
        header,
        ciphertext,
        aes_gcm::Tag::from_slice(tag),
    )
    .ok()?;
    Some(&buf[body..len - 16])
}

/// The CRYPTO frames of a decrypted Initial, gathered by offset into `out`, whose first
/// `prior` bytes earlier Initials gave: how many bytes from offset 0 are present
/// (contiguous). None if a frame is not one an Initial may carry.
fn gather_crypto(frames: &[u8], out: &mut [u8; MAX_CRYPTO], prior: usize) -> Option<usize> {
    // Ranges present, as a bitmap of 16-byte blocks would be coarse; keep exact extents of
    // the (few) frames instead.
    let mut have: [(usize, usize); 16] = [(0, 0); 16];
    let mut n = 0;
    if prior > 0 {
        have[0] = (0, prior.min(MAX_CRYPTO));
        n = 1;
    }
    let mut at = 0;
    while at < frames.len() {
        let kind = varint(frames, &mut at)?;
        match kind {
            0x00 | 0x01 => {} // PADDING, PING
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges, ECN counts.
                varint(frames, &mut at)?;
                varint(frames, &mut at)?;
                let ranges = varint(frames, &mut at)?;
                varint(frames, &mut at)?;
                for _ in 0..ranges.min(256) {
                    varint(frames, &mut at)?;
                    varint(frames, &mut at)?;
                }
                if kind == 0x03 {
                    for _ in 0..3 {
                        varint(frames, &mut at)?;
                    }
                }
            }
            0x06 => {
                let off = varint(frames, &mut at)? as usize;
                let len = varint(frames, &mut at)? as usize;
                let data = frames.get(at..at.checked_add(len)?)?;
                at += len;
                if off < MAX_CRYPTO && n < have.len() {
                    let end = (off + len).min(MAX_CRYPTO);
                    out[off..end].copy_from_slice(&data[..end - off]);
                    have[n] = (off, end);
                    n += 1;
                }
            }
            0x1c | 0x1d => return None, // CONNECTION_CLOSE: nothing to read
            _ => return None,
        }
    }
    // The contiguous prefix from offset 0.
    let mut upto = 0;
    loop {
        let next = have[..n]
            .iter()
            .filter(|&&(s, e)| s <= upto && e > upto)
            .map(|&(_, e)| e)
            .max();
        match next {
            Some(e) => upto = e,
            None => return Some(upto),
        }
    }
}

/// Whether `v` is a Google QUIC version tag: `Q` (QUIC crypto) or `T` (TLS), then three
/// digits (Q024 ... Q050, T050, T051).
fn is_google_version(v: &[u8]) -> bool {
    v.len() == 4 && matches!(v[0], b'Q' | b'T') && v[1..].iter().all(u8::is_ascii_digit)
}

/// Google's pre-IETF QUIC from a client: the public header of Q043 and earlier (flags with
/// the version bit, an 8-byte connection ID, the version tag), or the long header that Q046 and
/// later share with IETF QUIC with a Google version tag. Up to Q046 the client's hello
/// (`CHLO`, a tag/value message) is in clear: its `SNI` tag goes into the evidence.
fn google_quic(data: &[u8], ev: &mut Evidence) -> Option<Probe> {
    let first = *data.first()?;
    let version = if first & 0x80 == 0 {
        // Public header: version present (0x01), not a reset (0x02), 8-byte CID (0x08).
        if first & 0x03 != 0x01 || first & 0x08 == 0 {
            return None;
        }
        data.get(9..13)?
    } else {
        data.get(1..5)?
    };
    if !is_google_version(version) {
        return None;
    }
    if let Some(at) = memchr::memmem::find(data, b"CHLO") {
        if let Some(sni) = chlo_tag(&data[at..], b"SNI\0") {
            if super::tls::is_host_name(sni) {
                ev.host.set(sni);
            }
        }
    }
    Some(Probe::Match(Proto::Quic, Confidence::Certain))
}

/// The value of `tag` in a Google QUIC handshake message (`CHLO`, tag count (u16 LE), two
/// bytes of padding, (tag, end offset (u32 LE)) pairs, then the values end to end).
fn chlo_tag<'a>(m: &'a [u8], tag: &[u8; 4]) -> Option<&'a [u8]> {
    let n = u16::from_le_bytes([*m.get(4)?, *m.get(5)?]) as usize;
    let values = 8 + n.checked_mul(8)?;
    let mut start = 0usize;
    for i in 0..n {
        let e = m.get(8 + i * 8..16 + i * 8)?;
        let end = u32::from_le_bytes([e[4], e[5], e[6], e[7]]) as usize;
        if end < start {
            return None;
        }
        if &e[..4] == tag {
            return m.get(values + start..values + end);
        }
        start = end;
    }
    None
}

impl Decoder for Quic {
    fn name(&self) -> &'static str {
        "quic"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[443, 80, 8443]
    }
    fn probe(&self, data: &[u8], ctx: &FlowCtx, scratch: &mut Scratch, ev: &mut Evidence) -> Probe {
        classify(data, ctx, scratch, ev, None)
    }
    fn probe_gathering(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        ev: &mut Evidence,
        gather: Option<&mut [u8; STREAM_BYTES]>,
    ) -> Probe {
        classify(data, ctx, scratch, ev, gather)
    }
}

/// Scratch byte 0: a ClientHello is being gathered; bytes 1-2: how much of it (contiguous).
const GATHERING: u8 = 1;
const _: () = assert!(
    MAX_CRYPTO == STREAM_BYTES,
    "the CRYPTO bytes fill the gathering buffer"
);

fn classify(
    data: &[u8],
    ctx: &FlowCtx,
    scratch: &mut Scratch,
    ev: &mut Evidence,
    gather: Option<&mut [u8; STREAM_BYTES]>,
) -> Probe {
    {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        if let Some(p) = google_quic(data, ev) {
            return p;
        }
        let Some(h) = long_header(data) else {
            // A short header (1-RTT) before any long one: a flow picked up mid-way, or not
            // QUIC. Other decoders decide; QUIC stays possible only if it looks like one.
            return match data.first() {
                Some(&b) if b & 0xc0 == 0x40 && data.len() >= 21 => Probe::NotYet,
                _ => Probe::NotMe,
            };
        };
        let Some(v) = keys_of(h.version) else {
            // Version negotiation (version 0) or an unknown version: not ours to name.
            return Probe::NotMe;
        };
        if ctx.dir != Dir::Orig || h.kind != v.initial_type {
            return Probe::Match(Proto::Quic, Confidence::Likely);
        }
        let mut buf = [0u8; MAX_PACKET];
        let Some(frames) = decrypt_initial(data, &h, &mut buf) else {
            return Probe::Match(Proto::Quic, Confidence::Likely);
        };
        let mut local = [0u8; MAX_CRYPTO];
        let gathering = gather.is_some();
        let prior = if gathering && scratch[0] == GATHERING {
            u16::from_be_bytes([scratch[1], scratch[2]]) as usize
        } else {
            0
        };
        let crypto = match gather {
            Some(g) => g,
            None => &mut local,
        };
        let Some(have) = gather_crypto(frames, crypto, prior) else {
            return Probe::Match(Proto::Quic, Confidence::Likely);
        };
        let got = &crypto[..have];
        if got.len() >= HANDSHAKE_HEADER && got[0] == CLIENT_HELLO {
            let msg_len = u32::from_be_bytes([0, got[1], got[2], got[3]]) as usize;
            let mut c = Cursor::new(&got[HANDSHAKE_HEADER..], msg_len);
            let mut hello = Hello::default();
            match client_hello(&mut c, false, &mut hello).and_then(|()| c.complete()) {
                Ok(()) => hello.commit(ev),
                // Continued in a later Initial: wait for it while there is room to gather.
                Err(Stop::Short) if gathering && have < MAX_CRYPTO => {
                    scratch[0] = GATHERING;
                    scratch[1..3].copy_from_slice(&(have as u16).to_be_bytes());
                    return Probe::Match(Proto::Quic, Confidence::Likely);
                }
                // No room (or no buffer): what is here is committed as far as it went.
                Err(Stop::Short) => hello.commit(ev),
                Err(Stop::Bad) => return Probe::Match(Proto::Quic, Confidence::Likely),
            }
        }
        scratch[0] = 0;
        Probe::Match(Proto::Quic, Confidence::Certain)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{ctx, flows, truth};
    use super::*;
    use proptest::prelude::*;

    fn hexs(s: &str) -> Vec<u8> {
        super::super::testkit::hex(s)
    }

    /// RFC 9001 appendix A.1 and RFC 9369 appendix A.1: the client keys for the connection ID
    /// 0x8394c8f03e515708.
    #[test]
    fn initial_keys_are_the_rfcs() {
        let dcid = hexs("8394c8f03e515708");
        let (key, iv, hp) = client_keys(&keys_of(V1).unwrap(), &dcid);
        assert_eq!(key.to_vec(), hexs("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), hexs("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), hexs("9f50449e04a0e810283a1e9933adedd2"));
        let (key, iv, hp) = client_keys(&keys_of(V2).unwrap(), &dcid);
        assert_eq!(key.to_vec(), hexs("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(iv.to_vec(), hexs("91f73e2351d8fa91660e909f"));
        assert_eq!(hp.to_vec(), hexs("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn varints_of_every_length() {
        for (b, v) in [
            (&[0x25][..], 37u64),
            (&[0x7b, 0xbd], 15293),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
        ] {
            let mut at = 0;
            assert_eq!(varint(b, &mut at), Some(v));
            assert_eq!(at, b.len());
        }
        assert_eq!(varint(&[0x40], &mut 0), None);
    }

    /// The nDPI captures of IETF QUIC v1, v2 and draft-29 (quic.pcap is Google QUIC, not
    /// decoded yet): each client's first Initial decrypts and
    /// names the server nDPI found in it (nDPI decrypts Initials with its own code).
    /// quic_frags_ch_in_multiple_packets.pcapng: the ClientHello spans two Initials. With the
    /// gathering buffer (as the engine gives it) the answer waits for the second and then has
    /// the whole hello: its first ALPN, h3-34, as nDPI reads it.
    #[test]
    fn a_client_hello_over_two_initials_is_gathered() {
        let file = "ndpi/quic_frags_ch_in_multiple_packets.pcapng";
        let f = flows(file)
            .into_iter()
            .find(|f| f.transport == Transport::Udp)
            .unwrap();
        let run = super::super::testkit::replay(&Quic, &f, super::super::testkit::Feed::ENGINE);
        assert_eq!(run.answer(), Some((Proto::Quic, Confidence::Certain)));
        assert_eq!(run.ev.alpn.as_str(), "h3-34");
        assert_eq!(run.probes, 2, "decided at the second Initial");
        // Without a buffer the first Initial alone decides, the hello cut short.
        let first = &f.packets[0].2;
        let c = ctx(Transport::Udp, Dir::Orig, f.client.1, f.server.1);
        let mut s = [0u8; 16];
        assert_eq!(
            Quic.probe(first, &c, &mut s, &mut Evidence::default()),
            Probe::Match(Proto::Quic, Confidence::Certain)
        );
        let mut g = [0u8; STREAM_BYTES];
        let mut s = [0u8; 16];
        let p = Quic.probe_gathering(first, &c, &mut s, &mut Evidence::default(), Some(&mut g));
        assert_eq!(p, Probe::Match(Proto::Quic, Confidence::Likely));
        assert_eq!(s[0], GATHERING);
    }

    #[test]
    fn real_initials_decrypt_to_the_server_name_ndpi_reads() {
        let mut checked = 0;
        for name in [
            "quic-29.pcap",
            "quic-v2.pcapng",
            "quic_0RTT.pcap",
            "quic_frags_ch_in_multiple_packets.pcapng",
        ] {
            let file = format!("ndpi/{name}");
            let truths = truth(&file);
            for f in flows(&file)
                .iter()
                .filter(|f| f.transport == Transport::Udp)
            {
                let Some((_, _, first)) = f.packets.iter().find(|p| p.0 == Dir::Orig) else {
                    continue;
                };
                let std = |a: (crate::packet::IpAddr16, u16)| (a.0.to_std(), a.1);
                let Some(t) = truths.iter().find(|t| {
                    t.transport == Transport::Udp
                        && ((t.client, t.server) == (std(f.client), std(f.server))
                            || (t.server, t.client) == (std(f.client), std(f.server)))
                }) else {
                    continue;
                };
                // A capture that begins with the server's packet: its Initials use the
                // server's keys, not the client's (Likely, no name).
                let (Some(want), true) = (&t.host, t.label.starts_with("QUIC")) else {
                    continue;
                };
                // Only a flow whose first datagram is an Initial (a capture that begins
                // mid-connection has 0-RTT or 1-RTT packets first).
                let initial = long_header(first)
                    .is_some_and(|h| keys_of(h.version).is_some_and(|v| v.initial_type == h.kind));
                if t.client != std(f.client) || !initial {
                    continue;
                }
                let mut ev = Evidence::default();
                let p = Quic.probe(
                    first,
                    &ctx(Transport::Udp, Dir::Orig, f.client.1, f.server.1),
                    &mut [0; 16],
                    &mut ev,
                );
                assert_eq!(
                    p,
                    Probe::Match(Proto::Quic, Confidence::Certain),
                    "{name} {:?}",
                    f.endpoints()
                );
                assert_eq!(
                    ev.host.as_str(),
                    want.as_str(),
                    "{name} {:?}",
                    f.endpoints()
                );
                checked += 1;
            }
        }
        assert!(checked >= 3, "only {checked} Initials checked");
    }

    /// Google QUIC (Q035 on YouTube, Q024 to Gmail): the public header's version tag, and
    /// the SNI of the hello in clear.
    #[test]
    fn google_quic_is_quic_with_its_sni() {
        let (mut checked, mut recognised) = (0, 0);
        for (name, host) in [("quic.pcap", "mail.google.com"), ("youtube_quic.pcap", "")] {
            for f in flows(&format!("ndpi/{name}"))
                .iter()
                .filter(|f| f.transport == Transport::Udp)
            {
                let Some((_, _, first)) = f.packets.iter().find(|p| p.0 == Dir::Orig) else {
                    continue;
                };
                let mut ev = Evidence::default();
                let p = Quic.probe(
                    first,
                    &ctx(Transport::Udp, Dir::Orig, f.client.1, f.server.1),
                    &mut [0; 16],
                    &mut ev,
                );
                // A flow picked up after its hello (a server packet first, no version in
                // its header) is left to the other decoders.
                if first[0] & 0x81 == 0x01 {
                    assert_eq!(p, Probe::Match(Proto::Quic, Confidence::Certain), "{name}");
                    recognised += 1;
                } else {
                    assert_eq!(p, Probe::NotMe, "{name}");
                }
                if !host.is_empty() && ev.host.as_str() == host {
                    checked += 1;
                }
                assert!(
                    ev.host.is_empty() || ev.host.as_str().contains('.'),
                    "{:?}",
                    ev.host
                );
            }
        }
        assert!(checked >= 1, "no Gmail hello found");
        assert!(recognised >= 12, "{recognised} Google QUIC flows");
    }

    #[test]
    fn other_udp_is_not_quic() {
        let c = ctx(Transport::Udp, Dir::Orig, 50000, 443);
        let mut ev = Evidence::default();
        for data in [
            &b"\x00\x01\x00\x00\x21\x12\xa4\x42rest-of-a-stun-binding"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            &[0x80, 0x00, 0x00, 0x00, 0x00, 0x08][..], // version negotiation
            &[],
        ] {
            assert_eq!(Quic.probe(data, &c, &mut [0; 16], &mut ev), Probe::NotMe);
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..1600), first in any::<u8>(), v in 0usize..3) {
            let mut data = data;
            // Steer half the inputs into the long-header path of a known version.
            if data.len() > 6 && first & 1 == 1 {
                data[0] = 0xc0 | (data[0] & 0x3f);
                let ver = [V1, V2, DRAFT29][v];
                data[1..5].copy_from_slice(&ver.to_be_bytes());
            }
            let mut ev = Evidence::default();
            let _ = Quic.probe(&data, &ctx(Transport::Udp, Dir::Orig, 50000, 443), &mut [0; 16], &mut ev);
        }
    }
}
