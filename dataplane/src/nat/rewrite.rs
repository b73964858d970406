//! Rewriting an IPv4 packet's addresses and ports in place, with incremental checksum updates
//! (RFC 1624): the IPv4 header checksum for the addresses, the TCP/UDP checksum for the
//! pseudo-header addresses and the ports, the ICMP checksum for an echo identifier. Nothing is
//! summed over the payload, so the cost does not grow with the packet.
use crate::packet::checksum::update16;
use crate::packet::{ipv4, proto, Fragment, Headers, L3};

/// What a packet's IPv4 tuple becomes: source and destination address and port (the echo
/// identifier for ICMP echo, `sport` in a request and `dport` in a reply, as the parser
/// gives both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuple {
    pub src: [u8; 4],
    pub sport: u16,
    pub dst: [u8; 4],
    pub dport: u16,
}

impl Tuple {
    /// The tuple of a packet as parsed (None for anything but IPv4).
    pub fn of(h: &Headers) -> Option<Tuple> {
        Some(Tuple {
            src: h.src.v4()?,
            sport: h.src_port,
            dst: h.dst.v4()?,
            dport: h.dst_port,
        })
    }
}

/// Why a packet could not be rewritten (a counted drop: a packet half translated, or sent
/// untranslated with a private address, would be worse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrewritable {
    /// Not IPv4, or the headers are not in the first segment.
    NotIpv4,
    /// A later fragment (no transport header to translate).
    Fragment,
}

/// Folds a change of the 16-bit words `old` -> `new` into checksum `sum`.
fn adjust(mut sum: u16, old: &[u8], new: &[u8]) -> u16 {
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        let (o, n) = (
            u16::from_be_bytes([o[0], o[1]]),
            u16::from_be_bytes([n[0], n[1]]),
        );
        if o != n {
            sum = update16(sum, o, n);
        }
    }
    sum
}

fn read16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn write16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites the IPv4 packet of `frame` (parsed as `h`) to carry tuple `to`. `h` is left as it
/// was (the caller updates its copy if it needs one).
pub fn rewrite(frame: &mut [u8], h: &Headers, to: &Tuple) -> Result<(), Unrewritable> {
    if h.l3 != L3::Ipv4 {
        return Err(Unrewritable::NotIpv4);
    }
    if h.fragment == Fragment::Later {
        return Err(Unrewritable::Fragment);
    }
    let l3 = h.l3_offset as usize;
    let l4 = h.l4_offset as usize;
    let l4_need = match h.proto {
        proto::TCP => 18,
        proto::UDP => 8,
        proto::ICMP => 8,
        _ => 0,
    };
    if frame.len() < l3 + ipv4::MIN_HEADER_LEN || frame.len() < l4 + l4_need || l4 < l3 {
        return Err(Unrewritable::NotIpv4);
    }
    let mut old_addrs = [0u8; 8];
    old_addrs.copy_from_slice(&frame[l3 + 12..l3 + 20]);
    let mut new_addrs = [0u8; 8];
    new_addrs[..4].copy_from_slice(&to.src);
    new_addrs[4..].copy_from_slice(&to.dst);
    if old_addrs != new_addrs {
        let sum = read16(frame, l3 + ipv4::CHECKSUM);
        write16(
            frame,
            l3 + ipv4::CHECKSUM,
            adjust(sum, &old_addrs, &new_addrs),
        );
        frame[l3 + 12..l3 + 20].copy_from_slice(&new_addrs);
    }
    match h.proto {
        proto::TCP | proto::UDP => {
            let mut old_ports = [0u8; 4];
            old_ports.copy_from_slice(&frame[l4..l4 + 4]);
            let mut new_ports = [0u8; 4];
            new_ports[..2].copy_from_slice(&to.sport.to_be_bytes());
            new_ports[2..].copy_from_slice(&to.dport.to_be_bytes());
            let at = l4 + if h.proto == proto::TCP { 16 } else { 6 };
            let sum = read16(frame, at);
            // A UDP checksum of 0 means none was computed: it stays 0.
            if h.proto == proto::TCP || sum != 0 {
                let mut s = adjust(sum, &old_addrs, &new_addrs);
                s = adjust(s, &old_ports, &new_ports);
                if h.proto == proto::UDP && s == 0 {
                    s = 0xffff;
                }
                write16(frame, at, s);
            }
            frame[l4..l4 + 4].copy_from_slice(&new_ports);
        }
        proto::ICMP if matches!(h.icmp_type, 0 | 8) => {
            // The echo identifier; ICMPv4 has no pseudo-header.
            let id = if h.icmp_type == 8 { to.sport } else { to.dport };
            let old = read16(frame, l4 + 4);
            if old != id {
                let sum = read16(frame, l4 + 2);
                write16(frame, l4 + 2, update16(sum, old, id));
                write16(frame, l4 + 4, id);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rewrites an ICMPv4 error about a translated flow (parsed as `h`, quoting `e`): `to` is
/// what the flow's packets in the error's direction become (the error travels the way a
/// reply to the quoted packet would). The outer destination becomes `to.dst`, the outer
/// source `to.src` when the quoted packet's destination sent the error itself (a router on
/// the path keeps its address), and the quoted packet becomes the one its sender sent on
/// that side of the translation: the reverse of `to`, with its IP header checksum and the
/// quoted transport checksum (when quoted) adjusted. The ICMP checksum covers the quote, so
/// it is summed again over the message: errors are rare and short (RFC 1812: at most 576
/// bytes), and the rest of the path never sees them.
pub fn rewrite_error(
    frame: &mut [u8],
    h: &Headers,
    e: &crate::packet::icmp::Embedded,
    to: &Tuple,
) -> Result<(), Unrewritable> {
    let (l3, l4) = (h.l3_offset as usize, h.l4_offset as usize);
    let end = l3 + h.ip_len as usize;
    if h.l3 != L3::Ipv4 || h.proto != proto::ICMP || end > frame.len() || e.l4 + 4 > end {
        return Err(Unrewritable::NotIpv4);
    }
    if h.fragment != Fragment::No {
        return Err(Unrewritable::Fragment);
    }
    // The outer header: addresses and the IPv4 checksum (ICMP has no pseudo-header).
    let outer_src = if frame[l3 + 12..l3 + 16] == e.dst {
        to.src
    } else {
        h.src.v4().ok_or(Unrewritable::NotIpv4)?
    };
    let outer = Tuple {
        src: outer_src,
        sport: 0,
        dst: to.dst,
        dport: 0,
    };
    let mut plain = *h;
    plain.icmp_type = 3;
    rewrite(frame, &plain, &outer)?;
    // The quoted packet, as sent: from `to.dst`, to `to.src`.
    let (ip, t) = (e.ip, e.l4);
    let mut old = [0u8; 8];
    old.copy_from_slice(&frame[ip + 12..ip + 20]);
    let mut new = [0u8; 8];
    new[..4].copy_from_slice(&to.dst);
    new[4..].copy_from_slice(&to.src);
    let sum = read16(frame, ip + ipv4::CHECKSUM);
    write16(frame, ip + ipv4::CHECKSUM, adjust(sum, &old, &new));
    frame[ip + 12..ip + 20].copy_from_slice(&new);
    match e.proto {
        proto::TCP | proto::UDP => {
            let mut old_ports = [0u8; 4];
            old_ports.copy_from_slice(&frame[t..t + 4]);
            let mut new_ports = [0u8; 4];
            new_ports[..2].copy_from_slice(&to.dport.to_be_bytes());
            new_ports[2..].copy_from_slice(&to.sport.to_be_bytes());
            let at = t + if e.proto == proto::TCP { 16 } else { 6 };
            if at + 2 <= end {
                let sum = read16(frame, at);
                if e.proto == proto::TCP || sum != 0 {
                    let mut s = adjust(adjust(sum, &old, &new), &old_ports, &new_ports);
                    if e.proto == proto::UDP && s == 0 {
                        s = 0xffff;
                    }
                    write16(frame, at, s);
                }
            }
            frame[t..t + 4].copy_from_slice(&new_ports);
        }
        proto::ICMP if t + 6 <= end => {
            // A quoted echo request: its identifier.
            let id = to.dport;
            let old_id = read16(frame, t + 4);
            let sum = read16(frame, t + 2);
            write16(frame, t + 2, update16(sum, old_id, id));
            write16(frame, t + 4, id);
        }
        _ => return Err(Unrewritable::NotIpv4),
    }
    write16(frame, l4 + 2, 0);
    let sum = crate::packet::checksum::checksum(&frame[l4..end]);
    write16(frame, l4 + 2, sum);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::checksum::checksum;
    use crate::packet::parse;

    /// An IPv4 frame with a valid header and L4 checksum.
    fn frame(proto_: u8, payload: &[u8], udp_sum: bool) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let l4_len = match proto_ {
            proto::TCP => 20,
            _ => 8,
        } + payload.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, proto_, 0, 0, 10, 0, 0, 1, 198, 51, 100, 7,
        ];
        let total = (20 + l4_len) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut l4 = match proto_ {
            proto::TCP => {
                let mut t = vec![0u8; 20];
                t[0..2].copy_from_slice(&40000u16.to_be_bytes());
                t[2..4].copy_from_slice(&443u16.to_be_bytes());
                t[4..8].copy_from_slice(&0x01020304u32.to_be_bytes());
                t[12] = 0x50;
                t[13] = 0x18;
                t
            }
            proto::UDP => {
                let mut u = vec![0u8; 8];
                u[0..2].copy_from_slice(&5060u16.to_be_bytes());
                u[2..4].copy_from_slice(&5060u16.to_be_bytes());
                u[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                u
            }
            _ => vec![8, 0, 0, 0, 0x77, 0x01, 0, 1],
        };
        l4.extend_from_slice(payload);
        let sum_at = match proto_ {
            proto::TCP => Some(16),
            proto::UDP if udp_sum => Some(6),
            proto::UDP => None,
            _ => Some(2),
        };
        if let Some(at) = sum_at {
            let c = l4_checksum(&f[14..34], proto_, &l4);
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&l4);
        f
    }

    /// The L4 checksum computed from scratch (with the pseudo-header for TCP/UDP).
    fn l4_checksum(ip: &[u8], proto_: u8, l4: &[u8]) -> u16 {
        use crate::packet::checksum::sum;
        if proto_ == proto::ICMP {
            return checksum(l4);
        }
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, proto_]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let c = !(sum(l4, sum(&pseudo, 0)) as u16);
        if proto_ == proto::UDP && c == 0 {
            0xffff
        } else {
            c
        }
    }

    /// Both checksums of `f` verify from scratch.
    fn verify(f: &[u8], proto_: u8) {
        let ip = &f[14..34];
        assert_eq!(checksum(ip), 0, "IPv4 header checksum");
        let l4 = &f[34..];
        let at = match proto_ {
            proto::TCP => 16,
            proto::UDP => 6,
            _ => 2,
        };
        let mut zeroed = l4.to_vec();
        let stored = u16::from_be_bytes([l4[at], l4[at + 1]]);
        if proto_ == proto::UDP && stored == 0 {
            return;
        }
        zeroed[at] = 0;
        zeroed[at + 1] = 0;
        assert_eq!(stored, l4_checksum(ip, proto_, &zeroed), "L4 checksum");
    }

    fn to() -> Tuple {
        Tuple {
            src: [203, 0, 113, 9],
            sport: 61001,
            dst: [198, 51, 100, 7],
            dport: 443,
        }
    }

    #[test]
    fn incremental_updates_match_a_full_recomputation() {
        for (p, payload) in [
            (proto::TCP, &b"GET / HTTP/1.1\r\n\r\n"[..]),
            (proto::UDP, &b"INVITE sip:a@b SIP/2.0\r\n"[..]),
            (proto::UDP, &b"odd"[..]),
            (proto::ICMP, &b"ping payload"[..]),
        ] {
            let mut f = frame(p, payload, true);
            verify(&f, p);
            let h = parse(&f, f.len()).unwrap();
            rewrite(&mut f, &h, &to()).unwrap();
            verify(&f, p);
            let h2 = parse(&f, f.len()).unwrap();
            assert_eq!(h2.src.v4(), Some([203, 0, 113, 9]));
            if p == proto::ICMP {
                assert_eq!(h2.src_port, 61001, "echo id");
            } else {
                assert_eq!((h2.src_port, h2.dst_port), (61001, 443));
            }
            // The payload is untouched.
            assert_eq!(&f[h2.payload_offset as usize..], payload);
            // And back.
            let back = Tuple::of(&h).unwrap();
            rewrite(&mut f, &h2, &back).unwrap();
            verify(&f, p);
            assert_eq!(f, frame(p, payload, true));
        }
    }

    #[test]
    fn a_udp_packet_without_checksum_keeps_none() {
        let mut f = frame(proto::UDP, b"x", false);
        let h = parse(&f, f.len()).unwrap();
        rewrite(&mut f, &h, &to()).unwrap();
        assert_eq!(&f[40..42], &[0, 0]);
        assert_eq!(checksum(&f[14..34]), 0);
    }

    /// Property: for random tuples and payloads, the incremental result equals the full one.
    #[test]
    fn random_rewrites_keep_checksums_valid() {
        let mut x = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..3000 {
            let p = [proto::TCP, proto::UDP, proto::ICMP][i % 3];
            let len = (next() % 64) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut f = frame(p, &payload, true);
            let h = parse(&f, f.len()).unwrap();
            let r = next();
            let t = Tuple {
                src: (r as u32).to_be_bytes(),
                sport: (r >> 32) as u16,
                dst: ((r >> 16) as u32).to_be_bytes(),
                dport: (r >> 48) as u16,
            };
            rewrite(&mut f, &h, &t).unwrap();
            verify(&f, p);
        }
    }

    #[test]
    fn what_cannot_be_rewritten_is_refused_whole() {
        let mut f = frame(proto::UDP, b"x", true);
        let mut h = parse(&f, f.len()).unwrap();
        h.fragment = Fragment::Later;
        let before = f.clone();
        assert_eq!(rewrite(&mut f, &h, &to()), Err(Unrewritable::Fragment));
        h.fragment = Fragment::No;
        h.l3 = L3::Ipv6;
        assert_eq!(rewrite(&mut f, &h, &to()), Err(Unrewritable::NotIpv4));
        assert_eq!(f, before);
        let h = parse(&f, f.len()).unwrap();
        assert_eq!(rewrite(&mut f[..30], &h, &to()), Err(Unrewritable::NotIpv4));
    }

    /// An ICMPv4 error from `from` to `to_addr` quoting the IP packet of `quoted` (a frame),
    /// cut to `quote` bytes of it.
    fn icmp_error(from: [u8; 4], to_addr: [u8; 4], quoted: &[u8], quote: usize) -> Vec<u8> {
        let q = &quoted[14..14 + quote.min(quoted.len() - 14)];
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(q);
        let c = checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto::ICMP, 0, 0];
        ip.extend_from_slice(&from);
        ip.extend_from_slice(&to_addr);
        ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&icmp);
        f
    }

    /// An error about a translated packet, from its destination or from a router on the
    /// way, whole quote or the RFC 792 minimum: after the rewrite it quotes the packet its
    /// sender sent, byte for byte, and every checksum holds.
    #[test]
    fn an_icmp_error_about_a_translated_packet_quotes_the_original() {
        use crate::packet::icmp::embedded_v4;
        let ext = [203, 0, 113, 9];
        for p in [proto::UDP, proto::TCP, proto::ICMP] {
            for quote in [usize::MAX, 28] {
                for router in [false, true] {
                    let original = frame(p, b"payload bytes", true);
                    let h = parse(&original, original.len()).unwrap();
                    let mut out = original.clone();
                    rewrite(&mut out, &h, &to()).unwrap();
                    let from = if router { [192, 0, 2, 254] } else { to().dst };
                    let mut err = icmp_error(from, ext, &out, quote);
                    let eh = parse(&err, err.len()).unwrap();
                    let end = eh.l3_offset as usize + eh.ip_len as usize;
                    let e = embedded_v4(&err, eh.l4_offset as usize, end).unwrap();
                    assert_eq!((e.src, e.dst, e.proto), (ext, to().dst, p));
                    // The flow's reply direction becomes: from the peer, to the inside.
                    let back = Tuple {
                        src: to().dst,
                        sport: h.dst_port,
                        dst: h.src.v4().unwrap(),
                        dport: h.src_port,
                    };
                    rewrite_error(&mut err, &eh, &e, &back).unwrap();
                    let eh2 = parse(&err, err.len()).unwrap();
                    assert_eq!(eh2.dst.v4(), h.src.v4());
                    assert_eq!(eh2.src.v4(), Some(from), "a router keeps its address");
                    assert_eq!(checksum(&err[14..34]), 0, "outer IPv4 checksum");
                    assert_eq!(checksum(&err[34..]), 0, "ICMP checksum");
                    let n = (original.len() - 14).min(quote);
                    assert_eq!(&err[42..], &original[14..14 + n], "the quote, {p} {quote}");
                }
            }
        }
        // Not an error (an echo request), or a quote too short to name a flow: none.
        let ping = frame(proto::ICMP, b"x", true);
        let ph = parse(&ping, ping.len()).unwrap();
        assert!(embedded_v4(&ping, ph.l4_offset as usize, ping.len()).is_none());
        let short = icmp_error(
            to().dst,
            [203, 0, 113, 9],
            &frame(proto::UDP, b"", true),
            21,
        );
        let sh = parse(&short, short.len()).unwrap();
        assert!(embedded_v4(&short, sh.l4_offset as usize, short.len()).is_none());
    }
}
