//! The engine end to end on synthetic flows (real decoders, frames from the traffic generator).
use crate::appid::catalog::Catalog;
use crate::appid::engine::{AppEvent, Limits};
use crate::config::Timeouts;
use crate::flowlog::FlowRecord;
use crate::offline::Offline;
use aperture_traffic::build::{tcp4, udp4, TcpFlags, TcpHeader};
use aperture_traffic::rng::Rng;
use aperture_traffic::{sip::SipMessage, stun::StunMessage, tls};
use std::net::SocketAddrV4;
use std::sync::Arc;

const C: [u8; 6] = [2, 0, 0, 0, 0, 1];
const S: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn run(frames: &[Vec<u8>], limits: Limits) -> (Catalog, Vec<FlowRecord>) {
    let cat = Catalog::embedded();
    let mut o = Offline::new(Arc::new(cat.clone()), 64, &Timeouts::default(), limits);
    for (i, f) in frames.iter().enumerate() {
        o.packet(1_000_000_000 + i as u64 * 1000, f, f.len());
    }
    (cat, o.finish())
}

fn limits() -> Limits {
    Limits {
        contexts: 16,
        tcp_packets: 12,
        udp_packets: 8,
    }
}

fn names(c: &Catalog, r: &FlowRecord) -> (String, Vec<String>) {
    (
        c.name(r.app).to_string(),
        r.path().iter().map(|a| c.name(*a).to_string()).collect(),
    )
}

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn seg(src: &str, dst: &str, seq: u32, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
    let h = TcpHeader {
        seq,
        ack: 1,
        flags,
        window: 65535,
    };
    tcp4(C, S, addr(src), addr(dst), &h, payload)
}

/// A DTLS 1.2 ClientHello record: type 22, version fefd, epoch 0, seq 0, then a handshake.
fn dtls_client_hello() -> Vec<u8> {
    let mut hs = vec![1u8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 42, 0xfe, 0xfd];
    hs.extend_from_slice(&[0u8; 32]); // random
    hs.extend_from_slice(&[0, 0, 0, 2, 0xc0, 0x2b, 1, 0]); // session id, cookie, suites, compression
    let mut r = vec![22u8, 0xfe, 0xff, 0, 0, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    r.extend(hs);
    r
}

#[test]
fn tls_client_hello_split_across_segments_shifts_to_facetime_by_sni() {
    let mut rng = Rng::new(7);
    let hello = tls::client_hello(&mut rng, "facetime.apple.com", &["h2"]);
    let (a, b) = hello.split_at(hello.len() / 3);
    let (c, s) = ("10.0.0.5:50000", "17.1.2.3:443");
    let frames = vec![
        seg(c, s, 100, TcpFlags::SYN, b""),
        seg(s, c, 500, TcpFlags::SYN | TcpFlags::ACK, b""),
        seg(c, s, 101, TcpFlags::ACK, b""),
        seg(c, s, 101, TcpFlags::ACK | TcpFlags::PSH, a),
        seg(c, s, 101, TcpFlags::ACK | TcpFlags::PSH, a), // retransmission: ignored
        seg(c, s, 101 + a.len() as u32, TcpFlags::ACK | TcpFlags::PSH, b),
    ];
    let (cat, recs) = run(&frames, limits());
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].evidence.host.as_str(), "facetime.apple.com");
    assert_eq!(recs[0].evidence.alpn.as_str(), "h2");
    assert_eq!(
        names(&cat, &recs[0]),
        ("facetime".into(), vec!["ssl".into(), "facetime".into()])
    );
    assert_eq!(recs[0].app_decided_after, 6);
}

#[test]
fn viceroy_invite_is_facetime_and_other_sip_stays_sip() {
    let invite = |ua: &str| {
        SipMessage::request("INVITE", "sip:bob@198.51.100.7:16402")
            .header("Via", "SIP/2.0/UDP 10.0.0.5:16393;branch=z9hG4bK1")
            .header("From", "<sip:alice@10.0.0.5>;tag=1")
            .header("To", "<sip:bob@198.51.100.7>")
            .header("Call-ID", "abc@10.0.0.5")
            .header("CSeq", "1 INVITE")
            .header("User-Agent", ua)
            .encode()
    };
    let frames = vec![
        udp4(
            C,
            S,
            addr("10.0.0.5:16393"),
            addr("198.51.100.7:16402"),
            &invite("Viceroy 1.4"),
        ),
        udp4(
            C,
            S,
            addr("10.0.0.6:5060"),
            addr("198.51.100.8:5060"),
            &invite("Linphone/3.6"),
        ),
    ];
    let (cat, mut recs) = run(&frames, limits());
    recs.sort_by_key(|r| r.src_port);
    assert_eq!(names(&cat, &recs[0]).0, "sip");
    assert_eq!(
        names(&cat, &recs[1]),
        ("facetime".into(), vec!["sip".into(), "facetime".into()])
    );
    // What the decoder read is in the flow's record.
    assert_eq!(recs[1].evidence.user_agent.as_str(), "Viceroy 1.4");
    assert_eq!(recs[0].evidence.user_agent.as_str(), "Linphone/3.6");
}

/// The catalog gives sip `timeouts: { udp: 120 }`: a SIP flow outlives the UDP timeout
/// (60 s) that ends an unidentified UDP flow idle as long, and ends after its own.
#[test]
fn a_sip_flow_lives_by_the_catalogs_timeout_for_sip() {
    let cat = Arc::new(Catalog::embedded());
    assert_eq!(
        cat.apps[cat.by_name("sip").unwrap().0 as usize]
            .timeouts
            .udp,
        Some(120)
    );
    let mut o = Offline::new(cat.clone(), 64, &Timeouts::default(), limits());
    let options = SipMessage::request("OPTIONS", "sip:bob@198.51.100.7")
        .header("Via", "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1")
        .header("From", "<sip:alice@10.0.0.5>;tag=1")
        .header("To", "<sip:bob@198.51.100.7>")
        .header("Call-ID", "t@10.0.0.5")
        .header("CSeq", "1 OPTIONS")
        .encode();
    let sip = udp4(
        C,
        S,
        addr("10.0.0.5:5060"),
        addr("198.51.100.7:5060"),
        &options,
    );
    let other = udp4(
        C,
        S,
        addr("10.0.0.5:4000"),
        addr("198.51.100.7:4001"),
        &[7u8; 40],
    );
    let tick = udp4(C, S, addr("10.0.0.9:1"), addr("10.0.0.10:1"), &[0u8; 4]);
    let s = 1_000_000_000u64;
    o.packet(s, &sip, sip.len());
    o.packet(s, &other, other.len());
    // 90 s later (each tick is a packet of a third flow, which runs the expiry).
    o.packet(91 * s, &tick, tick.len());
    let ended: Vec<String> = o
        .records
        .iter()
        .map(|r| cat.name(r.app).to_string())
        .collect();
    assert!(!ended.contains(&"sip".to_string()), "{ended:?}");
    assert_eq!(o.records.len(), 1, "{ended:?}");
    assert_eq!(o.records[0].src_port, 4000);
    o.packet(122 * s, &tick, tick.len());
    assert!(
        o.records.iter().any(|r| cat.name(r.app) == "sip"),
        "{:?}",
        o.records
    );
}

#[test]
fn stun_then_dtls_is_dtls_and_stun_alone_stays_stun() {
    let mut rng = Rng::new(3);
    let req = StunMessage::request(&mut rng, 0x0001)
        .software("test")
        .encode(true);
    let (c, s) = (addr("10.0.0.5:40000"), addr("198.51.100.9:3478"));
    let dtls_hello = dtls_client_hello();
    let relay = addr("10.0.0.5:40001");
    let mut frames = vec![
        udp4(C, S, c, s, &req),
        udp4(S, C, s, c, &req),
        udp4(C, S, c, s, &dtls_hello),
        udp4(C, S, relay, s, &req),
    ];
    // TURN ChannelData after the STUN exchange: nothing else, the flow stays stun.
    for _ in 0..3 {
        frames.push(udp4(
            C,
            S,
            relay,
            s,
            &aperture_traffic::stun::channel_data(0x4001, &[0x80; 40]),
        ));
    }
    let (cat, mut recs) = run(&frames, limits());
    recs.sort_by_key(|r| r.src_port);
    assert_eq!(
        names(&cat, &recs[0]),
        ("dtls".into(), vec!["stun".into(), "dtls".into()])
    );
    assert_eq!(names(&cat, &recs[1]), ("stun".into(), vec!["stun".into()]));
}

/// A call after ICE: STUN connectivity checks, then the media on the same 5-tuple, direct or
/// relayed in TURN ChannelData: the flow is named by its media, after the STUN.
#[test]
fn media_after_stun_is_named_by_the_media() {
    let mut rng = Rng::new(5);
    let req = StunMessage::request(&mut rng, 0x0001).encode(true);
    let (c, s) = (addr("10.0.0.5:40000"), addr("198.51.100.9:50000"));
    let (relayed, turn) = (addr("10.0.0.5:40002"), addr("198.51.100.10:3478"));
    let mut rtp = aperture_traffic::rtp::RtpSource::new(0, 0x1234_5678, 100, 0, 160, "a".into());
    let mut relayed_rtp =
        aperture_traffic::rtp::RtpSource::new(8, 0x0bad_cafe, 7, 0, 160, "b".into());
    let mut frames = vec![
        udp4(C, S, c, s, &req),
        udp4(S, C, s, c, &req),
        udp4(C, S, relayed, turn, &req),
        udp4(S, C, turn, relayed, &req),
    ];
    for _ in 0..4 {
        frames.push(udp4(C, S, c, s, &rtp.packet(&[0x55; 160])));
        let inner = relayed_rtp.packet(&[0x33; 160]);
        frames.push(udp4(
            C,
            S,
            relayed,
            turn,
            &aperture_traffic::stun::channel_data(0x4001, &inner),
        ));
    }
    let (cat, mut recs) = run(&frames, limits());
    recs.sort_by_key(|r| r.src_port);
    assert_eq!(
        names(&cat, &recs[0]),
        ("rtp".into(), vec!["stun".into(), "rtp".into()])
    );
    assert_eq!(
        names(&cat, &recs[1]),
        ("rtp".into(), vec!["stun".into(), "rtp".into()])
    );
    // Decided when the media was: after the STUN exchange and three RTP packets.
    assert!(
        recs[0].app_decided_after > 2,
        "{}",
        recs[0].app_decided_after
    );
}

#[test]
fn app_id_reports_the_decision_and_the_shift_it_made() {
    let mut rng = Rng::new(3);
    let req = StunMessage::request(&mut rng, 0x0001).encode(true);
    let (c, s) = (addr("10.0.0.5:40000"), addr("198.51.100.9:3478"));
    let dtls_hello = dtls_client_hello();
    let cat = Arc::new(Catalog::embedded());
    let mut o = Offline::new(cat.clone(), 64, &Timeouts::default(), limits());
    let frames = [
        udp4(C, S, c, s, &req),
        udp4(S, C, s, c, &req),
        udp4(C, S, c, s, &dtls_hello),
        udp4(C, S, c, s, &dtls_hello),
    ];
    let events: Vec<AppEvent> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| o.packet(1_000_000_000 + i as u64, f, f.len()))
        .collect();
    let (stun, dtls) = (cat.by_name("stun").unwrap(), cat.by_name("dtls").unwrap());
    assert_eq!(
        events,
        [
            AppEvent::Decided(stun),
            AppEvent::None,
            AppEvent::Shifted {
                from: stun,
                to: dtls
            },
            AppEvent::None
        ]
    );
}

#[test]
fn verdicts_for_flows_without_a_match() {
    let (c, s) = ("10.0.0.5:50001", "198.51.100.2:9999");
    let mut frames = vec![
        // A handshake that never completes: incomplete.
        seg(c, s, 1, TcpFlags::SYN, b""),
        // A TLS record header alone (could still be a ClientHello): insufficient-data.
        seg(
            "10.0.0.5:50002",
            "198.51.100.2:443",
            1,
            TcpFlags::ACK | TcpFlags::PSH,
            &[22, 3, 1, 2, 0],
        ),
    ];
    // Random bytes over UDP in both directions, past the budget: unknown-udp.
    let mut rng = Rng::new(9);
    for i in 0..20 {
        let (a, b) = if i % 2 == 0 {
            ("10.0.0.5:7777", "198.51.100.3:8888")
        } else {
            ("198.51.100.3:8888", "10.0.0.5:7777")
        };
        let mut junk = rng.bytes(120);
        junk[0] = 0xff; // not RTP/RTCP/STUN/DTLS-shaped
        frames.push(udp4(C, S, addr(a), addr(b), &junk));
    }
    let (cat, mut recs) = run(&frames, limits());
    recs.sort_by_key(|r| r.src_port);
    let got: Vec<String> = recs.iter().map(|r| names(&cat, r).0).collect();
    assert_eq!(got, ["unknown-udp", "incomplete", "insufficient-data"]);
}

/// An offline engine with two classifier contexts.
fn two_contexts() -> (Arc<Catalog>, Offline) {
    let cat = Arc::new(Catalog::embedded());
    let o = Offline::new(
        cat.clone(),
        64,
        &Timeouts::default(),
        Limits {
            contexts: 2,
            ..limits()
        },
    );
    (cat, o)
}

#[test]
fn a_full_context_pool_reclaims_the_oldest_undecided_flow() {
    // Three unanswered TLS-looking flows that never decide, two contexts: the third takes
    // the first's context; the first settles on its best answer (unknown-tcp here).
    let frames: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            seg(
                &format!("10.0.0.5:{}", 50010 + i),
                "198.51.100.2:443",
                1,
                TcpFlags::ACK | TcpFlags::PSH,
                &[22, 3, 1, 2, 0],
            )
        })
        .collect();
    let (cat, mut o) = two_contexts();
    for f in &frames {
        o.packet(1, f, f.len());
    }
    assert_eq!(o.engine().counters.no_context, 0);
    assert_eq!(o.engine().counters.reclaimed, 1);
    assert_eq!(o.engine().contexts_in_use(), 2);
    let recs = o.finish();
    let unknown: Vec<u16> = recs
        .iter()
        .filter(|r| cat.name(r.app) == "unknown-tcp")
        .map(|r| r.src_port)
        .collect();
    assert_eq!(unknown, [50010], "the oldest lost its context");
}

#[test]
fn an_unanswered_flow_gives_its_context_before_an_answered_one() {
    // A: answered (its server spoke), older. B: unanswered junk. C: new. C takes B's.
    let (cat, mut o) = two_contexts();
    let udp = |src: &str, dst: &str, p: &[u8]| udp4(C, S, addr(src), addr(dst), p);
    let a_out = udp("10.0.0.5:40000", "198.51.100.2:9999", b"\x01\x02hello");
    let a_back = udp("198.51.100.2:9999", "10.0.0.5:40000", b"\x03\x04world");
    let b = udp("10.0.0.6:40001", "198.51.100.3:9998", b"\x05\x06junk!");
    let query = aperture_traffic::dns::query(7, "example.com", 1);
    let c = udp("10.0.0.7:53000", "198.51.100.4:53", &query);
    for (t, f) in [(1, &a_out), (2, &a_back), (3, &b), (4, &c)] {
        o.packet(t, f, f.len());
    }
    assert_eq!(o.engine().counters.reclaimed, 1);
    let recs = o.finish();
    let app_of = |port: u16| {
        recs.iter()
            .find(|r| r.src_port == port)
            .map(|r| cat.name(r.app).to_string())
    };
    assert_eq!(
        app_of(53000).as_deref(),
        Some("dns"),
        "the new flow is classified"
    );
    assert_eq!(
        app_of(40001).as_deref(),
        Some("unknown-udp"),
        "junk gave its context"
    );
    assert_ne!(
        app_of(40000).as_deref(),
        Some("unknown-udp"),
        "A kept classifying"
    );
}

#[test]
fn evidence_lost_to_the_kept_ring_is_counted() {
    // Two contexts keep the evidence of four flows that gave theirs back; six decided DNS
    // flows that live on: the first two ones' entries are reused before they end.
    let (cat, mut o) = two_contexts();
    for i in 0..6u16 {
        let query = aperture_traffic::dns::query(i, &format!("host{i}.example.com"), 1);
        let f = udp4(
            C,
            S,
            addr(&format!("10.0.0.5:{}", 53000 + i)),
            addr("198.51.100.4:53"),
            &query,
        );
        o.packet(1 + i as u64, &f, f.len());
    }
    assert_eq!(o.engine().counters.evidence_lost, 0);
    // Long after: every flow expires, its record written.
    let late = udp4(
        C,
        S,
        addr("10.0.0.9:1"),
        addr("198.51.100.9:9"),
        b"\x00late",
    );
    o.packet(3_600_000_000_000, &late, late.len());
    assert_eq!(o.engine().counters.evidence_lost, 2);
    let recs = o.finish();
    let without: Vec<u16> = recs
        .iter()
        .filter(|r| cat.name(r.app) == "dns" && r.evidence.host.as_str().is_empty())
        .map(|r| r.src_port)
        .collect();
    assert_eq!(without, [53000, 53001]);
}
