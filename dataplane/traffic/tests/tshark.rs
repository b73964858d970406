//! The demo capture as an independent dissector sees it: tshark must find every protocol the
//! sample claims to carry, read the TLS server names and the SIP dialogs, validate every
//! checksum, and report as malformed only the two frames that are malformed on purpose.
//!
//! tshark must be on PATH (scripts/setup.sh installs it); the tests fail without it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use aperture_traffic::{sample, write_pcap_file};

fn tshark() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("tshark"))
        .find(|p| p.is_file())
}

/// Runs tshark on `file` with checksum validation on and `args` appended; returns stdout lines.
fn run(tshark: &Path, file: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(tshark)
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .args(["-d", "tcp.port==5223,tls"])
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Frame numbers tshark reports as malformed or with an error-level expert message.
fn error_frames(tshark: &Path, file: &Path) -> BTreeSet<usize> {
    run(
        tshark,
        file,
        &[
            "-Y",
            "_ws.malformed || _ws.expert.severity >= error",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    )
    .iter()
    .map(|l| l.trim().parse().unwrap())
    .collect()
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp(name: &str) -> TempFile {
    TempFile(std::env::temp_dir().join(format!(
        "aperture-tshark-{}-{name}.pcap",
        std::process::id()
    )))
}

#[test]
fn tshark_dissects_the_sample_and_flags_only_the_deliberate_defects() {
    let tshark = tshark().expect("tshark is not on PATH: run scripts/setup.sh (it installs it)");
    for seed in [1, 2] {
        let s = sample(seed);
        let file = temp(&format!("sample{seed}"));
        write_pcap_file(&file.0, &s.frames).unwrap();

        // Only the deliberate frames are malformed; no checksum is bad anywhere.
        let wanted: BTreeSet<usize> = s.malformed.iter().map(|m| m.index + 1).collect();
        assert_eq!(wanted.len(), 2);
        assert_eq!(error_frames(&tshark, &file.0), wanted, "seed {seed}");

        // Every protocol the sample claims is dissected. RTP of the direct call is found from
        // the SDP by tshark itself; decode-as makes that independent of the SIP dissector.
        let direct = s.facetime.iter().find(|f| !f.turn).unwrap();
        let decode = format!("udp.port=={},rtp", direct.audio.client_port);
        let mut per_protocol: BTreeMap<String, usize> = BTreeMap::new();
        for line in run(
            &tshark,
            &file.0,
            &["-d", &decode, "-T", "fields", "-e", "frame.protocols"],
        ) {
            for p in line.split(':').collect::<BTreeSet<_>>() {
                *per_protocol.entry(p.to_string()).or_default() += 1;
            }
        }
        eprintln!("seed {seed}: {} frames, {per_protocol:?}", s.frames.len());
        for p in [
            "arp", "vlan", "ipv6", "icmp", "icmpv6", "dns", "ntp", "http", "smtp", "tls", "stun",
            "sip", "sdp", "rtp", "rtcp",
        ] {
            assert!(
                per_protocol.get(p).copied().unwrap_or(0) > 0,
                "seed {seed}: no {p} frames"
            );
        }
        let rtp_frames = per_protocol["rtp"];
        let expected_rtp = direct.audio.client_packets + direct.audio.peer_packets;
        assert!(
            rtp_frames >= expected_rtp as usize,
            "seed {seed}: {rtp_frames} rtp frames"
        );
        assert_eq!(per_protocol["sip"], 14, "two calls of 7 SIP messages");
        assert_eq!(per_protocol["http"], 4);

        // TLS server names, read by tshark from the ClientHellos.
        let names: BTreeSet<String> = run(
            &tshark,
            &file.0,
            &[
                "-Y",
                "tls.handshake.type == 1",
                "-T",
                "fields",
                "-e",
                "tls.handshake.extensions_server_name",
            ],
        )
        .into_iter()
        .collect();
        let mut expected: BTreeSet<String> = s.facetime.iter().map(|f| f.ess.sni.clone()).collect();
        expected.insert("courier.push.apple.com".into());
        assert_eq!(names, expected);

        // SIP: two INVITEs from Viceroy, each answered 100/180/200 and ended by BYE/200.
        let sip = run(
            &tshark,
            &file.0,
            &[
                "-Y",
                "sip",
                "-T",
                "fields",
                "-E",
                "separator=|",
                "-e",
                "sip.Method",
                "-e",
                "sip.Status-Code",
                "-e",
                "sip.User-Agent",
                "-e",
                "sip.Call-ID",
            ],
        );
        let invites: Vec<&String> = sip.iter().filter(|l| l.starts_with("INVITE|")).collect();
        assert_eq!(invites.len(), 2);
        assert!(invites.iter().all(|l| l.contains("|Viceroy 1.4|")));
        let call_ids: BTreeSet<&str> = sip.iter().filter_map(|l| l.rsplit('|').next()).collect();
        assert_eq!(
            call_ids,
            s.facetime.iter().map(|f| f.call_id.as_str()).collect()
        );
        let statuses: Vec<&str> = sip
            .iter()
            .filter_map(|l| l.split('|').nth(1))
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(statuses.iter().filter(|c| **c == "200").count(), 4);
        assert_eq!(statuses.iter().filter(|c| **c == "180").count(), 2);

        // RTP SSRCs tshark reads on the direct call are the ones the session reports.
        let ssrcs: BTreeSet<String> = run(
            &tshark,
            &file.0,
            &["-d", &decode, "-Y", "rtp", "-T", "fields", "-e", "rtp.ssrc"],
        )
        .into_iter()
        .collect();
        for ssrc in [direct.audio.client_ssrc, direct.audio.peer_ssrc] {
            assert!(
                ssrcs.contains(&format!("0x{ssrc:08x}")),
                "{ssrc:#x} not in {ssrcs:?}"
            );
        }

        // STUN: Binding, Allocate and ChannelBind requests and responses are all there.
        let stun: BTreeSet<String> = run(
            &tshark,
            &file.0,
            &[
                "-Y",
                "stun && !stun.channel",
                "-T",
                "fields",
                "-e",
                "stun.type",
            ],
        )
        .into_iter()
        .collect();
        for t in ["0x0001", "0x0101", "0x0003", "0x0103", "0x0009", "0x0109"] {
            assert!(stun.contains(t), "no STUN message of type {t} in {stun:?}");
        }
    }
}

#[test]
fn tshark_reports_a_corrupted_checksum_so_the_clean_result_means_something() {
    let tshark = tshark().expect("tshark is not on PATH: run scripts/setup.sh (it installs it)");
    let mut s = sample(1);
    // Corrupt the UDP checksum of the first DNS query and the TCP checksum of the first SYN.
    let mut corrupted = BTreeSet::new();
    for (i, (_, f)) in s.frames.iter_mut().enumerate() {
        let is_ipv4 = f[12..14] == [0x08, 0x00];
        if is_ipv4 && f[23] == 17 && f[36..38] == [0, 53] && corrupted.is_empty() {
            f[40] ^= 0x55;
            corrupted.insert(i + 1);
        } else if is_ipv4 && f[23] == 6 && f[47] == 0x02 && corrupted.len() == 1 {
            f[50] ^= 0x55;
            corrupted.insert(i + 1);
        }
    }
    assert_eq!(corrupted.len(), 2);
    let file = temp("corrupt");
    write_pcap_file(&file.0, &s.frames).unwrap();
    let wanted: BTreeSet<usize> = s
        .malformed
        .iter()
        .map(|m| m.index + 1)
        .chain(corrupted)
        .collect();
    assert_eq!(error_frames(&tshark, &file.0), wanted);
}
