//! App-ID on FaceTime calls from the project's generator (`aperture_traffic::facetime`), replayed
//! through the real DPDK path. No flow-intact public FaceTime capture exists (see the corpus
//! README), so the calls are built from what Apple documents; `FacetimeSession` says what each
//! call negotiated, and every flow of every call is checked against it:
//! - the push connection (TLS to 17.0.0.0/8:5223, SNI courier.push.apple.com) is
//!   `apple-push-notifications` on ssl;
//! - the identity connection on 443 is `facetime` on ssl when its SNI is facetime.apple.com,
//!   otherwise an application facetime depends on;
//! - STUN to 3478 is `stun`; a TURN allocation that carries the call's media in ChannelData
//!   is [stun, rtp, ichat-av, facetime];
//! - the Viceroy SIP dialog is `facetime` with path [sip, facetime];
//! - direct RTP and RTCP on the SDP's ports (16393-16402) are `ichat-av` on rtp / rtcp, and
//!   then `facetime`: the SIP ALG's pinholes let them in as the media of a facetime call;
//! - DNS lookups before the TLS connections are `dns`;
//!
//! and no flow at all is anything but facetime or an application facetime depends on or rides
//! on (never unknown, insufficient-data or incomplete).
mod common;
#[path = "common/ndpi.rs"]
mod ndpi;

use aperture_traffic::facetime::{
    facetime_capture, facetime_session, FacetimeParams, FacetimeSession,
};
use aperture_traffic::{write_pcap_file, Rng, TimedFrame};
use common::*;
use ndpi::{OurFlow, Tuple};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

/// What a FaceTime call's flows may be: facetime, what it depends on or rides on, Apple's push
/// service (how calls arrive) and DNS.
const ALLOWED: &[&str] = &[
    "facetime",
    "ssl",
    "apple-push-notifications",
    "stun",
    "sip",
    "jabber",
    "ichat-av",
    "dns",
];
const RESOLVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const MS: u64 = 1_000_000;

fn ep(a: SocketAddrV4) -> (IpAddr, u16) {
    (IpAddr::V4(*a.ip()), a.port())
}

/// One flow a call must have produced and the application path it must have (`None`: any
/// path whose application is in `ALLOWED`).
struct Expected {
    what: &'static str,
    tuple: Tuple,
    path: Option<&'static [&'static str]>,
}

fn expected(s: &FacetimeSession) -> Vec<Expected> {
    let mut v = vec![
        Expected {
            what: "push 5223",
            tuple: Tuple::new("tcp", ep(s.push.client), ep(s.push.server)),
            path: Some(&["ssl", "apple-push-notifications"]),
        },
        Expected {
            what: if s.ess.sni == "facetime.apple.com" {
                "tls 443 facetime.apple.com"
            } else {
                "tls 443 other ESS name"
            },
            tuple: Tuple::new("tcp", ep(s.ess.client), ep(s.ess.server)),
            path: (s.ess.sni == "facetime.apple.com").then_some(&["ssl", "facetime"][..]),
        },
        // Relayed, the call's audio flows through the client's TURN allocation: the flow is
        // named by its media after the STUN before it (ichat-av by Apple's media port on
        // the client's side), and then facetime: its client end is the endpoint the call's
        // offer described (the SIP ALG's pinhole there names the call).
        Expected {
            what: if s.turn { "stun+turn audio" } else { "stun" },
            tuple: Tuple::new("udp", ep(s.stun_client), ep(s.stun_server)),
            path: Some(if s.turn {
                &["stun", "rtp", "ichat-av", "facetime"]
            } else {
                &["stun"]
            }),
        },
        Expected {
            what: "sip viceroy",
            tuple: Tuple::new("udp", ep(s.sip_client), ep(s.sip_peer)),
            path: Some(&["sip", "facetime"]),
        },
    ];
    for m in std::iter::once(&s.audio).chain(s.video.as_ref()) {
        let client = SocketAddrV4::new(s.client_ip, m.client_port);
        if s.turn {
            // Relayed: the stream's own allocation on the TURN server carries its media.
            if m.client_port != s.stun_client.port() {
                v.push(Expected {
                    what: "turn video",
                    tuple: Tuple::new("udp", ep(client), ep(s.stun_server)),
                    path: Some(&["stun", "rtp", "ichat-av", "facetime"]),
                });
            }
            continue;
        }
        let video = m.kind == "video";
        v.push(Expected {
            what: if video { "rtp video" } else { "rtp audio" },
            tuple: Tuple::new("udp", ep(client), ep(m.peer)),
            path: Some(&["rtp", "ichat-av", "facetime"]),
        });
        if m.client_rtcp + m.peer_rtcp > 0 {
            let c = SocketAddrV4::new(s.client_ip, m.client_port + 1);
            let p = SocketAddrV4::new(*m.peer.ip(), m.peer.port() + 1);
            v.push(Expected {
                what: if video { "rtcp video" } else { "rtcp audio" },
                tuple: Tuple::new("udp", ep(c), ep(p)),
                path: Some(&["rtcp", "ichat-av", "facetime"]),
            });
        }
    }
    v
}

/// Calls with DNS lookups and video, half of them relayed: what `facetime_capture` does not
/// make (it has no resolver and audio only).
fn capture_with_dns_and_video(seed: u64, sessions: u8) -> (Vec<FacetimeSession>, Vec<TimedFrame>) {
    let mut rng = Rng::new(seed);
    let gateway = rng.mac();
    let mut t = 1_700_000_000 * 1_000 * MS;
    let mut all = Vec::new();
    let mut frames = Vec::new();
    for i in 0..sessions {
        let mut p = FacetimeParams::new(Ipv4Addr::new(10, 0, 1, 10 + i), rng.mac(), gateway);
        p.resolver = Some(RESOLVER);
        p.video = true;
        p.turn = i % 2 == 1;
        p.media_ms = rng.range(2_000, 4_000);
        let (s, f) = facetime_session(&mut rng.fork(), t, &p);
        all.push(s);
        frames.extend(f);
        t += rng.range(500 * MS, 2_000 * MS);
    }
    frames.sort_by_key(|f| f.0);
    (all, frames)
}

#[test]
fn every_flow_of_every_facetime_call_is_facetime_or_what_it_depends_on() {
    let mut captures: Vec<(String, Vec<FacetimeSession>, Vec<TimedFrame>)> = Vec::new();
    for (seed, turn) in [(11, false), (12, false), (13, true), (14, true)] {
        let (s, f) = facetime_capture(seed, 30, turn);
        captures.push((format!("facetime_capture({seed}, 30, {turn})"), s, f));
    }
    let (s, f) = capture_with_dns_and_video(15, 12);
    captures.push(("12 calls with DNS and video".into(), s, f));
    let sessions: usize = captures.iter().map(|c| c.1.len()).sum();
    assert!(sessions >= 100, "{sessions} sessions");

    let mut table: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0;
    for (label, calls, frames) in &captures {
        let dir = TempDir::new("facetime");
        let pcap = dir.path().join("calls.pcap");
        write_pcap_file(&pcap, frames).unwrap();
        let r = replay(&pcap, &dir.path().join("replay"), None);
        let flows: Vec<OurFlow> = r.flows.iter().map(OurFlow::from_json).collect();
        let mut claimed = vec![false; flows.len()];
        let mut fail = |msg: String| failures.push(format!("{label}: {msg}"));

        for (n, s) in calls.iter().enumerate() {
            let mut want = expected(s);
            if s.turn {
                assert_eq!(want.len(), 4 + s.video.is_some() as usize);
            }
            // DNS lookups have random client ports: every flow to the resolver is one.
            for (i, f) in flows.iter().enumerate() {
                let ends = [f.tuple.lo, f.tuple.hi];
                let is_lookup = f.tuple.proto == "udp"
                    && ends.contains(&(IpAddr::V4(RESOLVER), 53))
                    && ends.iter().any(|e| e.0 == IpAddr::V4(s.client_ip));
                if is_lookup {
                    want.push(Expected {
                        what: "dns",
                        tuple: f.tuple.clone(),
                        path: Some(&["dns"]),
                    });
                    claimed[i] = true;
                }
            }
            for e in &want {
                let mine: Vec<usize> = (0..flows.len())
                    .filter(|i| flows[*i].tuple == e.tuple)
                    .collect();
                if mine.is_empty() {
                    fail(format!("call {n} ({}): no flow {}", e.what, e.tuple));
                    continue;
                }
                for i in mine {
                    claimed[i] = true;
                    let f = &flows[i];
                    checked += 1;
                    *table.entry((e.what, f.describe())).or_default() += 1;
                    let consistent = f.path.last() == Some(&f.app);
                    let path_ok = e
                        .path
                        .is_none_or(|p| f.path.iter().map(String::as_str).eq(p.iter().copied()));
                    if !consistent || !path_ok || !ALLOWED.contains(&f.app.as_str()) {
                        let want = e
                            .path
                            .map_or_else(|| format!("one of {ALLOWED:?}"), |p| p.join(">"));
                        fail(format!(
                            "call {n} {} {}: got {}, want {want}",
                            e.what,
                            e.tuple,
                            f.describe()
                        ));
                    }
                }
            }
        }
        for (f, _) in flows.iter().zip(&claimed).filter(|(_, c)| !**c) {
            fail(format!(
                "flow {} ({}) belongs to no call",
                f.tuple,
                f.describe()
            ));
        }
    }

    println!(
        "{:<28} {:<56} {:>6}",
        "flow of the call", "our application [path]", "flows"
    );
    for ((what, ours), n) in &table {
        println!("{what:<28} {ours:<56} {n:>6}");
    }
    println!(
        "\n{sessions} calls, {checked} flows checked, {} wrong",
        failures.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    assert!(checked >= sessions * 5, "{checked} flows checked");
    // Two lookups (push, identity) per call of the capture that has a resolver.
    let lookups: usize = table
        .iter()
        .filter(|((w, _), _)| *w == "dns")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(lookups, 2 * 12, "DNS lookups");
    const SHOWN: usize = 12;
    assert!(
        failures.is_empty(),
        "{} flows are wrong (all listed above with --nocapture), e.g.:\n{}",
        failures.len(),
        failures[..failures.len().min(SHOWN)].join("\n")
    );
}
