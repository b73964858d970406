//! Whole TCP conversations: three-way handshake, data in both directions with correct sequence
//! and acknowledgement numbers, and a FIN/ACK close or a reset.
//!
//! The capture point is next to the client: a segment from the client is answered one round
//! trip later, a segment from the server is acknowledged by the client almost at once. The
//! session only produces frames; it never checks what a caller sends.

use std::net::{SocketAddrV4, SocketAddrV6};

use crate::build::{self, Mac, TcpFlags, TcpHeader};
use crate::pcap::TimedFrame;
use crate::rng::Rng;

/// Which way a segment travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// The two ends of a session, of one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    V4 {
        client: SocketAddrV4,
        server: SocketAddrV4,
    },
    V6 {
        client: SocketAddrV6,
        server: SocketAddrV6,
    },
}

/// Per-side state: the next sequence number it sends and the window it advertises.
#[derive(Debug, Clone, Copy)]
struct Side {
    mac: Mac,
    next_seq: u32,
    window: u16,
}

/// A TCP conversation being written out frame by frame on an internal clock.
#[derive(Debug, Clone)]
pub struct TcpSession {
    ends: Endpoints,
    client: Side,
    server: Side,
    vlan: Option<u16>,
    /// Largest payload per segment.
    pub mss: usize,
    /// Time between a client segment and the server's answer, as seen at the capture point.
    pub rtt_ns: u64,
    /// Time the client takes to answer the server.
    pub client_delay_ns: u64,
    /// Spacing of back-to-back segments from one side.
    pub gap_ns: u64,
    now: u64,
    frames: Vec<TimedFrame>,
}

impl TcpSession {
    /// A session over IPv4 starting at `start_ns`, with initial sequence numbers from `rng`.
    pub fn v4(
        rng: &mut Rng,
        start_ns: u64,
        client_mac: Mac,
        server_mac: Mac,
        client: SocketAddrV4,
        server: SocketAddrV4,
    ) -> Self {
        Self::new(
            rng,
            start_ns,
            client_mac,
            server_mac,
            Endpoints::V4 { client, server },
        )
    }

    /// A session over IPv6 starting at `start_ns`, with initial sequence numbers from `rng`.
    pub fn v6(
        rng: &mut Rng,
        start_ns: u64,
        client_mac: Mac,
        server_mac: Mac,
        client: SocketAddrV6,
        server: SocketAddrV6,
    ) -> Self {
        Self::new(
            rng,
            start_ns,
            client_mac,
            server_mac,
            Endpoints::V6 { client, server },
        )
    }

    fn new(
        rng: &mut Rng,
        start_ns: u64,
        client_mac: Mac,
        server_mac: Mac,
        ends: Endpoints,
    ) -> Self {
        TcpSession {
            ends,
            client: Side {
                mac: client_mac,
                next_seq: rng.next_u32(),
                window: 64_240,
            },
            server: Side {
                mac: server_mac,
                next_seq: rng.next_u32(),
                window: 65_160,
            },
            vlan: None,
            mss: 1448,
            rtt_ns: 20_000_000 + rng.range(0, 30_000_000),
            client_delay_ns: 150_000,
            gap_ns: 120_000,
            now: start_ns,
            frames: Vec::new(),
        }
    }

    /// Tags every frame of this session with 802.1Q VLAN `vid`.
    pub fn with_vlan(mut self, vid: u16) -> Self {
        self.vlan = Some(vid);
        self
    }

    pub fn endpoints(&self) -> Endpoints {
        self.ends
    }

    /// Time of the last frame emitted (or the start time before any).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Moves the clock forward by `ns` (an idle period before the next segment).
    pub fn idle(&mut self, ns: u64) {
        self.now += ns;
    }

    /// Next sequence number the given sender will use.
    pub fn next_seq(&self, from: Direction) -> u32 {
        self.side(from).next_seq
    }

    pub fn frames(&self) -> &[TimedFrame] {
        &self.frames
    }

    pub fn into_frames(self) -> Vec<TimedFrame> {
        self.frames
    }

    fn side(&self, from: Direction) -> &Side {
        match from {
            Direction::ToServer => &self.client,
            Direction::ToClient => &self.server,
        }
    }

    fn side_mut(&mut self, from: Direction) -> &mut Side {
        match from {
            Direction::ToServer => &mut self.client,
            Direction::ToClient => &mut self.server,
        }
    }

    /// How long after a segment travelling `dir` its receiver answers.
    fn answer_delay(&self, dir: Direction) -> u64 {
        match dir {
            Direction::ToServer => self.rtt_ns,
            Direction::ToClient => self.client_delay_ns,
        }
    }

    /// Emits one segment from the sender of `dir` at time `at`, with the sender's current
    /// sequence number and acknowledging everything the other side sent.
    fn emit(&mut self, at: u64, dir: Direction, flags: TcpFlags, payload: &[u8]) {
        let (from, to) = (*self.side(dir), *self.side(dir.reverse()));
        let h = TcpHeader {
            seq: from.next_seq,
            ack: if flags.contains(TcpFlags::ACK) {
                to.next_seq
            } else {
                0
            },
            flags,
            window: from.window,
        };
        let frame = match (self.ends, dir) {
            (Endpoints::V4 { client, server }, Direction::ToServer) => {
                build::tcp4(from.mac, to.mac, client, server, &h, payload)
            }
            (Endpoints::V4 { client, server }, Direction::ToClient) => {
                build::tcp4(from.mac, to.mac, server, client, &h, payload)
            }
            (Endpoints::V6 { client, server }, Direction::ToServer) => {
                build::tcp6(from.mac, to.mac, client, server, &h, payload)
            }
            (Endpoints::V6 { client, server }, Direction::ToClient) => {
                build::tcp6(from.mac, to.mac, server, client, &h, payload)
            }
        };
        let frame = match self.vlan {
            Some(vid) => build::with_vlan(&frame, vid),
            None => frame,
        };
        let consumed = payload.len() as u32
            + u32::from(flags.contains(TcpFlags::SYN))
            + u32::from(flags.contains(TcpFlags::FIN));
        let side = self.side_mut(dir);
        side.next_seq = side.next_seq.wrapping_add(consumed);
        self.now = self.now.max(at);
        self.frames.push((at, frame));
    }

    /// SYN, SYN/ACK, ACK.
    pub fn handshake(&mut self) {
        let t = self.now;
        self.emit(t, Direction::ToServer, TcpFlags::SYN, &[]);
        let t = t + self.rtt_ns;
        self.emit(t, Direction::ToClient, TcpFlags::SYN | TcpFlags::ACK, &[]);
        let t = t + self.client_delay_ns;
        self.emit(t, Direction::ToServer, TcpFlags::ACK, &[]);
    }

    /// Sends `payload` in `dir`, cut into segments of at most `mss` bytes (PSH on the last).
    /// The receiver acknowledges every second segment and the last one, and the sender waits
    /// for that ACK before going on, so frames are in time order and every ACK covers all data
    /// sent before it.
    pub fn send(&mut self, dir: Direction, payload: &[u8]) {
        let mut t = self.now + self.gap_ns;
        let n = payload.len().div_ceil(self.mss.max(1));
        for (i, chunk) in payload.chunks(self.mss.max(1)).enumerate() {
            let last = i + 1 == n;
            let flags = if last {
                TcpFlags::PSH | TcpFlags::ACK
            } else {
                TcpFlags::ACK
            };
            self.emit(t, dir, flags, chunk);
            if i % 2 == 1 || last {
                t += self.answer_delay(dir);
                self.emit(t, dir.reverse(), TcpFlags::ACK, &[]);
            }
            t += self.gap_ns;
        }
    }

    /// Orderly close: FIN/ACK from `initiator`, FIN/ACK from the other side, final ACK.
    pub fn close(&mut self, initiator: Direction) {
        let t = self.now + self.gap_ns;
        self.emit(t, initiator, TcpFlags::FIN | TcpFlags::ACK, &[]);
        let t = t + self.answer_delay(initiator);
        self.emit(t, initiator.reverse(), TcpFlags::FIN | TcpFlags::ACK, &[]);
        let t = t + self.answer_delay(initiator.reverse());
        self.emit(t, initiator, TcpFlags::ACK, &[]);
    }

    /// Abortive close: one RST/ACK from `from`.
    pub fn reset(&mut self, from: Direction) {
        let t = self.now + self.gap_ns;
        self.emit(t, from, TcpFlags::RST | TcpFlags::ACK, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    struct Seg {
        ts: u64,
        to_server: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        len: usize,
    }

    fn parse(frames: &[TimedFrame], client_port: u16) -> Vec<Seg> {
        frames
            .iter()
            .map(|(ts, f)| {
                let ip = &f[14..];
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                let t = &ip[20..];
                Seg {
                    ts: *ts,
                    to_server: u16::from_be_bytes([t[0], t[1]]) == client_port,
                    seq: u32::from_be_bytes(t[4..8].try_into().unwrap()),
                    ack: u32::from_be_bytes(t[8..12].try_into().unwrap()),
                    flags: t[13],
                    len: total - 40,
                }
            })
            .collect()
    }

    fn session() -> TcpSession {
        let mut rng = Rng::new(42);
        TcpSession::v4(
            &mut rng,
            1_000_000_000,
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 50000),
            SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 80),
        )
    }

    /// Replays the segments as a receiver would: every data/SYN/FIN segment must start exactly
    /// at the sequence number the receiver expects, and every ACK must acknowledge only bytes
    /// that were sent.
    fn check_sequence_space(segs: &[Seg]) {
        let syn = &segs[0];
        assert_eq!(syn.flags, 0x02);
        let synack = &segs[1];
        assert_eq!(synack.flags, 0x12);
        assert_eq!(synack.ack, syn.seq.wrapping_add(1));
        let mut next = [syn.seq.wrapping_add(1), synack.seq.wrapping_add(1)]; // [client, server]
        for s in &segs[2..] {
            let (me, peer) = if s.to_server { (0, 1) } else { (1, 0) };
            assert_eq!(s.seq, next[me], "seq of segment at {}", s.ts);
            assert!(s.flags & 0x10 != 0);
            assert_eq!(s.ack, next[peer], "ack of segment at {}", s.ts);
            next[me] = next[me].wrapping_add(s.len as u32 + u32::from(s.flags & 0x01));
        }
        assert!(segs.windows(2).all(|w| w[0].ts <= w[1].ts));
    }

    #[test]
    fn conversation_with_fin_close_has_consistent_seq_and_ack() {
        let mut s = session();
        s.handshake();
        s.send(
            Direction::ToServer,
            b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
        );
        s.send(Direction::ToClient, &vec![b'x'; 5000]);
        s.close(Direction::ToServer);
        let segs = parse(s.frames(), 50000);
        check_sequence_space(&segs);
        // 5000 bytes at MSS 1448 is 4 segments, the last with PSH.
        let data: Vec<&Seg> = segs.iter().filter(|x| !x.to_server && x.len > 0).collect();
        assert_eq!(
            data.iter().map(|x| x.len).collect::<Vec<_>>(),
            vec![1448, 1448, 1448, 656]
        );
        assert_eq!(data[3].flags, 0x18);
        let fins = segs.iter().filter(|x| x.flags & 0x01 != 0).count();
        assert_eq!(fins, 2);
        assert_eq!(segs.last().unwrap().flags, 0x10);
    }

    #[test]
    fn reset_close_ends_with_rst() {
        let mut s = session();
        s.handshake();
        s.send(Direction::ToServer, b"hello");
        s.reset(Direction::ToClient);
        let segs = parse(s.frames(), 50000);
        check_sequence_space(&segs);
        let last = segs.last().unwrap();
        assert_eq!(last.flags, 0x14);
        assert!(!last.to_server);
        assert!(segs.iter().all(|x| x.flags & 0x01 == 0));
    }
}
