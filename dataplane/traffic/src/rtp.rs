//! RTP (RFC 3550) media packets and RTCP sender reports for one sending source.

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One RTP source: the SSRC and the running sequence number, timestamp and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpSource {
    pub payload_type: u8,
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    /// Timestamp units per packet (160 for 20 ms of 8 kHz audio).
    pub timestamp_step: u32,
    pub packets_sent: u32,
    pub octets_sent: u32,
    pub cname: String,
}

impl RtpSource {
    pub fn new(
        payload_type: u8,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        timestamp_step: u32,
        cname: String,
    ) -> Self {
        RtpSource {
            payload_type,
            ssrc,
            seq,
            timestamp,
            timestamp_step,
            packets_sent: 0,
            octets_sent: 0,
            cname,
        }
    }

    /// The next RTP packet carrying `payload`; the marker bit is set on the first packet.
    pub fn packet(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + payload.len());
        p.push(0x80); // version 2, no padding, no extension, no CSRC
        let marker = if self.packets_sent == 0 { 0x80 } else { 0 };
        p.push(marker | (self.payload_type & 0x7f));
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.timestamp.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.timestamp_step);
        self.packets_sent += 1;
        self.octets_sent += payload.len() as u32;
        p
    }

    /// A compound RTCP packet: a sender report (no report blocks) for the wall-clock time
    /// `unix_ns`, followed by an SDES chunk with this source's CNAME.
    pub fn sender_report(&self, unix_ns: u64) -> Vec<u8> {
        let mut p = Vec::with_capacity(64);
        p.push(0x80); // V=2, P=0, RC=0
        p.push(200);
        p.extend_from_slice(&6u16.to_be_bytes()); // 28 bytes = 7 words, minus one
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        let secs = unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET;
        let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
        p.extend_from_slice(&(secs as u32).to_be_bytes());
        p.extend_from_slice(&(frac as u32).to_be_bytes());
        p.extend_from_slice(&self.timestamp.to_be_bytes());
        p.extend_from_slice(&self.packets_sent.to_be_bytes());
        p.extend_from_slice(&self.octets_sent.to_be_bytes());

        let mut chunk = Vec::new();
        chunk.extend_from_slice(&self.ssrc.to_be_bytes());
        chunk.push(1); // CNAME
        chunk.push(self.cname.len() as u8);
        chunk.extend_from_slice(self.cname.as_bytes());
        chunk.push(0); // end of items
        chunk.resize(chunk.len().next_multiple_of(4), 0);
        p.push(0x81); // V=2, SC=1
        p.push(202);
        p.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&chunk);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_increment_seq_and_timestamp_and_mark_the_first() {
        let mut s = RtpSource::new(0, 0xdead_beef, 65535, 1000, 160, "a@b".into());
        let a = s.packet(&[0xff; 160]);
        let b = s.packet(&[0xff; 160]);
        assert_eq!(a.len(), 172);
        assert_eq!(a[0] >> 6, 2);
        assert_eq!(a[1], 0x80);
        assert_eq!(b[1], 0x00);
        assert_eq!(&a[2..4], &[0xff, 0xff]);
        assert_eq!(&b[2..4], &[0, 0]);
        assert_eq!(u32::from_be_bytes(b[4..8].try_into().unwrap()), 1160);
        assert_eq!(&b[8..12], &0xdead_beefu32.to_be_bytes());
        assert_eq!((s.packets_sent, s.octets_sent), (2, 320));
    }

    #[test]
    fn sender_report_lengths_are_consistent() {
        let mut s = RtpSource::new(8, 7, 1, 1, 160, "user@198.51.100.7".into());
        s.packet(&[0; 160]);
        let r = s.sender_report(1_700_000_000_500_000_000);
        let sr_len = (usize::from(u16::from_be_bytes([r[2], r[3]])) + 1) * 4;
        assert_eq!(sr_len, 28);
        assert_eq!(r[1], 200);
        assert_eq!(
            u32::from_be_bytes(r[8..12].try_into().unwrap()),
            (1_700_000_000 + NTP_UNIX_OFFSET) as u32
        );
        assert_eq!(u32::from_be_bytes(r[12..16].try_into().unwrap()), 1 << 31);
        let sdes = &r[sr_len..];
        assert_eq!(sdes[1], 202);
        assert_eq!(
            (usize::from(u16::from_be_bytes([sdes[2], sdes[3]])) + 1) * 4,
            sdes.len()
        );
        assert_eq!(r.len() % 4, 0);
    }
}
