//! Source NAT on replays (virtual wire, a pool address): every packet the originators sent
//! leaves with the pool address, tshark finds every IPv4, TCP and UDP checksum still
//! correct, App-ID names every flow as it does without NAT, and the flow log shows
//! endpoint-independent mappings (one external port per inside endpoint, whatever it talks
//! to).
mod common;

use common::{corpus, replay_with, source_nat_policy, tshark, TempDir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const POOL: &str = "203.0.113.7";

/// (checksum field, status) counts over a capture: tshark's 1 = good, 2 = bad.
fn checksum_statuses(pcap: &Path) -> BTreeMap<(usize, String), u64> {
    let text = tshark(
        pcap,
        &[
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-e",
            "udp.checksum.status",
        ],
    );
    let mut out = BTreeMap::new();
    for line in text.lines() {
        for (i, f) in line.split('\t').enumerate() {
            // The first value: an ICMP error's quoted header is not the packet's own.
            let v = f.split(',').next().unwrap_or("");
            if !v.is_empty() {
                *out.entry((i, v.to_string())).or_default() += 1;
            }
        }
    }
    out
}

fn key(f: &Value) -> String {
    format!(
        "{} {}:{} {}:{}",
        f["proto"], f["src_ip"], f["src_port"], f["dest_ip"], f["dest_port"]
    )
}

fn in_prefix(ip: &str, prefix: &str) -> bool {
    let (net, len) = prefix.split_once('/').unwrap();
    let (Ok(a), Ok(n)) = (
        ip.parse::<std::net::Ipv4Addr>(),
        net.parse::<std::net::Ipv4Addr>(),
    ) else {
        return false;
    };
    let len: u32 = len.parse().unwrap();
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(a) & mask == u32::from(n) & mask
}

fn check(pcap: &Path, inside: &str, tag: &str) -> usize {
    check_with(pcap, inside, tag, None).0
}

/// What `check_with` returns: flows translated, the NAT replay, and the directory its
/// files are in (removed when dropped).
type Checked = (usize, common::Replay, TempDir);

/// `check` with the NAT replay under `config` (e.g. two workers); also returns that replay.
fn check_with(pcap: &Path, inside: &str, tag: &str, config: Option<&Path>) -> Checked {
    let dir = TempDir::new(tag);
    let plain = replay_with(pcap, dir.path(), None, &[]);
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, source_nat_policy(inside, POOL)).unwrap();
    let natd_dir = dir.path().join("nat");
    std::fs::create_dir_all(&natd_dir).unwrap();
    let natd = replay_with(
        pcap,
        &natd_dir,
        config,
        &["--policy", p.to_str().unwrap(), "--stats"],
    );
    // App-ID is not disturbed by the translation.
    let apps = |flows: &[Value]| -> BTreeMap<String, String> {
        flows
            .iter()
            .map(|f| (key(f), f["app"].as_str().unwrap_or("").to_string()))
            .collect()
    };
    assert_eq!(apps(&plain.flows), apps(&natd.flows), "{}", pcap.display());
    // Every IPv4 flow from the inside is translated; one external port per endpoint.
    let mut ports: BTreeMap<(String, String, u64), BTreeSet<u64>> = BTreeMap::new();
    let mut translated = 0;
    for f in &natd.flows {
        let src = f["src_ip"].as_str().unwrap();
        let from_inside = in_prefix(src, inside)
            && ["TCP", "UDP", "ICMP"].contains(&f["proto"].as_str().unwrap());
        if !from_inside {
            assert!(f.get("nat_src_ip").is_none(), "{f}");
            continue;
        }
        assert_eq!(f["nat_src_ip"], POOL, "{f}");
        assert_eq!(f["nat_dst_ip"], f["dest_ip"], "{f}");
        translated += 1;
        if f["proto"] != "ICMP" {
            ports
                .entry((
                    f["proto"].to_string(),
                    src.to_string(),
                    f["src_port"].as_u64().unwrap(),
                ))
                .or_default()
                .insert(f["nat_src_port"].as_u64().unwrap());
        }
    }
    for (endpoint, p) in &ports {
        assert_eq!(p.len(), 1, "{endpoint:?} got several external ports: {p:?}");
    }
    // Every packet the translated flows' originators sent left with the pool address, and
    // no other did (an inside host answering a flow started from outside, which no NAT
    // rule matches, keeps its address: that is for the SIP ALG's pinholes to handle).
    let sent: u64 = natd
        .flows
        .iter()
        .filter(|f| f.get("nat_src_ip").is_some())
        .map(|f| f["flow"]["pkts_toserver"].as_u64().unwrap())
        .sum();
    let sources = tshark(&natd.out, &["-T", "fields", "-e", "ip.src"]);
    let from_pool = sources
        .lines()
        .filter(|s| s.split(',').next() == Some(POOL))
        .count() as u64;
    assert_eq!(from_pool, sent, "{}", pcap.display());
    // Checksums: what was correct stays correct; nothing new is wrong.
    let (before, after) = (checksum_statuses(pcap), checksum_statuses(&natd.out));
    for field in 0..3 {
        let bad =
            |m: &BTreeMap<(usize, String), u64>| m.get(&(field, "2".into())).copied().unwrap_or(0);
        assert!(
            bad(&after) <= bad(&before),
            "{}: bad checksums {before:?} -> {after:?}",
            pcap.display()
        );
    }
    let good = |m: &BTreeMap<(usize, String), u64>| {
        m.get(&(1, "1".into())).copied().unwrap_or(0)
            + m.get(&(2, "1".into())).copied().unwrap_or(0)
    };
    assert!(good(&after) + 4 >= good(&before), "{before:?} -> {after:?}");
    (translated, natd, dir)
}

/// Two workers under source NAT: the replay splits the capture as the live handoff would
/// place each packet (`nat::steer`: an inside host's flows on one worker), so everything
/// `check` asserts still holds, one external port per inside endpoint and a call's media
/// predicted by its signalling's pinholes included (with a split by flow, as plain RSS,
/// an endpoint talking to two peers could get a port from each worker, and a call's media
/// could start on a worker its SIP never reached). Every packet leaves, each inside host's
/// flows are all on one worker, and what was handed over (a call's media whose pinholes
/// are on another worker than its host's) arrived: nothing is dropped between workers.
#[test]
fn two_workers_keep_each_inside_host_on_one_worker() {
    let dir = TempDir::new("nat-two-workers");
    let cfg = common::two_worker_config(dir.path());
    let (_sample_dir, sample) = common::bundled_sample();
    let mut hosts = 0;
    for (i, (pcap, inside)) in [
        (sample, "10.0.0.0/8"),
        (
            corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap"),
            "200.57.7.0/24",
        ),
    ]
    .iter()
    .enumerate()
    {
        let (n, r, _dir) = check_with(pcap, inside, &format!("nat-two-{i}"), Some(&cfg));
        assert!(n >= 2, "{n} flows translated");
        assert!(r.stdout.contains("2 worker(s)"), "{}", r.stdout);
        let (_, one, _one_dir) = check_with(pcap, inside, &format!("nat-one-{i}"), None);
        assert_eq!(
            common::frames(&r.out).len(),
            common::frames(&one.out).len(),
            "as many packets left as with one worker"
        );
        let mut owner: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        // (A flow between two inside hosts goes by both addresses: both directions agree.)
        for f in r.flows.iter().filter(|f| {
            f.get("nat_src_ip").is_some() && !in_prefix(f["dest_ip"].as_str().unwrap(), inside)
        }) {
            owner
                .entry(f["src_ip"].as_str().unwrap().to_string())
                .or_default()
                .insert(f["worker"].as_u64().unwrap());
        }
        for (host, w) in &owner {
            assert_eq!(w.len(), 1, "{host}'s flows on workers {w:?}");
        }
        hosts += owner.len();
        // (A drop reason is listed only once counted.)
        let sum = |name: &str| common::worker_counter(&r.stdout, name).unwrap_or(0);
        assert_eq!(sum("handoff_sent"), sum("handoff_received"), "{}", r.stdout);
        assert_eq!(sum("handoff-full"), 0, "{}", r.stdout);
    }
    assert!(
        hosts >= 3,
        "{hosts} inside hosts: too few to show the steering"
    );
}

/// The bundled sample (FaceTime calls, push, web, DNS from 10.0.0.0/8).
#[test]
fn source_nat_on_the_bundled_sample() {
    let (_dir, sample) = common::bundled_sample();
    let n = check(&sample, "10.0.0.0/8", "nat-sample");
    assert!(n >= 20, "{n} flows translated");
}

/// The SIP call captures: signalling and RTP, over UDP and TCP.
#[test]
fn source_nat_on_the_sip_call_captures() {
    let sip = corpus().join("sip-calls");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&sip)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    let mut total = 0;
    for (i, f) in files.iter().enumerate() {
        // Translate every private source: whichever side the capture was taken on.
        for (k, inside) in ["10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12"]
            .iter()
            .enumerate()
        {
            total += check(f, inside, &format!("nat-sip-{i}-{k}"));
        }
    }
    assert!(total >= 6, "{total} flows translated");
}

/// A TCP tuple closed with FIN and reused by a new connection (a SIP phone reconnecting
/// from its fixed port): the new connection is a new flow and is translated like the first
/// (it was once sent untranslated: pass 3 created the flow behind the slow path's back).
#[test]
fn a_closed_tcp_tuple_reused_by_a_new_connection_is_translated_again() {
    use aperture_traffic::build::{tcp4, TcpFlags, TcpHeader};
    use aperture_traffic::write_pcap_file;
    let (c, s) = (
        "10.1.2.3:5060".parse().unwrap(),
        "198.51.100.9:5060".parse().unwrap(),
    );
    let (cm, sm) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut frames = vec![];
    let mut t = 1_700_000_000_000_000_000u64;
    for (conn, isn) in [(0u32, 1000u32), (1, 900_000)] {
        let f = |flags: u8, seq: u32, ack: u32| TcpHeader {
            seq,
            ack,
            flags: TcpFlags(flags),
            window: 65000,
        };
        let (syn, ack, fin, psh) = (0x02, 0x10, 0x01, 0x08);
        let srv = 50_000 + conn * 7;
        let data = format!(
            "OPTIONS sip:a@198.51.100.9 SIP/2.0\r\nCall-ID: {conn}\r\nContent-Length: 0\r\n\r\n"
        );
        let n = data.len() as u32;
        let mut push = |out: bool, h: TcpHeader, p: &[u8]| {
            t += 10_000_000;
            let fr = if out {
                tcp4(cm, sm, c, s, &h, p)
            } else {
                tcp4(sm, cm, s, c, &h, p)
            };
            frames.push((t, fr));
        };
        push(true, f(syn, isn, 0), b"");
        push(false, f(syn | ack, srv, isn + 1), b"");
        push(true, f(ack, isn + 1, srv + 1), b"");
        push(true, f(psh | ack, isn + 1, srv + 1), data.as_bytes());
        push(false, f(ack, srv + 1, isn + 1 + n), b"");
        push(true, f(fin | ack, isn + 1 + n, srv + 1), b"");
        push(false, f(fin | ack, srv + 1, isn + 2 + n), b"");
        push(true, f(ack, isn + 2 + n, srv + 2), b"");
        t += 1_000_000_000;
    }
    let dir = TempDir::new("nat-tcp-reuse");
    let pcap = dir.path().join("reuse.pcap");
    write_pcap_file(&pcap, &frames).unwrap();
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, source_nat_policy("10.0.0.0/8", POOL)).unwrap();
    let r = replay_with(&pcap, dir.path(), None, &["--policy", p.to_str().unwrap()]);
    let sources = tshark(
        &r.out,
        &["-T", "fields", "-e", "ip.src", "-e", "tcp.flags.syn"],
    );
    let lines: Vec<&str> = sources.lines().collect();
    assert_eq!(
        lines.len(),
        frames.len(),
        "every packet went out: {sources}"
    );
    for l in &lines {
        assert!(
            !l.starts_with("10.1.2.3"),
            "an inside source left untranslated: {sources}"
        );
    }
    let tcp: Vec<&Value> = r.flows.iter().filter(|f| f["proto"] == "TCP").collect();
    assert_eq!(tcp.len(), 2, "two connections, two flows: {:?}", r.flows);
    for f in tcp {
        assert_eq!(f["nat_src_ip"], POOL, "{f}");
    }
}
