//! Replay through the real DPDK path (net_pcap): the output is the input, byte for byte, and
//! the flow log agrees with tshark's conversation table.
mod common;
use common::*;
use std::collections::BTreeMap;

#[test]
fn sip_call_capture_replays_byte_identical_and_flows_match_tshark() {
    let pcap = corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap");
    let dir = TempDir::new("golden");
    let r = replay(&pcap, dir.path(), None);

    let input = frames(&pcap);
    let output = frames(&r.out);
    assert_eq!(input.len(), 4269);
    assert_eq!(
        output.len(),
        input.len(),
        "every input packet is transmitted"
    );
    for (i, (a, b)) in input.iter().zip(&output).enumerate() {
        assert_eq!(a, b, "frame {} differs", i + 1);
    }

    // Our flows, merged per endpoint pair (tshark has no timeouts; we may split a pair).
    let mut ours: BTreeMap<ConvKey, (u64, u64, usize)> = BTreeMap::new();
    for f in &r.flows {
        let proto = f["proto"].as_str().unwrap();
        if proto != "TCP" && proto != "UDP" {
            continue;
        }
        let a = format!("{}:{}", f["src_ip"].as_str().unwrap(), f["src_port"]);
        let b = format!("{}:{}", f["dest_ip"].as_str().unwrap(), f["dest_port"]);
        let e = ours.entry(conv_key(proto, &a, &b)).or_default();
        e.0 += common::packets(f);
        e.1 += common::bytes(f);
        e.2 += 1;
    }
    let theirs = tshark_conversations(&pcap);
    assert_eq!(
        theirs.len(),
        78,
        "tshark's conversation count for this capture"
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "same conversations"
    );
    for (k, t) in &theirs {
        let (packets, bytes, n) = ours[k];
        assert_eq!(n, 1, "{k:?} is one flow");
        assert_eq!(packets, t.frames, "{k:?} packets");
        assert!(
            bytes_agree(bytes, &t.bytes),
            "{k:?}: {bytes} bytes, tshark says {:?}",
            t.bytes
        );
    }
    // Exact bytes per conversation, from tshark's per-frame lengths.
    let fields = tshark(
        &pcap,
        &[
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.len",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
        ],
    );
    let mut exact: BTreeMap<ConvKey, u64> = BTreeMap::new();
    for l in fields.lines() {
        let c: Vec<&str> = l.split(',').collect();
        let (proto, sp, dp) = if !c[3].is_empty() {
            ("udp", c[3], c[4])
        } else if !c[5].is_empty() {
            ("tcp", c[5], c[6])
        } else {
            continue;
        };
        let k = conv_key(proto, &format!("{}:{sp}", c[1]), &format!("{}:{dp}", c[2]));
        *exact.entry(k).or_default() += c[0].parse::<u64>().unwrap();
    }
    for (k, b) in &exact {
        assert_eq!(ours[k].1, *b, "{k:?} exact bytes");
    }
    assert!(
        r.stdout.contains("packets dropped               0"),
        "{}",
        r.stdout
    );
}

#[test]
fn every_corpus_capture_loads_and_is_forwarded() {
    let mut files = Vec::new();
    for sub in ["ndpi", "sip-calls", "mix", "mix/trex_sfr"] {
        for e in std::fs::read_dir(corpus().join(sub)).unwrap() {
            let p = e.unwrap().path();
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "pcap" || ext == "pcapng" {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 40, "corpus has {} captures", files.len());
    for p in files {
        let dir = TempDir::new("corpus");
        let r = replay(&p, dir.path(), None);
        let n_in = frames(&p).len();
        let n_out = frames(&r.out).len();
        let dropped: usize = r
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("packets dropped"))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|v| v.parse().ok())
            .expect("summary names dropped packets");
        assert_eq!(
            n_out + dropped,
            n_in,
            "{}: {n_out} out + {dropped} dropped != {n_in} in",
            p.display()
        );
        // A tunnel packet counts in its outer flow and again in its inner flow.
        let (inner, outer): (Vec<_>, Vec<_>) =
            r.flows.iter().partition(|f| f.get("tunnel").is_some());
        let count =
            |v: &[&serde_json::Value]| -> u64 { v.iter().map(|f| common::packets(f)).sum() };
        assert!(count(&outer) <= n_in as u64, "{}", p.display());
        assert!(count(&inner) <= n_in as u64, "{}", p.display());
        for f in &r.flows {
            for key in [
                "timestamp",
                "flow_id",
                "event_type",
                "proto",
                "src_ip",
                "dest_ip",
                "community_id",
                "app",
                "flow",
            ] {
                assert!(
                    !f[key].is_null(),
                    "{}: flow record lacks {key}: {f}",
                    p.display()
                );
            }
            assert!(common::secs(&f["flow"]["end"]) >= common::secs(&f["flow"]["start"]));
            assert!(!f["flow"]["end_reason"].is_null(), "{f}");
        }
    }
}

/// Writes `frames` (Ethernet) to a pcap of another link type, as the capturing host would.
fn rewrite_as(src: &std::path::Path, dst: &std::path::Path, link: pcap_file::DataLink) {
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
    let mut r = PcapReader::new(std::fs::File::open(src).unwrap()).unwrap();
    let header = PcapHeader {
        datalink: link,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(dst).unwrap(), header).unwrap();
    while let Some(p) = r.next_packet() {
        let p = p.unwrap();
        let et = u16::from_be_bytes([p.data[12], p.data[13]]);
        if et != 0x0800 && et != 0x86dd {
            continue; // not representable without Ethernet
        }
        let ip = &p.data[14..];
        let data: Vec<u8> = match link {
            pcap_file::DataLink::RAW => ip.to_vec(),
            pcap_file::DataLink::NULL => {
                let mut v = 2u32.to_le_bytes().to_vec(); // AF_INET, little-endian host
                v.extend_from_slice(ip);
                v
            }
            pcap_file::DataLink::LINUX_SLL => {
                let mut v = vec![0, 0, 0, 1, 0, 6];
                v.extend_from_slice(&p.data[6..12]);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&et.to_be_bytes());
                v.extend_from_slice(ip);
                v
            }
            _ => unreachable!(),
        };
        let orig = p.orig_len - 14 + (data.len() - ip.len()) as u32;
        w.write_packet(&PcapPacket::new(p.timestamp, orig, &data))
            .unwrap();
    }
}

#[test]
fn raw_ip_loopback_and_cooked_captures_give_the_same_flows_as_ethernet() {
    let src = corpus().join("sip-calls/sipnab_sip-over-tcp.pcap");
    let dir = TempDir::new("linktypes");
    let baseline = replay(&src, &dir.path().join("eth"), None);
    let strip = |flows: &[serde_json::Value]| -> Vec<(String, String, u64, u64, u64)> {
        let mut v: Vec<_> = flows
            .iter()
            .map(|f| {
                (
                    f["proto"].to_string(),
                    format!(
                        "{}:{}>{}:{}",
                        f["src_ip"], f["src_port"], f["dest_ip"], f["dest_port"]
                    ),
                    common::packets(f),
                    // Bytes differ by the link header; compare packets and header-free bytes.
                    common::bytes(f) - 14 * common::packets(f),
                    (common::secs(&f["flow"]["start"]) * 1e6) as u64,
                )
            })
            .collect();
        v.sort();
        v
    };
    let want = strip(&baseline.flows);
    assert!(!want.is_empty());
    for link in [
        pcap_file::DataLink::RAW,
        pcap_file::DataLink::NULL,
        pcap_file::DataLink::LINUX_SLL,
    ] {
        let p = dir.path().join(format!("{link:?}.pcap"));
        rewrite_as(&src, &p, link);
        let r = replay(&p, &dir.path().join(format!("{link:?}")), None);
        assert_eq!(strip(&r.flows), want, "{link:?}");
    }
}

#[test]
fn replay_is_deterministic() {
    let pcap = corpus().join("ndpi/1kxun.pcap");
    let a = TempDir::new("det-a");
    let b = TempDir::new("det-b");
    let ra = replay(&pcap, a.path(), None);
    let rb = replay(&pcap, b.path(), None);
    let norm = |v: &[serde_json::Value]| {
        let mut s: Vec<String> = v.iter().map(|f| f.to_string()).collect();
        s.sort();
        s
    };
    assert_eq!(norm(&ra.flows), norm(&rb.flows));
    assert!(ra.flows.len() > 100);
}

#[test]
fn the_bundled_sample_replays_with_its_malformed_frames_counted_as_drops() {
    let dir = TempDir::new("sample");
    let o = std::process::Command::new(bin("aperture-dataplane"))
        .args(["replay", "--out-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let sample = frames(&dir.path().join("sample.pcap"));
    let sent = frames(&dir.path().join("out.pcap"));
    // The generator puts exactly two malformed frames in the sample (IHL 3, TCP header cut).
    assert_eq!(sent.len() + 2, sample.len(), "{out}");
    let line = |reason: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(reason))
            .map(|l| l.split_whitespace().last().unwrap().to_string())
    };
    assert_eq!(
        line("ipv4-bad-header-length").as_deref(),
        Some("1"),
        "{out}"
    );
    assert_eq!(line("tcp-truncated").as_deref(), Some("1"), "{out}");
    let flows = read_flows(&dir.path().join("flows.jsonl"));
    assert!(flows.len() >= 20, "{out}");
    assert!(out.contains("Largest flows"), "{out}");
}

#[test]
fn two_workers_split_the_capture_by_flow_and_lose_nothing() {
    // Two worker lcores sharing one CPU (the machine may have only two): each gets its own
    // input ring with the flows hashed to it, and the outputs are merged.
    let dir = TempDir::new("two-workers");
    let cfg = common::two_worker_config(dir.path());
    let pcap = corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap");
    let r = replay(&pcap, dir.path(), Some(&cfg));
    assert!(r.stdout.contains("2 worker(s)"), "{}", r.stdout);
    let mut input = frames(&pcap);
    let mut output = frames(&r.out);
    assert_eq!(output.len(), input.len());
    // Workers send concurrently, so only the multiset of frames is the same.
    input.sort();
    output.sort();
    assert!(input == output, "the same frames, byte for byte");
    let workers: std::collections::BTreeSet<u64> = r
        .flows
        .iter()
        .map(|f| f["worker"].as_u64().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "both workers saw flows");
    let single = replay(&pcap, &dir.path().join("one"), None);
    let key = |f: &serde_json::Value| {
        (
            f["proto"].to_string(),
            f["src_ip"].to_string(),
            f["src_port"].to_string(),
            f["dest_ip"].to_string(),
            f["dest_port"].to_string(),
            Some(common::packets(f)),
            f["app"].to_string(),
        )
    };
    let mut a: Vec<_> = r.flows.iter().map(key).collect();
    let mut b: Vec<_> = single.flows.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "the same flows as with one worker");
}

/// `--flow-log` alone asks for the flow log alone: no output capture is written (the
/// workers still send, to /dev/null), and the summary says so; the flow log is the same as
/// when the output capture is written too.
#[test]
fn a_flow_log_alone_writes_no_output_capture() {
    let dir = TempDir::new("flowlog-only");
    let pcap = corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap");
    let flows = dir.path().join("only.jsonl");
    let o = std::process::Command::new(bin("aperture-dataplane"))
        .args(["replay", "--pcap"])
        .arg(&pcap)
        .arg("--flow-log")
        .arg(&flows)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("output capture: none"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        left,
        vec!["only.jsonl".to_string()],
        "only the flow log is written"
    );
    let with_out = replay(&pcap, &dir.path().join("full"), None);
    let key = |v: &[serde_json::Value]| {
        let mut k: Vec<String> = v
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} {}",
                    f["src_ip"],
                    f["src_port"],
                    f["app"],
                    common::packets(f)
                )
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(key(&read_flows(&flows)), key(&with_out.flows));
}

/// Frames with their capture times (seconds and nanoseconds), any format pcap-file reads.
fn timed_frames(path: &std::path::Path) -> Vec<(std::time::Duration, Vec<u8>)> {
    let mut out = Vec::new();
    aperture_dataplane::replay::capture::for_each_frame(path, |f| {
        out.push((f.ts, f.data.into_owned()));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    out
}

/// A pool far smaller than the input ring (512 mbufs for a 1024-slot ring, 4,269 packets):
/// the reader waits for mbufs instead of dropping, and the output is the input, frame for
/// frame and with each frame's capture time, and the flows are those of a default replay.
#[test]
fn a_small_mbuf_pool_slows_the_replay_and_loses_nothing() {
    let dir = TempDir::new("small-pool");
    let cfg = dir.path().join("small.yaml");
    let text = aperture_dataplane::config::EMBEDDED
        .replace("mbufs: 16383", "mbufs: 512")
        .replace("cache: 256", "cache: 16");
    assert!(
        text.contains("mbufs: 512") && text.contains("cache: 16"),
        "config template changed"
    );
    std::fs::write(&cfg, text).unwrap();
    let pcap = corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap");
    let r = replay_with(&pcap, dir.path(), Some(&cfg), &["--stats"]);
    let input = timed_frames(&pcap);
    let output = timed_frames(&r.out);
    assert!(input.len() > 4000, "{}", input.len());
    assert_eq!(output.len(), input.len(), "{}", r.stdout);
    assert!(
        input == output,
        "the same frames at the same capture times, in order"
    );
    assert_eq!(
        worker_counter(&r.stdout, "rx_nombuf").unwrap_or(0),
        0,
        "{}",
        r.stdout
    );
    let plain = replay(&pcap, &dir.path().join("plain"), None);
    let norm = |v: &[serde_json::Value]| {
        let mut s: Vec<String> = v.iter().map(|f| f.to_string()).collect();
        s.sort();
        s
    };
    assert_eq!(norm(&r.flows), norm(&plain.flows), "the same flow records");
}

/// The record offsets of a classic little-endian pcap (the corpus's G.711 call is one).
fn records(bytes: &[u8]) -> Vec<usize> {
    assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= bytes.len() {
        out.push(at);
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
    }
    out
}

/// Flow identities and what they carried, without times.
fn flow_keys(flows: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = flows
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} {}:{} {} {}",
                f["proto"],
                f["src_ip"],
                f["src_port"],
                f["dest_ip"],
                f["dest_port"],
                common::packets(f),
                f["app"]
            )
        })
        .collect();
    v.sort();
    v
}

/// Captures as tshark reads them: one packet stamped 0xffffffff seconds in the middle does
/// not drag the capture clock (the flows are those of the clean capture, their times stay
/// in 2020s, the outlier is counted), and a capture cut inside its last record is replayed
/// up to the cut with a warning, as many packets as tshark reads from it.
#[test]
fn a_far_future_stamp_and_a_cut_last_record_are_read_as_tshark_reads_them() {
    let dir = TempDir::new("odd-captures");
    let clean = corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap");
    let bytes = std::fs::read(&clean).unwrap();
    let recs = records(&bytes);
    assert!(recs.len() > 1000);
    let mut odd = bytes.clone();
    let at = recs[recs.len() / 2];
    odd[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let odd_path = dir.path().join("future.pcap");
    std::fs::write(&odd_path, &odd).unwrap();
    let base = replay(&clean, &dir.path().join("clean"), None);
    let r = replay_with(&odd_path, &dir.path().join("future"), None, &["--stats"]);
    assert_eq!(
        worker_counter(&r.stdout, "clock_outliers"),
        Some(1),
        "{}",
        r.stdout
    );
    assert_eq!(flow_keys(&r.flows), flow_keys(&base.flows));
    for f in &r.flows {
        let end = common::secs(&f["flow"]["end"]);
        assert!(
            end < 2.0e9,
            "a flow ends at {end}: the clock followed the outlier"
        );
    }

    let cut_path = dir.path().join("cut.pcap");
    let last = *recs.last().unwrap();
    std::fs::write(&cut_path, &bytes[..last + 20]).unwrap();
    // tshark reads up to the cut, says so and exits 2.
    let t = std::process::Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(&cut_path)
        .output()
        .expect("tshark is installed by scripts/setup.sh");
    assert!(String::from_utf8_lossy(&t.stderr).contains("cut short"));
    let tshark_packets = String::from_utf8_lossy(&t.stdout).lines().count();
    assert_eq!(tshark_packets, recs.len() - 1, "tshark reads up to the cut");
    let r = replay(&cut_path, &dir.path().join("cut"), None);
    assert!(
        r.stderr
            .contains(&format!("ends inside packet {}", recs.len())),
        "{}",
        r.stderr
    );
    assert_eq!(frames(&r.out).len(), tshark_packets);
}

/// A replay that fails half-way (a record length that cannot be, packet 2001) says which
/// file and packet, exits non-zero, and leaves none of its own files behind: no work
/// directory, no stats segment, no DPDK runtime directory.
#[test]
fn a_replay_that_fails_names_the_packet_and_leaves_nothing_behind() {
    let dir = TempDir::new("fails");
    let bytes = std::fs::read(corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap")).unwrap();
    let recs = records(&bytes);
    let mut bad = bytes.clone();
    let at = recs[2000];
    bad[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let path = dir.path().join("damaged.pcap");
    std::fs::write(&path, &bad).unwrap();
    let out_dir = dir.path().join("out");
    let child = std::process::Command::new(bin("aperture-dataplane"))
        .arg("replay")
        .arg("--pcap")
        .arg(&path)
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--timeout")
        .arg("60")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("damaged.pcap") && err.contains("packet 2001"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".replay"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let segment = std::env::temp_dir().join(format!("aperture-replay-stats-{pid}"));
    assert!(!segment.exists(), "{}", segment.display());
    let runtime = std::path::Path::new("/var/run/dpdk").join(format!("aperture-replay-{pid}"));
    assert!(!runtime.exists(), "{}", runtime.display());
}

/// A worker that panics (fault injection: APERTURE_FAULT_PANIC_WORKER) does not abort the
/// process from inside the EAL: the panic is reported with the worker and lcore, the other
/// worker stops too, both log their flows, and the replay exits non-zero at once.
#[test]
fn a_worker_panic_is_reported_and_stops_the_replay_cleanly() {
    let dir = TempDir::new("panic");
    let cfg = two_worker_config(dir.path());
    let out_dir = dir.path().join("out");
    let o = std::process::Command::new(bin("aperture-dataplane"))
        .arg("--config")
        .arg(&cfg)
        .arg("replay")
        .arg("--pcap")
        .arg(corpus().join("sip-calls/sipnab_SIP_CALL_RTP_G711.pcap"))
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--timeout")
        .arg("60")
        .env("APERTURE_FAULT_PANIC_WORKER", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an error exit, not an abort: {err}"
    );
    assert!(
        err.contains("worker 1 (lcore 2) panicked: fault injection"),
        "{err}"
    );
    // The flows both workers had were ended and logged; nothing else is left.
    let mut left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["flows.jsonl"]);
    let flows = read_flows(&out_dir.join("flows.jsonl"));
    assert!(!flows.is_empty());
    assert!(
        flows.iter().any(|f| f["worker"] == 1),
        "the panicked worker's flows"
    );
}

/// The flow log as a real consumer reads it: every line parses in jq, every record is valid
/// against tests/flow-log.schema.json (python's jsonschema, formats checked), and every
/// record's Community ID is one tshark computes for the capture's packets (Wireshark's own
/// implementation: TCP, UDP, ICMP, ICMPv6 and port-less protocols, IPv4 and IPv6).
#[test]
fn the_flow_log_reads_in_jq_passes_its_schema_and_has_tsharks_community_ids() {
    let dir = TempDir::new("eve");
    let schema = root().join("tests/flow-log.schema.json");
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for (i, name) in [
        "mix/USTC-TFC2016_Facetime.pcap",
        "ndpi/iphone.pcap",
        "ndpi/ipsec_isakmp_esp.pcap",
        "ndpi/signal.pcap",
        "sip-calls/sipnab_sip-over-tcp.pcap",
        "ndpi/vxlan.pcap",
        "ndpi/6in4tunnel.pcap",
    ]
    .iter()
    .enumerate()
    {
        let pcap = corpus().join(name);
        let out = dir.path().join(i.to_string());
        let r = replay(&pcap, &out, None);
        let log = out.join("flows.jsonl");
        let all = read_flows(&log);
        let lines = all.len();
        assert!(lines > 0 && r.flows.len() <= lines, "{name}");
        // jq: every line is a JSON object with the eve basics.
        let o = std::process::Command::new("jq")
            .args([
                "-e",
                "-r",
                r#"select(.event_type == "flow" and (.flow_id|type) == "number") | .community_id"#,
            ])
            .arg(&log)
            .output()
            .expect("jq is installed by scripts/setup.sh");
        assert!(
            o.status.success(),
            "jq: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).lines().count(),
            lines,
            "{name}"
        );
        // The schema, with formats (ipv4/ipv6) checked.
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
bad = 0
for n, line in enumerate(open(sys.argv[2]), 1):
    for e in v.iter_errors(json.loads(line)):
        bad += 1
        print("line %d: %s at %s" % (n, e.message, list(e.absolute_path)))
sys.exit(1 if bad else 0)
"#,
            ])
            .arg(&schema)
            .arg(&log)
            .output()
            .expect("python3-jsonschema is installed by scripts/setup.sh");
        assert!(
            o.status.success(),
            "{name}: records that break the schema:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // tshark's Community IDs of every packet.
        let theirs: std::collections::BTreeSet<String> = tshark(
            &pcap,
            &[
                "--enable-protocol",
                "communityid",
                "-T",
                "fields",
                "-e",
                "communityid",
            ],
        )
        .lines()
        .flat_map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| s.starts_with("1:"))
        .collect();
        assert!(
            !theirs.is_empty(),
            "{name}: tshark computed no Community ID"
        );
        for f in &all {
            // A tunnel's outer flow: tshark hashes only the innermost packet.
            if OUTER_APPS.contains(&f["app"].as_str().unwrap_or("")) {
                continue;
            }
            let id = f["community_id"].as_str().unwrap();
            assert!(theirs.contains(id), "{name}: {id} is not tshark's: {f}");
            *checked
                .entry(f["proto"].as_str().unwrap().to_string())
                .or_default() += 1;
            if let Some(t) = f["tunnel"]["type"].as_str() {
                *checked.entry(format!("inside {t}")).or_default() += 1;
            }
        }
    }
    println!("Community IDs checked against tshark: {checked:?}");
    for t in ["inside vxlan", "inside ip-in-ip"] {
        assert!(
            checked.contains_key(t),
            "no flow {t} was checked: {checked:?}"
        );
    }
    // "2": IGMP, a protocol without ports.
    for p in ["TCP", "UDP", "ICMP", "IPv6-ICMP", "2"] {
        assert!(
            checked.contains_key(p),
            "no {p} flow was checked: {checked:?}"
        );
    }
}

/// The applications of tunnels' outer flows.
const OUTER_APPS: &[&str] = &[
    "ip-in-ip",
    "ipv6-in-ip",
    "gre",
    "vxlan",
    "gtp-u",
    "teredo",
    "capwap",
];

/// A CPU without what the build uses gets a sentence, not SIGILL: every binary checks before
/// `main` (the fault variable makes this CPU look as if it lacked AVX2 and BMI2).
#[test]
fn a_cpu_without_avx2_is_told_so_before_anything_runs() {
    for b in ["aperture-dataplane", "aperture-control", "aperturectl"] {
        let o = std::process::Command::new(bin(b))
            .arg("--help")
            .env("APERTURE_FAULT_CPU_MISSING", "avx2,bmi2")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{b}: {err}");
        assert!(
            err.contains("this CPU lacks AVX2, BMI2") && err.contains("x86-64-v3"),
            "{b}: {err}"
        );
        assert!(
            o.stdout.is_empty(),
            "{b} ran main: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        // Without the fault, the same binary runs.
        let o = std::process::Command::new(bin(b))
            .arg("--help")
            .output()
            .unwrap();
        assert!(o.status.success(), "{b}");
    }
}
