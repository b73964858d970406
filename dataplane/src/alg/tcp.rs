//! SIP over TCP: the byte stream behind a signalling connection's segments.
//!
//! A segment carries any number of whole SIP messages and perhaps the start of another.
//! Whole messages are followed and rewritten as on UDP. On a translated connection the
//! unfinished tail is held (its segment consumed, counted as `alg-held`) until the rest
//! arrives, then leaves with it at the held bytes' sequence number, in segments no larger
//! than the largest this direction has carried (or, when larger, what fits in a 576-byte
//! datagram, which every IPv4 host takes); a split message is kept, rewritten, until new
//! bytes follow it, so a retransmission of any part of it sends it again whole; the sender's retransmissions of held bytes are consumed the same way. On
//! an untranslated connection nothing is held or changed: the tail is copied aside, only to
//! follow the message when it completes.
//!
//! Once a rewrite changed a message's length, every later segment's sequence number in that
//! direction, and the other direction's acknowledgement and SACK blocks, are shifted by the
//! difference for the rest of the connection: one correction point per direction (where the
//! last length change ended), as Linux's nf_nat_seqadj keeps, so a retransmission of the
//! last rewritten segment maps as it did the first time.
//!
//! State is reserved at start: a pool of streams (a connection gets one when a rewrite
//! first changes a length, or when it first holds bytes) and a smaller pool of hold buffers.
//! A full pool is counted, never a reason to evict: the message that needed it is treated as
//! unrewritable.
use crate::flow::{Dir, Slot};

/// The IPv4 datagram every host takes (RFC 1122 3.3.3): a rewritten message's segments are
/// never cut smaller than fits in it.
pub const MIN_DATAGRAM: usize = 576;
/// A hold older than this may be taken over by another connection that needs a buffer.
pub const HOLD_NS: u64 = 2_000_000_000;
const NONE: u32 = u32::MAX;

/// `a` at or after `b` in sequence space.
#[inline]
fn at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// One direction's sequence correction: bytes from `pos` on (original numbering) moved by
/// `after`, bytes before it by `before`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqAdj {
    pos: u32,
    before: i32,
    after: i32,
    set: bool,
}

impl SeqAdj {
    /// Where original sequence number `seq` (a segment's first byte) is sent.
    #[inline]
    pub fn map(&self, seq: u32) -> u32 {
        if !self.set {
            return seq;
        }
        let off = if at_or_after(seq, self.pos) {
            self.after
        } else {
            self.before
        };
        seq.wrapping_add(off as u32)
    }

    /// An acknowledgement of this direction's rewritten bytes, in the sender's numbering.
    #[inline]
    pub fn unmap(&self, ack: u32) -> u32 {
        if !self.set {
            return ack;
        }
        let off = if at_or_after(ack.wrapping_sub(self.after as u32), self.pos) {
            self.after
        } else {
            self.before
        };
        ack.wrapping_sub(off as u32)
    }

    /// The `len` original bytes at `seq` went out as `out` bytes. A segment that starts
    /// before the last correction point (a retransmission) moves nothing further.
    pub fn record(&mut self, seq: u32, len: u32, out: u32) {
        if len == out {
            return;
        }
        if self.set && !at_or_after(seq, self.pos) {
            return;
        }
        let before = if self.set { self.after } else { 0 };
        *self = SeqAdj {
            pos: seq.wrapping_add(len),
            before,
            after: before.wrapping_add(out as i32 - len as i32),
            set: true,
        };
    }

    /// True once some length changed.
    pub fn is_set(&self) -> bool {
        self.set
    }
}

/// Bytes one direction holds: the start of an unfinished message.
#[derive(Clone, Copy, Debug)]
struct Held {
    buf: u32,
    /// Original sequence number of the first held byte, and how many there are.
    seq: u32,
    len: u32,
    since: u64,
    /// Held for rewriting (a translated connection: its segments were consumed), or only
    /// copied aside to follow the message (untranslated: they went on).
    consumed: bool,
    /// Once a split message was sent rewritten: its rewritten length (the buffer keeps
    /// those bytes, `len` stays the original's), so that the sender's retransmission of
    /// any part of it (one of the segments it became was lost) sends it again whole. 0: not
    /// sent yet.
    sent: u32,
}

impl Held {
    const EMPTY: Held = Held {
        buf: NONE,
        seq: 0,
        len: 0,
        since: 0,
        consumed: false,
        sent: 0,
    };

    fn is_some(&self) -> bool {
        self.buf != NONE
    }
}

/// One signalling connection's stream state.
#[derive(Clone, Copy, Debug)]
struct Stream {
    slot: Slot,
    adj: [SeqAdj; 2],
    held: [Held; 2],
    /// The largest payload each direction has carried.
    seg_max: [u16; 2],
}

/// Counters of the TCP side of the SIP ALG.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Segments consumed because they held the start of an unfinished message (or a
    /// retransmission of held bytes).
    pub held: u64,
    /// Segments out of order while bytes were held: dropped on a translated connection (the
    /// sender sends them again), the copy given up on an untranslated one.
    pub reordered: u64,
    /// Messages that could not be held or tracked (larger than a buffer, a pool full).
    pub unbuffered: u64,
    /// Holds given up (taken over by another connection after `HOLD_NS`, or the message
    /// never completed within a buffer).
    pub abandoned: u64,
    /// Connections whose sequence numbers the ALG shifts.
    pub adjusted: u64,
}

/// The per-worker pools.
pub struct Streams {
    streams: Vec<Stream>,
    free: Vec<u32>,
    /// Per flow slot: its stream, or NONE.
    of_slot: Vec<u32>,
    bufs: Vec<Box<[u8]>>,
    /// Per buffer: the stream holding it, or NONE.
    buf_owner: Vec<u32>,
    free_bufs: Vec<u32>,
    pub counters: TcpCounters,
}

/// What `assemble` found for one segment's payload.
pub enum Assembled {
    /// The payload alone: no bytes were held for this direction.
    Alone,
    /// The held bytes followed by the new ones, in buffer `buf` (`len` bytes from original
    /// sequence number `seq`); `consumed`: the held bytes' segments were not sent on.
    Joined {
        buf: u32,
        seq: u32,
        len: usize,
        consumed: bool,
    },
    /// A retransmission of bytes already held: consumed again.
    Duplicate,
    /// A retransmission of (part of) a split message already sent rewritten: the
    /// rewritten message, `len` bytes in buffer `buf`, from original sequence number `seq`,
    /// goes again.
    Resend { buf: u32, seq: u32, len: usize },
    /// Not the bytes that come next: the hold is given up (untranslated) or kept and the
    /// segment dropped (translated, `consumed`).
    Reordered { consumed: bool },
}

impl Streams {
    pub fn new(flows: usize, streams: usize, buffers: usize, buffer_bytes: usize) -> Streams {
        let empty = Stream {
            slot: 0,
            adj: [SeqAdj::default(); 2],
            held: [Held::EMPTY; 2],
            seg_max: [0; 2],
        };
        Streams {
            streams: vec![empty; streams],
            free: (0..streams as u32).rev().collect(),
            of_slot: vec![NONE; flows],
            bufs: (0..buffers)
                .map(|_| vec![0u8; buffer_bytes].into_boxed_slice())
                .collect(),
            buf_owner: vec![NONE; buffers],
            free_bufs: (0..buffers as u32).rev().collect(),
            counters: TcpCounters::default(),
        }
    }

    /// The largest unfinished message a connection can hold.
    pub fn buffer_bytes(&self) -> usize {
        self.bufs.first().map_or(0, |b| b.len())
    }

    fn get(&self, slot: Slot) -> Option<&Stream> {
        let i = *self.of_slot.get(slot as usize)?;
        (i != NONE).then(|| &self.streams[i as usize])
    }

    fn get_mut(&mut self, slot: Slot) -> Option<&mut Stream> {
        let i = *self.of_slot.get(slot as usize)?;
        (i != NONE).then(|| &mut self.streams[i as usize])
    }

    /// The stream of flow `slot`, made now if it has none (None: the pool is full).
    fn make(&mut self, slot: Slot) -> Option<u32> {
        let at = self.of_slot.get_mut(slot as usize)?;
        if *at != NONE {
            return Some(*at);
        }
        let i = self.free.pop()?;
        self.streams[i as usize] = Stream {
            slot,
            adj: [SeqAdj::default(); 2],
            held: [Held::EMPTY; 2],
            seg_max: [0; 2],
        };
        *at = i;
        Some(i)
    }

    /// Where a segment of `dir` starting at original `seq` is sent, and the acknowledgement
    /// `ack` it carries for the other direction, in that direction's sender's numbering.
    #[inline]
    pub fn shift(&self, slot: Slot, dir: Dir, seq: u32, ack: u32) -> (u32, u32) {
        match self.get(slot) {
            Some(s) => (
                s.adj[dir as usize].map(seq),
                s.adj[1 - dir as usize].unmap(ack),
            ),
            None => (seq, ack),
        }
    }

    /// The other direction's correction, for SACK blocks a segment of `dir` carries.
    #[inline]
    pub fn unmap_sack(&self, slot: Slot, dir: Dir, edge: u32) -> u32 {
        self.get(slot)
            .map_or(edge, |s| s.adj[1 - dir as usize].unmap(edge))
    }

    /// True when flow `slot` has a stream whose numbers moved (every segment needs a look).
    #[inline]
    pub fn adjusts(&self, slot: Slot) -> bool {
        self.get(slot)
            .is_some_and(|s| s.adj[0].is_set() || s.adj[1].is_set())
    }

    /// Notes a payload of `len` bytes in `dir` (the segment size later sends keep to), and
    /// returns the largest this direction carried (the caller raises it to what every path
    /// takes, `MIN_DATAGRAM` less its headers).
    pub fn segment_size(&mut self, slot: Slot, dir: Dir, len: usize) -> usize {
        let len16 = len.min(u16::MAX as usize) as u16;
        match self.get_mut(slot) {
            Some(s) => {
                let m = &mut s.seg_max[dir as usize];
                *m = (*m).max(len16);
                *m as usize
            }
            None => len,
        }
    }

    /// Puts a new segment's payload (`seq`, `payload`) after what `dir` holds, if anything.
    pub fn assemble(&mut self, slot: Slot, dir: Dir, seq: u32, payload: &[u8]) -> Assembled {
        let Some(i) = self
            .of_slot
            .get(slot as usize)
            .copied()
            .filter(|&i| i != NONE)
        else {
            return Assembled::Alone;
        };
        let h = self.streams[i as usize].held[dir as usize];
        if !h.is_some() {
            return Assembled::Alone;
        }
        let next = h.seq.wrapping_add(h.len);
        let end = seq.wrapping_add(payload.len() as u32);
        if h.sent != 0 {
            if at_or_after(seq, h.seq) && at_or_after(next, end) && seq != next {
                return Assembled::Resend {
                    buf: h.buf,
                    seq: h.seq,
                    len: h.sent as usize,
                };
            }
            // New bytes: the copy is not needed any more.
            self.release(slot, dir);
            return Assembled::Alone;
        }
        let skip = if seq == next {
            0
        } else if h.consumed && at_or_after(seq, h.seq) && at_or_after(next, end) {
            self.counters.held += 1;
            return Assembled::Duplicate;
        } else if h.consumed && at_or_after(seq, h.seq) && at_or_after(next, seq) {
            // Overlaps the held bytes and brings more: only the new ones are added.
            next.wrapping_sub(seq) as usize
        } else {
            self.counters.reordered += 1;
            if !h.consumed {
                self.release(slot, dir);
            }
            return Assembled::Reordered {
                consumed: h.consumed,
            };
        };
        let add = &payload[skip..];
        let buf = &mut self.bufs[h.buf as usize];
        let len = h.len as usize;
        if len + add.len() > buf.len() {
            // The message outgrew the buffer: it cannot be rewritten.
            self.counters.unbuffered += 1;
            self.counters.abandoned += 1;
            self.release(slot, dir);
            return Assembled::Reordered {
                consumed: h.consumed,
            };
        }
        buf[len..len + add.len()].copy_from_slice(add);
        Assembled::Joined {
            buf: h.buf,
            seq: h.seq,
            len: len + add.len(),
            consumed: h.consumed,
        }
    }

    /// The bytes of buffer `buf` (taken out while the caller reads them with other state;
    /// `put_back` returns it).
    pub fn take_buffer(&mut self, buf: u32) -> Box<[u8]> {
        std::mem::take(&mut self.bufs[buf as usize])
    }

    pub fn put_back(&mut self, buf: u32, b: Box<[u8]>) {
        self.bufs[buf as usize] = b;
    }

    /// `dir` of flow `slot` holds `tail` (original sequence number `seq`) until the rest
    /// arrives. `tail` may lie in the buffer the hold already has. False when it cannot:
    /// larger than a buffer, or no stream or buffer free.
    pub fn hold(
        &mut self,
        slot: Slot,
        dir: Dir,
        seq: u32,
        tail: Hold<'_>,
        consumed: bool,
        now: u64,
    ) -> bool {
        let len = tail.len();
        if len > self.buffer_bytes() {
            self.counters.unbuffered += 1;
            self.release(slot, dir);
            return false;
        }
        let Some(i) = self.make(slot) else {
            self.counters.unbuffered += 1;
            return false;
        };
        let d = dir as usize;
        let mut h = self.streams[i as usize].held[d];
        if !h.is_some() {
            let Some(b) = self.buffer_for(i, now) else {
                self.counters.unbuffered += 1;
                return false;
            };
            h.buf = b;
        }
        let buf = &mut self.bufs[h.buf as usize];
        match tail {
            Hold::Bytes(t) => buf[..t.len()].copy_from_slice(t),
            Hold::InBuffer { from, len } => buf.copy_within(from..from + len, 0),
        }
        self.streams[i as usize].held[d] = Held {
            buf: h.buf,
            seq,
            len: len as u32,
            since: now,
            consumed,
            sent: 0,
        };
        if consumed {
            self.counters.held += 1;
        }
        true
    }

    /// The split message `dir` held (original bytes from `seq`, `len` long) was sent as
    /// `out`: kept in its buffer, if it fits, until new bytes follow (`Assembled::Resend`).
    pub fn sent(&mut self, slot: Slot, dir: Dir, seq: u32, len: usize, out: &[u8]) {
        let fits = out.len() <= self.buffer_bytes();
        let Some(s) = self.get_mut(slot) else {
            return;
        };
        let h = s.held[dir as usize];
        if !h.is_some() || !fits || out.is_empty() {
            return self.release(slot, dir);
        }
        s.held[dir as usize] = Held {
            seq,
            len: len as u32,
            sent: out.len() as u32,
            ..h
        };
        self.bufs[h.buf as usize][..out.len()].copy_from_slice(out);
    }

    /// A free buffer, or one that only keeps a sent message's copy, or one held longer than
    /// `HOLD_NS` by another connection (its hold abandoned).
    fn buffer_for(&mut self, stream: u32, now: u64) -> Option<u32> {
        if let Some(b) = self.free_bufs.pop() {
            self.buf_owner[b as usize] = stream;
            return Some(b);
        }
        for b in 0..self.bufs.len() {
            let owner = self.buf_owner[b];
            let s = &mut self.streams[owner as usize];
            for h in &mut s.held {
                if h.buf == b as u32 && h.sent != 0 {
                    *h = Held::EMPTY;
                    self.buf_owner[b] = stream;
                    return Some(b as u32);
                }
            }
        }
        for b in 0..self.bufs.len() {
            let owner = self.buf_owner[b];
            let s = &mut self.streams[owner as usize];
            for h in &mut s.held {
                if h.buf == b as u32 && now.saturating_sub(h.since) > HOLD_NS {
                    *h = Held::EMPTY;
                    self.counters.abandoned += 1;
                    self.buf_owner[b] = stream;
                    return Some(b as u32);
                }
            }
        }
        None
    }

    /// `dir` of flow `slot` holds nothing any more.
    pub fn release(&mut self, slot: Slot, dir: Dir) {
        let Some(s) = self.get_mut(slot) else {
            return;
        };
        let h = std::mem::replace(&mut s.held[dir as usize], Held::EMPTY);
        if h.is_some() {
            self.buf_owner[h.buf as usize] = NONE;
            self.free_bufs.push(h.buf);
        }
    }

    /// The `len` original bytes at `seq` of `dir` went out as `out` bytes. False when the
    /// lengths differ and no stream is free to remember it (the caller must not send the
    /// rewrite).
    pub fn record(&mut self, slot: Slot, dir: Dir, seq: u32, len: usize, out: usize) -> bool {
        if len == out {
            return true;
        }
        let Some(i) = self.make(slot) else {
            self.counters.unbuffered += 1;
            return false;
        };
        let a = &mut self.streams[i as usize].adj[dir as usize];
        let was = a.is_set();
        a.record(seq, len as u32, out as u32);
        if !was && !self.streams[i as usize].adj[1 - dir as usize].is_set() {
            self.counters.adjusted += 1;
        }
        true
    }

    /// Flow `slot` ended: its stream and buffers go back.
    pub fn ended(&mut self, slot: Slot) {
        let Some(&i) = self.of_slot.get(slot as usize) else {
            return;
        };
        if i == NONE {
            return;
        }
        self.release(slot, Dir::Orig);
        self.release(slot, Dir::Reply);
        debug_assert_eq!(self.streams[i as usize].slot, slot);
        self.of_slot[slot as usize] = NONE;
        self.free.push(i);
    }

    /// Streams in use (a gauge).
    pub fn active(&self) -> usize {
        self.streams.len() - self.free.len()
    }
}

/// The tail `Streams::hold` keeps: given bytes, or bytes already in the hold's buffer.
#[derive(Clone, Copy)]
pub enum Hold<'a> {
    Bytes(&'a [u8]),
    InBuffer { from: usize, len: usize },
}

impl Hold<'_> {
    fn len(&self) -> usize {
        match self {
            Hold::Bytes(b) => b.len(),
            Hold::InBuffer { len, .. } => *len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_adjust_follows_growth_and_retransmission() {
        let mut a = SeqAdj::default();
        assert_eq!(a.map(1000), 1000);
        // 100 bytes at 1000 went out as 110.
        a.record(1000, 100, 110);
        assert_eq!(a.map(1000), 1000, "a retransmission maps as the first time");
        assert_eq!(a.map(1100), 1110);
        assert_eq!(a.unmap(1110), 1100);
        assert_eq!(a.unmap(1050), 1050);
        a.record(1000, 100, 110);
        assert_eq!(a.map(1100), 1110, "a retransmission records nothing");
        // Then 50 bytes at 1100 went out as 40.
        a.record(1100, 50, 40);
        assert_eq!(a.map(1100), 1110);
        assert_eq!(a.map(1150), 1150);
        assert_eq!(a.unmap(1150), 1150);
        // Across the wrap.
        let mut w = SeqAdj::default();
        w.record(u32::MAX - 10, 20, 30);
        assert_eq!(w.map(9), 19);
        assert_eq!(w.unmap(19), 9);
    }

    #[test]
    fn hold_assemble_release() {
        let mut s = Streams::new(8, 2, 1, 64);
        assert!(matches!(
            s.assemble(3, Dir::Orig, 5, b"x"),
            Assembled::Alone
        ));
        assert!(s.hold(3, Dir::Orig, 100, Hold::Bytes(b"INVITE "), true, 0));
        assert!(matches!(
            s.assemble(3, Dir::Orig, 100, b"INV"),
            Assembled::Duplicate
        ));
        assert!(matches!(
            s.assemble(3, Dir::Orig, 200, b"zz"),
            Assembled::Reordered { consumed: true }
        ));
        match s.assemble(3, Dir::Orig, 104, b"TE sip:") {
            Assembled::Joined { buf, seq, len, .. } => {
                assert_eq!((seq, len), (100, 11));
                let b = s.take_buffer(buf);
                assert_eq!(&b[..len], b"INVITE sip:");
                s.put_back(buf, b);
            }
            _ => panic!("not joined"),
        }
        // One buffer: a second connection cannot hold until the first's hold is old.
        assert!(!s.hold(4, Dir::Orig, 0, Hold::Bytes(b"REG"), true, 1));
        assert!(s.hold(4, Dir::Orig, 0, Hold::Bytes(b"REG"), true, HOLD_NS + 1));
        assert_eq!(s.counters.abandoned, 1);
        assert!(matches!(
            s.assemble(3, Dir::Orig, 107, b"x"),
            Assembled::Alone
        ));
        // Too large for a buffer.
        assert!(!s.hold(4, Dir::Reply, 0, Hold::Bytes(&[b'a'; 65]), true, 2));
        s.ended(3);
        s.ended(4);
        assert_eq!(s.active(), 0);
        assert!(s.hold(5, Dir::Reply, 0, Hold::Bytes(b"SIP/2.0"), false, 3));
    }
}
