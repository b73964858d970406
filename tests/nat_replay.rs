//! Source NAT on replays (virtual wire, a pool address): every packet the originators sent
//! leaves with the pool address, tshark finds every IPv4, TCP and UDP checksum still
//! correct, App-ID names every flow as it does without NAT, and the flow log shows
//! endpoint-independent mappings (one external port per inside endpoint, whatever it talks
//! to).
mod common;

use common::{bin, corpus, replay_with, source_nat_policy, tshark, TempDir};
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
        f["proto"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"]
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
    let dir = TempDir::new(tag);
    let plain = replay_with(pcap, dir.path(), None, &[]);
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, source_nat_policy(inside, POOL)).unwrap();
    let natd_dir = dir.path().join("nat");
    std::fs::create_dir_all(&natd_dir).unwrap();
    let natd = replay_with(pcap, &natd_dir, None, &["--policy", p.to_str().unwrap()]);
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
            && ["tcp", "udp", "icmp"].contains(&f["proto"].as_str().unwrap());
        if !from_inside {
            assert!(f.get("nat_src_ip").is_none(), "{f}");
            continue;
        }
        assert_eq!(f["nat_src_ip"], POOL, "{f}");
        assert_eq!(f["nat_dst_ip"], f["dst_ip"], "{f}");
        translated += 1;
        if f["proto"] != "icmp" {
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
        .map(|f| f["c2s_packets"].as_u64().unwrap())
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
    translated
}

/// The bundled sample (FaceTime calls, push, web, DNS from 10.0.0.0/8).
#[test]
fn source_nat_on_the_bundled_sample() {
    let dir = TempDir::new("nat-sample-src");
    let o = std::process::Command::new(bin("aperture-dataplane"))
        .args(["replay", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let n = check(&dir.path().join("sample.pcap"), "10.0.0.0/8", "nat-sample");
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
