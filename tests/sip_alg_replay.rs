//! The SIP ALG on the SIP call captures (tests/corpus/sip-calls), with the default
//! configuration and with source NAT:
//! - every RTP/RTCP flow an SDP body negotiated (found by tshark, not by Aperture) and that
//!   began after that body is matched by a pinhole (`predicted_by` names a SIP flow of the
//!   same capture), and no other flow is;
//! - without NAT every SIP message leaves byte-identical;
//! - with NAT, tshark dissects every rewritten message without a malformed-packet error,
//!   its Content-Length is its body's, rsip parses it, and the translated host's own address
//!   is in none of its Via, Contact, From, SDP origin or connection fields.
mod common;

use common::{corpus, replay_with, source_nat_policy, tshark, TempDir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const POOL: &str = "203.0.113.7";

/// UDP captures: SIP over TCP is followed by a later step of the ALG.
fn udp_captures() -> Vec<PathBuf> {
    let dir = corpus().join("sip-calls");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            p.extension().is_some_and(|e| e == "pcap") && !n.contains("tcp")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// (ip, port) endpoints each SDP body in a SIP message names (RTP port, RTCP port), with the time of the
/// first body naming it: tshark's reading of the capture.
fn negotiated(pcap: &Path) -> BTreeMap<(String, u64), f64> {
    let text = tshark(
        pcap,
        &[
            "-Y",
            "sip && sdp",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=|",
            "-e",
            "frame.time_epoch",
            "-e",
            "sdp.connection_info.address",
            "-e",
            "sdp.media.port",
            "-e",
            "sdp.media_attr",
        ],
    );
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let t: f64 = f[0].parse().unwrap();
        let addrs: Vec<&str> = f.get(1).unwrap_or(&"").split('|').collect();
        let Some(addr) = addrs.last().filter(|a| !a.is_empty() && **a != "0.0.0.0") else {
            continue;
        };
        let attrs = f.get(3).copied().unwrap_or("");
        for p in f.get(2).unwrap_or(&"").split('|').filter(|p| !p.is_empty()) {
            let port: u64 = p.parse().unwrap();
            if port == 0 {
                continue;
            }
            let rtcp = attrs
                .split('|')
                .find_map(|a| a.strip_prefix("rtcp:"))
                .and_then(|r| r.split(' ').next()?.parse().ok())
                .unwrap_or(port + 1);
            for q in [port, rtcp] {
                out.entry((addr.to_string(), q)).or_insert(t);
            }
        }
    }
    out
}

/// Checks pinhole matching on one replay's flow log.
fn check_predictions(pcap: &Path, flows: &[Value]) -> usize {
    let media = negotiated(pcap);
    let sip_ids: BTreeSet<u64> = flows
        .iter()
        .filter(|f| f["predicted_by"].is_null())
        .filter_map(|f| f["flow_id"].as_u64())
        .collect();
    let mut predicted = 0;
    for f in flows.iter().filter(|f| f["proto"] == "UDP") {
        let start = common::secs(&f["flow"]["start"]);
        let ends = [
            (
                f["src_ip"].as_str().unwrap(),
                f["src_port"].as_u64().unwrap(),
            ),
            (
                f["dest_ip"].as_str().unwrap(),
                f["dest_port"].as_u64().unwrap(),
            ),
        ];
        let expected = ends.iter().any(|(a, p)| {
            media
                .get(&(a.to_string(), *p))
                .is_some_and(|&t| t <= start + 1e-6)
        });
        // SDP in other signalling (MGCP in one capture) is not the SIP ALG's.
        let signalling = f["app_path"][0] == "sip" && f["predicted_by"].is_null();
        let expected = expected && !signalling;
        match f["predicted_by"].as_u64() {
            Some(parent) => {
                assert!(
                    expected,
                    "{}: predicted but not negotiated: {f}",
                    pcap.display()
                );
                assert!(
                    sip_ids.contains(&parent),
                    "{}: predicted_by {parent} is no flow of the capture: {f}",
                    pcap.display()
                );
                predicted += 1;
            }
            None => assert!(
                !expected,
                "{}: negotiated media no pinhole matched: {f}",
                pcap.display()
            ),
        }
    }
    predicted
}

/// Every SIP payload of a capture, by frame, with the IP source and UDP source port.
fn sip_payloads(pcap: &Path) -> Vec<((String, u64), Vec<u8>)> {
    let text = tshark(
        pcap,
        &[
            "-Y",
            "sip && udp",
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
            "-e",
            "udp.payload",
        ],
    );
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (src, port, hex) = (f.next()?, f.next()?, f.next()?);
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            Some(((src.to_string(), port.parse().ok()?), bytes))
        })
        .collect()
}

#[test]
fn pinholes_match_exactly_the_negotiated_media() {
    let mut total = 0;
    for (i, pcap) in udp_captures().iter().enumerate() {
        let dir = TempDir::new(&format!("alg-plain-{i}"));
        let r = replay_with(pcap, dir.path(), None, &[]);
        total += check_predictions(pcap, &r.flows);
        // No NAT: every SIP message leaves as it came.
        assert_eq!(
            sip_payloads(pcap),
            sip_payloads(&r.out),
            "{}: a SIP message changed without NAT",
            pcap.display()
        );
    }
    // The captures' calls: G.711 (RTP+RTCP), two calls with a re-INVITE, REGISTER + call.
    assert!(total >= 5, "{total} predicted flows");
}

#[test]
fn source_nat_rewrites_sip_and_sdp_and_keeps_the_pinholes() {
    let mut rewritten = 0;
    for (i, pcap) in udp_captures().iter().enumerate() {
        // Each capture's own private or public range, and a range that covers nothing.
        for (k, inside) in ["10.0.0.0/8", "200.57.7.192/28", "127.0.0.0/8"]
            .iter()
            .enumerate()
        {
            let dir = TempDir::new(&format!("alg-nat-{i}-{k}"));
            let policy = dir.path().join("policy.yaml");
            std::fs::write(&policy, source_nat_policy(inside, POOL)).unwrap();
            let r = replay_with(
                pcap,
                dir.path(),
                None,
                &["--policy", policy.to_str().unwrap()],
            );
            check_predictions(pcap, &r.flows);
            // tshark finds no SIP or SDP error, and every UDP checksum of them right.
            let bad = |p: &Path| {
                let filter = "(sip || sdp) && (_ws.malformed || udp.checksum.status == 2 \
                              || ip.checksum.status == 2 || _ws.expert.severity == error)";
                let args = [
                    "-o",
                    "udp.check_checksum:TRUE",
                    "-o",
                    "ip.check_checksum:TRUE",
                    "-Y",
                    filter,
                ];
                tshark(p, &args).lines().count()
            };
            let (before, after) = (bad(pcap), bad(&r.out));
            assert!(
                after <= before,
                "{}: SIP errors {before} -> {after}",
                pcap.display()
            );
            rewritten += check_rewritten(pcap, &r);
        }
    }
    assert!(rewritten >= 10, "{rewritten} translated SIP messages");
}

/// Checks every SIP message a source-NAT replay `r` of `pcap` sent from the pool address:
/// Content-Length right, rsip parses it, and its inside endpoint (found by the flow log's
/// external port) or an inside media host is left in none of the fields the peer uses.
/// Returns how many there were.
fn check_rewritten(pcap: &Path, r: &common::Replay) -> usize {
    // Each translated SIP flow's inside endpoint, by its external port; the inside hosts
    // whose media NAT translated.
    let translated = |f: &&Value| f["nat_src_ip"] == POOL && f["proto"] == "UDP";
    let senders: BTreeMap<u64, (String, u64)> = r
        .flows
        .iter()
        .filter(translated)
        .filter(|f| f["predicted_by"].is_null())
        .map(|f| {
            let ip = f["src_ip"].as_str().unwrap().to_string();
            let port = f["src_port"].as_u64().unwrap();
            (f["nat_src_port"].as_u64().unwrap(), (ip, port))
        })
        .collect();
    let media_hosts: BTreeSet<String> = r
        .flows
        .iter()
        .filter(translated)
        .filter(|f| !f["predicted_by"].is_null())
        .map(|f| f["src_ip"].as_str().unwrap().to_string())
        .collect();
    let mut rewritten = 0;
    for ((src, sport), msg) in sip_payloads(&r.out) {
        if src != POOL {
            continue;
        }
        rewritten += 1;
        let text = String::from_utf8_lossy(&msg).to_string();
        check_content_length(&text, pcap);
        rsip::SipMessage::try_from(msg.as_slice())
            .unwrap_or_else(|e| panic!("{}: rsip cannot parse {text:?}: {e}", pcap.display()));
        let (ip, port) = senders
            .get(&sport)
            .unwrap_or_else(|| panic!("no translated flow for port {sport}"));
        if let Some(leak) = leaks(&text, ip, *port, &media_hosts).first() {
            panic!(
                "{}: {ip}:{port} leaked in {leak:?} of {text}",
                pcap.display()
            );
        }
    }
    rewritten
}

/// Lines of a message sent from inside endpoint `ip`:`port` that still name it where the
/// peer would use it: the top Via's sent-by, a Contact with that host and port (an absent
/// port meaning 5060), From (the address alone), SDP origin and connection lines naming it
/// or another inside host whose media NAT translated (`media`). Lower Via entries are other
/// hops' (a proxy's own other ports), never translated.
fn leaks(text: &str, ip: &str, port: u64, media: &BTreeSet<String>) -> Vec<String> {
    let names = |l: &str, host: &str| {
        l.match_indices(host)
            .any(|(at, _)| !l[at + host.len()..].starts_with(|c: char| c.is_ascii_digit()))
    };
    let with_port = |l: &str| {
        let explicit = format!("{ip}:{port}");
        names(l, &explicit) || (port == 5060 && names(l, ip) && !l.contains(&format!("{ip}:")))
    };
    let mut out = vec![];
    let mut first_via = true;
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        let is = |p: &[&str]| p.iter().any(|x| lower.starts_with(x));
        let bad = if is(&["via:", "v:"]) {
            let top = first_via;
            first_via = false;
            let value = line.split(',').next().unwrap_or("");
            top && with_port(value)
        } else if is(&["contact:", "m:"]) {
            with_port(line)
        } else if is(&["from:", "f:"]) {
            names(line, ip)
        } else if is(&["o=", "c="]) {
            names(line, ip) || media.iter().any(|m| names(line, m))
        } else {
            false
        };
        if bad {
            out.push(line.to_string());
        }
    }
    out
}

fn check_content_length(text: &str, pcap: &Path) {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap();
    let cl = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        let n = n.trim().to_ascii_lowercase();
        (n == "content-length" || n == "l").then(|| v.trim().parse::<usize>().unwrap())
    });
    if let Some(cl) = cl {
        assert_eq!(
            cl,
            body.len(),
            "{}: Content-Length of {text:?}",
            pcap.display()
        );
    }
}

/// `pcap` with every SIP datagram cut into IPv4 fragments of `size` payload bytes by scapy
/// (an implementation other than Aperture's), every other message's fragments in reverse
/// order; written to `out`.
fn fragment_sip(pcap: &Path, out: &Path, size: usize) {
    const SCRIPT: &str = r#"
import struct, sys
from scapy.all import RawPcapReader, Ether, fragment, IP, UDP
out, size, n = [], int(sys.argv[3]), 0
reader = RawPcapReader(sys.argv[1])
for data, meta in reader:
    p = Ether(data)
    frames = [data]
    if IP in p and UDP in p and (p[UDP].sport in (5060, 5061) or p[UDP].dport in (5060, 5061)) \
            and len(p[UDP].payload) > size:
        frames = [bytes(f) for f in fragment(p, fragsize=size)]
        if n % 2:
            frames.reverse()
        n += 1
    out.extend((meta.sec, meta.usec, f) for f in frames)
with open(sys.argv[2], "wb") as w:
    w.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for sec, usec, f in out:
        w.write(struct.pack("<IIII", sec, usec, len(f), len(f)) + f)
print(n)
"#;
    let o = std::process::Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .arg(pcap)
        .arg(out)
        .arg(size.to_string())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(n >= 5, "{n} SIP messages fragmented");
}

/// IPv4 total lengths of a capture's frames that are fragments.
fn fragment_lengths(pcap: &Path) -> Vec<usize> {
    tshark(
        pcap,
        &[
            "-o",
            "ip.defragment:FALSE",
            "-Y",
            "ip.flags.mf == 1 || ip.frag_offset > 0",
            "-T",
            "fields",
            "-e",
            "ip.len",
        ],
    )
    .lines()
    .map(|l| l.trim().parse().unwrap())
    .collect()
}

/// SIP messages larger than the path MTU arrive as IP fragments: Aperture reassembles them
/// before App-ID and the ALG (so the call is followed and its media predicted), rewrites the
/// whole message under NAT, and sends it on as fragments no larger than those it received.
/// Without NAT the fragments leave byte for byte as they came (in order).
#[test]
fn fragmented_sip_is_reassembled_followed_and_rewritten() {
    let dir = TempDir::new("alg-frag");
    let pcap = corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap");
    let input = dir.path().join("fragmented.pcap");
    fragment_sip(&pcap, &input, 200);
    let largest = 20 + 200;
    let frags_in = fragment_lengths(&input);
    assert!(frags_in.len() > 10, "{} fragments", frags_in.len());

    // No NAT: the call's media predicted as from the whole messages; SIP untouched, the
    // same fragments (as a set: a reversed message leaves in order).
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let plain = replay_with(&input, &plain_dir, None, &["--stats"]);
    assert!(check_predictions(&pcap, &plain.flows) >= 2);
    assert_eq!(sip_payloads(&input), sip_payloads(&plain.out));
    let mut a = common::frames(&input);
    let mut b = common::frames(&plain.out);
    a.sort();
    b.sort();
    assert!(a == b, "the same frames, byte for byte");
    assert!(
        plain.flows.iter().all(|f| f["src_port"] != 0),
        "no fragment became a flow of its own"
    );
    // A worker counter of the --stats table, summed over the workers' columns.
    let stat = |out: &str, name: &str| -> u64 {
        common::worker_counter(out, name).unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    assert_eq!(stat(&plain.stdout, "fragments_held"), frags_in.len() as u64);
    assert!(stat(&plain.stdout, "fragments_reassembled") >= 5);

    // Source NAT: the messages are rewritten whole and cut again, no fragment larger than
    // the largest that came; tshark reassembles and dissects them without error. With two
    // workers too: a datagram reassembled on a worker that does not own its flow is handed
    // to the owner as the fragments it came in, and reassembled there.
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, source_nat_policy("200.57.7.192/28", POOL)).unwrap();
    let two = common::two_worker_config(dir.path());
    for (k, config) in [None, Some(two.as_path())].into_iter().enumerate() {
        let out_dir = dir.path().join(format!("nat-{k}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let natd = replay_with(
            &input,
            &out_dir,
            config,
            &["--policy", policy.to_str().unwrap(), "--stats"],
        );
        if config.is_none() {
            // (With two workers the call's media may start on the worker that does not hold
            // its pinholes: this capture's media hosts are not its signalling hosts.)
            check_predictions(&pcap, &natd.flows);
        }
        let out_frags = fragment_lengths(&natd.out);
        assert!(out_frags.len() >= frags_in.len() / 2, "{out_frags:?}");
        assert!(out_frags.iter().all(|&l| l <= largest), "{out_frags:?}");
        assert!(stat(&natd.stdout, "fragments_sent") >= out_frags.len() as u64);
        assert_eq!(
            stat(&natd.stdout, "handoff_sent"),
            stat(&natd.stdout, "handoff_received")
        );
        let bad = tshark(
            &natd.out,
            &[
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
                "-Y",
                "(sip || sdp || ip.fragment) && (_ws.malformed || ip.checksum.status == 2 \
                 || udp.checksum.status == 2 || _ws.expert.severity == error)",
            ],
        );
        assert!(bad.trim().is_empty(), "tshark errors:\n{bad}");
        let rewritten = check_rewritten(&pcap, &natd);
        assert!(rewritten >= 5, "{rewritten} rewritten messages");
    }
}
