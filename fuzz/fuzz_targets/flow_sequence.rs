//! Packet sequences into the flow table, its TCP state machine and App-ID (the offline
//! driver: lookup, insert, account, classify, expire): never a panic, and the bookkeeping
//! holds: every flow created ends exactly once, never more flows than the table holds, and
//! every ended flow has an application.
//!
//! Input: records of [flags, endpoint, length, payload...]: the flags byte picks TCP or UDP,
//! the direction, the TCP flags, and time steps; the endpoint byte picks one of 16 client
//! ports (so flows recur), the payload is what the decoders see.
#![no_main]
use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::appid::engine::Limits;
use aperture_dataplane::config::Timeouts;
use aperture_dataplane::offline::Offline;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn catalog() -> Arc<Catalog> {
    static CAT: OnceLock<Arc<Catalog>> = OnceLock::new();
    CAT.get_or_init(|| Arc::new(Catalog::embedded())).clone()
}

/// An Ethernet + IPv4 + TCP/UDP frame (checksums left 0: the dataplane does not check them).
fn frame(
    tcp: bool,
    to_server: bool,
    client_port: u16,
    server_port: u16,
    flags: u8,
    seq: u32,
    payload: &[u8],
) -> Vec<u8> {
    let (c, s) = ([10, 0, 0, 1], [192, 0, 2, 1]);
    let (src, dst, sp, dp) = if to_server {
        (c, s, client_port, server_port)
    } else {
        (s, c, server_port, client_port)
    };
    let l4 = if tcp { 20 } else { 8 };
    let total = 20 + l4 + payload.len();
    let mut f = vec![0u8; 14];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64]);
    f.push(if tcp { 6 } else { 17 });
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    if tcp {
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&[
            ((8 + payload.len()) >> 8) as u8,
            (8 + payload.len()) as u8,
            0,
            0,
        ]);
    }
    f.extend_from_slice(payload);
    f
}

const PORTS: [u16; 8] = [80, 443, 53, 5060, 3478, 22, 25, 123];

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        contexts: 4,
        tcp_packets: 4,
        udp_packets: 3,
    };
    let mut o = Offline::new(catalog(), 8, &Timeouts::default(), limits);
    let mut rest = data;
    let mut now = 1_000_000_000u64;
    let mut seq = [0u32; 2];
    while rest.len() >= 3 {
        let (flags, endpoint, len) = (rest[0], rest[1], rest[2] as usize);
        let payload = &rest[3..3 + len.min(rest.len() - 3)];
        rest = &rest[3 + payload.len()..];
        let tcp = flags & 1 != 0;
        let to_server = flags & 2 == 0;
        // TCP flags: FIN 1, SYN 2, RST 4, PSH 8, ACK 16, from bits 2..7.
        let tcp_flags = (flags >> 2) & 0x1f;
        now += match flags >> 7 {
            0 => 1_000,
            // Now and then far enough for timeouts (an embryonic flow's 10 s, UDP's 60 s).
            _ => (endpoint as u64 % 4) * 20_000_000_000,
        };
        let d = to_server as usize;
        let f = frame(
            tcp,
            to_server,
            40_000 + (endpoint & 15) as u16,
            PORTS[(endpoint >> 4) as usize % PORTS.len()],
            tcp_flags,
            seq[d],
            payload,
        );
        seq[d] = seq[d].wrapping_add(payload.len() as u32);
        o.packet(now, &f, f.len());
        assert!(o.flows().active() <= o.flows().capacity());
    }
    let created = o.created;
    let recs = o.finish();
    assert_eq!(recs.len() as u64, created, "every flow ends once");
    assert!(recs.iter().all(|r| r.app_path_len >= 1));
});
