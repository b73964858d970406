//! STUN (RFC 5389) and TURN (RFC 5766) messages: Binding, Allocate and ChannelBind requests and
//! success responses with XOR-encoded addresses, SOFTWARE and FINGERPRINT, and ChannelData
//! framing for relayed media.

use std::net::SocketAddrV4;

use crate::rng::Rng;

pub const MAGIC_COOKIE: u32 = 0x2112_a442;
pub const STUN_PORT: u16 = 3478;

pub const BINDING_REQUEST: u16 = 0x0001;
pub const BINDING_SUCCESS: u16 = 0x0101;
pub const ALLOCATE_REQUEST: u16 = 0x0003;
pub const ALLOCATE_SUCCESS: u16 = 0x0103;
pub const CHANNEL_BIND_REQUEST: u16 = 0x0009;
pub const CHANNEL_BIND_SUCCESS: u16 = 0x0109;

pub const ATTR_CHANNEL_NUMBER: u16 = 0x000c;
pub const ATTR_LIFETIME: u16 = 0x000d;
pub const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;
pub const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
pub const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;
pub const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
pub const ATTR_SOFTWARE: u16 = 0x8022;
pub const ATTR_FINGERPRINT: u16 = 0x8028;

const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// A STUN transaction id.
pub type TransactionId = [u8; 12];

/// A STUN message being assembled; attributes are kept in the order added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunMessage {
    pub msg_type: u16,
    pub transaction_id: TransactionId,
    pub attributes: Vec<(u16, Vec<u8>)>,
}

impl StunMessage {
    pub fn new(msg_type: u16, transaction_id: TransactionId) -> Self {
        StunMessage {
            msg_type,
            transaction_id,
            attributes: Vec::new(),
        }
    }

    /// A request of `msg_type` with a fresh transaction id from `rng`.
    pub fn request(rng: &mut Rng, msg_type: u16) -> Self {
        Self::new(msg_type, rng.array())
    }

    pub fn attribute(mut self, kind: u16, value: &[u8]) -> Self {
        self.attributes.push((kind, value.to_vec()));
        self
    }

    /// An XOR-MAPPED-ADDRESS-style attribute (also XOR-PEER- and XOR-RELAYED-ADDRESS).
    pub fn xor_address(self, kind: u16, addr: SocketAddrV4) -> Self {
        let mut v = vec![0, 0x01];
        v.extend_from_slice(&(addr.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
        v.extend_from_slice(&(u32::from(*addr.ip()) ^ MAGIC_COOKIE).to_be_bytes());
        self.attribute(kind, &v)
    }

    pub fn software(self, name: &str) -> Self {
        self.attribute(ATTR_SOFTWARE, name.as_bytes())
    }

    /// Encodes the message; with `fingerprint`, a FINGERPRINT attribute is appended last.
    pub fn encode(&self, fingerprint: bool) -> Vec<u8> {
        let mut m = Vec::with_capacity(20 + 64);
        m.extend_from_slice(&self.msg_type.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&self.transaction_id);
        for (kind, value) in &self.attributes {
            m.extend_from_slice(&kind.to_be_bytes());
            m.extend_from_slice(&(value.len() as u16).to_be_bytes());
            m.extend_from_slice(value);
            m.resize(m.len().next_multiple_of(4), 0);
        }
        if fingerprint {
            // The length field must already count the FINGERPRINT attribute when the CRC is
            // computed over the message before it.
            let len = (m.len() - 20 + 8) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
            let crc = crc32(&m) ^ FINGERPRINT_XOR;
            m.extend_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
            m.extend_from_slice(&4u16.to_be_bytes());
            m.extend_from_slice(&crc.to_be_bytes());
        } else {
            let len = (m.len() - 20) as u16;
            m[2..4].copy_from_slice(&len.to_be_bytes());
        }
        m
    }
}

/// The success response to `request`: same transaction id, class bits set to success.
pub fn success_to(request: &StunMessage) -> StunMessage {
    StunMessage::new(request.msg_type | 0x0100, request.transaction_id)
}

/// A TURN ChannelData message: channel number (0x4000-0x7fff), length, data, padded to a
/// multiple of four bytes as RFC 5766 requires over TCP and allows over UDP.
pub fn channel_data(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(4 + data.len() + 3);
    m.extend_from_slice(&channel.to_be_bytes());
    m.extend_from_slice(&(data.len() as u16).to_be_bytes());
    m.extend_from_slice(data);
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

/// CRC-32 (IEEE 802.3, reflected, as used by STUN FINGERPRINT).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn rfc5769_sample_response_encodes_identically() {
        // RFC 5769 section 2.2 (IPv4 response), without MESSAGE-INTEGRITY: the header,
        // SOFTWARE and XOR-MAPPED-ADDRESS bytes must match the published vector.
        let txid = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        let m = StunMessage::new(BINDING_SUCCESS, txid)
            .software("test vector")
            .xor_address(
                ATTR_XOR_MAPPED_ADDRESS,
                SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 32853),
            )
            .encode(false);
        let expected_attrs: &[u8] = &[
            0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f,
            0x72,
            0x20, // "test vector" padded (RFC uses a space as padding; we pad with zero)
            0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
        ];
        assert_eq!(&m[..2], &[0x01, 0x01]);
        assert_eq!(&m[4..8], &[0x21, 0x12, 0xa4, 0x42]);
        assert_eq!(&m[8..20], &txid);
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len() - 20);
        assert_eq!(&m[20..35], &expected_attrs[..15]);
        assert_eq!(m[35], 0);
        assert_eq!(&m[36..48], &expected_attrs[16..]);
    }

    #[test]
    fn fingerprint_covers_the_message_before_it() {
        let mut rng = Rng::new(1);
        let m = StunMessage::request(&mut rng, BINDING_REQUEST)
            .software("x")
            .encode(true);
        let n = m.len();
        assert_eq!(&m[n - 8..n - 4], &[0x80, 0x28, 0x00, 0x04]);
        let stored = u32::from_be_bytes(m[n - 4..].try_into().unwrap());
        assert_eq!(stored, crc32(&m[..n - 8]) ^ 0x5354_554e);
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), n - 20);
    }

    #[test]
    fn channel_data_is_padded_to_four() {
        let m = channel_data(0x4001, &[9; 5]);
        assert_eq!(m.len(), 12);
        assert_eq!(&m[..4], &[0x40, 0x01, 0x00, 0x05]);
        assert_eq!(&m[9..], &[0, 0, 0]);
        assert_eq!(channel_data(0x7fff, &[1; 172]).len(), 176);
    }
}
