//! App-ID on the corpus captures that have no nDPI results, checked against tshark's reading of
//! the same packets, through the real DPDK replay path:
//! - sip-calls: every flow tshark dissects as SIP is `sip` (or `facetime` on sip), and every
//!   RTP/RTCP flow on an address and port that an SDP `c=`/`m=` line of the capture negotiated
//!   is `rtp` (the `m=` port) or `rtcp` (the port above it), or `ichat-av` in 16384-16403;
//! - ndpi/http_on_sip_port.pcap: HTTP on port 5060 is `web-browsing`, not `sip`;
//! - mix/zeek_tls_xmpp-starttls.pcap: an XMPP stream that turns to TLS is `jabber`.
mod common;
#[path = "common/ndpi.rs"]
mod ndpi;

use common::*;
use ndpi::{OurFlow, Tuple};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

/// The 5-tuples of the frames tshark's display `filter` selects, with their frame counts.
/// `decode` is a tshark `-d` rule, if any.
fn tshark_tuples(pcap: &Path, filter: &str, decode: Option<&str>) -> BTreeMap<Tuple, u64> {
    let decode_args = decode.map(|d| ["-d", d]);
    let text = tshark(
        pcap,
        &[
            decode_args.as_ref().map_or(&[][..], |a| &a[..]),
            &[
                "-Y",
                filter,
                "-T",
                "fields",
                "-E",
                "occurrence=f",
                "-e",
                "ip.src",
                "-e",
                "ipv6.src",
                "-e",
                "ip.dst",
                "-e",
                "ipv6.dst",
                "-e",
                "udp.srcport",
                "-e",
                "udp.dstport",
                "-e",
                "tcp.srcport",
                "-e",
                "tcp.dstport",
            ],
        ]
        .concat(),
    );
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 8 {
            continue;
        }
        let ip = |v4: &str, v6: &str| -> Option<IpAddr> {
            [v4, v6].iter().find(|s| !s.is_empty())?.parse().ok()
        };
        let (Some(src), Some(dst)) = (ip(c[0], c[1]), ip(c[2], c[3])) else {
            continue;
        };
        let (proto, sp, dp) = if !c[4].is_empty() {
            ("udp", c[4], c[5])
        } else if !c[6].is_empty() {
            ("tcp", c[6], c[7])
        } else {
            continue;
        };
        let t = Tuple::new(
            proto,
            (src, sp.parse().unwrap()),
            (dst, dp.parse().unwrap()),
        );
        *out.entry(t).or_default() += 1;
    }
    out
}

/// Media endpoints an SDP body of the capture negotiated: (address from `c=`, port from `m=`).
fn sdp_media(pcap: &Path) -> BTreeSet<(IpAddr, u16)> {
    let text = tshark(
        pcap,
        &[
            "-Y",
            "sdp",
            "-T",
            "fields",
            "-E",
            "aggregator=|",
            "-e",
            "sdp.connection_info",
            "-e",
            "sdp.media",
        ],
    );
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let (conns, media) = line.split_once('\t').unwrap_or((line, ""));
        // "IN IP4 200.57.7.196" (session and media level), "audio 40376 RTP/AVP 8 0".
        let addrs: Vec<IpAddr> = conns
            .split('|')
            .filter_map(|c| c.split_whitespace().nth(2)?.parse().ok())
            .collect();
        for m in media.split('|') {
            let Some(port) = m
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            for a in &addrs {
                out.insert((*a, port));
            }
        }
    }
    out
}

fn replayed(pcap: &Path) -> Vec<OurFlow> {
    let dir = TempDir::new("appid-corpus");
    let r = replay(pcap, dir.path(), None);
    r.flows.iter().map(OurFlow::from_json).collect()
}

fn ours_for<'a>(flows: &'a [OurFlow], t: &Tuple) -> Vec<&'a OurFlow> {
    flows.iter().filter(|f| f.tuple == *t).collect()
}

const ICHAT_AV: std::ops::RangeInclusive<u16> = 16384..=16403;

#[test]
fn sip_calls_signalling_is_sip_and_negotiated_media_is_rtp_or_rtcp() {
    let dir = corpus().join("sip-calls");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{} sip-calls captures", files.len());
    let mut failures = Vec::new();
    let (mut sip_checked, mut media_checked) = (0, 0);
    println!(
        "{:<44} {:<6} {:<52} {:>6}  ours",
        "capture", "what", "flow", "frames"
    );
    for pcap in &files {
        let name = pcap.file_name().unwrap().to_string_lossy().into_owned();
        let flows = replayed(pcap);
        let mut line = |what: &str, t: &Tuple, frames: u64, ours: &[&OurFlow], ok: bool| {
            let got: Vec<String> = ours.iter().map(|f| f.describe()).collect();
            let got = if got.is_empty() {
                "(no flow)".to_string()
            } else {
                got.join(" + ")
            };
            let mark = if ok { "" } else { "  <-- WRONG" };
            println!(
                "{name:<44} {what:<6} {:<52} {frames:>6}  {got}{mark}",
                t.to_string()
            );
            if !ok {
                failures.push(format!("{name}: {what} flow {t} is {got}"));
            }
        };

        // Signalling: whatever tshark dissects as SIP, on any port and transport.
        for (t, frames) in tshark_tuples(pcap, "sip", None) {
            let ours = ours_for(&flows, &t);
            let ok = !ours.is_empty()
                && ours.iter().all(|f| {
                    f.path.first().map(String::as_str) == Some("sip")
                        && (f.app == "sip" || f.app == "facetime")
                        && f.path.last() == Some(&f.app)
                });
            line("sip", &t, frames, &ours, ok);
            sip_checked += 1;
        }

        // Media: RTP/RTCP (version 2, as tshark decodes it) on a negotiated endpoint.
        let sdp = sdp_media(pcap);
        let rtp = tshark_tuples(pcap, "rtp.version == 2", None);
        let rtcp = tshark_tuples(pcap, "rtcp.version == 2", None);
        for (kind, tuples) in [("rtp", &rtp), ("rtcp", &rtcp)] {
            for (t, frames) in tuples {
                let negotiated = [t.lo, t.hi].iter().any(|(ip, port)| match kind {
                    "rtp" => sdp.contains(&(*ip, *port)),
                    _ => sdp.contains(&(*ip, port.wrapping_sub(1))),
                });
                if !negotiated || t.proto != "udp" {
                    continue;
                }
                let ours = ours_for(&flows, t);
                let in_range = ICHAT_AV.contains(&t.lo.1) || ICHAT_AV.contains(&t.hi.1);
                let ok = !ours.is_empty()
                    && ours.iter().all(|f| {
                        f.path.first().map(String::as_str) == Some(kind)
                            && (f.app == kind || (in_range && f.app == "ichat-av"))
                    });
                line(kind, t, *frames, &ours, ok);
                media_checked += 1;
            }
        }
    }
    println!("\n{sip_checked} SIP flows and {media_checked} negotiated media flows checked");
    assert!(sip_checked >= 7, "only {sip_checked} SIP flows found");
    assert!(media_checked >= 8, "only {media_checked} media flows found");
    assert!(failures.is_empty(), "wrong flows:\n{}", failures.join("\n"));
}

#[test]
fn http_on_the_sip_port_is_web_browsing_not_sip() {
    let pcap = corpus().join("ndpi/http_on_sip_port.pcap");
    // tshark itself guesses SIP from the port ("SIP Continuation"); told it is HTTP, it
    // dissects a GET of an HLS playlist and its response.
    let http = tshark_tuples(&pcap, "http", Some("tcp.port==5060,http"));
    assert_eq!(http.len(), 1, "{http:?}");
    let t = http.keys().next().unwrap();
    assert!(t.lo.1 == 5060 || t.hi.1 == 5060, "{t}");
    let flows = replayed(&pcap);
    for f in &flows {
        println!("{}  {}", f.tuple, f.describe());
    }
    let ours = ours_for(&flows, t);
    assert!(!ours.is_empty(), "no flow {t}");
    for f in ours {
        assert_eq!(
            f.path.first().map(String::as_str),
            Some("web-browsing"),
            "{t}: {}",
            f.describe()
        );
        assert_ne!(f.app, "sip");
    }
    assert!(flows.iter().all(|f| f.path.iter().all(|p| p != "sip")));
}

#[test]
fn xmpp_with_starttls_is_jabber() {
    let pcap = corpus().join("mix/zeek_tls_xmpp-starttls.pcap");
    let xmpp = tshark_tuples(&pcap, "xmpp", None);
    assert_eq!(xmpp.len(), 1, "{xmpp:?}");
    let t = xmpp.keys().next().unwrap();
    let starttls = tshark_tuples(&pcap, "xmpp.starttls || tls", None);
    assert!(starttls.contains_key(t), "the stream turns to TLS");
    let flows = replayed(&pcap);
    for f in &flows {
        println!("{}  {}", f.tuple, f.describe());
    }
    let ours = ours_for(&flows, t);
    assert!(!ours.is_empty(), "no flow {t}");
    for f in ours {
        assert_eq!(f.app, "jabber", "{t}: {}", f.describe());
        assert_eq!(f.path, ["jabber"], "{t}");
    }
}

/// Real FaceTime media (USTC-TFC2016: RTP with a header extension, dynamic payload types,
/// anonymised per packet so every packet is its own "flow") put back into flows: the UDP
/// payloads of each SSRC, in capture order, between one pair of endpoints on FaceTime's ports.
/// App-ID must call each such stream rtp, shifted to ichat-av by the port range.
#[test]
fn real_facetime_media_payloads_are_rtp_on_ichat_av() {
    use aperture_traffic::build::udp4;
    use std::collections::BTreeMap;
    use std::net::SocketAddrV4;
    let src = corpus().join("mix/USTC-TFC2016_Facetime.pcap");
    let mut by_ssrc: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
    for f in frames(&src) {
        let Ok(h) = aperture_dataplane::packet::parse(&f, f.len()) else {
            continue;
        };
        let p = &f[h.payload_offset as usize..][..h.payload_len as usize];
        // RTP version 2; the SSRC says which stream the packet belongs to.
        if h.proto == 17 && p.len() >= 12 && p[0] >> 6 == 2 {
            let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            by_ssrc.entry(ssrc).or_default().push(p.to_vec());
        }
    }
    let streams: Vec<(u32, Vec<Vec<u8>>)> = by_ssrc
        .into_iter()
        .filter(|(_, v)| v.len() >= 20)
        .take(6)
        .collect();
    assert!(
        streams.len() >= 3,
        "the capture has several long media streams"
    );
    let dir = TempDir::new("ustc");
    let pcap = dir.path().join("facetime-media.pcap");
    let mut out = Vec::new();
    for (i, (_, payloads)) in streams.iter().enumerate() {
        let a = SocketAddrV4::new([10, 0, 0, 10 + i as u8].into(), 16393 + i as u16);
        let b = SocketAddrV4::new([198, 51, 100, 20 + i as u8].into(), 16402 - i as u16);
        for (k, p) in payloads.iter().take(40).enumerate() {
            let ts = 1_700_000_000_000_000_000u64 + (i as u64 * 40 + k as u64) * 20_000_000;
            out.push((ts, udp4([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], a, b, p)));
        }
    }
    out.sort_by_key(|(ts, _)| *ts);
    aperture_traffic::pcap::write_pcap_file(&pcap, &out).unwrap();
    let flows = replay(&pcap, dir.path(), None).flows;
    assert_eq!(flows.len(), streams.len());
    for f in &flows {
        assert_eq!(f["app_path"], serde_json::json!(["rtp", "ichat-av"]), "{f}");
    }
}
