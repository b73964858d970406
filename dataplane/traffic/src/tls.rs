//! TLS records as a client and server put them on the wire: a TLS 1.3 ClientHello (offering
//! 1.2 as well) with SNI and ALPN, the ServerHello, ChangeCipherSpec and opaque application
//! data records. Nothing is encrypted for real: the records only have to look right to a
//! classifier or a dissector.

use crate::rng::Rng;

pub const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
pub const CONTENT_HANDSHAKE: u8 = 22;
pub const CONTENT_APPLICATION_DATA: u8 = 23;

pub const HANDSHAKE_CLIENT_HELLO: u8 = 1;
pub const HANDSHAKE_SERVER_HELLO: u8 = 2;

pub const EXT_SERVER_NAME: u16 = 0x0000;
pub const EXT_STATUS_REQUEST: u16 = 0x0005;
pub const EXT_SUPPORTED_GROUPS: u16 = 0x000a;
pub const EXT_EC_POINT_FORMATS: u16 = 0x000b;
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
pub const EXT_ALPN: u16 = 0x0010;
pub const EXT_SCT: u16 = 0x0012;
pub const EXT_EXTENDED_MASTER_SECRET: u16 = 0x0017;
pub const EXT_SESSION_TICKET: u16 = 0x0023;
pub const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
pub const EXT_PSK_KEY_EXCHANGE_MODES: u16 = 0x002d;
pub const EXT_KEY_SHARE: u16 = 0x0033;
pub const EXT_RENEGOTIATION_INFO: u16 = 0xff01;

const TLS_AES_128_GCM_SHA256: u16 = 0x1301;
const GROUP_X25519: u16 = 0x001d;

/// What a client offers, in the order Apple's and other modern stacks send it.
const CIPHER_SUITES: &[u16] = &[
    0x1301, 0x1302, 0x1303, // TLS 1.3 AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305
    0xc02c, 0xc02b, 0xcca9, 0xc030, 0xc02f, 0xcca8, // ECDHE AEAD suites
    0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x0035, 0x002f,
];
const GROUPS: &[u16] = &[GROUP_X25519, 0x0017, 0x0018, 0x0019];
const SIGNATURE_ALGORITHMS: &[u16] = &[
    0x0403, 0x0804, 0x0401, 0x0503, 0x0203, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201,
];

fn put_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

fn put_u24(v: &mut Vec<u8>, x: usize) {
    v.extend_from_slice(&(x as u32).to_be_bytes()[1..]);
}

fn extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    put_u16(out, kind);
    put_u16(out, data.len() as u16);
    out.extend_from_slice(data);
}

/// A record of `content_type` with legacy version `version` around `body`.
pub fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(5 + body.len());
    r.push(content_type);
    put_u16(&mut r, version);
    put_u16(&mut r, body.len() as u16);
    r.extend_from_slice(body);
    r
}

fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(4 + body.len());
    h.push(kind);
    put_u24(&mut h, body.len());
    h.extend_from_slice(body);
    h
}

/// A ClientHello record offering TLS 1.3 and 1.2 for `sni`, with ALPN `alpn` (omitted when
/// empty). Random, session id and key share come from `rng`.
pub fn client_hello(rng: &mut Rng, sni: &str, alpn: &[&str]) -> Vec<u8> {
    let mut b = Vec::with_capacity(512);
    put_u16(&mut b, 0x0303);
    b.extend_from_slice(&rng.array::<32>());
    b.push(32);
    b.extend_from_slice(&rng.array::<32>());
    put_u16(&mut b, (CIPHER_SUITES.len() * 2) as u16);
    for c in CIPHER_SUITES {
        put_u16(&mut b, *c);
    }
    b.extend_from_slice(&[1, 0]); // compression methods: null only

    let mut ext = Vec::with_capacity(256);
    let mut sn = Vec::new();
    put_u16(&mut sn, (sni.len() + 3) as u16);
    sn.push(0); // host_name
    put_u16(&mut sn, sni.len() as u16);
    sn.extend_from_slice(sni.as_bytes());
    extension(&mut ext, EXT_SERVER_NAME, &sn);
    extension(&mut ext, EXT_EXTENDED_MASTER_SECRET, &[]);
    extension(&mut ext, EXT_RENEGOTIATION_INFO, &[0]);
    let mut groups = Vec::new();
    put_u16(&mut groups, (GROUPS.len() * 2) as u16);
    for g in GROUPS {
        put_u16(&mut groups, *g);
    }
    extension(&mut ext, EXT_SUPPORTED_GROUPS, &groups);
    extension(&mut ext, EXT_EC_POINT_FORMATS, &[1, 0]);
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for p in alpn {
            list.push(p.len() as u8);
            list.extend_from_slice(p.as_bytes());
        }
        let mut a = Vec::new();
        put_u16(&mut a, list.len() as u16);
        a.extend_from_slice(&list);
        extension(&mut ext, EXT_ALPN, &a);
    }
    extension(&mut ext, EXT_STATUS_REQUEST, &[1, 0, 0, 0, 0]);
    let mut sig = Vec::new();
    put_u16(&mut sig, (SIGNATURE_ALGORITHMS.len() * 2) as u16);
    for s in SIGNATURE_ALGORITHMS {
        put_u16(&mut sig, *s);
    }
    extension(&mut ext, EXT_SIGNATURE_ALGORITHMS, &sig);
    extension(&mut ext, EXT_SCT, &[]);
    let mut ks = Vec::new();
    put_u16(&mut ks, 36);
    put_u16(&mut ks, GROUP_X25519);
    put_u16(&mut ks, 32);
    ks.extend_from_slice(&rng.array::<32>());
    extension(&mut ext, EXT_KEY_SHARE, &ks);
    extension(&mut ext, EXT_PSK_KEY_EXCHANGE_MODES, &[1, 1]);
    extension(
        &mut ext,
        EXT_SUPPORTED_VERSIONS,
        &[4, 0x03, 0x04, 0x03, 0x03],
    );
    extension(&mut ext, EXT_SESSION_TICKET, &[]);

    put_u16(&mut b, ext.len() as u16);
    b.extend_from_slice(&ext);
    record(
        CONTENT_HANDSHAKE,
        0x0301,
        &handshake(HANDSHAKE_CLIENT_HELLO, &b),
    )
}

/// The session id a ClientHello record carries, if `client_hello` is one.
pub fn client_session_id(client_hello: &[u8]) -> Option<&[u8]> {
    // record header (5) + handshake header (4) + version (2) + random (32)
    let at = 5 + 4 + 2 + 32;
    let len = usize::from(*client_hello.get(at)?);
    client_hello.get(at + 1..at + 1 + len)
}

/// A TLS 1.3 ServerHello record answering `client_hello`: it echoes the session id, picks
/// TLS_AES_128_GCM_SHA256 and X25519, and selects version 1.3.
pub fn server_hello(rng: &mut Rng, client_hello: &[u8]) -> Vec<u8> {
    let session_id = client_session_id(client_hello).unwrap_or(&[]);
    let mut b = Vec::with_capacity(128);
    put_u16(&mut b, 0x0303);
    b.extend_from_slice(&rng.array::<32>());
    b.push(session_id.len() as u8);
    b.extend_from_slice(session_id);
    put_u16(&mut b, TLS_AES_128_GCM_SHA256);
    b.push(0);
    let mut ext = Vec::new();
    extension(&mut ext, EXT_SUPPORTED_VERSIONS, &[0x03, 0x04]);
    let mut ks = Vec::new();
    put_u16(&mut ks, GROUP_X25519);
    put_u16(&mut ks, 32);
    ks.extend_from_slice(&rng.array::<32>());
    extension(&mut ext, EXT_KEY_SHARE, &ks);
    put_u16(&mut b, ext.len() as u16);
    b.extend_from_slice(&ext);
    record(
        CONTENT_HANDSHAKE,
        0x0303,
        &handshake(HANDSHAKE_SERVER_HELLO, &b),
    )
}

/// The middlebox-compatibility ChangeCipherSpec record TLS 1.3 peers send.
pub fn change_cipher_spec() -> Vec<u8> {
    record(CONTENT_CHANGE_CIPHER_SPEC, 0x0303, &[1])
}

/// An application data record with `len` bytes of opaque ciphertext.
pub fn application_data(rng: &mut Rng, len: usize) -> Vec<u8> {
    record(CONTENT_APPLICATION_DATA, 0x0303, &rng.bytes(len))
}

/// The server's first flight: ServerHello, ChangeCipherSpec, and the encrypted handshake
/// (EncryptedExtensions .. Finished) as application data records of realistic size.
pub fn server_flight(rng: &mut Rng, client_hello: &[u8]) -> Vec<u8> {
    let mut f = server_hello(rng, client_hello);
    f.extend_from_slice(&change_cipher_spec());
    let ee = 30 + rng.range(0, 40) as usize;
    f.extend_from_slice(&application_data(rng, ee));
    let cert = 2500 + rng.range(0, 1500) as usize;
    f.extend_from_slice(&application_data(rng, cert));
    f.extend_from_slice(&application_data(rng, 281)); // CertificateVerify
    f.extend_from_slice(&application_data(rng, 53)); // Finished
    f
}

/// The client's second flight: ChangeCipherSpec and its encrypted Finished.
pub fn client_finished(rng: &mut Rng) -> Vec<u8> {
    let mut f = change_cipher_spec();
    f.extend_from_slice(&application_data(rng, 53));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strict walk over a ClientHello: every length must match what it encloses exactly.
    /// Returns (SNI, ALPN protocols, supported versions, extension types in order).
    fn walk_client_hello(r: &[u8]) -> (String, Vec<String>, Vec<u16>, Vec<u16>) {
        let be = |b: &[u8], at: usize| usize::from(u16::from_be_bytes([b[at], b[at + 1]]));
        assert_eq!(r[0], CONTENT_HANDSHAKE);
        assert_eq!(be(r, 1), 0x0301);
        assert_eq!(be(r, 3), r.len() - 5, "record length");
        let h = &r[5..];
        assert_eq!(h[0], HANDSHAKE_CLIENT_HELLO);
        let hlen = (usize::from(h[1]) << 16) | be(h, 2);
        assert_eq!(hlen, h.len() - 4, "handshake length");
        let b = &h[4..];
        assert_eq!(be(b, 0), 0x0303);
        let mut at = 2 + 32;
        let sid = usize::from(b[at]);
        assert!(sid <= 32);
        at += 1 + sid;
        let cs = be(b, at);
        assert!(cs > 0 && cs % 2 == 0);
        at += 2 + cs;
        let comp = usize::from(b[at]);
        assert_eq!(&b[at + 1..at + 1 + comp], &[0]);
        at += 1 + comp;
        let ext_len = be(b, at);
        at += 2;
        assert_eq!(at + ext_len, b.len(), "extensions length");
        let (mut sni, mut alpn, mut versions, mut types) = (String::new(), vec![], vec![], vec![]);
        while at < b.len() {
            let kind = be(b, at) as u16;
            let len = be(b, at + 2);
            let d = &b[at + 4..at + 4 + len];
            types.push(kind);
            match kind {
                EXT_SERVER_NAME => {
                    assert_eq!(be(d, 0), d.len() - 2);
                    assert_eq!(d[2], 0);
                    let n = be(d, 3);
                    assert_eq!(5 + n, d.len());
                    sni = String::from_utf8(d[5..].to_vec()).unwrap();
                }
                EXT_ALPN => {
                    assert_eq!(be(d, 0), d.len() - 2);
                    let mut i = 2;
                    while i < d.len() {
                        let n = usize::from(d[i]);
                        alpn.push(String::from_utf8(d[i + 1..i + 1 + n].to_vec()).unwrap());
                        i += 1 + n;
                    }
                    assert_eq!(i, d.len());
                }
                EXT_SUPPORTED_VERSIONS => {
                    assert_eq!(usize::from(d[0]), d.len() - 1);
                    versions = d[1..]
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                }
                EXT_KEY_SHARE => {
                    assert_eq!(be(d, 0), d.len() - 2);
                    assert_eq!(be(d, 4), 32);
                }
                _ => {}
            }
            at += 4 + len;
        }
        assert_eq!(at, b.len());
        (sni, alpn, versions, types)
    }

    #[test]
    fn client_hello_is_structurally_valid_with_sni_alpn_and_versions() {
        let mut rng = Rng::new(5);
        let ch = client_hello(&mut rng, "courier.push.apple.com", &["apns-security-v3"]);
        let (sni, alpn, versions, types) = walk_client_hello(&ch);
        assert_eq!(sni, "courier.push.apple.com");
        assert_eq!(alpn, vec!["apns-security-v3"]);
        assert_eq!(versions, vec![0x0304, 0x0303]);
        assert_eq!(types[0], EXT_SERVER_NAME);
        let mut unique = types.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), types.len(), "duplicate extension");
        let ch = client_hello(&mut rng, "init.ess.apple.com", &[]);
        let (sni, alpn, _, types) = walk_client_hello(&ch);
        assert_eq!(sni, "init.ess.apple.com");
        assert!(alpn.is_empty() && !types.contains(&EXT_ALPN));
    }

    #[test]
    fn server_hello_echoes_session_id_and_selects_tls13() {
        let mut rng = Rng::new(9);
        let ch = client_hello(&mut rng, "facetime.apple.com", &["h2", "http/1.1"]);
        let sh = server_hello(&mut rng, &ch);
        assert_eq!(sh[0], CONTENT_HANDSHAKE);
        assert_eq!(
            usize::from(u16::from_be_bytes([sh[3], sh[4]])),
            sh.len() - 5
        );
        assert_eq!(sh[5], HANDSHAKE_SERVER_HELLO);
        assert_eq!(client_session_id(&sh), client_session_id(&ch));
        // supported_versions selecting 0x0304 is present.
        assert!(sh
            .windows(6)
            .any(|w| w == [0x00, 0x2b, 0x00, 0x02, 0x03, 0x04]));
        let flight = server_flight(&mut rng, &ch);
        // The flight is a clean sequence of records.
        let mut at = 0;
        let mut kinds = vec![];
        while at < flight.len() {
            kinds.push(flight[at]);
            at += 5 + usize::from(u16::from_be_bytes([flight[at + 3], flight[at + 4]]));
        }
        assert_eq!(at, flight.len());
        assert_eq!(kinds, vec![22, 20, 23, 23, 23, 23]);
    }
}
