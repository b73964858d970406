//! Small byte helpers shared by decoders. All bounds-checked; none allocates.

/// Big-endian u16 at `off`, if in bounds.
#[inline]
pub fn be16(b: &[u8], off: usize) -> Option<u16> {
    crate::packet::bytes::be16(b, off)
}

/// Big-endian u32 at `off`, if in bounds.
#[inline]
pub fn be32(b: &[u8], off: usize) -> Option<u32> {
    crate::packet::bytes::be32(b, off)
}

/// Whether `hay` starts with `prefix`, ASCII case-insensitively.
#[inline]
pub fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The lines of a text header block (up to the first empty line or the end of `data`), each
/// without its CR LF. Stops at `max` lines.
pub fn header_lines(data: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    data.split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .take(max)
}

/// The value of header `name` (case-insensitive, `Name: value`) in a header block, trimmed.
/// `compact` is the single-letter SIP form, if any.
pub fn header_value<'a>(data: &'a [u8], name: &[u8], compact: Option<u8>) -> Option<&'a [u8]> {
    for line in header_lines(data, 64).skip(1) {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let key = trim(&line[..colon]);
        let hit = key.eq_ignore_ascii_case(name)
            || compact.is_some_and(|c| key.len() == 1 && key[0].eq_ignore_ascii_case(&c));
        if hit {
            return Some(trim(&line[colon + 1..]));
        }
    }
    None
}

/// The payload of a TURN ChannelData message that fills `b` (a channel number 0x4000-0x7FFF,
/// a length, the data, then up to 3 bytes of padding).
pub fn channel_data(b: &[u8]) -> Option<&[u8]> {
    let channel = be16(b, 0)?;
    if !(0x4000..=0x7fff).contains(&channel) {
        return None;
    }
    let len = be16(b, 2)? as usize;
    let inner = b.get(4..4 + len)?;
    (b.len() - 4 - len < 4).then_some(inner)
}

/// TURN's Send (0x0016) and Data (0x0017) indications (RFC 8656 section 11): a STUN message
/// with the magic cookie that fills `b`, whose DATA attribute (0x0013) carries what the relay
/// forwards. Its value, if `b` is one.
pub fn turn_indication_data(b: &[u8]) -> Option<&[u8]> {
    const DATA: u16 = 0x0013;
    if !matches!(be16(b, 0)?, 0x0016 | 0x0017) || be32(b, 4)? != 0x2112_a442 {
        return None;
    }
    let len = be16(b, 2)? as usize;
    let body = b.get(20..20 + len)?;
    if 20 + len != b.len() {
        return None;
    }
    let mut at = 0;
    while at + 4 <= body.len() {
        let ty = be16(body, at)?;
        let n = be16(body, at + 2)? as usize;
        let value = body.get(at + 4..at + 4 + n)?;
        if ty == DATA {
            return Some(value);
        }
        at += 4 + n.div_ceil(4) * 4;
    }
    None
}

/// What a media packet relayed through TURN carries: the ChannelData payload or a Send/Data
/// indication's DATA; None when `b` is neither.
pub fn turn_payload(b: &[u8]) -> Option<&[u8]> {
    channel_data(b).or_else(|| turn_indication_data(b))
}

/// A BER/DER tag-length header at `off`: (tag, content length, header length). Definite
/// lengths only, at most 4 length bytes (what Kerberos, LDAP and SNMP send).
pub fn der(b: &[u8], off: usize) -> Option<(u8, usize, usize)> {
    let tag = *b.get(off)?;
    let first = *b.get(off + 1)?;
    if first < 0x80 {
        return Some((tag, first as usize, 2));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len << 8 | *b.get(off + 2 + i)? as usize;
    }
    Some((tag, len, 2 + n))
}

/// `b` without leading and trailing ASCII whitespace.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup() {
        let m = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP x\r\nUser-Agent:  Viceroy 1.4 \r\n\r\nbody: no";
        assert_eq!(
            header_value(m, b"user-agent", None),
            Some(&b"Viceroy 1.4"[..])
        );
        assert_eq!(
            header_value(m, b"via", Some(b'v')),
            Some(&b"SIP/2.0/UDP x"[..])
        );
        assert_eq!(header_value(m, b"body", None), None);
        assert_eq!(trim(b"  "), b"");
        assert!(starts_with_ci(b"GET / HTTP/1.1", b"get "));
    }
}
