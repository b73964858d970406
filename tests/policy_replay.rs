//! The policy enforced on replays: what the flow log says each flow's action was is what the
//! output capture shows (checked with tshark): every packet of an allowed flow is forwarded,
//! and no packet of a denied flow after App-ID decided it.
mod common;

use common::{bin, bundled_sample, corpus, replay_with, tshark, worker_counter, TempDir};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// "Allow facetime and what it depends on; deny the rest."
const FACETIME_ONLY: &str = "
version: 1
rules:
  - name: facetime
    application: [facetime, sip, stun, ssl, jabber, ichat-av]
    action: allow
default-action: deny
";

/// (proto, lower endpoint, higher endpoint), endpoints as "ip:port".
type Key = (u8, String, String);

fn key(proto: u8, a: String, b: String) -> Key {
    if a <= b {
        (proto, a, b)
    } else {
        (proto, b, a)
    }
}

fn endpoint(ip: &str, port: &str) -> String {
    format!("{ip}:{port}")
}

/// TCP and UDP packets of the capture per conversation, as tshark dissects them (the first
/// IP header of each packet: an ICMP error's quoted header is not its flow).
fn tshark_packets(pcap: &Path) -> BTreeMap<Key, u64> {
    let text = tshark(
        pcap,
        &[
            "-T",
            "fields",
            "-E",
            "occurrence=f",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "icmp.type",
            "-e",
            "icmpv6.type",
        ],
    );
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 10 || !f[8].is_empty() || !f[9].is_empty() {
            continue;
        }
        let (src, dst) = if !f[0].is_empty() {
            (f[0], f[1])
        } else {
            (f[2], f[3])
        };
        let (proto, sp, dp) = if !f[4].is_empty() {
            (6, f[4], f[5])
        } else if !f[6].is_empty() {
            (17, f[6], f[7])
        } else {
            continue;
        };
        if src.is_empty() {
            continue;
        }
        *out.entry(key(proto, endpoint(src, sp), endpoint(dst, dp)))
            .or_insert(0) += 1;
    }
    out
}

fn flow_key(f: &Value) -> Option<Key> {
    let proto = match f["proto"].as_str()? {
        "TCP" => 6,
        "UDP" => 17,
        _ => return None,
    };
    let ep = |ip: &str, port: &str| {
        endpoint(
            f[ip].as_str().unwrap_or(""),
            &f[port].as_u64().unwrap_or(0).to_string(),
        )
    };
    Some(key(
        proto,
        ep("src_ip", "src_port"),
        ep("dest_ip", "dest_port"),
    ))
}

#[derive(Default, Debug)]
struct Expect {
    allowed_packets: u64,
    /// At most this many packets of denied flows may pass: those before App-ID's decision.
    denied_before_decision: u64,
    allowed: usize,
    denied: usize,
}

/// Replays `pcap` under `policy` and checks the output capture against the flow log.
/// Returns (allowed flows, denied flows with packets, stdout).
fn check_enforcement(pcap: &Path, policy: &str, tag: &str) -> (usize, usize, String) {
    let dir = TempDir::new(tag);
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, policy).unwrap();
    let r = replay_with(pcap, dir.path(), None, &["--policy", p.to_str().unwrap()]);
    let mut expect: BTreeMap<Key, Expect> = BTreeMap::new();
    for f in &r.flows {
        assert_eq!(f["policy_generation"], 1, "{f}");
        let Some(k) = flow_key(f) else { continue };
        let e = expect.entry(k).or_default();
        let packets = common::packets(f);
        match f["action"].as_str().unwrap() {
            "allow" => {
                e.allowed_packets += packets;
                e.allowed += 1;
            }
            "deny" | "drop" | "reset" => {
                let decided = f["app_decided_after"].as_u64().unwrap_or(0);
                // Undecided to the end: everything may have passed (some rule could allow).
                let passed = if f["app"] == "none" || decided == 0 {
                    packets
                } else {
                    decided - 1
                };
                e.denied_before_decision += passed.min(packets);
                e.denied += 1;
            }
            a => panic!("unknown action {a} in {f}"),
        }
    }
    let seen = tshark_packets(&r.out);
    let (mut allowed, mut denied) = (0, 0);
    for (k, e) in &expect {
        let got = seen.get(k).copied().unwrap_or(0);
        match (e.allowed, e.denied) {
            (_, 0) => {
                assert_eq!(
                    got,
                    e.allowed_packets,
                    "{}: allowed flow {k:?} lost packets",
                    pcap.display()
                );
                allowed += e.allowed;
            }
            (0, _) => {
                assert!(
                    got <= e.denied_before_decision,
                    "{}: denied flow {k:?}: {got} packets forwarded, at most {} before its decision",
                    pcap.display(),
                    e.denied_before_decision
                );
                denied += e.denied;
            }
            // The same tuple allowed and denied (a reused TCP tuple): bounded both ways.
            _ => assert!(
                got >= e.allowed_packets && got <= e.allowed_packets + e.denied_before_decision
            ),
        }
    }
    // Nothing is in the output that no flow record accounts for.
    for (k, n) in &seen {
        assert!(
            expect.contains_key(k),
            "{}: {n} packets of {k:?} forwarded without a flow record",
            pcap.display()
        );
    }
    (allowed, denied, r.stdout)
}

#[test]
fn the_bundled_sample_under_allow_facetime_deny_the_rest() {
    let (_dir, sample) = bundled_sample();
    let (allowed, denied, out) = check_enforcement(&sample, FACETIME_ONLY, "sample-policy");
    assert!(
        allowed >= 8 && denied >= 5,
        "allowed {allowed}, denied {denied}\n{out}"
    );
    assert!(out.contains("Policy "), "{out}");
    // The sample's calls: FaceTime's ssl, sip and media are allowed, the rest denied.
    let line = |app: &str, action: &str| {
        out.lines().any(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.len() >= 2 && t[0] == app && t[1] == action
        })
    };
    // The calls' media is facetime too (the SIP ALG predicted it, ["rtp","ichat-av",
    // "facetime"]); media outside a call seen by the ALG would be ichat-av, allowed as well.
    for app in ["facetime", "stun", "apple-push-notifications"] {
        assert!(line(app, "allow"), "{app} not allowed:\n{out}");
    }
    assert!(!line("ichat-av", "deny"), "ichat-av denied:\n{out}");
    // Also the media the remote party starts (its RTCP toward the caller), which enters
    // the replay on the same port as the caller's packets.
    assert!(!line("facetime", "deny"), "facetime media denied:\n{out}");
    for app in ["web-browsing", "dns", "ntp", "smtp"] {
        assert!(line(app, "deny"), "{app} not denied:\n{out}");
    }
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn the_mix_captures_under_allow_facetime_deny_the_rest() {
    let mix = corpus().join("mix");
    let mut files: Vec<PathBuf> = vec![
        mix.join("USTC-TFC2016_Facetime.pcap"),
        mix.join("zeek_tls_xmpp-starttls.pcap"),
    ];
    let mut trex: Vec<PathBuf> = std::fs::read_dir(mix.join("trex_sfr"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    trex.sort();
    files.extend(trex);
    let (mut allowed, mut denied) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let (a, d, _) = check_enforcement(f, FACETIME_ONLY, &format!("mix-{i}"));
        eprintln!("{}: {a} allowed, {d} denied", f.display());
        allowed += a;
        denied += d;
    }
    // The FaceTime capture's flows are allowed, the enterprise mix's denied.
    assert!(
        allowed >= 10 && denied >= 10,
        "allowed {allowed}, denied {denied}"
    );
}

#[test]
fn allowing_facetime_without_stun_warns_and_drops_the_stun_flows() {
    let (_dir, sample) = bundled_sample();
    let policy = FACETIME_ONLY.replace("sip, stun, ssl", "sip, ssl");
    let (_, _, out) = check_enforcement(&sample, &policy, "no-stun");
    assert!(
        out.contains("warning: rule \"facetime\" allows facetime, which depends on sip, stun, ssl, jabber, ichat-av: no allow rule allows stun;"),
        "{out}"
    );
    let stun_denied = out.lines().any(|l| {
        let t: Vec<&str> = l.split_whitespace().collect();
        t.len() >= 3 && t[0] == "stun" && t[1] == "deny" && t[2].parse::<u64>().unwrap_or(0) > 0
    });
    assert!(stun_denied, "{out}");
}

/// A custom application from the policy file: its signature (TLS to Apple's 17/8 on 5223)
/// takes the push flows from the catalog's apple-push-notifications, its own rule denies
/// them (checked with tshark), and the rest of FaceTime stays allowed.
#[test]
fn a_custom_application_is_identified_and_enforced() {
    let (_dir, sample) = bundled_sample();
    let policy = "
version: 1
applications:
  - name: corp-push
    description: push notifications, named by the site
    parent: [ssl]
    signatures:
      - { on: ssl, server: [17.0.0.0/8], port: [5223] }
rules:
  - { name: no-push, application: [corp-push], action: deny }
  - name: facetime
    application: [facetime, sip, stun, ssl, jabber, ichat-av]
    action: allow
default-action: deny
";
    let (allowed, denied, out) = check_enforcement(&sample, policy, "custom-app");
    assert!(
        allowed >= 8 && denied >= 2,
        "allowed {allowed}, denied {denied}\n{out}"
    );
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |app: &str, action: &str| {
        rows.iter()
            .find(|t| t.len() >= 3 && t[0] == app && t[1] == action)
            .map(|t| t[2].parse::<u64>().unwrap_or(0))
    };
    assert!(row("corp-push", "deny").unwrap_or(0) >= 2, "{out}");
    assert_eq!(row("apple-push-notifications", "allow"), None, "{out}");
    assert!(row("facetime", "allow").is_some(), "{out}");
    // The flow log names it, with the path it was identified on.
    let dir = TempDir::new("custom-app-log");
    let p = dir.path().join("policy.yaml");
    std::fs::write(&p, policy).unwrap();
    let r = replay_with(
        &sample,
        dir.path(),
        None,
        &["--policy", p.to_str().unwrap()],
    );
    let push: Vec<&Value> = r.flows.iter().filter(|f| f["app"] == "corp-push").collect();
    assert!(push.len() >= 2, "{:?}", r.flows);
    for f in push {
        assert_eq!(
            f["app_path"],
            serde_json::json!(["ssl", "corp-push"]),
            "{f}"
        );
        assert_eq!(f["rule"], "no-push", "{f}");
        assert_eq!(f["action"], "deny", "{f}");
    }
}

#[test]
fn a_bad_policy_fails_the_replay_with_its_line_and_column() {
    let dir = TempDir::new("bad-policy");
    let p = dir.path().join("policy.yaml");
    std::fs::write(
        &p,
        "version: 1\nrules:\n  - { name: a, application: [facetim], action: allow }\n",
    )
    .unwrap();
    let o = std::process::Command::new(bin("aperture-dataplane"))
        .args(["replay", "--out-dir"])
        .arg(dir.path())
        .arg("--policy")
        .arg(&p)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{}:3:30: error: rule \"a\": no application \"facetim\" in the catalog (did you mean facetime?)",
            p.display()
        )),
        "{err}"
    );
}

#[test]
fn aperturectl_check_passes_the_example_and_fails_a_bad_file_with_its_place() {
    let ok = std::process::Command::new(bin("aperturectl"))
        .arg("check")
        .arg(common::root().join("conf/policy.yaml"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{out}");
    assert!(out.contains("ok (3 rules, 0 warnings)"), "{out}");
    let dir = TempDir::new("ctl-check");
    let p = dir.path().join("bad.yaml");
    std::fs::write(
        &p,
        "version: 1\nrules:\n  - { name: ft, application: [facetime], action: allow }\n  - { name: b, action: permit }\n",
    )
    .unwrap();
    let bad = std::process::Command::new(bin("aperturectl"))
        .args(["--json", "check"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["errors"][0],
        format!(
            "{}:4:24: error: unknown variant `permit`, expected one of allow, deny, drop, reset",
            p.display()
        )
    );
}

/// A zone's flow limit holds on a replay: 6,000 flows come in from `inside` within seconds,
/// a limit of 10 lets 10 through, and every packet of the others is a counted `zone-limit`
/// drop: the logged flows' packets and those drops add up to every packet read.
#[test]
fn a_zone_limit_admits_that_many_flows_and_counts_the_rest() {
    let dir = TempDir::new("zone-limit");
    let p = dir.path().join("policy.yaml");
    std::fs::write(
        &p,
        "version: 1
zones:
  - { name: inside, ports: [capture-in], limits: { flows: 10 } }
  - { name: outside, ports: [capture-out] }
rules:
  - { name: all, action: allow }
",
    )
    .unwrap();
    let mix = corpus().join("mix");
    let first = std::fs::read_dir(&mix)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .min()
        .unwrap();
    let r = replay_with(
        &first,
        dir.path(),
        None,
        &["--policy", p.to_str().unwrap(), "--stats"],
    );
    assert_eq!(r.flows.len(), 10, "{}", r.stdout);
    let logged: u64 = r.flows.iter().map(common::packets).sum();
    let refused = worker_counter(&r.stdout, "zone-limit").unwrap_or(0);
    let read = worker_counter(&r.stdout, "rx_packets").unwrap();
    assert!(refused > 0, "{}", r.stdout);
    assert_eq!(logged + refused, read, "{}", r.stdout);
}

#[test]
fn a_flow_inside_a_tunnel_is_checked_as_any_flow() {
    // VXLAN carrying two TLS and two DNS flows, the tunnel allowed. Denying dns stops the
    // tunnel packets that carry a DNS flow from its decision on (its first packet); the
    // rest of the tunnel passes whole. The same replay with dns allowed passes them all.
    let pcap = corpus().join("ndpi").join("vxlan.pcap");
    let count = |p: &Path, filter: &str| tshark(p, &["-Y", filter]).lines().count();
    let (dns_in, tls_in) = (count(&pcap, "dns"), count(&pcap, "tcp"));
    assert!(dns_in >= 2 && tls_in >= 10, "{dns_in} dns, {tls_in} tcp");
    let run = |action: &str| {
        let dir = TempDir::new(&format!("tunnel-{action}"));
        let p = dir.path().join("policy.yaml");
        let policy = format!(
            "version: 1\nrules:\n  - name: dns\n    application: [dns]\n    action: {action}\n\
             default-action: allow\n"
        );
        std::fs::write(&p, policy).unwrap();
        let r = replay_with(&pcap, dir.path(), None, &["--policy", p.to_str().unwrap()]);
        let inner_dns: Vec<String> = r
            .flows
            .iter()
            .filter(|f| f.get("tunnel").is_some() && f["app"] == "dns")
            .map(|f| f["action"].as_str().unwrap_or("").to_string())
            .collect();
        let out = (count(&r.out, "dns"), count(&r.out, "tcp"));
        (dir, inner_dns, out)
    };
    let (_allowed_dir, actions, (dns, tcp)) = run("allow");
    assert_eq!(actions, ["allow", "allow"]);
    assert_eq!((dns, tcp), (dns_in, tls_in), "allowed: everything passes");
    let (_denied_dir, actions, (dns, tcp)) = run("deny");
    assert_eq!(actions, ["deny", "deny"]);
    assert_eq!(dns, 0, "no packet of a denied inner flow passes");
    assert_eq!(tcp, tls_in, "the tunnel's other flows pass whole");
}
