//! What decoders extract from a flow for the catalog's signatures: fixed-size, no allocation.

/// A short text of at most `N` bytes (longer input is cut, at a char boundary).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Text {
            len: 0,
            bytes: [0; N],
        }
    }
}

impl<const N: usize> Text<N> {
    /// Sets the text from bytes; non-UTF-8 input is kept up to its first invalid byte.
    pub fn set(&mut self, b: &[u8]) {
        let valid = match std::str::from_utf8(b) {
            Ok(s) => s,
            Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
        };
        let mut n = valid.len().min(N).min(u8::MAX as usize);
        while !valid.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[..n].copy_from_slice(&valid.as_bytes()[..n]);
        self.len = n as u8;
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> std::fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Attributes decoders found. Empty fields were not seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// TLS/DTLS SNI, HTTP Host, HTTP CONNECT target host, XMPP stream `to`, DNS query name.
    pub host: Text<96>,
    /// SIP or HTTP User-Agent (or SIP Server in responses).
    pub user_agent: Text<48>,
    /// First ALPN protocol offered (TLS).
    pub alpn: Text<16>,
    /// STUN SOFTWARE attribute.
    pub stun_software: Text<32>,
    /// A vendor's dialect of a standard protocol, as its decoder recognised it (STUN:
    /// `whatsapp`, `ms-teams`), for the catalog's signatures.
    pub dialect: Text<12>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
            && self.user_agent.is_empty()
            && self.alpn.is_empty()
            && self.stun_software.is_empty()
            && self.dialect.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_a_char_boundary_and_keeps_valid_utf8() {
        let mut t: Text<4> = Text::default();
        t.set("abcdef".as_bytes());
        assert_eq!(t.as_str(), "abcd");
        t.set("aé€".as_bytes()); // 1 + 2 + 3 bytes: cut after é
        assert_eq!(t.as_str(), "aé");
        t.set(&[b'o', b'k', 0xff, b'x']);
        assert_eq!(t.as_str(), "ok");
    }
}
