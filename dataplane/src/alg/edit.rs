//! Edits to a message: byte ranges replaced by short texts, applied in one copy.
//!
//! A rewriter collects what it changes as `Edit`s (in any order), then `Edits::apply` writes
//! the message with them into an output buffer: everything between edits is copied byte for
//! byte. Fixed capacity, no allocation; an edit that does not fit is refused, so a message is
//! rewritten whole or not at all.

use wide::{u8x32, CmpEq};

/// The longest replacement text: "255.255.255.255:65535" and a little more.
pub const MAX_TEXT: usize = 32;
/// Edits per message at most (a message needing more is left unrewritten, and counted).
pub const MAX_EDITS: usize = 48;

/// Replace `start..end` (an insertion when equal) with `text[..len]` (the bytes past `len`
/// mean nothing).
#[derive(Clone, Copy, Debug)]
pub struct Edit {
    pub start: u32,
    pub end: u32,
    len: u8,
    text: [u8; MAX_TEXT],
}

impl PartialEq for Edit {
    fn eq(&self, o: &Edit) -> bool {
        (self.start, self.end, self.text()) == (o.start, o.end, o.text())
    }
}

impl Eq for Edit {}

impl Edit {
    pub fn text(&self) -> &[u8] {
        &self.text[..self.len as usize]
    }
}

/// A short text built without allocation (an address, a port, a number).
#[derive(Clone, Copy)]
pub struct Text {
    len: u8,
    buf: [u8; MAX_TEXT],
}

impl Default for Text {
    fn default() -> Self {
        Text {
            len: 0,
            buf: [0; MAX_TEXT],
        }
    }
}

impl Text {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Whether `msg` has this text at `at`: one 32-byte compare where 32 bytes can be read.
    #[inline]
    fn reads_at(&self, msg: &[u8], at: usize) -> bool {
        let n = self.len as usize;
        match msg.get(at..at + MAX_TEXT) {
            Some(w) => {
                let w = u8x32::new(w.try_into().unwrap_or([0; MAX_TEXT]));
                let same = w.cmp_eq(u8x32::new(self.buf)).move_mask() as u32 as u64;
                !same & ((1u64 << n) - 1) == 0
            }
            None => msg.get(at..at + n) == Some(self.as_bytes()),
        }
    }

    pub fn push(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(MAX_TEXT - self.len as usize);
        self.buf[self.len as usize..self.len as usize + n].copy_from_slice(&b[..n]);
        self.len += n as u8;
        self
    }

    pub fn number(&mut self, v: u64) -> &mut Self {
        if let (Some((w, n)), true) = (digits_word(v), self.len as usize + 8 <= MAX_TEXT) {
            let at = self.len as usize;
            self.buf[at..at + 8].copy_from_slice(&w.to_le_bytes());
            self.len += n as u8;
            return self;
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        // A number that does not fit is not written.
        if self.len as usize + digits.len() - i <= MAX_TEXT {
            self.push(&digits[i..]);
        }
        self
    }

    /// A dotted quad, each octet from a table of their decimal forms.
    pub fn ipv4(&mut self, a: [u8; 4]) -> &mut Self {
        let at = self.len as usize;
        if at + 15 > MAX_TEXT {
            return self;
        }
        let mut w = at;
        for (k, &o) in a.iter().enumerate() {
            if k > 0 {
                self.buf[w] = b'.';
                w += 1;
            }
            let (digits, n) = OCTETS[o as usize];
            self.buf[w..w + 3].copy_from_slice(&digits);
            w += n as usize;
        }
        self.len = w as u8;
        self
    }
}

/// The decimal digits of `v` below 100000 (a port, a length) as the low bytes of a word, and
/// how many there are: the five digits (leading zeros included) right-aligned in a word,
/// shifted down to those that count.
#[inline]
fn digits_word(v: u64) -> Option<(u64, usize)> {
    if v >= 100_000 {
        return None;
    }
    let v = v as u32;
    let n = 1
        + (v >= 10) as usize
        + (v >= 100) as usize
        + (v >= 1000) as usize
        + (v >= 10_000) as usize;
    let (r, lo) = (v / 100, v % 100);
    let (top, mid) = (r / 100, r % 100);
    let mut d = [b'0'; 8];
    d[3] += top as u8;
    d[4..6].copy_from_slice(&PAIRS[mid as usize]);
    d[6..8].copy_from_slice(&PAIRS[lo as usize]);
    Some((u64::from_le_bytes(d) >> (8 * (8 - n)), n))
}

/// The two decimal digits of 0 to 99.
static PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut v = 0;
    while v < 100 {
        t[v] = [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        v += 1;
    }
    t
};

/// Each octet's decimal digits (left-aligned in three bytes) and how many there are.
static OCTETS: [([u8; 3], u8); 256] = {
    let mut t = [([0u8; 3], 0u8); 256];
    let mut v = 0;
    while v < 256 {
        let (h, d, u) = ((v / 100) as u8, ((v / 10) % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            ([b'0' + h, b'0' + d, b'0' + u], 3)
        } else if v >= 10 {
            ([b'0' + d, b'0' + u, 0], 2)
        } else {
            ([b'0' + u, 0, 0], 1)
        };
        v += 1;
    }
    t
};

/// The edits of one message.
pub struct Edits {
    list: [Edit; MAX_EDITS],
    len: usize,
    /// An edit was refused (too many): the message must not be rewritten.
    pub overflow: bool,
    delta: isize,
}

impl Default for Edits {
    fn default() -> Self {
        Edits {
            list: [Edit {
                start: 0,
                end: 0,
                len: 0,
                text: [0; MAX_TEXT],
            }; MAX_EDITS],
            len: 0,
            overflow: false,
            delta: 0,
        }
    }
}

impl Edits {
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
        self.delta = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[Edit] {
        &self.list[..self.len]
    }

    /// Replaces `start..end` with `text`, unless it already reads so (no edit for a no-op).
    pub fn replace(&mut self, msg: &[u8], start: usize, end: usize, text: &[u8]) {
        if msg.get(start..end) == Some(text) {
            return;
        }
        if text.len() > MAX_TEXT {
            self.overflow = true;
            return;
        }
        let mut t = Text::default();
        t.push(text);
        self.push(start, end, &t);
    }

    /// `replace` with a `Text` (copied whole: no length-dependent copy).
    #[inline]
    pub fn replace_text(&mut self, msg: &[u8], start: usize, end: usize, text: &Text) {
        if end.wrapping_sub(start) == text.len as usize && text.reads_at(msg, start) {
            return;
        }
        self.push(start, end, text);
    }

    /// `replace_text` with the decimal digits of `v`, written straight into the edit (a
    /// number just formatted is not read back as a whole text: that load would wait for the
    /// digits' store).
    #[inline]
    pub fn replace_number(&mut self, msg: &[u8], start: usize, end: usize, v: u64) {
        let Some((w, n)) = digits_word(v) else {
            let mut t = Text::default();
            t.number(v);
            return self.replace_text(msg, start, end, &t);
        };
        if end.wrapping_sub(start) == n {
            let keep = match msg.get(start..start + 8) {
                Some(m) => {
                    let m = u64::from_le_bytes(m.try_into().unwrap_or([0; 8]));
                    (m ^ w) & (u64::MAX >> (64 - 8 * n)) == 0
                }
                None => msg.get(start..end) == Some(&w.to_le_bytes()[..n]),
            };
            if keep {
                return;
            }
        }
        // The whole text in one store, as `apply` reads it.
        let mut text = [0u8; MAX_TEXT];
        text[..8].copy_from_slice(&w.to_le_bytes());
        self.add(start, end, n as u8, text);
    }

    /// Inserts `text` at `at`.
    pub fn insert(&mut self, at: usize, text: &Text) {
        self.push(at, at, text);
    }

    #[inline]
    fn push(&mut self, start: usize, end: usize, text: &Text) {
        self.add(start, end, text.len, text.buf);
    }

    /// Adds the edit of `start..end` to `text[..len]`; refused (`overflow`) when there is no
    /// room or the range is backwards.
    #[inline]
    fn add(&mut self, start: usize, end: usize, len: u8, text: [u8; MAX_TEXT]) {
        if self.len == MAX_EDITS || start > end {
            self.overflow = true;
            return;
        }
        self.delta += len as isize - (end - start) as isize;
        self.list[self.len] = Edit {
            start: start as u32,
            end: end as u32,
            len,
            text,
        };
        self.len += 1;
    }

    /// How much longer the edits so far make the message (a caller that wants a part's
    /// takes the difference over the edits of that part).
    pub fn delta(&self) -> isize {
        self.delta
    }

    /// Writes `msg` with the edits into `out`; returns the length written, or None when
    /// the edits overlap, run past the message, or the result does not fit in `out`.
    pub fn apply(&mut self, msg: &[u8], out: &mut [u8]) -> Option<usize> {
        if self.overflow {
            return None;
        }
        let list = &mut self.list[..self.len];
        // Insertion sort: a few dozen edits, mostly in order already. An edit out of place
        // is taken out and those before it moved up one, each read before anything is
        // written over it (swaps would read back what they had just written).
        for i in 1..list.len() {
            let key = (list[i].start, list[i].end);
            if (list[i - 1].start, list[i - 1].end) <= key {
                continue;
            }
            let e = list[i];
            let mut j = i;
            while j > 0 && (list[j - 1].start, list[j - 1].end) > key {
                list[j] = list[j - 1];
                j -= 1;
            }
            list[j] = e;
        }
        let mut at = 0usize;
        let mut w = 0usize;
        for e in list.iter() {
            let (s, end) = (e.start as usize, e.end as usize);
            if s < at || end > msg.len() {
                return None;
            }
            w = copy(msg, at, s, out, w)?;
            let n = e.len as usize;
            match out.get_mut(w..w + MAX_TEXT) {
                // Room for the whole text buffer: one fixed-size store, the tail is
                // overwritten by what follows.
                Some(o) => o.copy_from_slice(&e.text),
                None => out.get_mut(w..w + n)?.copy_from_slice(e.text()),
            }
            w += n;
            at = end;
        }
        copy(msg, at, msg.len(), out, w)
    }
}

/// Copies `msg[from..to]` to `out[w..]`; returns where the copy ends in `out`, None when it
/// does not fit. Most runs between two edits are short: up to 64 bytes go as two fixed
/// 32-byte blocks, up to 128 as one fixed block of 128, when both sides have room past the end
/// (what the blocks write beyond it is overwritten by what follows, or left unused), longer
/// ones as one copy.
#[inline]
fn copy(msg: &[u8], from: usize, to: usize, out: &mut [u8], w: usize) -> Option<usize> {
    let src = msg.get(from..to)?;
    let n = src.len();
    if n <= 64 {
        if let (Some(s), Some(d)) = (msg.get(from..from + 64), out.get_mut(w..w + 64)) {
            let (s0, s1) = s.split_at(32);
            let (d0, d1) = d.split_at_mut(32);
            d0.copy_from_slice(s0);
            if n > 32 {
                d1.copy_from_slice(s1);
            }
            return Some(w + n);
        }
    } else if n <= 128 {
        if let (Some(s), Some(d)) = (msg.get(from..from + 128), out.get_mut(w..w + 128)) {
            let s: &[u8; 128] = s.try_into().ok()?;
            let d: &mut [u8; 128] = d.try_into().ok()?;
            *d = *s;
            return Some(w + n);
        }
    }
    out.get_mut(w..w + n)?.copy_from_slice(src);
    Some(w + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_position_order_and_keep_the_rest() {
        let msg = b"a 10.0.0.1 b 5060 c";
        let mut e = Edits::default();
        e.replace(msg, 13, 17, b"40000");
        e.replace(msg, 2, 10, b"203.0.113.9");
        let mut bang = Text::default();
        bang.push(b"!");
        e.insert(19, &bang);
        let mut out = [0u8; 64];
        let n = e.apply(msg, &mut out).unwrap();
        assert_eq!(&out[..n], b"a 203.0.113.9 b 40000 c!");
        assert_eq!(e.delta(), 5);
    }

    #[test]
    fn overlapping_or_oversized_edits_are_refused() {
        let msg = b"0123456789";
        let mut e = Edits::default();
        e.replace(msg, 2, 6, b"x");
        e.replace(msg, 4, 8, b"y");
        assert_eq!(e.apply(msg, &mut [0u8; 32]), None);
        let mut e = Edits::default();
        e.replace(msg, 0, 1, b"long");
        assert_eq!(e.apply(msg, &mut [0u8; 5]), None);
    }

    proptest::proptest! {
        /// A number written straight into an edit is the edit its text makes (a no-op where
        /// the message already reads so), whatever was in the slot before.
        #[test]
        fn numbers_edit_as_their_text_does(
            v in proptest::prop_oneof![0u64..100_000, proptest::prelude::any::<u64>()],
            msg in proptest::collection::vec(proptest::sample::select(&b"0123456789 "[..]), 0..20),
            start in 0usize..20,
            len in 0usize..8,
        ) {
            let end = (start + len).min(msg.len());
            let start = start.min(end);
            let mut t = Text::default();
            t.number(v);
            let (mut a, mut b) = (Edits::default(), Edits::default());
            // A slot holding an older, longer text.
            b.replace(&msg, 0, 0, b"stale stale stale stale");
            b.clear();
            a.replace_text(&msg, start, end, &t);
            b.replace_number(&msg, start, end, v);
            proptest::prop_assert_eq!(a.as_slice(), b.as_slice());
            proptest::prop_assert_eq!(a.delta(), b.delta());
            // What is written past the returned length means nothing.
            let (mut oa, mut ob) = ([0u8; 96], [0u8; 96]);
            let n = a.apply(&msg, &mut oa);
            proptest::prop_assert_eq!(n, b.apply(&msg, &mut ob));
            let n = n.unwrap_or(0);
            proptest::prop_assert_eq!(&oa[..n], &ob[..n]);
        }
    }

    #[test]
    fn text_formats_addresses_and_numbers() {
        let mut t = Text::default();
        t.ipv4([192, 0, 2, 10]).push(b":").number(0);
        assert_eq!(t.as_bytes(), b"192.0.2.10:0");
        for a in [[0, 0, 0, 0], [255, 255, 255, 255], [10, 99, 100, 9]] {
            let mut t = Text::default();
            t.ipv4(a).push(b":").number(65535);
            let want = format!("{}:65535", std::net::Ipv4Addr::from(a));
            assert_eq!(t.as_bytes(), want.as_bytes());
        }
        let mut t = Text::default();
        t.number(4_294_967_296);
        assert_eq!(t.as_bytes(), b"4294967296");
    }
}
