//! NTPv4 (RFC 5905) client requests and server replies.

use crate::rtp::NTP_UNIX_OFFSET;

fn ntp_timestamp(unix_ns: u64) -> [u8; 8] {
    let secs = (unix_ns / 1_000_000_000 + NTP_UNIX_OFFSET) as u32;
    let frac = (((unix_ns % 1_000_000_000) << 32) / 1_000_000_000) as u32;
    let mut t = [0; 8];
    t[..4].copy_from_slice(&secs.to_be_bytes());
    t[4..].copy_from_slice(&frac.to_be_bytes());
    t
}

/// A mode-3 client request sent at `unix_ns` (the transmit timestamp is the only one set).
pub fn client_request(unix_ns: u64) -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x23; // LI 0, version 4, mode 3 (client)
    p[2] = 6; // poll interval 2^6 s
    p[3] = 0xec; // precision 2^-20 s
    p[40..48].copy_from_slice(&ntp_timestamp(unix_ns));
    p
}

/// A mode-4 reply from a stratum-2 server to `request`, received at `rx_ns` and sent at `tx_ns`.
pub fn server_reply(request: &[u8], rx_ns: u64, tx_ns: u64, reference_id: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x24; // LI 0, version 4, mode 4 (server)
    p[1] = 2;
    p[2] = request.get(2).copied().unwrap_or(6);
    p[3] = 0xe9;
    p[4..8].copy_from_slice(&0x0000_0a3cu32.to_be_bytes()); // root delay
    p[8..12].copy_from_slice(&0x0000_0310u32.to_be_bytes()); // root dispersion
    p[12..16].copy_from_slice(&reference_id);
    p[16..24].copy_from_slice(&ntp_timestamp(rx_ns.saturating_sub(16_000_000_000)));
    if let Some(origin) = request.get(40..48) {
        p[24..32].copy_from_slice(origin);
    }
    p[32..40].copy_from_slice(&ntp_timestamp(rx_ns));
    p[40..48].copy_from_slice(&ntp_timestamp(tx_ns));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_echoes_the_request_transmit_time_as_origin() {
        let q = client_request(1_700_000_000_250_000_000);
        assert_eq!(q[0] & 0x07, 3);
        assert_eq!((q[0] >> 3) & 0x07, 4);
        assert_eq!(
            &q[40..44],
            &((1_700_000_000 + NTP_UNIX_OFFSET) as u32).to_be_bytes()
        );
        assert_eq!(&q[44..48], &(1u32 << 30).to_be_bytes());
        let r = server_reply(
            &q,
            1_700_000_000_260_000_000,
            1_700_000_000_260_100_000,
            [192, 0, 2, 1],
        );
        assert_eq!(r[0] & 0x07, 4);
        assert_eq!(&r[24..32], &q[40..48]);
        assert!(r[32..40] < r[40..48]);
    }
}
