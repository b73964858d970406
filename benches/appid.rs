//! App-ID throughput and accuracy against nDPI. `benches/appid_vs_ndpi.sh` drives it:
//!
//! - `--write-mix FILE [--min-packets N]`: replicates every capture of tests/corpus (ndpi,
//!   sip-calls, mix) until the mix holds at least N packets (default 1,000,000). Copy k adds k
//!   to the second byte of every IPv4 and IPv6 source and destination address (IP, TCP, UDP
//!   and ICMPv6 checksums fixed incrementally, RFC 1624), so the copies are distinct flows.
//!   Copies follow each other in time; gaps longer than an hour are cut to an hour (one capture
//!   spans six years, which pcap's 32-bit seconds cannot hold 43 times over), so every flow
//!   still ages out as in the original.
//! - `--classify FILE [--runs N]`: loads every frame into memory, then times
//!   `Offline::packet` (the workers' parser, flow table and App-ID engine, without DPDK) over
//!   them on the current core, N times (default 3), printing packets per second per run and
//!   the median.
//! - `--accuracy`: classifies each scored capture of tests/corpus/ndpi (tests/ndpi-scored.txt) offline and scores it
//!   against nDPI's results with the same logic as tests/appid_ndpi.rs; with `--ndpireader`
//!   it also scores the installed ndpiReader (`-v 2`) against the same results.
//!
//! Without any of these (as `cargo test --benches` runs it) it checks itself on a small mix.
#[path = "../tests/common/ndpi.rs"]
mod ndpi;

use aperture_dataplane::appid::catalog::Catalog;
use aperture_dataplane::appid::engine::Limits;
use aperture_dataplane::config::Config;
use aperture_dataplane::offline::Offline;
use aperture_dataplane::replay::capture::for_each_frame;
use ndpi::{parse_out, report, score, NdpiFlow, OurFlow, Totals, Verdict};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One frame of the mix: capture time, Ethernet bytes, length on the wire.
struct Frame {
    ts_ns: u64,
    data: Vec<u8>,
    wire_len: u32,
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every capture of the corpus, in a fixed order.
fn corpus_captures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["ndpi", "sip-calls", "mix", "mix/trex_sfr"] {
        let dir = corpus().join(sub);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn load(path: &Path) -> Vec<Frame> {
    let mut out = Vec::new();
    for_each_frame(path, |f| {
        out.push(Frame {
            ts_ns: f.ts.as_nanos() as u64,
            wire_len: f.orig_len.max(f.data.len() as u32),
            data: f.data.into_owned(),
        });
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

// ---- address rewriting -------------------------------------------------------------------

fn word(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// RFC 1624 eqn. 3: the checksum at `at` after a 16-bit word changed from `old` to `new`.
fn fix_checksum(b: &mut [u8], at: usize, old: u16, new: u16) {
    if at + 2 > b.len() {
        return; // truncated capture: the field is not there
    }
    let hc = word(b, at);
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    b[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Adds `k` to the second byte of the source and destination address of an IPv4 or IPv6
/// packet in an Ethernet frame (after any VLAN tags), fixing the checksums that cover them.
/// Returns whether the frame was rewritten.
fn shift_addresses(f: &mut [u8], k: u8) -> bool {
    let mut at = 12;
    let mut ethertype = match f.get(at..at + 2) {
        Some(t) => u16::from_be_bytes([t[0], t[1]]),
        None => return false,
    };
    while matches!(ethertype, 0x8100 | 0x88a8) && f.len() >= at + 6 {
        at += 4;
        ethertype = word(f, at);
    }
    let ip = at + 2;
    match ethertype {
        0x0800 if f.len() >= ip + 20 => {
            let ihl = usize::from(f[ip] & 0x0f) * 4;
            let proto = f[ip + 9];
            let first_fragment = word(f, ip + 6) & 0x1fff == 0;
            let l4 = ip + ihl;
            for addr in [ip + 12, ip + 16] {
                let old = word(f, addr);
                f[addr + 1] = f[addr + 1].wrapping_add(k);
                let new = word(f, addr);
                fix_checksum(f, ip + 10, old, new);
                if first_fragment {
                    match proto {
                        6 => fix_checksum(f, l4 + 16, old, new),
                        17 if f.len() >= l4 + 8 && word(f, l4 + 6) != 0 => {
                            fix_checksum(f, l4 + 6, old, new);
                            if word(f, l4 + 6) == 0 {
                                f[l4 + 6..l4 + 8].copy_from_slice(&[0xff, 0xff]);
                            }
                        }
                        _ => {}
                    }
                }
            }
            true
        }
        0x86dd if f.len() >= ip + 40 => {
            let next = f[ip + 6];
            let l4 = ip + 40;
            for addr in [ip + 8, ip + 24] {
                let old = word(f, addr);
                f[addr + 1] = f[addr + 1].wrapping_add(k);
                let new = word(f, addr);
                match next {
                    6 => fix_checksum(f, l4 + 16, old, new),
                    17 => fix_checksum(f, l4 + 6, old, new),
                    58 => fix_checksum(f, l4 + 2, old, new),
                    _ => {}
                }
            }
            true
        }
        _ => false,
    }
}

/// Longest gap kept between two packets: longer than every flow timeout.
const MAX_GAP_NS: u64 = 3_601_000_000_000;
const MIX_START_NS: u64 = 1_600_000_000_000_000_000;

/// The corpus replicated with shifted addresses until it holds `min_packets` packets.
/// Returns the frames and (copies, packets per copy, ndpi-corpus packets per copy).
fn build_mix(min_packets: usize) -> (Vec<Frame>, usize, usize, usize) {
    let captures: Vec<(PathBuf, Vec<Frame>)> = corpus_captures()
        .into_iter()
        .map(|p| {
            let f = load(&p);
            (p, f)
        })
        .collect();
    let per_copy: usize = captures.iter().map(|c| c.1.len()).sum();
    let ndpi_part: usize = captures
        .iter()
        .filter(|c| c.0.parent().is_some_and(|d| d.ends_with("ndpi")))
        .map(|c| c.1.len())
        .sum();
    assert!(per_copy > 0, "the corpus is empty");
    let copies = min_packets.div_ceil(per_copy).max(1);
    assert!(
        copies <= 255,
        "{copies} copies would wrap the address shift"
    );
    let mut out = Vec::with_capacity(copies * per_copy);
    let mut clock = MIX_START_NS;
    for k in 0..copies {
        for (_, frames) in &captures {
            let mut prev_in: Option<u64> = None;
            for fr in frames {
                let gap = match prev_in {
                    None => 1_000_000, // 1 ms between captures
                    Some(p) => fr.ts_ns.saturating_sub(p).min(MAX_GAP_NS),
                };
                prev_in = Some(fr.ts_ns.max(prev_in.unwrap_or(0)));
                clock += gap;
                let mut data = fr.data.clone();
                if k > 0 {
                    shift_addresses(&mut data, k as u8);
                }
                out.push(Frame {
                    ts_ns: clock,
                    data,
                    wire_len: fr.wire_len,
                });
            }
        }
    }
    (out, copies, per_copy, ndpi_part)
}

fn write_pcap(path: &Path, frames: &[Frame]) {
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        snaplen: 262_144,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(BufWriter::new(file), header).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(
            Duration::from_nanos(f.ts_ns),
            f.wire_len,
            &f.data,
        ))
        .unwrap();
    }
    w.into_writer().flush().unwrap();
}

// ---- classification ----------------------------------------------------------------------

fn offline() -> (Offline, Arc<Catalog>) {
    let config = Config::embedded();
    let catalog = Arc::new(Catalog::of_config(&config.app_id).expect("catalog"));
    let o = Offline::new(
        catalog.clone(),
        config.flow_table.capacity,
        &config.flow_table.timeouts,
        Limits::of(&config.app_id),
    );
    (o, catalog)
}

/// Classifies `frames` once; returns (seconds in `Offline::packet`, flows, malformed).
fn classify(frames: &[Frame]) -> (f64, usize, u64) {
    let (mut o, _) = offline();
    let start = Instant::now();
    for f in frames {
        o.packet(f.ts_ns, &f.data, f.wire_len as usize);
    }
    let secs = start.elapsed().as_secs_f64();
    let malformed = o.malformed;
    let flows = o.finish().len();
    (secs, flows, malformed)
}

/// Our flows for one capture, through the offline classifier, as the flow log writes them.
fn our_flows(path: &Path) -> Vec<OurFlow> {
    let (mut o, catalog) = offline();
    for f in load(path) {
        o.packet(f.ts_ns, &f.data, f.wire_len as usize);
    }
    o.finish()
        .iter()
        .map(|r| {
            let mut line = Vec::new();
            r.write_json(&mut line, &catalog, None).unwrap();
            OurFlow::from_json(&serde_json::from_slice(&line).unwrap())
        })
        .collect()
}

/// The scored nDPI captures (tests/ndpi-scored.txt, as the accuracy test scores them) with
/// nDPI's results.
fn ndpi_captures() -> Vec<(String, PathBuf, Vec<NdpiFlow>)> {
    let dir = corpus().join("ndpi");
    let list = std::fs::read_to_string(corpus().join("../ndpi-scored.txt"))
        .expect("tests/ndpi-scored.txt");
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|n| dir.join(n))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let out = std::fs::read_to_string(dir.join(format!("{name}.out"))).ok()?;
            Some((name, p, parse_out(&out)))
        })
        .collect()
}

/// Our agreement with nDPI's results on the ndpi captures (the test's logic).
fn accuracy() -> (Totals, Vec<Verdict>) {
    let mut verdicts = Vec::new();
    for (name, path, expected) in ndpi_captures() {
        verdicts.extend(score(&name, &expected, &our_flows(&path)));
    }
    (Totals::of(&verdicts), verdicts)
}

/// The installed ndpiReader's labels compared with the `.out` results (written by a newer
/// nDPI): a flow agrees when both labels map to the same catalog application.
fn ndpireader_accuracy() -> (usize, usize, Vec<String>) {
    let (mut covered, mut agree, mut differ) = (0, 0, Vec::new());
    for (name, path, expected) in ndpi_captures() {
        let o = Command::new("ndpiReader")
            .arg("-i")
            .arg(&path)
            .args(["-v", "2"])
            .output()
            .expect("run ndpiReader");
        let theirs = parse_out(&String::from_utf8_lossy(&o.stdout));
        for e in &expected {
            let Some(want) = ndpi::accepted(&e.label) else {
                continue;
            };
            covered += 1;
            let got = theirs.iter().find(|t| t.tuple == e.tuple);
            let same = got
                .and_then(|t| ndpi::accepted(&t.label))
                .is_some_and(|g| g.iter().any(|p| want.contains(p)));
            if same {
                agree += 1;
            } else {
                differ.push(format!(
                    "{name} {}: results {} / ndpiReader {}",
                    e.tuple,
                    e.label,
                    got.map_or("(no flow)", |t| t.label.as_str())
                ));
            }
        }
    }
    (covered, agree, differ)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut did = false;
    if let Some(path) = arg_value(&args, "--write-mix") {
        did = true;
        let min: usize =
            arg_value(&args, "--min-packets").map_or(1_000_000, |v| v.parse().unwrap());
        let (frames, copies, per_copy, ndpi_part) = build_mix(min);
        write_pcap(Path::new(&path), &frames);
        println!(
            "mix: {} packets = {copies} copies x {per_copy} packets ({} captures; ndpi part {ndpi_part} per copy), written to {path}",
            frames.len(),
            corpus_captures().len()
        );
        println!("mix-packets {}", frames.len());
    }
    if let Some(path) = arg_value(&args, "--classify") {
        did = true;
        let runs: usize = arg_value(&args, "--runs").map_or(3, |v| v.parse().unwrap());
        let frames = load(Path::new(&path));
        let mut pps = Vec::new();
        for run in 1..=runs {
            let (secs, flows, malformed) = classify(&frames);
            let rate = frames.len() as f64 / secs;
            println!(
                "ours run {run}/{runs}: {} packets, {flows} flows, {malformed} malformed, {secs:.3} s, {rate:.0} pps",
                frames.len()
            );
            println!("ours-pps {rate:.0}");
            pps.push(rate);
        }
        println!("ours-median-pps {:.0}", median(&mut pps));
    }
    if args.iter().any(|a| a == "--accuracy") {
        did = true;
        let (t, verdicts) = accuracy();
        println!("{}", report(&verdicts));
        println!(
            "ours-accuracy {:.4} {} {} {} {} {}",
            t.accuracy(),
            t.covered,
            t.agree,
            t.excused,
            t.disagree + t.missing,
            t.excluded
        );
        if args.iter().any(|a| a == "--ndpireader") {
            let (covered, agree, differ) = ndpireader_accuracy();
            for d in &differ {
                println!("  ndpiReader differs: {d}");
            }
            println!(
                "ndpireader-accuracy {:.4} {covered} {agree}",
                agree as f64 / covered.max(1) as f64
            );
        }
    }
    if !did {
        self_check();
    }
}

/// `cargo test --benches`: the mix builder and the classifier work, on a small mix.
fn self_check() {
    // Address shifting keeps every checksum it touches valid.
    let sample = corpus().join("sip-calls/sipnab_sip-over-tcp.pcap");
    let frames = load(&sample);
    let mut shifted = 0;
    for f in &frames {
        let mut g = f.data.clone();
        let plain_v4 = f.data.len() >= 34 && f.data[12..14] == [8, 0] && f.data[14] == 0x45;
        if shift_addresses(&mut g, 7) && plain_v4 {
            shifted += 1;
            assert_eq!(
                g[27],
                f.data[27].wrapping_add(7),
                "IPv4 source, second byte"
            );
            assert_eq!(
                g[31],
                f.data[31].wrapping_add(7),
                "IPv4 destination, second byte"
            );
            assert_eq!(ones_complement(&g[14..34]), 0xffff, "IPv4 header checksum");
            let l4_ok = |x: &[u8]| l4_checksum_ok(x);
            assert_eq!(l4_ok(&g), l4_ok(&f.data), "L4 checksum validity kept");
        }
    }
    assert!(shifted > 50, "{shifted} frames shifted");
    // Two copies at least, whatever the corpus's size.
    let (_, _, one_copy, _) = build_mix(1);
    let (mix, copies, per_copy, _) = build_mix(one_copy + 1);
    assert!(copies >= 2 && mix.len() == copies * per_copy && per_copy == one_copy);
    assert!(
        mix.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
        "time runs forward"
    );
    let (secs, flows, _) = classify(&mix);
    assert!(flows > 1_000, "{flows} flows");
    println!(
        "appid self-check: {} packets, {flows} flows, {:.0} pps (debug build, not a measurement)",
        mix.len(),
        mix.len() as f64 / secs
    );
}

fn ones_complement(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Whether the TCP/UDP checksum of an untagged IPv4 frame verifies.
fn l4_checksum_ok(f: &[u8]) -> bool {
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let l4 = &ip[ihl..total];
    let mut pseudo = Vec::with_capacity(12 + l4.len());
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, ip[9]]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    ones_complement(&pseudo) == 0xffff
}
