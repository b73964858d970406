//! BitTorrent, on any port:
//! - the peer wire protocol's handshake over TCP (or inside a uTP data packet): the byte 19
//!   and `BitTorrent protocol`: `Certain` (a partial prefix waits);
//! - the DHT (BEP 5) over UDP: a bencoded KRPC dictionary (`d1:a...`, `d1:r...`, `d1:e...`)
//!   with its message type `1:y1:q`, `r` or `e`, ending the datagram with `e`: `Certain`;
//! - uTP (BEP 29) over UDP: a SYN (version 1, type 4, a 20-byte header and known extensions)
//!   answered by a STATE from the other side with the same connection id acknowledging the
//!   SYN's sequence number (kept in scratch): `Certain`, `NotYet` before;
//! - the UDP tracker protocol (BEP 15): a connect request, the protocol's 64-bit magic,
//!   action 0 and a transaction id: `Certain`.
//!
//! Never allocates, never panics.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Bittorrent;

const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol";
const UTP_HEADER: usize = 20;
const UTP_DATA: u8 = 0;
const UTP_STATE: u8 = 2;
const UTP_SYN: u8 = 4;
const TRACKER_MAGIC: [u8; 8] = [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80];
const TRACKER_CONNECT_LEN: usize = 16;
/// Extension headers followed at most (selective ack, extension bits).
const MAX_EXTENSIONS: usize = 4;
const SYN_SEEN: u8 = 1;

impl Decoder for Bittorrent {
    fn name(&self) -> &'static str {
        "bittorrent"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Tcp, Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[6881, 6889, 51413]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        let certain = Probe::Match(Proto::Bittorrent, Confidence::Certain);
        match ctx.transport {
            Transport::Tcp => {
                let n = data.len().min(HANDSHAKE.len());
                if data[..n] != HANDSHAKE[..n] {
                    Probe::NotMe
                } else if n == HANDSHAKE.len() {
                    certain
                } else {
                    Probe::NotYet
                }
            }
            Transport::Udp if dht(data) || tracker(data) => certain,
            Transport::Udp => utp(data, ctx.dir as u8 + 1, scratch),
        }
    }
}

/// A KRPC message: a bencoded dictionary with a message type.
fn dht(d: &[u8]) -> bool {
    let opens = [&b"d1:a"[..], b"d1:r", b"d1:e"]
        .iter()
        .any(|p| d.starts_with(p));
    opens
        && d.last() == Some(&b'e')
        && [&b"1:y1:q"[..], b"1:y1:r", b"1:y1:e"]
            .iter()
            .any(|y| d.windows(y.len()).any(|w| w == *y))
}

fn tracker(d: &[u8]) -> bool {
    d.len() == TRACKER_CONNECT_LEN && d[..8] == TRACKER_MAGIC && d[8..12] == [0; 4]
}

/// A uTP packet's type and where its payload starts (after the extensions).
fn utp_header(d: &[u8]) -> Option<(u8, usize)> {
    let first = *d.first()?;
    let (kind, version) = (first >> 4, first & 0x0f);
    if version != 1 || kind > UTP_SYN || d.len() < UTP_HEADER {
        return None;
    }
    let mut next = d[1];
    let mut at = UTP_HEADER;
    for _ in 0..MAX_EXTENSIONS {
        if next == 0 {
            return Some((kind, at));
        }
        // Known extensions: 1 (selective ack), 2 (extension bits).
        if next > 2 {
            return None;
        }
        next = *d.get(at)?;
        let len = *d.get(at + 1)? as usize;
        at += 2 + len;
    }
    None
}

fn utp(d: &[u8], dir: u8, scratch: &mut Scratch) -> Probe {
    let Some((kind, payload)) = utp_header(d) else {
        return Probe::NotMe;
    };
    let certain = Probe::Match(Proto::Bittorrent, Confidence::Certain);
    if kind == UTP_DATA && d.get(payload..).is_some_and(|p| p.starts_with(HANDSHAKE)) {
        return certain;
    }
    let conn = &d[2..4];
    match kind {
        UTP_SYN if d.len() == payload => {
            scratch[0] = SYN_SEEN;
            scratch[1] = dir;
            scratch[2..4].copy_from_slice(conn);
            scratch[4..6].copy_from_slice(&d[16..18]);
            Probe::NotYet
        }
        UTP_STATE if scratch[0] == SYN_SEEN && scratch[1] != dir => {
            // The answer carries the SYN's connection id and acknowledges its sequence number.
            if scratch[2..4] == *conn && be16(d, 18) == be16(scratch, 4) {
                certain
            } else {
                Probe::NotMe
            }
        }
        _ if scratch[0] == SYN_SEEN => Probe::NotYet,
        _ => Probe::NotMe,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    #[test]
    fn peer_wire_handshake_over_tcp() {
        let c = ctx(Transport::Tcp, Dir::Orig, 52888, 38305);
        let mut h = HANDSHAKE.to_vec();
        h.extend_from_slice(&[0; 8]);
        assert_eq!(
            probe_once(&Bittorrent, &h, &c).0,
            Probe::Match(Proto::Bittorrent, Confidence::Certain)
        );
        assert_eq!(probe_once(&Bittorrent, &h[..7], &c).0, Probe::NotYet);
        assert_eq!(
            probe_once(&Bittorrent, b"\x13BitTorrent protocoX", &c).0,
            Probe::NotMe
        );
    }

    #[test]
    fn dht_and_tracker_datagrams() {
        let c = ctx(Transport::Udp, Dir::Orig, 40959, 64969);
        let certain = Probe::Match(Proto::Bittorrent, Confidence::Certain);
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert_eq!(probe_once(&Bittorrent, ping, &c).0, certain);
        assert_eq!(
            probe_once(&Bittorrent, &ping[..ping.len() - 1], &c).0,
            Probe::NotMe
        );
        let mut connect = TRACKER_MAGIC.to_vec();
        connect.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(probe_once(&Bittorrent, &connect, &c).0, certain);
    }

    #[test]
    fn utp_syn_and_its_state() {
        let o = ctx(Transport::Udp, Dir::Orig, 49861, 33333);
        let r = ctx(Transport::Udp, Dir::Reply, 49861, 33333);
        let mut s = [0u8; 16];
        let mut ev = Evidence::default();
        // bittorrent_utp.pcap: SYN, then the STATE acknowledging its sequence number 0x23c6.
        let syn = hex("41004567ed639296000000000010000023c60000");
        let state = hex("21004567ed6393410000000000100000456723c6");
        assert_eq!(Bittorrent.probe(&syn, &o, &mut s, &mut ev), Probe::NotYet);
        assert_eq!(
            Bittorrent.probe(&state, &r, &mut s, &mut ev),
            Probe::Match(Proto::Bittorrent, Confidence::Certain)
        );
        let mut s = [0u8; 16];
        let mut other = state.clone();
        other[19] ^= 1;
        assert_eq!(Bittorrent.probe(&syn, &o, &mut s, &mut ev), Probe::NotYet);
        assert_eq!(Bittorrent.probe(&other, &r, &mut s, &mut ev), Probe::NotMe);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Bittorrent, &[Proto::Bittorrent], &[]);
        assert!(m.get(&Proto::Bittorrent).is_some_and(|n| *n >= 20), "{m:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), tcp in any::<bool>()) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = [0u8; 16];
            for dir in [Dir::Orig, Dir::Reply] {
                let _ = Bittorrent.probe(&data, &ctx(t, dir, 1, 2), &mut s, &mut Evidence::default());
            }
        }
    }
}
