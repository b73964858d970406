//! Arbitrary datagrams into the SIP ALG, with and without a translation: never a panic; a
//! message it rewrites still scans as SIP and its Content-Length is its body's (inside the
//! TURN ChannelData frame it came in, whose length then covers it); without a translation it
//! never rewrites anything. The same bytes as a TCP stream cut in two
//! segments at a point the input picks: never a panic; an emitted rewrite holds only whole
//! messages that scan, never more bytes than were given, and nothing is emitted untranslated.
#![no_main]
use aperture_dataplane::alg::sip::{scan, Change, Endpoint, Xlate};
use aperture_dataplane::alg::{Outcome, Segment, SipAlg, SipPacket};
use aperture_dataplane::config::SipAlgConfig;
use aperture_dataplane::flow::Dir;
use aperture_dataplane::nat::{NatTable, PortRange};
use libfuzzer_sys::fuzz_target;

fn check(alg: &mut SipAlg, nat: &mut NatTable, data: &[u8], xlate: Xlate, dir: Dir) {
    let p = SipPacket {
        payload: data,
        dir,
        proto: 17,
        xlate,
        media_nat: &|a| (a[0] == 10).then_some([198, 51, 100, 9]),
        peer: [198, 51, 100, 20],
        flow_id: 1,
        flow_hash: 2,
        app: 3,
        source: 0x0a00_0001,
        now: 1_000,
    };
    match alg.on_datagram(&p, Some(nat)) {
        Outcome::Rewritten => {
            assert!(!xlate.is_none(), "rewrote without a translation");
            let out = match channel_data(data) {
                Some(padded) => {
                    let out = alg.rewritten();
                    assert_eq!(out[..2], data[..2], "the channel is kept");
                    let n = u16::from_be_bytes([out[2], out[3]]) as usize;
                    let pad = if padded { (4 - n % 4) % 4 } else { 0 };
                    assert_eq!(out.len(), 4 + n + pad, "ChannelData length and padding");
                    &out[4..4 + n]
                }
                None => alg.rewritten(),
            };
            let skip = out
                .iter()
                .take_while(|&&c| c == b'\r' || c == b'\n')
                .count();
            let m = scan(&out[skip..], true).expect("a rewritten message scans");
            if let Some(cl) = m.content_length {
                let n: usize = std::str::from_utf8(cl.of(&out[skip..]))
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(n, (m.body.end - m.body.start) as usize);
            }
        }
        Outcome::Unchanged | Outcome::Drop => {}
    }
}

/// Whether `b` is a TURN ChannelData frame (RFC 8656: channel 0x4000-0x7fff, a length, the
/// data and at most 3 bytes of padding), and whether it is padded.
fn channel_data(b: &[u8]) -> Option<bool> {
    let channel = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let len = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize;
    let rest = b.len().checked_sub(4 + len)?;
    ((0x4000..=0x7fff).contains(&channel) && rest < 4).then_some(rest > 0)
}

fn stream(alg: &mut SipAlg, nat: &mut NatTable, data: &[u8], xlate: Xlate) {
    let cut = data.first().map_or(0, |&c| c as usize % (data.len() + 1));
    let mut seq = 7u32;
    for part in [&data[..cut], &data[cut..]] {
        if part.is_empty() {
            continue;
        }
        let p = SipPacket {
            payload: part,
            dir: Dir::Orig,
            proto: 6,
            xlate,
            media_nat: &|_| None,
            peer: [198, 51, 100, 20],
            flow_id: 1,
            flow_hash: 2,
            app: 3,
            source: 0x0a00_0001,
            now: 1_000,
        };
        if let Segment::Emit { .. } = alg.on_segment(&p, 5, seq, Some(nat)) {
            assert!(!xlate.is_none(), "emitted on an untranslated stream");
            let out = alg.rewritten();
            let mut at = 0;
            while at < out.len() {
                let skip = out[at..]
                    .iter()
                    .take_while(|&&c| c == b'\r' || c == b'\n')
                    .count();
                at += skip;
                if at == out.len() {
                    break;
                }
                let m = scan(&out[at..], false).expect("an emitted message scans whole");
                at += m.len;
            }
        }
        seq = seq.wrapping_add(part.len() as u32);
    }
    alg.ended(5);
}

fuzz_target!(|data: &[u8]| {
    // Small tables: each input starts from nothing (a crash must reproduce alone).
    let cfg = SipAlgConfig {
        pinholes: 64,
        dialogs: 16,
        ..SipAlgConfig::default()
    };
    let mut alg = SipAlg::new(&cfg, 16, [1, 2]);
    let mut nat = NatTable::new(64, PortRange::of_worker(0, 1), [3, 4]);
    let inside = Endpoint {
        addr: [10, 0, 0, 1],
        port: 5060,
    };
    let outside = Endpoint {
        addr: [203, 0, 113, 7],
        port: 40000,
    };
    check(&mut alg, &mut nat, data, Xlate::default(), Dir::Orig);
    let out = Xlate {
        src: Some(Change {
            from: inside,
            to: outside,
        }),
        dst: None,
    };
    check(&mut alg, &mut nat, data, out, Dir::Orig);
    let back = Xlate {
        src: None,
        dst: Some(Change {
            from: outside,
            to: inside,
        }),
    };
    check(&mut alg, &mut nat, data, back, Dir::Reply);
    stream(&mut alg, &mut nat, data, Xlate::default());
    stream(&mut alg, &mut nat, data, out);
    // Expire everything: the tables stay consistent after any sequence of messages.
    alg.expire(u64::MAX / 2, 1 << 16, Some(&mut nat));
});
