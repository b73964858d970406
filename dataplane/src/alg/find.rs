//! Where the next byte of a small set is, 64 bytes at a time: a window of the message is
//! compared with each byte of the set at once (AVX2 through `wide`, safe code) into a bit
//! mask, and a search is a shift and a count of trailing zeros while it stays in the window.
//!
//! The SIP scanner marks a message's line feeds once (`Marks`, kept in the scanned `Message`
//! for the SDP parser too), and the rewriter finds the delimiters of a header value (`<`,
//! `@`, `;`, ...) without the set-up cost of a general vector search for every short value.
use wide::{u8x16, u8x32, CmpEq};

/// Finds the bytes of `set` in a message, front to back. Searches may go back (the window
/// is reloaded) but are fastest in order, as a parser reads.
#[derive(Clone, Copy)]
pub struct Finder<const N: usize> {
    set: [u8; N],
    /// The window's first byte; `mask` bit k is whether `b[base + k]` is in the set.
    base: usize,
    mask: u64,
}

impl<const N: usize> Finder<N> {
    #[inline]
    pub const fn new(set: [u8; N]) -> Self {
        Finder {
            set,
            base: usize::MAX - 64,
            mask: 0,
        }
    }

    /// The first byte of the set in `b[from..end]`.
    #[inline]
    pub fn next(&mut self, b: &[u8], from: usize, end: usize) -> Option<usize> {
        let end = end.min(b.len());
        let mut p = from;
        while p < end {
            if p < self.base || p >= self.base + 64 {
                self.fill(b, p);
            }
            let m = self.mask >> (p - self.base);
            if m != 0 {
                let at = p + m.trailing_zeros() as usize;
                return (at < end).then_some(at);
            }
            p = self.base + 64;
        }
        None
    }

    /// Loads the window at `at` (bytes past the end of `b` are never in the set).
    #[inline]
    fn fill(&mut self, b: &[u8], at: usize) {
        self.base = at;
        let rest = b.get(at..).unwrap_or_default();
        if let (Some(lo), Some(hi)) = (rest.get(..32), rest.get(32..64)) {
            self.mask = self.half(lo) as u64 | (self.half(hi) as u64) << 32;
            return;
        }
        let mut buf = [0u8; 64];
        buf[..rest.len()].copy_from_slice(rest);
        let valid = (1u64 << rest.len()) - 1;
        self.mask = (self.half(&buf[..32]) as u64 | (self.half(&buf[32..]) as u64) << 32) & valid;
    }

    #[inline]
    fn half(&self, b: &[u8]) -> u32 {
        let v = u8x32::new(b.try_into().unwrap_or([0; 32]));
        let mut m = v.cmp_eq(u8x32::splat(self.set[0]));
        for &c in &self.set[1..] {
            m |= v.cmp_eq(u8x32::splat(c));
        }
        m.move_mask() as u32
    }
}

/// Bytes marked up front: a SIP message is short, so its line feeds are found for its first
/// `MARKED` bytes in one pass (one load and compare per 32 bytes), and every later search
/// there (the scan's lines, the SDP body's) is a shift of a word. Past them a `Finder` goes on.
pub const MARKED: usize = 2048;
const WORDS: usize = MARKED / 64;

/// The line feeds of a message's first `MARKED` bytes, one bit per byte.
#[derive(Clone, Copy, Debug)]
pub struct Marks {
    nl: [u64; WORDS],
    /// Bytes marked: `b[..upto]`.
    upto: usize,
}

impl Default for Marks {
    fn default() -> Self {
        Marks {
            nl: [0; WORDS],
            upto: 0,
        }
    }
}

impl Marks {
    /// Marks `b`'s first `MARKED` bytes (the words past them keep stale bits nothing reads).
    #[inline]
    pub fn mark(&mut self, b: &[u8]) {
        let upto = b.len().min(MARKED);
        self.upto = upto;
        let nl = u8x32::splat(b'\n');
        let lfs = |half: &[u8]| {
            let v = u8x32::new(half.try_into().unwrap_or([0; 32]));
            v.cmp_eq(nl).move_mask() as u32 as u64
        };
        let (whole, tail) = b[..upto].split_at(upto & !63);
        for (k, c) in whole.chunks_exact(64).enumerate() {
            self.nl[k] = lfs(&c[..32]) | lfs(&c[32..]) << 32;
        }
        let n = tail.len();
        if n > 0 {
            self.nl[upto >> 6] = match upto.checked_sub(64) {
                // The last 64 bytes, shifted down to the tail's.
                Some(s) => (lfs(&b[s..s + 32]) | lfs(&b[s + 32..upto]) << 32) >> (64 - n),
                None => {
                    // Padded with zeros, which are not line feeds.
                    let mut block = [0u8; 64];
                    block[..n].copy_from_slice(tail);
                    lfs(&block[..32]) | lfs(&block[32..]) << 32
                }
            };
        }
    }

    /// The line feeds of `b[from..end]` in order (`b` as given to `mark`): one bit of a
    /// marked word per line feed, the words past the marked bytes made as they are needed.
    #[inline]
    pub fn line_feeds<'a>(&'a self, b: &'a [u8], from: usize, end: usize) -> LineFeeds<'a> {
        let end = end.min(b.len());
        let base = from & !63;
        let mut f = LineFeeds {
            marks: self,
            b,
            word: 0,
            base,
            end,
        };
        if from < end {
            f.word = f.load(base) & u64::MAX << (from & 63);
        }
        f
    }
}

/// Line feeds in order: `Marks::line_feeds`.
pub struct LineFeeds<'a> {
    marks: &'a Marks,
    b: &'a [u8],
    /// Line feeds not yet given of the 64 bytes from `base`, one bit each.
    word: u64,
    base: usize,
    end: usize,
}

impl LineFeeds<'_> {
    /// The line feeds of the 64 bytes from `base` (a multiple of 64 below `end`).
    #[inline]
    fn load(&self, base: usize) -> u64 {
        if base + 64 <= self.marks.upto || base < self.marks.upto && self.marks.upto == self.b.len()
        {
            return self.marks.nl[base >> 6];
        }
        let mut f = Finder::new([b'\n']);
        let mut m = 0u64;
        let mut p = base;
        while let Some(at) = f.next(self.b, p, (base + 64).min(self.end)) {
            m |= 1 << (at - base);
            p = at + 1;
        }
        m
    }
}

impl Iterator for LineFeeds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        loop {
            if self.word != 0 {
                let at = self.base + self.word.trailing_zeros() as usize;
                self.word &= self.word - 1;
                return (at < self.end).then_some(at);
            }
            self.base += 64;
            if self.base >= self.end {
                return None;
            }
            self.word = self.load(self.base);
        }
    }
}

/// The first byte of `set` in `b[from..end]`, for a one-off search of a short span.
#[inline]
pub fn first<const N: usize>(set: [u8; N], b: &[u8], from: usize, end: usize) -> Option<usize> {
    Finder::new(set).next(b, from, end)
}

/// Where byte `c` is in `b[at..at + len]`, one bit per byte (none past `len`), for `len` up to
/// 64: one or two 32-byte compares. None when `len` is longer or the 32 or 64 bytes from `at`
/// cannot be read (the caller searches another way).
#[inline]
pub fn positions(b: &[u8], at: usize, len: usize, c: u8) -> Option<u64> {
    let halves = match len {
        0..=32 => 1,
        33..=64 => 2,
        _ => return None,
    };
    let w = b.get(at..at + 32 * halves)?;
    let c = u8x32::splat(c);
    let mut m = 0u64;
    for (h, half) in w.chunks_exact(32).enumerate() {
        let v = u8x32::new(half.try_into().unwrap_or([0; 32]));
        m |= (v.cmp_eq(c).move_mask() as u32 as u64) << (32 * h);
    }
    Some(if len == 64 { m } else { m & !(u64::MAX << len) })
}

/// How many bytes of `b[from..end]` from its start are digits or dots (an IPv4 literal's),
/// 16 at a time.
#[inline]
pub fn digits_and_dots(b: &[u8], from: usize, end: usize) -> usize {
    let end = end.min(b.len());
    let mut i = from;
    while let Some(w) = b.get(i..i + 16) {
        let v = u8x16::new(w.try_into().unwrap_or([0; 16]));
        let digit = v.max(u8x16::splat(b'0')).cmp_eq(v) & v.min(u8x16::splat(b'9')).cmp_eq(v);
        let mask = (digit | v.cmp_eq(u8x16::splat(b'.'))).move_mask() as u32;
        let run = (!mask).trailing_zeros() as usize;
        if run < 16 || i + 16 >= end {
            return (i + run).min(end).saturating_sub(from);
        }
        i += 16;
    }
    while i < end && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    i.saturating_sub(from)
}

/// How many bytes of `b[from..end]` from its start are digits, 8 at a time (a port's).
#[inline]
pub fn digits(b: &[u8], from: usize, end: usize) -> usize {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let end = end.min(b.len());
    let mut i = from;
    while i < end {
        let Some(w) = b.get(i..i + 8) else {
            break;
        };
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        // A byte is a digit when its high nibble is 3 and its low one at most 9 (adding 6
        // leaves it below 16): no carry crosses a byte.
        let other = (w & !LOW ^ 0x3030_3030_3030_3030) | ((w & LOW) + 0x0606_0606_0606_0606) & !LOW;
        if other != 0 {
            return (i + other.trailing_zeros() as usize / 8).min(end) - from;
        }
        i += 8;
    }
    while i < end && b[i].is_ascii_digit() {
        i += 1;
    }
    i.min(end).saturating_sub(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Every search agrees with a byte-by-byte one, in order, backwards and across
        /// window edges and the end of the input.
        #[test]
        fn finder_agrees_with_a_byte_loop(
            b in proptest::collection::vec(proptest::sample::select(&b"ab:\n;<@ \x00"[..]), 0..300),
            starts in proptest::collection::vec(0usize..320, 1..20),
            len in 0usize..200,
        ) {
            let set = [b':', b'\n', b'\0'];
            let mut f = Finder::new(set);
            for &s in &starts {
                let end = s + len;
                let want = (s..end.min(b.len())).find(|&i| set.contains(&b[i]));
                proptest::prop_assert_eq!(f.next(&b, s, end), want);
                proptest::prop_assert_eq!(first(set, &b, s, end), want);
            }
        }

        /// Positions of a byte agree with a byte loop, for every length the mask takes.
        #[test]
        fn positions_agree_with_a_byte_loop(
            b in proptest::collection::vec(proptest::sample::select(&b" a:"[..]), 0..100),
            at in 0usize..100,
            len in 0usize..70,
        ) {
            let want = (len <= 64 && at + if len <= 32 { 32 } else { 64 } <= b.len()).then(|| {
                (0..len).filter(|&k| b[at + k] == b' ').fold(0u64, |m, k| m | 1 << k)
            });
            proptest::prop_assert_eq!(positions(&b, at, len, b' '), want);
        }

        /// The run of digits and dots is a byte loop's, whatever the bounds.
        #[test]
        fn digits_and_dots_agree_with_a_byte_loop(
            b in proptest::collection::vec(proptest::sample::select(&b"0129./:a"[..]), 0..80),
            from in 0usize..90,
            len in 0usize..60,
        ) {
            let end = from + len;
            let want = (from..end.min(b.len()))
                .take_while(|&i| b[i].is_ascii_digit() || b[i] == b'.')
                .count();
            proptest::prop_assert_eq!(digits_and_dots(&b, from, end), want);
        }

        /// The run of digits is a byte loop's, whatever the bounds.
        #[test]
        fn digits_agree_with_a_byte_loop(
            b in proptest::collection::vec(proptest::sample::select(&b"0159:/;\x3a\x39\x40\xb5"[..]), 0..40),
            from in 0usize..45,
            len in 0usize..30,
        ) {
            let end = from + len;
            let want = (from..end.min(b.len())).take_while(|&i| b[i].is_ascii_digit()).count();
            proptest::prop_assert_eq!(digits(&b, from, end), want);
        }

        /// Line feeds given in order are a byte loop's, inside the marked bytes and past them.
        #[test]
        fn line_feeds_in_order_agree_with_a_byte_loop(
            b in proptest::collection::vec(proptest::sample::select(&b"ab\n\n "[..]), 0..2300),
            from in 0usize..2400,
            len in 0usize..2400,
        ) {
            let mut l = Marks::default();
            l.mark(&[b'\n'; 3000]);
            l.mark(&b);
            let end = from + len;
            let want: Vec<usize> = (from..end.min(b.len())).filter(|&i| b[i] == b'\n').collect();
            let got: Vec<usize> = l.line_feeds(&b, from, end).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
