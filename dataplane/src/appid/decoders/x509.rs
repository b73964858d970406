//! The server's name in a TLS 1.2 server certificate, which travels in clear in the server's
//! first flight: the first DNS name of the leaf certificate's subjectAltName extension, else
//! its subject's common name. Reads only as far as the bytes go (a certificate cut by the
//! stream buffer still gives a name when the part holding it arrived; a name itself is read
//! whole or not at all), never allocates, never panics: every DER read is bounds-checked.
use super::util::der;

/// X.509 tags and the OIDs needed.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const DNS_NAME: u8 = 0x82;
/// 2.5.4.3 commonName, 2.5.29.17 subjectAltName.
const CN: &[u8] = &[0x55, 0x04, 0x03];
const SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// Printable, UTF-8, IA5, T61 and BMP strings hold a CN; only the single-byte ones are read.
const STRING_TAGS: [u8; 4] = [0x13, 0x0c, 0x16, 0x14];

/// A DER element at `at` of `b`: (tag, content start, content end), the end cut to `b`.
fn element(b: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let (tag, len, hl) = der(b, at)?;
    let start = at + hl;
    Some((tag, start, start.checked_add(len)?.min(b.len())))
}

/// `element`, only if its content is all there (names and OIDs are read whole or not at all).
fn whole(b: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let (tag, len, hl) = der(b, at)?;
    let start = at + hl;
    let end = start.checked_add(len)?;
    (end <= b.len()).then_some((tag, start, end))
}

/// The name in certificate `cert` (DER, possibly cut short).
pub fn server_name(cert: &[u8]) -> Option<&[u8]> {
    let (SEQUENCE, cs, ce) = element(cert, 0)? else {
        return None;
    };
    let c = &cert[..ce];
    let (SEQUENCE, ts, te) = element(c, cs)? else {
        return None;
    };
    let tbs = &c[..te];
    let mut at = ts;
    // [0] version, serial number, signature algorithm, issuer, validity, subject.
    let (tag, _, e) = element(tbs, at)?;
    if tag == VERSION {
        at = e;
    }
    for _ in 0..4 {
        let (_, _, e) = element(tbs, at)?;
        at = e;
    }
    let (SEQUENCE, ss, se) = element(tbs, at)? else {
        return None;
    };
    // Subject public key info, then optional unique ids, then [3] extensions (a certificate
    // cut before them still has its subject).
    let san = element(tbs, se).and_then(|(_, _, mut at)| {
        while at < tbs.len() {
            let (tag, s, e) = element(tbs, at)?;
            if tag == EXTENSIONS {
                return alt_name(tbs, s, e);
            }
            at = e;
        }
        None
    });
    let subject = (ss, se);
    san.or_else(|| common_name(tbs, subject.0, subject.1))
}

/// The first dNSName of the subjectAltName among the extensions in `b[s..e]`.
fn alt_name(b: &[u8], s: usize, e: usize) -> Option<&[u8]> {
    let (SEQUENCE, mut at, end) = element(b, s)? else {
        return None;
    };
    let end = end.min(e);
    while at < end {
        let (SEQUENCE, xs, xe) = element(b, at)? else {
            return None;
        };
        at = xe;
        let (OID, os, oe) = whole(b, xs)? else {
            continue;
        };
        if &b[os..oe] != SAN {
            continue;
        }
        let mut v = oe;
        let (mut tag, mut vs, mut ve) = element(b, v)?;
        if tag == BOOLEAN {
            v = ve;
            (tag, vs, ve) = element(b, v)?;
        }
        if tag != OCTET_STRING {
            return None;
        }
        let (SEQUENCE, mut g, ge) = element(b, vs)? else {
            return None;
        };
        let ge = ge.min(ve);
        while g < ge {
            let (tag, ns, ne) = whole(b, g)?;
            if tag == DNS_NAME && ne > ns {
                return Some(&b[ns..ne]);
            }
            g = ne;
        }
        return None;
    }
    None
}

/// The subject's commonName in `b[s..e]` (SET of SEQUENCE { OID, string }).
fn common_name(b: &[u8], s: usize, e: usize) -> Option<&[u8]> {
    let mut at = s;
    while at < e {
        let (SET, ss, se) = element(b, at)? else {
            return None;
        };
        at = se;
        let (SEQUENCE, ps, _) = element(b, ss)? else {
            continue;
        };
        let (OID, os, oe) = whole(b, ps)? else {
            continue;
        };
        if &b[os..oe] == CN {
            let (tag, vs, ve) = whole(b, oe)?;
            return (STRING_TAGS.contains(&tag) && ve > vs).then(|| &b[vs..ve]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A DER element.
    fn el(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        match content.len() {
            n if n < 0x80 => v.push(n as u8),
            n if n < 0x100 => v.extend_from_slice(&[0x81, n as u8]),
            n => v.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        v.extend_from_slice(content);
        v
    }

    fn cert(cn: &str, san: Option<&str>) -> Vec<u8> {
        let name = |cn: &str| {
            let atv = [el(OID, CN), el(0x0c, cn.as_bytes())].concat();
            el(SEQUENCE, &el(SET, &el(SEQUENCE, &atv)))
        };
        let mut tbs = el(VERSION, &el(0x02, &[2]));
        tbs.extend(el(0x02, &[1, 2, 3]));
        tbs.extend(el(SEQUENCE, &el(OID, &[0x2a, 0x86, 0x48])));
        tbs.extend(name("Test CA"));
        tbs.extend(el(
            SEQUENCE,
            &[el(0x17, b"250101000000Z"), el(0x17, b"260101000000Z")].concat(),
        ));
        tbs.extend(name(cn));
        tbs.extend(el(SEQUENCE, &el(0x03, &[0, 1, 2, 3])));
        if let Some(s) = san {
            let names = el(SEQUENCE, &el(DNS_NAME, s.as_bytes()));
            let ext = el(SEQUENCE, &[el(OID, SAN), el(OCTET_STRING, &names)].concat());
            tbs.extend(el(EXTENSIONS, &el(SEQUENCE, &ext)));
        }
        el(
            SEQUENCE,
            &[
                el(SEQUENCE, &tbs),
                el(SEQUENCE, &el(OID, &[1])),
                el(0x03, &[0; 8]),
            ]
            .concat(),
        )
    }

    #[test]
    fn the_alt_name_first_then_the_common_name() {
        let c = cert("Example Inc", Some("*.whatsapp.net"));
        assert_eq!(server_name(&c), Some(&b"*.whatsapp.net"[..]));
        let c = cert("mail.tomasu.net", None);
        assert_eq!(server_name(&c), Some(&b"mail.tomasu.net"[..]));
        // Cut after the subject: the name is already there.
        let c = cert("mail.tomasu.net", None);
        let cut = c.windows(15).position(|w| w == b"mail.tomasu.net").unwrap() + 15;
        assert_eq!(server_name(&c[..cut]), Some(&b"mail.tomasu.net"[..]));
        assert_eq!(
            server_name(&c[..cut - 3]),
            None,
            "a name cut short is no name"
        );
        assert_eq!(server_name(b"\x30\x03\x02\x01\x00"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..400) {
            let _ = server_name(&data);
            let c = cert("a.example", Some("b.example"));
            let mut m = c.clone();
            if let Some(b) = m.get_mut(cut % c.len()) { *b ^= data.first().copied().unwrap_or(1); }
            let _ = server_name(&m);
            let _ = server_name(&c[..cut.min(c.len())]);
        }
    }
}
