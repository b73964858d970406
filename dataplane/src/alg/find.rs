//! Where the next byte of a small set is, 64 bytes at a time: a window of the message is
//! compared with each byte of the set at once (AVX2 through `wide`, safe code) into a bit
//! mask, and a search is a shift and a count of trailing zeros while it stays in the window.
//!
//! The SIP scanner finds its lines and colons this way (`Lines`), and the rewriter the
//! delimiters of a header value (`<`, `@`, `;`, ...) without the set-up cost of a general
//! vector search for every short value.
use wide::{u8x32, CmpEq};

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

/// Bytes marked up front: a SIP header block is short, so its line feeds and colons are
/// found for its first `MARKED` bytes in one pass (one load per 32 bytes for both), and every
/// later search there is a shift of a word. Past them a `Finder` goes on.
pub const MARKED: usize = 1024;
const WORDS: usize = MARKED / 64;

pub struct Lines {
    nl: [u64; WORDS],
    colon: [u64; WORDS],
    /// Bytes marked: `b[..upto]`.
    upto: usize,
    nl_far: Finder<1>,
    colon_far: Finder<1>,
}

impl Lines {
    /// Marks the line feeds and colons of `b`'s first `MARKED` bytes.
    #[inline]
    pub fn new(b: &[u8]) -> Lines {
        let upto = b.len().min(MARKED);
        let mut l = Lines {
            nl: [0; WORDS],
            colon: [0; WORDS],
            upto,
            nl_far: Finder::new([b'\n']),
            colon_far: Finder::new([b':']),
        };
        let (nl, colon) = (u8x32::splat(b'\n'), u8x32::splat(b':'));
        let mut mark = |k: usize, v: u8x32| {
            let shift = (k & 1) * 32;
            l.nl[k / 2] |= (v.cmp_eq(nl).move_mask() as u32 as u64) << shift;
            l.colon[k / 2] |= (v.cmp_eq(colon).move_mask() as u32 as u64) << shift;
        };
        let mut chunks = b[..upto].chunks_exact(32);
        let mut k = 0;
        for c in &mut chunks {
            mark(k, u8x32::new(c.try_into().unwrap_or([0; 32])));
            k += 1;
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            // Padded with zeros, which are neither.
            let mut buf = [0u8; 32];
            buf[..tail.len()].copy_from_slice(tail);
            mark(k, u8x32::new(buf));
        }
        l
    }

    /// The first line feed in `b[from..end]` (`b` as given to `new`).
    #[inline]
    pub fn next_nl(&mut self, b: &[u8], from: usize, end: usize) -> Option<usize> {
        match marked(&self.nl, self.upto, from, end) {
            Ok(found) => found,
            Err(p) => self.nl_far.next(b, p, end),
        }
    }

    /// The first colon in `b[from..end]`.
    #[inline]
    pub fn next_colon(&mut self, b: &[u8], from: usize, end: usize) -> Option<usize> {
        match marked(&self.colon, self.upto, from, end) {
            Ok(found) => found,
            Err(p) => self.colon_far.next(b, p, end),
        }
    }
}

/// A search of `from..end` in marks covering `..upto`: Ok with its answer, or Err with where
/// an unmarked search must go on.
#[inline]
fn marked(
    marks: &[u64; WORDS],
    upto: usize,
    from: usize,
    end: usize,
) -> Result<Option<usize>, usize> {
    let mut p = from;
    while p < end.min(upto) {
        let w = p >> 6;
        let m = marks[w] >> (p & 63);
        if m != 0 {
            let at = p + m.trailing_zeros() as usize;
            return Ok((at < end).then_some(at));
        }
        p = (w + 1) << 6;
    }
    if p < end && upto == MARKED {
        Err(p)
    } else {
        Ok(None)
    }
}

/// The first byte of `set` in `b[from..end]`, for a one-off search of a short span.
#[inline]
pub fn first<const N: usize>(set: [u8; N], b: &[u8], from: usize, end: usize) -> Option<usize> {
    Finder::new(set).next(b, from, end)
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

        /// Marked searches agree with a byte loop, inside the marked bytes and past them.
        #[test]
        fn lines_agree_with_a_byte_loop(
            b in proptest::collection::vec(proptest::sample::select(&b"ab:\n"[..]), 0..2500),
            starts in proptest::collection::vec(0usize..2600, 1..20),
            len in 0usize..1200,
        ) {
            let mut l = Lines::new(&b);
            for &s in &starts {
                let end = s + len;
                let nl = (s..end.min(b.len())).find(|&i| b[i] == b'\n');
                let colon = (s..end.min(b.len())).find(|&i| b[i] == b':');
                proptest::prop_assert_eq!(l.next_nl(&b, s, end), nl);
                proptest::prop_assert_eq!(l.next_colon(&b, s, end), colon);
            }
        }
    }
}
