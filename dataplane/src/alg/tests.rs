use super::pinhole::Key;
use super::sip::{scan, Change, Endpoint, Kind, Method, ScanError, Xlate};
use super::*;
use crate::config::SipAlgConfig;
use crate::nat::{NatTable, PortRange};

const INSIDE: [u8; 4] = [10, 0, 0, 1];
const OUTSIDE: [u8; 4] = [203, 0, 113, 7];
const SERVER: [u8; 4] = [198, 51, 100, 20];

pub(super) const INVITE: &str = "INVITE sip:bob@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@198.51.100.20>\r\n\
From: Alice <sip:alice@10.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@10.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@10.0.0.1:5060;transport=udp>\r\n\
User-Agent: test\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 142\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 10.0.0.1\r\n\
s=-\r\n\
c=IN IP4 10.0.0.1\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

fn snat_out() -> Xlate {
    Xlate {
        src: Some(Change {
            from: Endpoint {
                addr: INSIDE,
                port: 5060,
            },
            to: Endpoint {
                addr: OUTSIDE,
                port: 40000,
            },
        }),
        dst: None,
    }
}

fn fixed(s: &str) -> Vec<u8> {
    // The test message with Content-Length set to its real body.
    let split = s.find("\r\n\r\n").unwrap() + 4;
    let (head, body) = s.split_at(split);
    let at = head.find("Content-Length: ").unwrap() + 16;
    let end = at + head[at..].find("\r\n").unwrap();
    format!("{}{}{}{}", &head[..at], body.len(), &head[end..], body).into_bytes()
}

fn alg() -> SipAlg {
    SipAlg::new(&SipAlgConfig::default(), 64, [1, 2])
}

fn packet<'a>(payload: &'a [u8], dir: Dir, xlate: Xlate, peer: [u8; 4]) -> SipPacket<'a> {
    SipPacket {
        payload,
        dir,
        proto: proto::UDP,
        xlate,
        media_nat: &|_| None,
        peer,
        flow_id: 77,
        flow_hash: 5,
        app: 3,
        source: u32::from_be_bytes(INSIDE),
        now: 1_000,
    }
}

fn nat_table() -> NatTable {
    NatTable::new(64, PortRange::of_worker(0, 1), [3, 4])
}

#[test]
fn scan_finds_the_parts_of_an_invite() {
    let b = fixed(INVITE);
    let m = scan(&b, true).unwrap();
    assert_eq!(m.kind, Kind::Request(Method::Invite));
    assert_eq!(m.uri.of(&b), b"sip:bob@198.51.100.20");
    assert_eq!(m.call_id.of(&b), b"a84b4c76e66710@10.0.0.1");
    assert!(m.sdp);
    assert_eq!(m.len, b.len());
    assert!(m.body.of(&b).starts_with(b"v=0"));
}

#[test]
fn scan_tells_incomplete_from_malformed() {
    let b = fixed(INVITE);
    assert_eq!(scan(&b[..60], false).unwrap_err(), ScanError::Incomplete);
    assert_eq!(
        scan(&b[..b.len() - 3], false).unwrap_err(),
        ScanError::Incomplete
    );
    assert_eq!(
        scan(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true).unwrap_err(),
        ScanError::Malformed
    );
    let bad_length = INVITE.replace("Content-Length: 142", "Content-Length: 1x2");
    assert_eq!(
        scan(bad_length.as_bytes(), true).unwrap_err(),
        ScanError::Malformed
    );
}

#[test]
fn no_translation_leaves_the_message_byte_identical_and_opens_the_media() {
    let b = fixed(INVITE);
    let mut a = alg();
    let out = a.on_message(&packet(&b, Dir::Orig, Xlate::default(), SERVER), None);
    assert_eq!(out, Outcome::Unchanged);
    // The offer's media at 10.0.0.1:49170/49171, open to the server only until the answer.
    let k = Key {
        proto: proto::UDP,
        addr: INSIDE,
        port: 49170,
    };
    assert!(a.pinholes.admit(k, [192, 0, 2, 99], 2_000).is_none());
    let admitted = a.pinholes.admit(k, SERVER, 2_000).unwrap();
    assert_eq!(admitted.parent, 77);
    assert_eq!(admitted.app, 3);
    let rtcp = Key { port: 49171, ..k };
    assert!(a.pinholes.admit(rtcp, SERVER, 2_000).is_some());
}

#[test]
fn source_nat_rewrites_what_it_changed_and_content_length() {
    let b = fixed(INVITE);
    let mut a = alg();
    let mut nat = nat_table();
    let out = a.on_message(&packet(&b, Dir::Orig, snat_out(), SERVER), Some(&mut nat));
    assert_eq!(out, Outcome::Rewritten);
    let text = String::from_utf8(a.rewritten().to_vec()).unwrap();
    assert!(text.contains("Via: SIP/2.0/UDP 203.0.113.7:40000;branch=z9hG4bK776asdhds;rport\r\n"));
    assert!(text.contains("Contact: <sip:alice@203.0.113.7:40000;transport=udp>\r\n"));
    // From carries the address only: the address changes, no port is added.
    assert!(text.contains("From: Alice <sip:alice@203.0.113.7>;tag=1928301774\r\n"));
    // The Request-URI and To name the server: untouched. Call-ID is not an address.
    assert!(text.starts_with("INVITE sip:bob@198.51.100.20 SIP/2.0\r\n"));
    assert!(text.contains("Call-ID: a84b4c76e66710@10.0.0.1\r\n"));
    assert!(text.contains("o=alice 2890844526 2890844526 IN IP4 203.0.113.7\r\n"));
    assert!(text.contains("c=IN IP4 203.0.113.7\r\n"));
    // The media port keeps its number when this worker has it free.
    assert!(text.contains("m=audio 49170 RTP/AVP 0\r\n"));
    let m = scan(a.rewritten(), true).unwrap();
    let body = m.body.of(a.rewritten());
    let cl: usize = std::str::from_utf8(m.content_length.unwrap().of(a.rewritten()))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cl, body.len());
    assert!(!text.contains("10.0.0.1:"));
    // The media pinhole is on the outside address, and leads inside.
    let k = Key {
        proto: proto::UDP,
        addr: OUTSIDE,
        port: 49170,
    };
    let admitted = a.pinholes.admit(k, SERVER, 2_000).unwrap();
    assert_eq!(admitted.inside, Some((u32::from_be_bytes(INSIDE), 49170)));
}

#[test]
fn a_kept_rewriter_writes_each_translation_own_texts() {
    // The rewriter keeps the last translation's texts: a message under another translation
    // (another flow's) must get that one's addresses and ports, and the first again after it.
    let b = fixed(INVITE);
    let m = scan(&b, true).unwrap();
    let sdp = sdp::parse(&b, &m);
    let mut rw = Rewriter::default();
    let mut out = vec![0u8; 4096];
    let other = Xlate {
        src: Some(Change {
            from: Endpoint {
                addr: INSIDE,
                port: 5060,
            },
            to: Endpoint {
                addr: [192, 0, 2, 77],
                port: 41234,
            },
        }),
        dst: None,
    };
    for (x, via) in [
        (snat_out(), "203.0.113.7:40000;"),
        (other, "192.0.2.77:41234;"),
        (snat_out(), "203.0.113.7:40000;"),
    ] {
        let n = rewrite(
            &b,
            &m,
            sdp.as_ref(),
            &x,
            &|_| None,
            &[None; MAX_MEDIA],
            &mut rw,
            &mut out,
        )
        .unwrap()
        .unwrap();
        let text = String::from_utf8_lossy(&out[..n]).to_string();
        let to = via.split(':').next().unwrap();
        assert!(text.contains(&format!("Via: SIP/2.0/UDP {via}")), "{text}");
        assert!(text.contains(&format!("c=IN IP4 {to}\r\n")), "{text}");
        assert!(
            text.contains(&format!("From: Alice <sip:alice@{to}>")),
            "{text}"
        );
    }
    // No translation: nothing to write, whatever was kept.
    let none = rewrite(
        &b,
        &m,
        sdp.as_ref(),
        &Xlate::default(),
        &|_| None,
        &[None; MAX_MEDIA],
        &mut rw,
        &mut out,
    );
    assert_eq!(none, Ok(None));
}

#[test]
fn the_answer_restricts_the_offer_to_the_answerer_media_and_bye_closes_all() {
    let b = fixed(INVITE);
    let mut a = alg();
    a.on_message(&packet(&b, Dir::Orig, Xlate::default(), SERVER), None);
    let answer = fixed(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;received=10.0.0.1\r\n\
To: Bob <sip:bob@198.51.100.20>;tag=a6c85cf\r\n\
From: Alice <sip:alice@10.0.0.1>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@10.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:bob@198.51.100.20>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\
\r\n\
v=0\r\n\
o=bob 1 1 IN IP4 198.51.100.20\r\n\
s=-\r\n\
c=IN IP4 198.51.100.30\r\n\
t=0 0\r\n\
m=audio 3456 RTP/AVP 0\r\n\
a=rtcp:3460\r\n",
    );
    a.on_message(&packet(&answer, Dir::Reply, Xlate::default(), INSIDE), None);
    let offer = Key {
        proto: proto::UDP,
        addr: INSIDE,
        port: 49170,
    };
    // The media comes from the answer's address, not the signalling server's.
    assert!(a.pinholes.admit(offer, SERVER, 2_000).is_none());
    assert!(a.pinholes.admit(offer, [198, 51, 100, 30], 2_000).is_some());
    let ans = Key {
        proto: proto::UDP,
        addr: [198, 51, 100, 30],
        port: 3460,
    };
    assert!(a.pinholes.admit(ans, INSIDE, 2_000).is_some());
    assert!(a
        .pinholes
        .admit(Key { port: 3457, ..ans }, INSIDE, 2_000)
        .is_none());
    let bye = "BYE sip:bob@198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds7\r\n\
Call-ID: a84b4c76e66710@10.0.0.1\r\n\
CSeq: 231 BYE\r\n\
Content-Length: 0\r\n\r\n";
    a.on_message(
        &packet(bye.as_bytes(), Dir::Orig, Xlate::default(), SERVER),
        None,
    );
    assert!(a.pinholes.is_empty());
    assert!(a.pinholes.admit(ans, INSIDE, 3_000).is_none());
}

#[test]
fn hold_closes_the_holder_media_and_resume_reopens_it() {
    let b = fixed(INVITE);
    let mut a = alg();
    a.on_message(&packet(&b, Dir::Orig, Xlate::default(), SERVER), None);
    let k = Key {
        proto: proto::UDP,
        addr: INSIDE,
        port: 49170,
    };
    assert!(a.pinholes.admit(k, SERVER, 2_000).is_some());
    let hold = fixed(&INVITE.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0"));
    a.on_message(&packet(&hold, Dir::Orig, Xlate::default(), SERVER), None);
    assert!(a.pinholes.admit(k, SERVER, 2_000).is_none());
    let inactive = fixed(&INVITE.replace("a=rtpmap:0 PCMU/8000", "a=inactive"));
    a.on_message(
        &packet(&inactive, Dir::Orig, Xlate::default(), SERVER),
        None,
    );
    assert!(a.pinholes.admit(k, SERVER, 2_000).is_none());
    a.on_message(&packet(&b, Dir::Orig, Xlate::default(), SERVER), None);
    assert!(a.pinholes.admit(k, SERVER, 2_000).is_some());
}

#[test]
fn a_failure_response_closes_an_unanswered_call() {
    let b = fixed(INVITE);
    let mut a = alg();
    a.on_message(&packet(&b, Dir::Orig, Xlate::default(), SERVER), None);
    let busy = "SIP/2.0 486 Busy Here\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
Call-ID: a84b4c76e66710@10.0.0.1\r\n\
CSeq: 314159 INVITE\r\n\
Content-Length: 0\r\n\r\n";
    a.on_message(
        &packet(busy.as_bytes(), Dir::Reply, Xlate::default(), INSIDE),
        None,
    );
    assert!(a.pinholes.is_empty());
}

#[test]
fn responses_inbound_get_the_inside_address_back() {
    let resp = "SIP/2.0 100 Trying\r\n\
v: SIP/2.0/UDP 203.0.113.7:40000;branch=z9hG4bK1;received=203.0.113.7;rport=40000, SIP/2.0/UDP [2001:db8::1]:5060;branch=x\r\n\
f: <sip:alice@203.0.113.7>;tag=1\r\n\
t: <sip:bob@198.51.100.20>\r\n\
i: abc\r\n\
CSeq: 1 INVITE\r\n\
l: 0\r\n\r\n";
    let x = Xlate {
        src: None,
        dst: Some(Change {
            from: Endpoint {
                addr: OUTSIDE,
                port: 40000,
            },
            to: Endpoint {
                addr: INSIDE,
                port: 5060,
            },
        }),
    };
    let mut a = alg();
    assert_eq!(
        a.on_message(&packet(resp.as_bytes(), Dir::Reply, x, INSIDE), None),
        Outcome::Rewritten
    );
    let text = std::str::from_utf8(a.rewritten()).unwrap();
    assert!(text.contains(
        "v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=10.0.0.1;rport=5060, SIP/2.0/UDP [2001:db8::1]:5060;branch=x\r\n"
    ));
    assert!(text.contains("f: <sip:alice@10.0.0.1>;tag=1\r\n"));
    assert!(text.contains("l: 0\r\n"));
}

#[test]
fn folded_headers_and_bare_line_feeds_survive() {
    let msg = concat!(
        "REGISTER sip:198.51.100.20 SIP/2.0\n",
        "Via: SIP/2.0/UDP\n 10.0.0.1:5060\n ;branch=z9hG4bK9\n",
        "Call-ID: r1\n",
        "CSeq: 1 REGISTER\n",
        "Contact: <sip:alice@10.0.0.1>\n",
        "  ;expires=600\n",
        "Content-Length: 0\n\n"
    );
    let mut a = alg();
    let mut nat = nat_table();
    assert_eq!(
        a.on_message(
            &packet(msg.as_bytes(), Dir::Orig, snat_out(), SERVER),
            Some(&mut nat)
        ),
        Outcome::Rewritten
    );
    let text = std::str::from_utf8(a.rewritten()).unwrap();
    assert_eq!(
        text,
        msg.replace("10.0.0.1:5060", "203.0.113.7:40000")
            .replace("alice@10.0.0.1>", "alice@203.0.113.7:40000>")
    );
}

#[test]
fn registration_opens_the_contact_to_the_registrar_for_its_expiry() {
    let msg = "REGISTER sip:198.51.100.20 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK9\r\n\
Call-ID: reg-1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:alice@10.0.0.1:5060>\r\n\
Expires: 60\r\n\
Content-Length: 0\r\n\r\n";
    let mut a = alg();
    let mut nat = nat_table();
    // The signalling flow's own mapping, as NAT made it for the REGISTER.
    let (_, ext) = nat
        .hold(
            proto::UDP,
            u32::from_be_bytes(INSIDE),
            5060,
            u32::from_be_bytes(OUTSIDE),
        )
        .unwrap();
    let mut x = snat_out();
    x.src.as_mut().unwrap().to.port = ext;
    a.on_message(
        &packet(msg.as_bytes(), Dir::Orig, x, SERVER),
        Some(&mut nat),
    );
    let k = Key {
        proto: proto::UDP,
        addr: OUTSIDE,
        port: ext,
    };
    let got = a.pinholes.admit(k, SERVER, 2_000).unwrap();
    assert_eq!(got.inside, Some((u32::from_be_bytes(INSIDE), 5060)));
    assert!(a.pinholes.admit(k, [192, 0, 2, 1], 2_000).is_none());
    // Past Expires and its grace: gone.
    a.expire(1_000 + 93 * NS, 1 << 20, Some(&mut nat));
    assert!(a.pinholes.admit(k, SERVER, 94 * NS).is_none());
    // A new registration, then Expires 0, removes it at once.
    a.on_message(
        &packet(msg.as_bytes(), Dir::Orig, x, SERVER),
        Some(&mut nat),
    );
    assert!(!a.pinholes.is_empty());
    let unreg = msg.replace("Expires: 60", "Expires: 0");
    a.on_message(
        &packet(unreg.as_bytes(), Dir::Orig, x, SERVER),
        Some(&mut nat),
    );
    assert!(a.pinholes.is_empty());
}

#[test]
fn a_malformed_message_is_counted_and_dropped_only_when_translated() {
    let junk = b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nContent-Length: 5\r\n\r\n";
    let mut a = alg();
    assert_eq!(
        a.on_message(&packet(junk, Dir::Orig, Xlate::default(), SERVER), None),
        Outcome::Unchanged
    );
    assert_eq!(
        a.on_message(&packet(junk, Dir::Orig, snat_out(), SERVER), None),
        Outcome::Drop
    );
    assert_eq!(a.counters.malformed, 2);
}

#[test]
fn ipv6_and_names_are_left_alone() {
    let msg = INVITE
        .replace("c=IN IP4 10.0.0.1", "c=IN IP6 2001:db8::5")
        .replace(
            "Contact: <sip:alice@10.0.0.1:5060;transport=udp>",
            "Contact: <sip:alice@[2001:db8::5]:5060>, <sip:alice@pc.example.com>",
        );
    let b = fixed(&msg);
    let mut a = alg();
    let mut nat = nat_table();
    a.on_message(&packet(&b, Dir::Orig, snat_out(), SERVER), Some(&mut nat));
    let text = std::str::from_utf8(a.rewritten()).unwrap();
    assert!(
        text.contains("Contact: <sip:alice@[2001:db8::5]:5060>, <sip:alice@pc.example.com>\r\n")
    );
    assert!(text.contains("c=IN IP6 2001:db8::5\r\n"));
    assert!(text.contains("m=audio 49170 RTP/AVP 0\r\n"));
}

fn tcp_packet<'a>(payload: &'a [u8], xlate: Xlate) -> SipPacket<'a> {
    SipPacket {
        proto: proto::TCP,
        ..packet(payload, Dir::Orig, xlate, SERVER)
    }
}

/// The same INVITE on TCP, rewritten whole, for comparison.
fn rewritten_whole(msg: &[u8]) -> Vec<u8> {
    let mut a = alg();
    let mut nat = nat_table();
    match a.on_segment(&tcp_packet(msg, snat_out()), 1, 1000, Some(&mut nat)) {
        Segment::Emit { seq, .. } => assert_eq!(seq, 1000),
        s => panic!("not rewritten: {s:?}"),
    }
    a.rewritten().to_vec()
}

#[test]
fn tcp_segment_with_two_messages_rewrites_both_and_shifts_later_numbers() {
    let one = fixed(INVITE);
    let two: Vec<u8> = [&one[..], b"\r\n\r\n", &one[..]].concat();
    let mut a = alg();
    let mut nat = nat_table();
    let seg = a.on_segment(&tcp_packet(&two, snat_out()), 1, 1000, Some(&mut nat));
    let Segment::Emit { seq, segment } = seg else {
        panic!("not rewritten: {seg:?}");
    };
    assert_eq!((seq, segment), (1000, two.len()));
    let out = a.rewritten().to_vec();
    let whole = rewritten_whole(&one);
    assert_eq!(out, [&whole[..], b"\r\n\r\n", &whole[..]].concat());
    assert_eq!(a.counters.rewritten, 2);
    // The next segment's sequence number moves by the growth, the reply's ack back.
    let grow = out.len() as i64 - two.len() as i64;
    let next = 1000 + two.len() as u32;
    let (s, ack) = a.streams.shift(1, Dir::Orig, next, 0);
    assert_eq!(s as i64, next as i64 + grow);
    let (_, back) = a.streams.shift(1, Dir::Reply, 5, s);
    assert_eq!(back, next);
    assert_eq!(ack, 0);
    // A retransmission of the rewritten segment maps as the first time, and is rewritten
    // the same.
    let again = a.on_segment(&tcp_packet(&two, snat_out()), 1, 1000, Some(&mut nat));
    assert_eq!(
        again,
        Segment::Emit {
            seq: 1000,
            segment: two.len()
        }
    );
    assert_eq!(a.rewritten(), &out[..]);
    assert_eq!(
        a.streams.shift(1, Dir::Orig, next, 0).0 as i64,
        next as i64 + grow
    );
}

#[test]
fn tcp_message_split_across_segments_is_held_then_rewritten_whole() {
    let one = fixed(INVITE);
    let whole = rewritten_whole(&one);
    for cut in [1, 30, one.len() / 2, one.len() - 40, one.len() - 1] {
        let mut a = alg();
        let mut nat = nat_table();
        let (p1, p2) = one.split_at(cut);
        let s1 = a.on_segment(&tcp_packet(p1, snat_out()), 2, 7000, Some(&mut nat));
        assert_eq!(s1, Segment::Held, "cut at {cut}");
        // The sender's retransmission of the held part is consumed too.
        let r = a.on_segment(&tcp_packet(p1, snat_out()), 2, 7000, Some(&mut nat));
        assert_eq!(r, Segment::Held);
        // A segment beyond the gap is out of order.
        let o = a.on_segment(&tcp_packet(b"x", snat_out()), 2, 9_000_000, Some(&mut nat));
        assert_eq!(o, Segment::Reordered);
        let s2 = a.on_segment(
            &tcp_packet(p2, snat_out()),
            2,
            7000 + cut as u32,
            Some(&mut nat),
        );
        let Segment::Emit { seq, segment } = s2 else {
            panic!("cut at {cut}: {s2:?}");
        };
        assert_eq!(seq, 7000, "the message leaves at the held bytes' number");
        assert_eq!(segment, p1.len().max(p2.len()));
        assert_eq!(a.rewritten(), &whole[..], "cut at {cut}");
        // One of the segments it became was lost: the sender's retransmission of either
        // part sends the whole rewritten message again.
        for (part, at) in [(p1, 7000), (p2, 7000 + cut as u32)] {
            let again = a.on_segment(&tcp_packet(part, snat_out()), 2, at, Some(&mut nat));
            assert_eq!(again, Segment::Emit { seq: 7000, segment }, "cut at {cut}");
            assert_eq!(a.rewritten(), &whole[..], "cut at {cut}");
        }
        assert_eq!(a.streams.counters.held, 2);
        assert_eq!(a.streams.counters.reordered, 1);
    }
}

#[test]
fn tcp_message_tail_after_a_whole_one_is_held_and_the_whole_one_sent() {
    let one = fixed(INVITE);
    let whole = rewritten_whole(&one);
    let mut a = alg();
    let mut nat = nat_table();
    let data: Vec<u8> = [&one[..], &one[..100]].concat();
    let s = a.on_segment(&tcp_packet(&data, snat_out()), 3, 0, Some(&mut nat));
    assert_eq!(
        s,
        Segment::Emit {
            seq: 0,
            segment: data.len()
        }
    );
    assert_eq!(a.rewritten(), &whole[..]);
    let s = a.on_segment(
        &tcp_packet(&one[100..], snat_out()),
        3,
        data.len() as u32,
        Some(&mut nat),
    );
    let grow = whole.len() as u32 - one.len() as u32;
    assert_eq!(
        s,
        Segment::Emit {
            seq: one.len() as u32 + grow,
            segment: data.len()
        }
    );
    assert_eq!(a.rewritten(), &whole[..]);
}

#[test]
fn untranslated_tcp_is_never_held_or_changed_but_split_messages_are_followed() {
    let one = fixed(INVITE);
    let mut a = alg();
    let (p1, p2) = one.split_at(200);
    let none = Xlate::default();
    assert_eq!(
        a.on_segment(&tcp_packet(p1, none), 4, 10, None),
        Segment::Unchanged
    );
    assert_eq!(a.pinholes.counters.opened, 0);
    assert_eq!(
        a.on_segment(&tcp_packet(p2, none), 4, 210, None),
        Segment::Unchanged
    );
    assert!(a.pinholes.counters.opened > 0, "the INVITE's media is open");
    assert_eq!(a.streams.counters.held, 0);
    assert!(!a.streams.adjusts(4));
}

#[test]
fn tcp_message_larger_than_a_buffer_is_unrewritable() {
    let one = fixed(INVITE);
    let config = SipAlgConfig {
        tcp_buffer_bytes: 100,
        ..SipAlgConfig::default()
    };
    let mut a = SipAlg::new(&config, 64, [1, 2]);
    let mut nat = nat_table();
    let (p1, _) = one.split_at(300);
    assert_eq!(
        a.on_segment(&tcp_packet(p1, snat_out()), 5, 0, Some(&mut nat)),
        Segment::Drop
    );
    assert_eq!(a.streams.counters.unbuffered, 1);
    let pass = SipAlgConfig {
        unrewritable: crate::config::Unrewritable::Pass,
        ..config
    };
    let mut a = SipAlg::new(&pass, 64, [1, 2]);
    assert_eq!(
        a.on_segment(&tcp_packet(p1, snat_out()), 5, 0, Some(&mut nat)),
        Segment::Unchanged,
        "passed untouched"
    );
    assert_eq!(a.counters.unrewritable, 1);
}

#[test]
fn a_stream_starting_like_sip_is_told_from_others() {
    use super::sip::starts_like_sip;
    for yes in [
        &b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x"[..],
        b"\r\n\r\nREGISTER sips:example.com SIP/2.0\r\n",
        b"SIP/2.0 200 OK\r\n",
        b"OPTIONS sip:a",
        b"MESSAGE tel:+1555",
    ] {
        assert!(starts_like_sip(yes), "{:?}", String::from_utf8_lossy(yes));
    }
    for no in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n"[..],
        b"INVITE sip:bob@example.com HTTP/1.1\r\n",
        b"invite sip:a SIP/2.0\r\n",
        b"\x16\x03\x01\x02\x00\x01",
        b"SIP",
        b"",
    ] {
        assert!(!starts_like_sip(no), "{:?}", String::from_utf8_lossy(no));
    }
}

#[test]
fn sip_in_turn_channel_data_is_rewritten_in_its_frame_and_stun_passes() {
    let msg = fixed(INVITE);
    let whole = {
        let mut a = alg();
        let mut nat = nat_table();
        a.on_message(&packet(&msg, Dir::Orig, snat_out(), SERVER), Some(&mut nat));
        a.rewritten().to_vec()
    };
    for pad in [false, true] {
        let mut frame = vec![0x40, 0x01];
        frame.extend((msg.len() as u16).to_be_bytes());
        frame.extend(&msg);
        if pad {
            frame.resize(frame.len() + (4 - msg.len() % 4) % 4, 0);
        }
        let mut a = alg();
        let mut nat = nat_table();
        let o = a.on_datagram(
            &packet(&frame, Dir::Orig, snat_out(), SERVER),
            Some(&mut nat),
        );
        assert_eq!(o, Outcome::Rewritten);
        let out = a.rewritten();
        assert_eq!(&out[..2], &[0x40, 0x01]);
        let n = u16::from_be_bytes([out[2], out[3]]) as usize;
        assert_eq!(&out[4..4 + n], &whole[..]);
        if pad {
            assert!(out.len().is_multiple_of(4), "padded as it came");
        } else {
            assert_eq!(out.len(), 4 + n, "not padded, as it came");
        }
        assert!(a.pinholes.counters.opened > 0, "its media is followed");
    }
    // A STUN binding request and relayed RTP on the same flow: not SIP, untouched, never
    // dropped even when translated.
    let mut a = alg();
    let stun = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    let rtp_in_channel = [0x40, 0x02, 0x00, 0x04, 0x80, 0x08, 0x00, 0x01];
    for d in [&stun[..], &rtp_in_channel[..]] {
        assert_eq!(
            a.on_datagram(&packet(d, Dir::Orig, snat_out(), SERVER), None),
            Outcome::Unchanged
        );
    }
    assert_eq!(a.counters.not_sip, 2);
    assert_eq!(a.counters.malformed, 0);
}

proptest::proptest! {
    /// The one-pass IPv4 literal parser agrees with the grammar (RFC 3261 IPv4address:
    /// four groups of one to three digits, each at most 255) on digit-and-dot strings.
    #[test]
    fn parse_ipv4_agrees_with_the_grammar(s in "[0-9.]{0,17}") {
        let groups: Vec<&str> = s.split('.').collect();
        let want = (groups.len() == 4
            && groups.iter().all(|g| (1..=3).contains(&g.len()) && g.parse::<u32>().unwrap() <= 255))
        .then(|| {
            let v: Vec<u8> = groups.iter().map(|g| g.parse::<u8>().unwrap()).collect();
            [v[0], v[1], v[2], v[3]]
        });
        proptest::prop_assert_eq!(sip::parse_ipv4(s.as_bytes()), want);
    }

    /// Numbers and addresses written by `Text` read as std writes them.
    #[test]
    fn text_writes_numbers_and_addresses_as_std(v in proptest::prelude::any::<u64>(),
                                               a in proptest::prelude::any::<[u8; 4]>()) {
        let mut t = edit::Text::default();
        t.number(v);
        let want = v.to_string();
        proptest::prop_assert_eq!(t.as_bytes(), want.as_bytes());
        let mut t = edit::Text::default();
        t.ipv4(a);
        let want = std::net::Ipv4Addr::from(a).to_string();
        proptest::prop_assert_eq!(t.as_bytes(), want.as_bytes());
    }
}
