//! DNS (RFC 1035) queries and responses in wire format, for A and AAAA records.

use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

fn put_name(out: &mut Vec<u8>, name: &str) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
}

fn header(out: &mut Vec<u8>, id: u16, flags: u16, answers: u16) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // NSCOUNT, ARCOUNT
}

/// A recursive query for `name` of type `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(17 + name.len() + 2);
    header(&mut m, id, 0x0100, 0);
    put_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

/// The answer to [`query`]: the question repeated and one record per address of the matching
/// family, each naming the question by a compression pointer. No addresses gives NOERROR with
/// an empty answer section.
pub fn response(id: u16, name: &str, qtype: u16, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let rdata: Vec<Vec<u8>> = addrs
        .iter()
        .filter_map(|a| match (a, qtype) {
            (IpAddr::V4(v4), TYPE_A) => Some(v4.octets().to_vec()),
            (IpAddr::V6(v6), TYPE_AAAA) => Some(v6.octets().to_vec()),
            _ => None,
        })
        .collect();
    let mut m = Vec::with_capacity(64 + rdata.len() * 28);
    header(&mut m, id, 0x8180, rdata.len() as u16);
    put_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    for rd in rdata {
        m.extend_from_slice(&[0xc0, 0x0c]); // pointer to the question name at offset 12
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        m.extend_from_slice(&rd);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wire_format() {
        let q = query(0xbeef, "example.com", TYPE_A);
        let expected: &[u8] = &[
            0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l',
            b'e', 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
        ];
        assert_eq!(q, expected);
    }

    #[test]
    fn response_has_answers_of_the_asked_family_only() {
        let addrs: Vec<IpAddr> = vec!["17.1.2.3".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let r = response(7, "courier.push.apple.com", TYPE_A, &addrs, 300);
        assert_eq!(&r[2..4], &[0x81, 0x80]);
        assert_eq!(&r[6..8], &[0, 1]);
        let q = query(7, "courier.push.apple.com", TYPE_A);
        assert_eq!(&r[12..q.len()], &q[12..]);
        assert_eq!(&r[q.len()..q.len() + 2], &[0xc0, 0x0c]);
        assert_eq!(&r[r.len() - 4..], &[17, 1, 2, 3]);
        let r6 = response(8, "courier.push.apple.com", TYPE_AAAA, &addrs, 300);
        assert_eq!(r6.len(), q.len() + 12 + 16);
    }
}
