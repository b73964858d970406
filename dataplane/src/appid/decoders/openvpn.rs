//! OpenVPN (UDP, and TCP with its 2-byte length prefix), on any port, from its control
//! channel's first packets. Each packet starts with an opcode (high 5 bits) and a key id (low
//! 3), then for control packets the sender's 8-byte session id. A session starts with a hard
//! reset: from the client (opcodes 1, 7, 10), answered by the server's (2, 8).
//! - a hard reset (key id 0, non-zero session id) opens the direction: its session id is kept
//!   (scratch: the client's in bytes 0-7, the server's in 8-15), `NotYet` (one such packet is
//!   too weak: any datagram whose first byte is 0x38 looks like one);
//! - `Certain` when the same direction sends a control or ack packet (opcodes 4, 5) with the
//!   same session id (a one-sided capture still has that), or when the other side answers a
//!   client's hard reset with a server's that acknowledges it (the client's session id is in
//!   its ack section). (A repeated hard reset proves nothing: a protocol
//!   that resends its first datagram would look the same.)
//!
//! Over TCP the direction's stream is read packet by packet (zero-length records skipped).
//!
//! Never allocates, never panics.
use super::util::be16;
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;

pub struct Openvpn;

const HARD_RESET_CLIENT: [u8; 3] = [1, 7, 10];
const HARD_RESET_SERVER: [u8; 2] = [2, 8];
const CONTROL: u8 = 4;
const ACK: u8 = 5;
/// Opcode, key id and session id; then at least a packet id or an ack count.
const MIN_LEN: usize = 14;
/// Larger than any hard reset (tls-crypt-v2 carries the wrapped client key: about 300 bytes).
const MAX_RESET_LEN: usize = 1200;
const MAX_TCP_RECORDS: usize = 8;

impl Decoder for Openvpn {
    fn name(&self) -> &'static str {
        "openvpn"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp, Transport::Tcp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[1194]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        _ev: &mut Evidence,
    ) -> Probe {
        match ctx.transport {
            Transport::Udp => packet(data, ctx.dir, scratch),
            Transport::Tcp => {
                let mut off = 0;
                let mut answer = Probe::NotYet;
                for _ in 0..MAX_TCP_RECORDS {
                    let Some(len) = be16(data, off) else {
                        return answer;
                    };
                    let len = len as usize;
                    if len == 0 {
                        off += 2;
                        continue;
                    }
                    let Some(p) = data.get(off + 2..off + 2 + len) else {
                        // Incomplete: judge the part there is once, at its start.
                        return if off == 0 && len > MAX_RESET_LEN {
                            Probe::NotMe
                        } else {
                            answer
                        };
                    };
                    answer = packet(p, ctx.dir, scratch);
                    if answer != Probe::NotYet {
                        return answer;
                    }
                    off += 2 + len;
                }
                answer
            }
        }
    }
}

/// One packet in direction `dir`.
fn packet(p: &[u8], dir: Dir, scratch: &mut Scratch) -> Probe {
    let (Some(&first), Some(sid)) = (p.first(), p.get(1..9)) else {
        return Probe::NotMe;
    };
    let (opcode, key) = (first >> 3, first & 7);
    if p.len() < MIN_LEN || key != 0 || !random_looking(sid) {
        return Probe::NotMe;
    }
    let own = dir as usize * 8;
    let other = 8 - own;
    let reset = match dir {
        Dir::Orig => HARD_RESET_CLIENT.contains(&opcode),
        Dir::Reply => HARD_RESET_SERVER.contains(&opcode),
    };
    // A one-sided capture of the server: its hard reset opens the "client" direction.
    let reset = reset || (dir == Dir::Orig && HARD_RESET_SERVER.contains(&opcode));
    let known = scratch[own..own + 8] == *sid;
    let certain = Probe::Match(Proto::Openvpn, Confidence::Certain);
    if known && (opcode == CONTROL || opcode == ACK) {
        return certain;
    }
    if !reset || p.len() > MAX_RESET_LEN {
        return Probe::NotMe;
    }
    scratch[own..own + 8].copy_from_slice(sid);
    if dir == Dir::Reply
        && HARD_RESET_SERVER.contains(&opcode)
        && scratch[other..other + 8] != [0; 8]
    {
        return certain;
    }
    Probe::NotYet
}

/// Whether a session id looks like the random 64-bit number OpenVPN draws: at most two zero
/// bytes and at least five distinct values (a DNS header's flags and counts, which can
/// otherwise pass for one, have several zeros).
fn random_looking(sid: &[u8]) -> bool {
    let zeros = sid.iter().filter(|&&b| b == 0).count();
    let distinct = (0..sid.len())
        .filter(|&i| !sid[..i].contains(&sid[i]))
        .count();
    zeros <= 2 && distinct >= 5
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, hex};
    use super::*;
    use proptest::prelude::*;

    fn run(c: &FlowCtx, s: &mut Scratch, m: &str) -> Probe {
        Openvpn.probe(&hex(m), c, s, &mut Evidence::default())
    }

    #[test]
    fn a_client_reset_then_its_ack_and_a_server_answer() {
        let o = ctx(Transport::Udp, Dir::Orig, 60201, 443);
        let r = ctx(Transport::Udp, Dir::Reply, 60201, 443);
        let likely = Probe::NotYet;
        let certain = Probe::Match(Proto::Openvpn, Confidence::Certain);
        // openvpn.pcap, 192.168.75.18:60201: hard reset v2, then an ack with the same id.
        let mut s = [0u8; 16];
        assert_eq!(run(&o, &mut s, "38334857703d96db390000000000"), likely);
        assert_eq!(
            run(&o, &mut s, "28334857703d96db390100000000d31c3a6964602fa0"),
            certain
        );
        // The server answering the client's hard reset.
        let mut s = [0u8; 16];
        assert_eq!(run(&o, &mut s, "38334857703d96db390000000000"), likely);
        assert_eq!(
            run(
                &r,
                &mut s,
                "40d31c3a6964602fa00100000000334857703d96db3900000000"
            ),
            certain
        );
        // Another session's ack, a data packet, a non-zero key id: not OpenVPN's start.
        let mut s = [0u8; 16];
        assert_eq!(run(&o, &mut s, "38334857703d96db390000000000"), likely);
        assert_eq!(
            run(&o, &mut s, "28aaaa57703d96db390100000000d31c3a6964602fa0"),
            Probe::NotMe
        );
        assert_eq!(
            run(&o, &mut [0; 16], "30334857703d96db390000000000"),
            Probe::NotMe
        );
        assert_eq!(
            run(&o, &mut [0; 16], "39334857703d96db390000000000"),
            Probe::NotMe
        );
    }

    #[test]
    fn over_tcp_the_records_are_read_in_turn() {
        let c = ctx(Transport::Tcp, Dir::Orig, 39772, 1194);
        // openvpn.pcap: the client's reset, then (third segment) its ack.
        let mut s = [0u8; 16];
        let stream =
            "000e38507a28a78275788d0000000000001628507a28a78275788d01000000009ad747beb24d8a1b";
        assert_eq!(run(&c, &mut s, &stream[..32]), Probe::NotYet);
        assert_eq!(
            run(&c, &mut [0; 16], stream),
            Probe::Match(Proto::Openvpn, Confidence::Certain)
        );
        assert_eq!(run(&c, &mut [0; 16], "000e38507a"), Probe::NotYet);
    }

    #[test]
    fn agrees_with_ndpi_and_matches_nothing_else() {
        let m = testkit::standard_checks(&Openvpn, &[Proto::Openvpn], &[]);
        assert_eq!(m.get(&Proto::Openvpn), Some(&10));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300), tcp in any::<bool>()) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = [0u8; 16];
            for dir in [Dir::Orig, Dir::Reply, Dir::Orig] {
                let _ = Openvpn.probe(&data, &ctx(t, dir, 1, 2), &mut s, &mut Evidence::default());
            }
        }
    }
}
