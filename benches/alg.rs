//! The SIP ALG's rewrite of one INVITE with SDP (about 500 bytes) under source NAT, against
//! the same edit done with rsip (parse, replace the translated header values and the SDP
//! addresses, serialise) measured beside it. Target: at most 300 ns per message on one core.
//! The pinhole table is cleared each round (the message's call is new every time, as a
//! flood of new calls would be). `alg/invite-500B/rewrite` times the rewrite alone (what
//! rsip's parse-edit-serialise does), without following the call.
use aperture_dataplane::alg::sdp::{MappedMedia, MAX_MEDIA};
use aperture_dataplane::alg::sip::{Change, Endpoint, Xlate};
use aperture_dataplane::alg::{rewrite, sdp, sip, Outcome, Rewriter, SipAlg, SipPacket};
use aperture_dataplane::config::SipAlgConfig;
use aperture_dataplane::flow::Dir;
use aperture_dataplane::nat::{NatTable, PortRange};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rsip::headers::UntypedHeader;

const BODY: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n\
s=-\r\n\
c=IN IP4 10.0.0.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:bob@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@198.51.100.20>\r\n\
From: Alice <sip:alice@10.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5060;transport=udp>\r\n\
User-Agent: bench\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
}

/// The INVITE's sender 10.0.0.1:5060 translated to 203.0.113.7:40000.
fn source_nat() -> Xlate {
    Xlate {
        src: Some(Change {
            from: Endpoint {
                addr: [10, 0, 0, 1],
                port: 5060,
            },
            to: Endpoint {
                addr: [203, 0, 113, 7],
                port: 40000,
            },
        }),
        dst: None,
    }
}

fn aperture(c: &mut Criterion, msg: &[u8]) {
    let cfg = SipAlgConfig::default();
    let mut alg = SipAlg::new(&cfg, 1024, [1, 2]);
    let mut nat = NatTable::new(1024, PortRange::of_worker(0, 1), [3, 4]);
    let x = source_nat();
    let mut now = 1_000u64;
    c.bench_function("alg/invite-500B/aperture", |b| {
        b.iter(|| {
            now += 1;
            let p = SipPacket {
                payload: black_box(msg),
                dir: Dir::Orig,
                proto: 17,
                xlate: x,
                media_nat: &|_| None,
                peer: [198, 51, 100, 20],
                flow_id: 1,
                flow_hash: now,
                app: 3,
                source: 0x0a00_0001,
                now,
            };
            let out = alg.on_message(&p, Some(&mut nat));
            assert_eq!(out, Outcome::Rewritten);
            let n = alg.rewritten().len();
            // The call ends: its pinholes and mappings go (a BYE's work, done directly).
            alg.expire(u64::MAX / 4, 8, Some(&mut nat));
            black_box(n)
        })
    });
}

/// The rewrite alone, what rsip's parse-edit-serialise below does: scan, SDP, the edits the
/// translation asks for (headers, SDP addresses, the media port NAT mapped), Content-Length,
/// the copy out. Following the call (dialog, pinholes, media mappings) is the benchmark
/// above's extra.
fn rewrite_only(c: &mut Criterion, msg: &[u8]) {
    let x = source_nat();
    let mut mapped = [None; MAX_MEDIA];
    mapped[0] = Some(MappedMedia {
        rtp: 40002,
        rtcp: 40003,
    });
    // Kept as the ALG keeps it: the translation's texts are written once for all messages.
    let mut edits = Rewriter::default();
    let mut out = vec![0u8; 65_535];
    let mut m = sip::Message::default();
    // The ALG keeps one of each (scanned message, SDP), as here.
    let mut body = Box::<sdp::Sdp>::default();
    let mut once = |msg: &[u8], edits: &mut Rewriter, out: &mut [u8]| {
        sip::scan_into(msg, true, &mut m).unwrap();
        let sdp = sdp::parse_into(msg, &m, &mut body).then_some(&*body);
        rewrite(msg, &m, sdp, &x, &|_| None, &mapped, edits, out)
            .unwrap()
            .unwrap()
    };
    let n = once(msg, &mut edits, &mut out);
    let text = String::from_utf8_lossy(&out[..n]).to_string();
    assert!(text.contains("203.0.113.7:40000") && text.contains("m=audio 40002"));
    assert!(!text.contains("10.0.0.1"), "{text}");
    c.bench_function("alg/invite-500B/rewrite", |b| {
        b.iter(|| black_box(once(black_box(msg), &mut edits, &mut out)))
    });
    // Its parts, to see where the time goes.
    let mut m = sip::Message::default();
    c.bench_function("alg/invite-500B/part-scan", |b| {
        b.iter(|| black_box(sip::scan_into(black_box(msg), true, &mut m).is_ok()))
    });
    sip::scan_into(msg, true, &mut m).unwrap();
    let mut body = Box::<sdp::Sdp>::default();
    c.bench_function("alg/invite-500B/part-sdp", |b| {
        b.iter(|| black_box(sdp::parse_into(black_box(msg), &m, &mut body)))
    });
    let sdp = sdp::parse(msg, &m);
    c.bench_function("alg/invite-500B/part-edits", |b| {
        b.iter(|| {
            black_box(
                rewrite(
                    black_box(msg),
                    &m,
                    sdp.as_ref(),
                    &x,
                    &|_| None,
                    &mapped,
                    &mut edits,
                    &mut out,
                )
                .unwrap(),
            )
        })
    });
}

fn rsip_edit(msg: &[u8]) -> Vec<u8> {
    let (inside, outside) = ("10.0.0.1", "203.0.113.7");
    let mut m = rsip::SipMessage::try_from(msg).unwrap();
    let rsip::SipMessage::Request(req) = &mut m else {
        unreachable!()
    };
    for h in req.headers.iter_mut() {
        match h {
            rsip::Header::Via(v) => {
                let s = v.value().replace("10.0.0.1:5060", "203.0.113.7:40000");
                v.replace(s)
            }
            rsip::Header::Contact(v) => {
                let s = v.value().replace("10.0.0.1:5060", "203.0.113.7:40000");
                v.replace(s)
            }
            rsip::Header::From(v) => {
                let s = v.value().replace(inside, outside);
                v.replace(s)
            }
            _ => {}
        }
    }
    let body = String::from_utf8_lossy(&req.body).replace(inside, outside);
    for h in req.headers.iter_mut() {
        if let rsip::Header::ContentLength(l) = h {
            l.replace(body.len().to_string());
        }
    }
    req.body = body.into_bytes();
    m.to_string().into_bytes()
}

fn benches(c: &mut Criterion) {
    let msg = invite();
    assert!((450..600).contains(&msg.len()), "{} bytes", msg.len());
    aperture(c, msg.as_bytes());
    rewrite_only(c, msg.as_bytes());
    let out = rsip_edit(msg.as_bytes());
    assert!(String::from_utf8_lossy(&out).contains("203.0.113.7:40000"));
    c.bench_function("alg/invite-500B/rsip", |b| {
        b.iter(|| black_box(rsip_edit(black_box(msg.as_bytes()))))
    });
}

criterion_group!(name = alg; config = Criterion::default(); targets = benches);
criterion_main!(alg);
