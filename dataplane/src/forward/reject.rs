//! What a `reset` rule sends: TCP resets to both ends of the connection, or ICMP (ICMPv6)
//! port unreachable to the sender of anything else. Frames are built into a fixed buffer from
//! the packet that hit the rule; nothing allocates.
//!
//! The reset toward the sender swaps the frame's MAC addresses (it goes back out of the port
//! the packet came in on, to the neighbour that sent it); the reset toward the destination
//! keeps them and takes the packet's own forwarding (`forward::finish` sets the next hop's
//! MAC when routing).
use crate::packet::checksum::{checksum, sum};
use crate::packet::{ethernet, proto, tcp, Headers, L3};

/// Largest frame built here: L2 header (two VLAN tags) + IPv6 + ICMPv6 + the quoted packet.
pub const MAX_FRAME: usize = 22 + 40 + 8 + QUOTE_MAX;
/// Bytes of the offending packet quoted in an ICMP error (from its IP header on): RFC 792
/// asks for the header and 64 bits; more helps the sender match it (RFC 1812 4.3.2.3).
const QUOTE_MAX: usize = 128;
const TTL: u8 = 64;

/// Which end a TCP reset goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toward {
    /// Back to the packet's sender.
    Sender,
    /// On to the packet's destination, as if from its sender.
    Destination,
}

fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
}

/// The L2 header of `frame` (up to the IP header) into `out`, MACs swapped if asked.
fn l2(frame: &[u8], h: &Headers, swap: bool, out: &mut [u8]) -> Option<usize> {
    let n = h.l3_offset as usize;
    if !(ethernet::HEADER_LEN..=22).contains(&n) || frame.len() < n {
        return None;
    }
    out[..n].copy_from_slice(&frame[..n]);
    if swap {
        ethernet::set_macs(out, ethernet::src_mac(frame), ethernet::dst_mac(frame));
    }
    Some(n)
}

/// Writes an IP header at `out[0..]` for `payload` bytes of protocol `p` from `src` to `dst`
/// (16-byte addresses, IPv4-mapped for IPv4). Returns its length and the pseudo-header sum.
fn ip_header(
    v6: bool,
    src: &[u8; 16],
    dst: &[u8; 16],
    p: u8,
    payload: usize,
    out: &mut [u8],
) -> (usize, u32) {
    if v6 {
        out[..40].fill(0);
        out[0] = 0x60;
        out[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        out[6] = p;
        out[7] = TTL;
        out[8..24].copy_from_slice(src);
        out[24..40].copy_from_slice(dst);
        let pseudo = sum(&out[8..40], 0) + payload as u32 + p as u32;
        (40, pseudo)
    } else {
        out[..20].fill(0);
        out[0] = 0x45;
        out[2..4].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        out[6] = 0x40; // don't fragment
        out[8] = TTL;
        out[9] = p;
        out[12..16].copy_from_slice(&src[12..16]);
        out[16..20].copy_from_slice(&dst[12..16]);
        let c = checksum(&out[..20]);
        out[10..12].copy_from_slice(&c.to_be_bytes());
        let pseudo = sum(&out[12..20], 0) + payload as u32 + p as u32;
        (20, pseudo)
    }
}

/// A TCP reset for the connection of the TCP packet `frame` (headers `h`), toward `to`.
/// Returns the frame length, or None when no reset is due (a reset is never answered; a SYN
/// that was never forwarded leaves the destination nothing to reset).
pub fn tcp_reset(
    frame: &[u8],
    h: &Headers,
    to: Toward,
    out: &mut [u8; MAX_FRAME],
) -> Option<usize> {
    if h.proto != proto::TCP || h.tcp_flags & tcp::RST != 0 {
        return None;
    }
    let v6 = match h.l3 {
        L3::Ipv4 => false,
        L3::Ipv6 => true,
        _ => return None,
    };
    let l4 = h.l4_offset as usize;
    let ack_in = be32(frame, l4 + 8);
    let has_ack = h.tcp_flags & tcp::ACK != 0;
    let seg_len = h.payload_len as u32
        + u32::from(h.tcp_flags & tcp::SYN != 0)
        + u32::from(h.tcp_flags & tcp::FIN != 0);
    // RFC 9293 3.10.7.1: answer an ACK with seq = its ack; anything else with an ACK of it.
    let (src, dst, sport, dport, seq, ack, flags) = match to {
        Toward::Sender if has_ack => (
            h.dst.0,
            h.src.0,
            h.dst_port,
            h.src_port,
            ack_in,
            0,
            tcp::RST,
        ),
        Toward::Sender => (
            h.dst.0,
            h.src.0,
            h.dst_port,
            h.src_port,
            0,
            h.tcp_seq.wrapping_add(seg_len),
            tcp::RST | tcp::ACK,
        ),
        Toward::Destination if has_ack => (
            h.src.0,
            h.dst.0,
            h.src_port,
            h.dst_port,
            h.tcp_seq.wrapping_add(seg_len),
            ack_in,
            tcp::RST | tcp::ACK,
        ),
        Toward::Destination => return None,
    };
    let n = l2(frame, h, to == Toward::Sender, out)?;
    let (ip, pseudo) = ip_header(v6, &src, &dst, proto::TCP, 20, &mut out[n..]);
    let t = &mut out[n + ip..n + ip + 20];
    t.fill(0);
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    let c = !(sum(t, pseudo) as u16);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    Some(n + ip + 20)
}

/// ICMP port unreachable (ICMPv6 destination unreachable, port unreachable) to the sender
/// of `frame`, from its destination's address, quoting the start of the packet. None for
/// ICMP errors themselves (never answered, RFC 1122 3.2.2) and what is not IP.
pub fn port_unreachable(frame: &[u8], h: &Headers, out: &mut [u8; MAX_FRAME]) -> Option<usize> {
    let v6 = match h.l3 {
        L3::Ipv4 => false,
        L3::Ipv6 => true,
        _ => return None,
    };
    let icmp_error = match h.proto {
        proto::ICMP => !matches!(h.icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18),
        proto::ICMPV6 => h.icmp_type < 128,
        _ => false,
    };
    if icmp_error {
        return None;
    }
    let l3 = h.l3_offset as usize;
    let ip_end = (l3 + h.ip_len as usize).min(frame.len());
    let quote = frame.get(l3..ip_end)?;
    let quote = &quote[..quote.len().min(QUOTE_MAX)];
    let n = l2(frame, h, true, out)?;
    let p = if v6 { proto::ICMPV6 } else { proto::ICMP };
    let (ip, pseudo) = ip_header(v6, &h.dst.0, &h.src.0, p, 8 + quote.len(), &mut out[n..]);
    let m = &mut out[n + ip..n + ip + 8 + quote.len()];
    m[..8].fill(0);
    if v6 {
        m[0] = 1; // destination unreachable
        m[1] = 4; // port unreachable
    } else {
        m[0] = 3;
        m[1] = 3;
    }
    m[8..].copy_from_slice(quote);
    // ICMPv6's checksum covers the pseudo-header; ICMP's does not.
    let c = !(sum(m, if v6 { pseudo } else { 0 }) as u16);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Some(n + ip + 8 + quote.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::parse_into;

    fn frame_v4(proto_: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]); // dst
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]); // src
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = proto_;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[198, 51, 100, 2]);
        let c = checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f
    }

    fn tcp_segment(flags: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&443u16.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t.extend_from_slice(payload);
        t
    }

    fn parse(f: &[u8]) -> Headers {
        let mut h = Headers::empty();
        parse_into(f, f.len(), &mut h).expect("a well-formed frame");
        h
    }

    /// The built frame parses, and its IP and L4 checksums verify.
    fn check(f: &[u8]) -> Headers {
        let h = parse(f);
        let l3 = h.l3_offset as usize;
        assert_eq!(checksum(&f[l3..l3 + 20]), 0, "IPv4 header checksum");
        let l4 = &f[h.l4_offset as usize..];
        let pseudo = sum(&f[l3 + 12..l3 + 20], 0) + l4.len() as u32 + h.proto as u32;
        let init = if h.proto == proto::ICMP { 0 } else { pseudo };
        assert_eq!(!(sum(l4, init) as u16), 0, "L4 checksum");
        h
    }

    #[test]
    fn resets_for_an_established_connection_go_both_ways() {
        let f = frame_v4(
            proto::TCP,
            &tcp_segment(tcp::ACK | tcp::PSH, 1000, 5000, b"hello"),
        );
        let h = parse(&f);
        let mut out = [0u8; MAX_FRAME];
        let n = tcp_reset(&f, &h, Toward::Sender, &mut out).unwrap();
        let r = check(&out[..n]);
        assert_eq!(ethernet::dst_mac(&out), ethernet::src_mac(&f));
        assert_eq!((r.src, r.dst), (h.dst, h.src));
        assert_eq!((r.src_port, r.dst_port), (443, 40000));
        assert_eq!((r.tcp_seq, r.tcp_flags), (5000, tcp::RST));
        let n = tcp_reset(&f, &h, Toward::Destination, &mut out).unwrap();
        let r = check(&out[..n]);
        assert_eq!(ethernet::dst_mac(&out), ethernet::dst_mac(&f));
        assert_eq!((r.src, r.dst), (h.src, h.dst));
        assert_eq!(r.tcp_seq, 1005);
        assert_eq!(r.tcp_flags, tcp::RST | tcp::ACK);
        assert_eq!(be32(&out[..n], r.l4_offset as usize + 8), 5000);
    }

    #[test]
    fn a_syn_is_answered_with_rst_ack_and_a_reset_never() {
        let f = frame_v4(proto::TCP, &tcp_segment(tcp::SYN, 77, 0, b""));
        let h = parse(&f);
        let mut out = [0u8; MAX_FRAME];
        let n = tcp_reset(&f, &h, Toward::Sender, &mut out).unwrap();
        let r = check(&out[..n]);
        assert_eq!((r.tcp_seq, r.tcp_flags), (0, tcp::RST | tcp::ACK));
        assert_eq!(be32(&out[..n], r.l4_offset as usize + 8), 78);
        assert!(tcp_reset(&f, &h, Toward::Destination, &mut out).is_none());
        let f = frame_v4(proto::TCP, &tcp_segment(tcp::RST, 77, 0, b""));
        assert!(tcp_reset(&f, &parse(&f), Toward::Sender, &mut out).is_none());
    }

    #[test]
    fn udp_gets_port_unreachable_quoting_the_datagram() {
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&5060u16.to_be_bytes());
        udp[2..4].copy_from_slice(&5060u16.to_be_bytes());
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        udp.extend_from_slice(b"INVI");
        let f = frame_v4(proto::UDP, &udp);
        let h = parse(&f);
        let mut out = [0u8; MAX_FRAME];
        let n = port_unreachable(&f, &h, &mut out).unwrap();
        let r = check(&out[..n]);
        assert_eq!(r.proto, proto::ICMP);
        assert_eq!((r.src, r.dst), (h.dst, h.src));
        let icmp = &out[r.l4_offset as usize..n];
        assert_eq!((icmp[0], icmp[1]), (3, 3));
        assert_eq!(&icmp[8..], &f[14..]);
        // An ICMP error is never answered with another.
        let mut err = vec![3u8, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&f[14..42]);
        let c = checksum(&err);
        err[2..4].copy_from_slice(&c.to_be_bytes());
        let e = frame_v4(proto::ICMP, &err);
        assert!(port_unreachable(&e, &parse(&e), &mut out).is_none());
    }
}
