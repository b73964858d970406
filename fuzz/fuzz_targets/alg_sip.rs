//! Arbitrary datagrams into the SIP ALG, with and without a translation: never a panic; a
//! message it rewrites still scans as SIP and its Content-Length is its body's; without a
//! translation it never rewrites anything.
#![no_main]
use aperture_dataplane::alg::sip::{scan, Change, Endpoint, Xlate};
use aperture_dataplane::alg::{Outcome, SipAlg, SipPacket};
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
    match alg.on_message(&p, Some(nat)) {
        Outcome::Rewritten => {
            assert!(!xlate.is_none(), "rewrote without a translation");
            let out = alg.rewritten();
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
    // Expire everything: the tables stay consistent after any sequence of messages.
    alg.expire(u64::MAX / 2, 1 << 16, Some(&mut nat));
});
