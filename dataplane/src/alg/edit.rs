//! Edits to a message: byte ranges replaced by short texts, applied in one copy.
//!
//! A rewriter collects what it changes as `Edit`s (in any order), then `Edits::apply` writes
//! the message with them into an output buffer: everything between edits is copied byte for
//! byte. Fixed capacity, no allocation; an edit that does not fit is refused, so a message is
//! rewritten whole or not at all.

/// The longest replacement text: "255.255.255.255:65535" and a little more.
pub const MAX_TEXT: usize = 32;
/// Edits per message at most (a message needing more is left unrewritten, and counted).
pub const MAX_EDITS: usize = 48;

/// Replace `start..end` (an insertion when equal) with `text[..len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    pub start: u32,
    pub end: u32,
    len: u8,
    text: [u8; MAX_TEXT],
}

impl Edit {
    pub fn text(&self) -> &[u8] {
        &self.text[..self.len as usize]
    }

    /// How much longer the message gets.
    pub fn delta(&self) -> isize {
        self.len as isize - (self.end - self.start) as isize
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

    pub fn push(&mut self, b: &[u8]) -> &mut Self {
        let n = b.len().min(MAX_TEXT - self.len as usize);
        self.buf[self.len as usize..self.len as usize + n].copy_from_slice(&b[..n]);
        self.len += n as u8;
        self
    }

    pub fn number(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    pub fn ipv4(&mut self, a: [u8; 4]) -> &mut Self {
        for (k, o) in a.iter().enumerate() {
            if k > 0 {
                self.push(b".");
            }
            self.number(*o as u64);
        }
        self
    }
}

/// The edits of one message.
pub struct Edits {
    list: [Edit; MAX_EDITS],
    len: usize,
    /// An edit was refused (too many): the message must not be rewritten.
    pub overflow: bool,
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
        }
    }
}

impl Edits {
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
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
        self.push(start, end, text);
    }

    /// Inserts `text` at `at`.
    pub fn insert(&mut self, at: usize, text: &[u8]) {
        self.push(at, at, text);
    }

    fn push(&mut self, start: usize, end: usize, text: &[u8]) {
        if self.len == MAX_EDITS || text.len() > MAX_TEXT || start > end {
            self.overflow = true;
            return;
        }
        let mut e = Edit {
            start: start as u32,
            end: end as u32,
            len: text.len() as u8,
            text: [0; MAX_TEXT],
        };
        e.text[..text.len()].copy_from_slice(text);
        self.list[self.len] = e;
        self.len += 1;
    }

    /// How much longer the edits make `lo..hi` of the message.
    pub fn delta_within(&self, lo: usize, hi: usize) -> isize {
        self.as_slice()
            .iter()
            .filter(|e| e.start as usize >= lo && e.end as usize <= hi)
            .map(Edit::delta)
            .sum()
    }

    /// Writes `msg` with the edits into `out`; returns the length written, or None when
    /// the edits overlap, run past the message, or the result does not fit in `out`.
    pub fn apply(&mut self, msg: &[u8], out: &mut [u8]) -> Option<usize> {
        if self.overflow {
            return None;
        }
        let list = &mut self.list[..self.len];
        // Insertion sort: a few dozen edits, mostly in order already.
        for i in 1..list.len() {
            let mut j = i;
            while j > 0 && (list[j - 1].start, list[j - 1].end) > (list[j].start, list[j].end) {
                list.swap(j - 1, j);
                j -= 1;
            }
        }
        let mut at = 0usize;
        let mut w = 0usize;
        for e in list.iter() {
            let (s, end) = (e.start as usize, e.end as usize);
            if s < at || end > msg.len() {
                return None;
            }
            let keep = &msg[at..s];
            out.get_mut(w..w + keep.len())?.copy_from_slice(keep);
            w += keep.len();
            let t = e.text();
            out.get_mut(w..w + t.len())?.copy_from_slice(t);
            w += t.len();
            at = end;
        }
        let rest = &msg[at..];
        out.get_mut(w..w + rest.len())?.copy_from_slice(rest);
        Some(w + rest.len())
    }
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
        e.insert(19, b"!");
        let mut out = [0u8; 64];
        let n = e.apply(msg, &mut out).unwrap();
        assert_eq!(&out[..n], b"a 203.0.113.9 b 40000 c!");
        assert_eq!(e.delta_within(0, msg.len()), 5);
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

    #[test]
    fn text_formats_addresses_and_numbers() {
        let mut t = Text::default();
        t.ipv4([192, 0, 2, 10]).push(b":").number(0);
        assert_eq!(t.as_bytes(), b"192.0.2.10:0");
    }
}
