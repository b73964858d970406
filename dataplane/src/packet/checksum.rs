//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` added to `initial`, not yet folded or inverted.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = initial as u64;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u64) << 8;
    }
    fold(acc)
}

fn fold(mut acc: u64) -> u32 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// The checksum field value for `data` (header with its checksum field zeroed).
pub fn checksum(data: &[u8]) -> u16 {
    !(sum(data, 0) as u16)
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for one 16-bit word changed from `old` to `new`.
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = (!hc as u32) + (!old as u32 & 0xffff) + new as u32;
    !(fold(acc as u64) as u16)
}
