//! IPv4 reassembly before flow tracking, and fragmentation again on the way out.
//!
//! The fragments of one datagram (RFC 791) are gathered in a fixed slot until the whole
//! datagram is there, so flow lookup, App-ID, NAT and the SIP ALG see one packet with its
//! ports and all of its payload (a SIP INVITE larger than the path MTU, a DNS answer with many
//! records). The worker sends the result on as fragments no larger than the largest it
//! received (`fragment`), as Linux does after conntrack's defragmentation, so the path MTU the
//! sender saw still holds.
//!
//! Bounded and allocation-free after `new`: `datagrams` slots of `max_bytes` of payload each
//! (the buffer is zeroed memory the OS maps on first touch). Fragments that overlap and
//! disagree drop the whole datagram (no first-wins/last-wins ambiguity for an evasion to use);
//! exact duplicates (a retransmission) are ignored. A datagram not complete within `timeout`
//! is given up; when every slot is busy the oldest is given up for the new datagram. Each of
//! these is counted. Never panics on any input.
use crate::packet::{checksum, Headers, L3};

/// Bytes before a slot's payload: room for the L2 header (Ethernet and two VLAN tags, 22) and
/// the IPv4 header with options (60), written in front of the payload on completion.
pub const HEAD_ROOM: usize = 96;
/// The largest payload a slot can be configured for (a reassembled frame then still fits a
/// 16-bit mbuf data room with DPDK's headroom).
pub const MAX_BYTES: usize = 65_000;
/// Fragments of one datagram at most (tiny-fragment floods give up early).
const MAX_FRAGMENTS: u16 = 256;
/// 8-byte blocks a slot tracks: enough for `MAX_BYTES`.
const WORDS: usize = MAX_BYTES.div_ceil(8).div_ceil(64);

/// What identifies one datagram (RFC 791: source, destination, protocol, identification),
/// within one VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    proto: u8,
    vlan: u16,
}

/// Why a fragment was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// It overlaps an earlier fragment of its datagram with other bytes, or says the
    /// datagram ends somewhere else than an earlier one did: the datagram is dropped.
    Overlap,
    /// The datagram would be longer than a slot holds, or has too many fragments.
    TooBig,
    /// Its datagram was given up earlier (overlap, too big): the rest is dropped with it
    /// until it times out.
    Abandoned,
    /// A non-last fragment whose length is not a multiple of 8 (RFC 791), or a frame whose
    /// bytes are not all in its first segment.
    Invalid,
}

/// What `Defrag::push` did with one fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Kept; its datagram is not complete yet.
    Held,
    /// Its datagram is complete in slot `.0`: `Defrag::take` gives the frame.
    Complete(usize),
    /// Dropped (and its datagram with it, for `Overlap`/`TooBig`).
    Refused(Refused),
}

/// What the reassembler counted (published by the worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragCounters {
    /// Fragments kept in a slot.
    pub held: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams given up: not complete in time, and the oldest when every slot was busy.
    pub timed_out: u64,
    pub evicted: u64,
}

#[derive(Clone, Copy)]
struct Datagram {
    key: Option<Key>,
    started: u64,
    /// L2 + IPv4 header of the offset-0 fragment (0 until it came), and where IPv4 starts.
    head_len: u16,
    l3: u16,
    /// Payload length, known once the last fragment (no MF) came.
    end: Option<u32>,
    /// 8-byte blocks received, and how many.
    blocks: [u64; WORDS],
    have: u32,
    fragments: u16,
    /// The largest fragment (IP total length): what the datagram leaves in again.
    largest: u16,
    abandoned: bool,
}

impl Datagram {
    const FREE: Datagram = Datagram {
        key: None,
        started: 0,
        head_len: 0,
        l3: 0,
        end: None,
        blocks: [0; WORDS],
        have: 0,
        fragments: 0,
        largest: 0,
        abandoned: false,
    };

    fn complete(&self) -> bool {
        self.head_len > 0 && self.end.is_some_and(|e| self.have == e.div_ceil(8))
    }
}

/// One worker's reassembly slots.
pub struct Defrag {
    slots: Box<[Datagram]>,
    /// Per slot: `HEAD_ROOM` bytes, then `max_bytes` of payload.
    buf: Box<[u8]>,
    max_bytes: usize,
    timeout_ns: u64,
    /// Slots in use (so a worker with none skips the timer).
    busy: usize,
    next_sweep: u64,
    pub counters: DefragCounters,
}

impl Defrag {
    /// `datagrams` slots (at least 1) of `max_bytes` payload (at most `MAX_BYTES`); a datagram
    /// has `timeout_ns` to complete.
    pub fn new(datagrams: usize, max_bytes: usize, timeout_ns: u64) -> Defrag {
        let datagrams = datagrams.max(1);
        let max_bytes = max_bytes.clamp(8, MAX_BYTES);
        Defrag {
            slots: vec![Datagram::FREE; datagrams].into_boxed_slice(),
            buf: vec![0u8; datagrams * (HEAD_ROOM + max_bytes)].into_boxed_slice(),
            max_bytes,
            timeout_ns,
            busy: 0,
            next_sweep: 0,
            counters: DefragCounters::default(),
        }
    }

    /// The largest frame `take` can give: what a buffer for reassembled frames must hold.
    pub fn max_frame(&self) -> usize {
        HEAD_ROOM + self.max_bytes
    }

    /// Takes one IPv4 fragment: `frame` (its first segment), `len` its whole length, `h` its
    /// parsed headers (`h.fragment != No`), at `now` ns.
    pub fn push(&mut self, frame: &[u8], len: usize, h: &Headers, now: u64) -> Step {
        let l3 = h.l3_offset as usize;
        let (Some(ip), L3::Ipv4, true) = (frame.get(l3..), h.l3, frame.len() == len) else {
            return Step::Refused(Refused::Invalid);
        };
        let (Some(&vi), Some(ff), Some(id)) = (ip.first(), be16(ip, 6), be16(ip, 4)) else {
            return Step::Refused(Refused::Invalid);
        };
        let ihl = ((vi & 0x0f) as usize) * 4;
        let total = h.ip_len as usize;
        let Some(data) = ip.get(ihl..total) else {
            return Step::Refused(Refused::Invalid);
        };
        let more = ff & 0x2000 != 0;
        let start = ((ff & 0x1fff) as usize) * 8;
        if more && (data.is_empty() || data.len() % 8 != 0) {
            return Step::Refused(Refused::Invalid);
        }
        let (Some(src), Some(dst)) = (h.src.v4(), h.dst.v4()) else {
            return Step::Refused(Refused::Invalid);
        };
        let key = Key {
            src,
            dst,
            id,
            proto: h.proto,
            vlan: h.vlans[0],
        };
        self.sweep(now);
        let i = match self.slots.iter().position(|d| d.key == Some(key)) {
            Some(i) => i,
            None => self.open(key, now),
        };
        let stride = HEAD_ROOM + self.max_bytes;
        let d = &mut self.slots[i];
        if d.abandoned {
            return Step::Refused(Refused::Abandoned);
        }
        let stop = start + data.len();
        let refuse = |d: &mut Datagram, r: Refused| {
            d.abandoned = true;
            Step::Refused(r)
        };
        if stop > self.max_bytes || d.fragments >= MAX_FRAGMENTS {
            return refuse(d, Refused::TooBig);
        }
        if let Some(end) = d.end {
            // Nothing past the end, and only one end.
            if stop > end as usize || (!more && stop != end as usize) {
                return refuse(d, Refused::Overlap);
            }
        } else if !more {
            let past = (stop.div_ceil(8)..self.max_bytes.div_ceil(8)).any(|b| bit(&d.blocks, b));
            if past {
                return refuse(d, Refused::Overlap);
            }
        }
        let payload = &mut self.buf[i * stride + HEAD_ROOM..(i + 1) * stride];
        // Blocks seen before must carry the same bytes (a duplicate); new blocks are copied.
        let mut fresh = 0;
        for b in start / 8..stop.div_ceil(8) {
            let (lo, hi) = (b * 8, (b * 8 + 8).min(stop));
            let incoming = &data[lo - start..hi - start];
            if bit(&d.blocks, b) {
                if payload[lo..hi] != *incoming {
                    return refuse(d, Refused::Overlap);
                }
            } else {
                payload[lo..hi].copy_from_slice(incoming);
                d.blocks[b / 64] |= 1 << (b % 64);
                fresh += 1;
            }
        }
        d.have += fresh;
        d.fragments += 1;
        d.largest = d.largest.max(total as u16);
        if !more {
            d.end = Some(stop as u32);
        }
        if start == 0 && d.head_len == 0 {
            let head = l3 + ihl;
            if head > HEAD_ROOM {
                return refuse(d, Refused::Invalid);
            }
            let at = i * stride + HEAD_ROOM - head;
            self.buf[at..at + head].copy_from_slice(&frame[..head]);
            d.head_len = head as u16;
            d.l3 = l3 as u16;
        }
        self.counters.held += 1;
        if d.complete() {
            Step::Complete(i)
        } else {
            Step::Held
        }
    }

    /// The complete datagram of slot `i` as one frame (the first fragment's L2 and IPv4
    /// headers, no fragment offset or MF, total length and header checksum set), and the
    /// largest fragment it came in; the slot is free again afterwards.
    pub fn take(&mut self, i: usize) -> Option<(&[u8], u16)> {
        let d = *self.slots.get(i)?;
        if !d.complete() {
            return None;
        }
        self.slots[i] = Datagram::FREE;
        self.busy -= 1;
        self.counters.reassembled += 1;
        let stride = HEAD_ROOM + self.max_bytes;
        let end = d.end? as usize;
        let from = i * stride + HEAD_ROOM - d.head_len as usize;
        let frame = &mut self.buf[from..i * stride + HEAD_ROOM + end];
        let ip = frame.get_mut(d.l3 as usize..)?;
        let ihl = ((ip[0] & 0x0f) as usize) * 4;
        let total = u16::try_from(ihl + end).ok()?;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        // Reserved and DF bits stay; MF and the offset go.
        ip[6] &= 0xc0;
        ip[7] = 0;
        ip[10..12].fill(0);
        let sum = checksum::checksum(&ip[..ihl]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        Some((frame, d.largest))
    }

    /// A slot for a new datagram: a free one, else the oldest is given up.
    fn open(&mut self, key: Key, now: u64) -> usize {
        let i = match self.slots.iter().position(|d| d.key.is_none()) {
            Some(i) => {
                self.busy += 1;
                i
            }
            None => {
                let (i, _) = self
                    .slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, d)| d.started)
                    .unwrap_or((0, &Datagram::FREE));
                self.counters.evicted += 1;
                i
            }
        };
        self.slots[i] = Datagram {
            key: Some(key),
            started: now,
            ..Datagram::FREE
        };
        i
    }

    /// Gives up datagrams older than the timeout (at most once per tenth of the timeout).
    pub fn sweep(&mut self, now: u64) {
        if self.busy == 0 || now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.timeout_ns / 10;
        for d in self.slots.iter_mut() {
            if d.key.is_some() && now.saturating_sub(d.started) >= self.timeout_ns {
                if !d.abandoned {
                    self.counters.timed_out += 1;
                }
                *d = Datagram::FREE;
                self.busy -= 1;
            }
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn bit(blocks: &[u64; WORDS], b: usize) -> bool {
    blocks.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0)
}

/// Cuts the IPv4 packet in `frame` (IPv4 header at `l3`, no fragment offset) into fragments
/// whose IP total length is at most `largest`, each built in `scratch` and handed to `emit`
/// as a whole frame (the same L2 header, the same identification; options copied into later
/// fragments only where their copy flag says, RFC 791). For datagrams that came fragmented:
/// a DF bit they carried stays on every fragment, as Linux keeps it after defragmentation.
/// Returns how many it emitted, or None (nothing emitted) when the packet cannot be cut: a
/// fragment already, `largest` too small for one 8-byte block after the header, or a frame
/// that does not parse.
pub fn fragment(
    frame: &[u8],
    l3: usize,
    largest: usize,
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Option<usize> {
    let ip = frame.get(l3..)?;
    let ihl = ((*ip.first()? & 0x0f) as usize) * 4;
    let total = be16(ip, 2)? as usize;
    let ff = be16(ip, 6)?;
    if ff & 0x3fff != 0 || total > ip.len() || ihl < 20 || total < ihl {
        return None;
    }
    // Later fragments carry only the options with the copy flag.
    let mut later = [0u8; 60];
    later[..20].copy_from_slice(ip.get(..20)?);
    let mut later_ihl = 20;
    let mut o = 20;
    while o < ihl {
        let t = ip[o];
        let n = match t {
            0 => break,
            1 => 1,
            _ => *ip.get(o + 1)? as usize,
        };
        if n < 1 || o + n > ihl {
            return None;
        }
        if t & 0x80 != 0 {
            later[later_ihl..later_ihl + n].copy_from_slice(&ip[o..o + n]);
            later_ihl += n;
        }
        o += n;
    }
    // Padded to 32 bits with end-of-options.
    while later_ihl % 4 != 0 {
        later[later_ihl] = 0;
        later_ihl += 1;
    }
    later[0] = 0x40 | (later_ihl / 4) as u8;
    let data = &ip[ihl..total];
    let mut at = 0;
    let mut n = 0;
    // The blocks each fragment carries are the same for every fragment: that of the largest
    // header, so fragment boundaries do not move between the first and the rest.
    let step = (largest.checked_sub(ihl)? / 8) * 8;
    if step == 0 {
        return None;
    }
    let l2 = frame.get(..l3)?;
    while at < data.len() {
        let (hdr, hlen): (&[u8], usize) = if at == 0 {
            (&ip[..ihl], ihl)
        } else {
            (&later[..later_ihl], later_ihl)
        };
        let chunk = (data.len() - at).min(step);
        let more = at + chunk < data.len();
        let len = l3 + hlen + chunk;
        let out = scratch.get_mut(..len)?;
        out[..l3].copy_from_slice(l2);
        let o = &mut out[l3..];
        o[..hlen].copy_from_slice(hdr);
        o[2..4].copy_from_slice(&((hlen + chunk) as u16).to_be_bytes());
        let ff = (ff & 0xc000) | if more { 0x2000 } else { 0 } | (at / 8) as u16;
        o[6..8].copy_from_slice(&ff.to_be_bytes());
        o[10..12].fill(0);
        let sum = checksum::checksum(&o[..hlen]);
        o[10..12].copy_from_slice(&sum.to_be_bytes());
        o[hlen..hlen + chunk].copy_from_slice(&data[at..at + chunk]);
        emit(out);
        at += chunk;
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{self, Fragment};

    /// An Ethernet + IPv4 + UDP datagram with `payload`, identification `id`.
    fn datagram(id: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let total = 20 + 8 + payload.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 198, 51, 100, 2,
        ];
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        let sum = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        let mut udp = vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 0];
        udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&udp);
        f.extend_from_slice(payload);
        f
    }

    fn fragments(frame: &[u8], largest: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut scratch = vec![0u8; 9000];
        fragment(frame, 14, largest, &mut scratch, |f| out.push(f.to_vec())).unwrap();
        out
    }

    fn push(d: &mut Defrag, f: &[u8], now: u64) -> Step {
        let mut h = Headers::empty();
        packet::parse_into(f, f.len(), &mut h).unwrap();
        assert_ne!(h.fragment, Fragment::No);
        d.push(f, f.len(), &h, now)
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn fragments_in_any_order_give_the_datagram_back() {
        let whole = datagram(0x1234, &payload(3000));
        let frags = fragments(&whole, 1500);
        assert_eq!(frags.len(), 3);
        assert!(frags.iter().all(|f| f.len() - 14 <= 1500));
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut d = Defrag::new(4, 65_000, 1_000_000_000);
            let mut last = Step::Held;
            for &k in &order {
                last = push(&mut d, &frags[k], 10);
            }
            let Step::Complete(i) = last else {
                panic!("{order:?}: {last:?}")
            };
            let (frame, largest) = d.take(i).unwrap();
            assert_eq!(frame, &whole[..], "{order:?}");
            assert_eq!(largest, 1500);
            // Cut again at the same size: the same fragments, byte for byte.
            assert_eq!(fragments(frame, largest as usize), frags);
            assert_eq!(d.counters.reassembled, 1);
        }
    }

    #[test]
    fn duplicates_pass_and_disagreeing_overlaps_drop_the_datagram() {
        let whole = datagram(7, &payload(2000));
        let frags = fragments(&whole, 1000);
        let mut d = Defrag::new(4, 65_000, 1_000_000_000);
        assert_eq!(push(&mut d, &frags[0], 1), Step::Held);
        assert_eq!(push(&mut d, &frags[0], 2), Step::Held, "an exact duplicate");
        let mut changed = frags[1].clone();
        let n = changed.len();
        changed[n - 1] ^= 0xff;
        assert_eq!(push(&mut d, &changed, 3), Step::Held);
        // The real second fragment now disagrees with what came.
        assert_eq!(push(&mut d, &frags[1], 4), Step::Refused(Refused::Overlap));
        // The rest of that datagram goes with it.
        assert_eq!(
            push(&mut d, &frags[2], 5),
            Step::Refused(Refused::Abandoned)
        );
    }

    #[test]
    fn limits_are_counted_never_exceeded() {
        let whole = datagram(9, &payload(5000));
        let frags = fragments(&whole, 1000);
        // A slot of 2000 bytes cannot hold 5008.
        let mut d = Defrag::new(1, 2000, 1_000_000_000);
        let steps: Vec<Step> = frags.iter().map(|f| push(&mut d, f, 1)).collect();
        assert!(steps.contains(&Step::Refused(Refused::TooBig)), "{steps:?}");
        // One slot, two datagrams: the older is given up for the newer.
        let mut d = Defrag::new(1, 65_000, 1_000_000_000);
        let a = fragments(&datagram(1, &payload(3000)), 1500);
        let b = fragments(&datagram(2, &payload(3000)), 1500);
        assert_eq!(push(&mut d, &a[0], 1), Step::Held);
        assert_eq!(push(&mut d, &b[0], 2), Step::Held);
        assert_eq!(d.counters.evicted, 1);
        assert_eq!(push(&mut d, &b[1], 3), Step::Held);
        assert!(matches!(push(&mut d, &b[2], 4), Step::Complete(_)));
        // Not complete in time: given up, counted.
        let mut d = Defrag::new(2, 65_000, 1_000);
        assert_eq!(push(&mut d, &a[0], 1), Step::Held);
        assert_eq!(push(&mut d, &b[0], 5_000), Step::Held);
        assert_eq!(d.counters.timed_out, 1);
    }

    #[test]
    fn a_fragment_past_the_end_or_a_second_end_is_an_overlap() {
        let frags = fragments(&datagram(3, &payload(3000)), 1500);
        let mut d = Defrag::new(2, 65_000, 1_000_000_000);
        assert_eq!(push(&mut d, &frags[2], 1), Step::Held);
        // A last fragment that ends earlier than the one that came.
        let short = fragments(&datagram(3, &payload(1000)), 600);
        let last = short.last().unwrap();
        assert_eq!(push(&mut d, last, 2), Step::Refused(Refused::Overlap));
    }

    #[test]
    fn options_are_copied_into_later_fragments_only_when_flagged() {
        let mut whole = datagram(5, &payload(100));
        // Header with 8 bytes of options: a copied one (0x94 router alert, 4 bytes) and an
        // uncopied one (0x07 record route, 3 bytes + end).
        let opts = [0x94, 4, 0, 0, 0x07, 3, 4, 0];
        whole.splice(34..34, opts);
        whole[14] = 0x47;
        let total = (whole.len() - 14) as u16;
        whole[16..18].copy_from_slice(&total.to_be_bytes());
        whole[24..26].fill(0);
        let sum = checksum::checksum(&whole[14..42]);
        whole[24..26].copy_from_slice(&sum.to_be_bytes());
        let frags = fragments(&whole, 28 + 48);
        assert!(frags.len() > 1);
        assert_eq!(frags[0][14], 0x47);
        assert_eq!(&frags[0][34..42], &opts);
        assert_eq!(frags[1][14], 0x46, "only the copied option");
        assert_eq!(&frags[1][34..38], &opts[..4]);
        let mut d = Defrag::new(1, 65_000, 1_000_000_000);
        let mut last = Step::Held;
        for f in &frags {
            last = push(&mut d, f, 1);
        }
        let Step::Complete(i) = last else {
            panic!("{last:?}")
        };
        assert_eq!(d.take(i).unwrap().0, &whole[..]);
    }

    #[test]
    fn a_fragment_is_not_cut_again_and_df_stays() {
        let whole = datagram(5, &payload(3000));
        let frags = fragments(&whole, 1500);
        let mut scratch = vec![0u8; 2000];
        assert_eq!(fragment(&frags[0], 14, 500, &mut scratch, |_| ()), None);
        let mut df = whole.clone();
        df[20] |= 0x40;
        let cut = fragments(&df, 1500);
        assert_eq!(cut.len(), 3);
        assert!(cut.iter().all(|f| f[20] & 0x40 != 0));
    }

    proptest::proptest! {
        /// Whatever bytes arrive as fragments, the reassembler never panics, and what it
        /// completes is one unfragmented IPv4 packet whose length is the frame's.
        #[test]
        fn junk_never_panics(frames in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 34..200), 1..20),
            offsets in proptest::collection::vec(0u16..0x3fff, 20)) {
            let mut d = Defrag::new(2, 1000, 1_000);
            for (k, mut f) in frames.into_iter().enumerate() {
                f[12] = 0x08; f[13] = 0x00; f[14] = 0x45;
                let total = (f.len() - 14) as u16;
                f[16..18].copy_from_slice(&total.to_be_bytes());
                f[20..22].copy_from_slice(&offsets[k % offsets.len()].to_be_bytes());
                let mut h = Headers::empty();
                if packet::parse_into(&f, f.len(), &mut h).is_err() || h.fragment == Fragment::No {
                    continue;
                }
                if let Step::Complete(i) = d.push(&f, f.len(), &h, k as u64 * 100) {
                    let (frame, _) = d.take(i).unwrap();
                    let total = u16::from_be_bytes([frame[16], frame[17]]) as usize;
                    proptest::prop_assert_eq!(total + 14, frame.len());
                    proptest::prop_assert_eq!(frame[20] & 0x3f, 0);
                    proptest::prop_assert_eq!(frame[21], 0);
                    proptest::prop_assert_eq!(checksum::checksum(&frame[14..34]), 0);
                }
            }
        }
    }
}
