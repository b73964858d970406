//! App-ID against nDPI's ground truth: every scored capture of tests/corpus/ndpi
//! (tests/ndpi-scored.txt) is replayed through the real DPDK path and each of nDPI's
//! flows is compared with ours by 5-tuple (either orientation), nDPI's labels mapped to the
//! catalog's names by the table in `common/ndpi.rs`. Flows whose label the catalog has no
//! application for are listed, not scored. nDPI's own mistakes are excused one by one there
//! (`NDPI_MISTAKES`, each verified with tshark). Run with `--nocapture` for the tables.
mod common;
#[path = "common/ndpi.rs"]
mod ndpi;

use common::*;
use ndpi::*;

/// The share of covered flows on which we must agree with nDPI (or be right where it is not).
const REQUIRED: f64 = 0.98;

#[test]
fn appid_agrees_with_ndpi_on_its_own_captures() {
    let dir = corpus().join("ndpi");
    let captures = ndpi_scored();
    assert!(
        captures.len() >= 16,
        "{} captures with nDPI results in {}",
        captures.len(),
        dir.display()
    );

    let mut verdicts = Vec::new();
    for pcap in &captures {
        let name = pcap.file_name().unwrap().to_string_lossy().into_owned();
        let expected =
            parse_out(&std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap());
        assert!(!expected.is_empty(), "{name}.out lists no flows");
        let tmp = TempDir::new("ndpi");
        let r = replay(pcap, tmp.path(), None);
        let ours: Vec<OurFlow> = r.flows.iter().map(OurFlow::from_json).collect();
        verdicts.extend(score(&name, &expected, &ours));
    }
    let text = report(&verdicts);
    println!("{text}");

    // Every excuse still applies: the flow exists, nDPI still says otherwise, and our answer is
    // the verified truth.
    for m in NDPI_MISTAKES {
        let tuple = Tuple::parse(m.flow).unwrap_or_else(|| panic!("bad flow {:?}", m.flow));
        let v = verdicts
            .iter()
            .find(|v| v.file == m.file && v.ndpi.tuple == tuple)
            .unwrap_or_else(|| {
                panic!(
                    "NDPI_MISTAKES: {} {} is not in nDPI's results",
                    m.file, m.flow
                )
            });
        assert!(
            matches!(v.outcome, Outcome::Excused(_)),
            "NDPI_MISTAKES: {} {}: nDPI says {}, we say {}, the verified truth is {}",
            m.file,
            m.flow,
            v.ndpi.label,
            v.ours(),
            m.truth
        );
    }

    let t = Totals::of(&verdicts);
    assert!(t.covered >= 250, "only {} covered flows", t.covered);
    assert!(
        t.accuracy() >= REQUIRED,
        "App-ID agrees with nDPI on {:.2}% of {} covered flows (required {:.0}%): {} disagree, \
         {} missing; see the lists above",
        100.0 * t.accuracy(),
        t.covered,
        100.0 * REQUIRED,
        t.disagree,
        t.missing
    );
}

#[test]
fn parses_ndpi_lines() {
    let text = "\t1\tUDP 192.168.1.2:5060 <-> 212.242.33.35:5060 [proto: 100/SIP][IP: 0/Unknown]\n\
                \t2\tTCP [2001:db8::1]:443 -> [2001:db8::2]:5555 [proto: 91.143/TLS.AppleiCloud][x]\n\
                \t1\t 192.168.5.16             \t 2      \n\
                \t3\tUDP 10.10.20.4:32860 <-> 8.8.8.8:53 [VLAN: 5][proto: VXLAN:5.119/DNS.Facebook][x]\n";
    let f = parse_out(text);
    assert_eq!(f.len(), 3);
    assert_eq!(f[2].label, "DNS.Facebook");
    assert_eq!(
        f[2].tuple.to_string(),
        "udp 8.8.8.8:53 <-> 10.10.20.4:32860"
    );
    assert_eq!(f[0].label, "SIP");
    assert_eq!(f[1].label, "TLS.AppleiCloud");
    assert_eq!(
        f[1].tuple.to_string(),
        "tcp [2001:db8::1]:443 <-> [2001:db8::2]:5555"
    );
    assert_eq!(
        Tuple::parse("UDP 212.242.33.35:5060 -> 192.168.1.2:5060"),
        Some(f[0].tuple.clone())
    );
}

#[test]
fn label_table_accepts_true_answers_only() {
    let ok = |label: &str, path: &[&str]| {
        accepted(label).is_some_and(|v| v.iter().any(|p| p.as_slice() == path))
    };
    assert!(ok("TLS.AppleiCloud", &["ssl", "icloud"]));
    assert!(ok("TLS.Apple", &["ssl"]));
    assert!(ok("TLS.Google", &["ssl"]));
    assert!(!ok("TLS.Google", &["ssl", "apple-services"]));
    // nDPI 4 knows no FaceTime and the corpus has none: facetime is never right here.
    for label in ["TLS", "TLS.Apple", "SIP", "STUN", "RTP"] {
        assert!(accepted(label)
            .unwrap()
            .iter()
            .all(|p| !p.contains(&"facetime")));
    }
    assert!(ok("SIP", &["sip"]));
    assert!(ok("HTTP.1kxun", &["web-browsing"]));
    assert!(ok("HTTP_Connect", &["http-proxy"]));
    assert!(ok("DTLS.GoogleCall", &["stun", "dtls"]));
    assert!(ok("NetBIOS.SMBv1", &["netbios-dg"]));
    assert!(ok("Unknown", &["insufficient-data"]));
    assert!(!ok("Unknown", &["sip"]));
    assert!(accepted("Spotify").is_none());
    // Messengers: their own protocol, or the protocol they ride with their name on top.
    assert!(ok("Discord", &["discord"]));
    assert!(ok("STUN.WhatsAppCall", &["stun", "whatsapp"]));
    assert!(ok("STUN.WhatsAppCall", &["stun"]));
    assert!(ok("TLS.Teams", &["ssl", "ms-teams"]));
    assert!(!ok("TLS.Teams", &["ssl", "zoom"]));
    assert!(!ok("TLS", &["ssl", "whatsapp"]));
}
