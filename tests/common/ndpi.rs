//! nDPI's expected results (`<capture>.out` in tests/corpus/ndpi) as ground truth for
//! App-ID: parsing them, mapping nDPI's labels to catalog names, and scoring our flows against
//! them flow by flow. Shared by tests/appid_ndpi.rs (flows from the DPDK replay) and
//! benches/appid.rs (flows from the offline classifier), so both report the same figure.
#![allow(dead_code)]
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// An address and port (port 0 for ICMP, as both nDPI and our flow log print it).
pub type Endpoint = (IpAddr, u16);

/// A flow's identity in either orientation: the transport as our flow log names it and the
/// two endpoints in sorted order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    pub proto: String,
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl Tuple {
    pub fn new(proto: &str, a: Endpoint, b: Endpoint) -> Tuple {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Tuple {
            // Our flow log writes eve's "UDP", tshark and nDPI other spellings: one case.
            proto: proto.to_ascii_lowercase(),
            lo,
            hi,
        }
    }

    /// Parses `"UDP 192.168.1.2:5060 <-> [2001:db8::1]:5060"` (nDPI's notation, `->` or `<->`).
    pub fn parse(s: &str) -> Option<Tuple> {
        let t: Vec<&str> = s.split_whitespace().collect();
        if t.len() != 4 || !matches!(t[2], "<->" | "->") {
            return None;
        }
        Some(Tuple::new(
            ndpi_proto(t[0])?,
            endpoint(t[1])?,
            endpoint(t[3])?,
        ))
    }
}

fn show(e: &Endpoint) -> String {
    match e.0 {
        IpAddr::V4(a) => format!("{a}:{}", e.1),
        IpAddr::V6(a) => format!("[{a}]:{}", e.1),
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} <-> {}",
            self.proto,
            show(&self.lo),
            show(&self.hi)
        )
    }
}

/// nDPI's transport names to our flow log's (`proto` field).
fn ndpi_proto(p: &str) -> Option<&'static str> {
    Some(match p.to_ascii_uppercase().as_str() {
        "TCP" => "tcp",
        "UDP" => "udp",
        "ICMP" => "icmp",
        "ICMPV6" => "ipv6-icmp",
        "IGMP" => "2",
        _ => return None,
    })
}

/// `1.2.3.4:80` or `[fe80::1]:546`.
fn endpoint(s: &str) -> Option<Endpoint> {
    let (addr, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (a, p) = rest.split_once("]:")?;
            (a, p)
        }
        None => s.rsplit_once(':')?,
    };
    Some((addr.parse().ok()?, port.parse().ok()?))
}

/// One flow of an nDPI `.out` file.
#[derive(Clone, Debug)]
pub struct NdpiFlow {
    /// The flow's number in the file (the "Undetected flows" section restarts at 1).
    pub index: u32,
    pub tuple: Tuple,
    /// nDPI's verdict: `MASTER` or `MASTER.APP` (e.g. `TLS.AppleiCloud`), `Unknown`.
    pub label: String,
    /// nDPI's line says it guessed from the port or the address (`Confidence: Match by
    /// port`, `Match by IP`).
    pub guessed: bool,
}

/// Every flow line of an nDPI `.out` file, e.g.
/// `\t12\tTCP 192.168.1.2:443 <-> 10.0.0.1:5555 [proto: 91.178/TLS.Amazon][...]`.
pub fn parse_out(text: &str) -> Vec<NdpiFlow> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        let Some((num, rest)) = l.split_once('\t') else {
            continue;
        };
        let Ok(index) = num.trim().parse::<u32>() else {
            continue;
        };
        let Some(open) = rest.find("[proto: ") else {
            continue;
        };
        // The tuple ends where the first bracket starts (`[VLAN: 5]` may come before the
        // verdict; a tunnelled flow's verdict names the tunnel: `[proto: VXLAN:91.119/...]`).
        // (An IPv6 endpoint's bracket is followed by a digit or lower-case hex.)
        let end = rest
            .match_indices(" [")
            .map(|(i, _)| i)
            .find(|&i| rest[i + 2..].starts_with(|c: char| c.is_ascii_uppercase()))
            .unwrap_or(open);
        let Some(tuple) = Tuple::parse(&rest[..end]) else {
            continue;
        };
        let verdict = &rest[open + "[proto: ".len()..];
        let Some(verdict) = verdict.split(']').next() else {
            continue;
        };
        // "91.143/TLS.AppleiCloud": numeric ids, then the names.
        let label = verdict.split_once('/').map_or(verdict, |(_, n)| n);
        out.push(NdpiFlow {
            index,
            guessed: rest.contains("[Confidence: Match by port]")
                || rest.contains("[Confidence: Match by IP]"),
            tuple,
            label: label.trim().to_string(),
        });
    }
    out
}

/// One of our flows, from the flow log.
#[derive(Clone, Debug)]
pub struct OurFlow {
    pub tuple: Tuple,
    pub app: String,
    /// Protocol first, then the applications it shifted to.
    pub path: Vec<String>,
    pub packets: u64,
    pub start_ts: f64,
}

impl OurFlow {
    pub fn from_json(f: &Value) -> OurFlow {
        let s = |k: &str| {
            f[k].as_str()
                .unwrap_or_else(|| panic!("flow record lacks {k}: {f}"))
        };
        let ip = |k: &str| -> IpAddr {
            s(k).parse()
                .unwrap_or_else(|e| panic!("bad {k} in {f}: {e}"))
        };
        // ICMP has no ports: nDPI prints 0 (our flow table keys echo flows by identifier,
        // which the record gives as `icmp_id`).
        let port = |k: &str| f[k].as_u64().unwrap_or(0) as u16;
        OurFlow {
            tuple: Tuple::new(
                s("proto"),
                (ip("src_ip"), port("src_port")),
                (ip("dest_ip"), port("dest_port")),
            ),
            app: s("app").to_string(),
            path: f["app_path"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or("?").to_string())
                        .collect()
                })
                .unwrap_or_default(),
            packets: ["pkts_toserver", "pkts_toclient"]
                .iter()
                .map(|k| f["flow"][k].as_u64().unwrap_or(0))
                .sum(),
            start_ts: f["flow"]["start"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
                .map_or(0.0, |t| t.timestamp_micros() as f64 / 1e6),
        }
    }

    /// `app` or `app [p1>p2]` when the path says more than the app (or contradicts it).
    pub fn describe(&self) -> String {
        if self.path.len() > 1 || self.path.first() != Some(&self.app) {
            format!("{} [{}]", self.app, self.path.join(">"))
        } else {
            self.app.clone()
        }
    }
}

/// Apple applications the catalog identifies on top of a protocol (by SNI or Host).
const APPLE_APPS: &[&str] = &[
    "apple-services",
    "icloud",
    "itunes",
    "apple-push-notifications",
];

/// What the catalog may call a flow nDPI labelled `label`: the acceptable application paths
/// (protocol first). `None`: the catalog has no application for it (the flow is not scored).
///
/// nDPI labels are `MASTER.APP`. The master decides the protocol; the application on top is
/// accepted only when the catalog has a true equivalent (Apple's services by name). A more
/// specific answer that nDPI could not give (e.g. `facetime`) is wrong in this corpus: nDPI 4
/// knows no FaceTime and none of these captures holds any.
pub fn accepted(label: &str) -> Option<Vec<Vec<&'static str>>> {
    let (master, app) = match label.split_once('.') {
        Some((m, a)) => (m, Some(a)),
        None => (label, None),
    };
    // A messenger's own protocol (nDPI names it as the master).
    if let Some(svc) = service(master) {
        return Some(vec![
            vec![svc],
            vec!["stun", svc],
            vec!["ssl", svc],
            vec!["rtp", svc],
        ]);
    }
    let mut v = base_accepted(label)?;
    // The service on top of a protocol: the catalog names it where it has it.
    if let Some(svc) = app.and_then(service) {
        let extra: Vec<Vec<&'static str>> = v
            .iter()
            .filter(|p| p.len() < 3)
            .map(|p| p.iter().copied().chain([svc]).collect())
            .collect();
        v.extend(extra);
    }
    Some(v)
}

/// The catalog's messenger or conferencing service for an nDPI application name.
fn service(name: &str) -> Option<&'static str> {
    Some(match name {
        "WhatsApp" | "WhatsAppCall" | "WhatsAppFiles" => "whatsapp",
        "Teams" | "Skype_Teams" | "Skype_TeamsCall" => "ms-teams",
        "Zoom" => "zoom",
        "Signal" | "SignalVoip" => "signal",
        "Discord" => "discord",
        "Telegram" => "telegram",
        "Webex" => "webex",
        _ => return None,
    })
}

fn base_accepted(label: &str) -> Option<Vec<Vec<&'static str>>> {
    let (master, app) = match label.split_once('.') {
        Some((m, a)) => (m, Some(a)),
        None => (label, None),
    };
    let one = |p: &[&'static str]| Some(vec![p.to_vec()]);
    let apple = app.is_some_and(|a| a.starts_with("Apple"));
    match master {
        "SIP" => one(&["sip"]),
        // Media after ICE's STUN checks on the same flow: [stun, rtp] (App-ID names the flow
        // by its media; nDPI by what it saw first or by the media).
        "RTP" | "SRTP" => Some(vec![
            vec!["rtp"],
            vec!["rtp", "ichat-av"],
            vec!["stun", "rtp"],
            vec!["stun", "rtp", "ichat-av"],
        ]),
        "RTCP" => Some(vec![
            vec!["rtcp"],
            vec!["rtcp", "ichat-av"],
            vec!["stun", "rtcp"],
            vec!["stun", "rtcp", "ichat-av"],
        ]),
        "STUN" => Some(vec![
            vec!["stun"],
            vec!["stun", "rtp"],
            vec!["stun", "rtp", "ichat-av"],
            vec!["stun", "rtcp"],
            vec!["stun", "rtcp", "ichat-av"],
            vec!["stun", "dtls"],
        ]),
        "DTLS" => Some(vec![vec!["dtls"], vec!["stun", "dtls"]]),
        "TLS" => {
            let mut v = vec![vec!["ssl"]];
            if apple {
                v.extend(APPLE_APPS.iter().map(|a| vec!["ssl", *a]));
            }
            Some(v)
        }
        // IETF QUIC (the catalog names the application by SNI only where it has one).
        "QUIC" => {
            let mut v = vec![vec!["quic"]];
            if apple {
                v.extend(APPLE_APPS.iter().map(|a| vec!["quic", *a]));
            }
            Some(v)
        }
        "Jabber" => one(&["jabber"]),
        "HTTP" => {
            let mut v = vec![vec!["web-browsing"]];
            if apple {
                v.extend(APPLE_APPS.iter().map(|a| vec!["web-browsing", *a]));
            }
            Some(v)
        }
        "HTTP_Connect" | "HTTP_Proxy" => one(&["http-proxy"]),
        "DNS" => one(&["dns"]),
        "MDNS" => one(&["mdns"]),
        "LLMNR" => one(&["llmnr"]),
        "SSDP" => one(&["ssdp"]),
        "DHCP" => one(&["dhcp"]),
        "DHCPV6" => one(&["dhcpv6"]),
        "NTP" => one(&["ntp"]),
        "NetBIOS" if app == Some("SMBv1") => {
            // SMB in a NetBIOS datagram (the browser protocol on 138/udp).
            Some(vec![vec!["netbios-dg"], vec!["ms-ds-smb"]])
        }
        "NetBIOS" => Some(vec![vec!["netbios-ns"], vec!["netbios-dg"]]),
        "SMBv1" | "SMBv23" => one(&["ms-ds-smb"]),
        "ICMP" => one(&["icmp"]),
        "ICMPV6" => one(&["ipv6-icmp"]),
        "IGMP" => one(&["igmp"]),
        "NAT-PMP" => one(&["nat-pmp"]),
        // The outer flow of a Teredo tunnel (nDPI lists no inner flows for it).
        "Teredo" => one(&["teredo"]),
        "WireGuard" => one(&["wireguard"]),
        "OpenVPN" => one(&["openvpn"]),
        "IPSec" => one(&["ipsec"]),
        "RDP" => one(&["ms-rdp"]),
        "VNC" => one(&["vnc"]),
        "Telnet" => one(&["telnet"]),
        "FTP_CONTROL" => one(&["ftp"]),
        "TFTP" => one(&["tftp"]),
        "BitTorrent" => one(&["bittorrent"]),
        "Kerberos" => one(&["kerberos"]),
        "LDAP" => one(&["ldap"]),
        "SNMP" => one(&["snmp"]),
        "Syslog" => one(&["syslog"]),
        "MySQL" => one(&["mysql"]),
        "PostgreSQL" => one(&["postgres"]),
        "MQTT" => one(&["mqtt"]),
        "ApplePush" => Some(vec![
            vec!["ssl", "apple-push-notifications"],
            vec!["jabber", "apple-push-notifications"],
        ]),
        // Nothing identified: any of our "not identified" verdicts agrees.
        "Unknown" => Some(vec![
            vec!["unknown-tcp"],
            vec!["unknown-udp"],
            vec!["insufficient-data"],
            vec!["incomplete"],
        ]),
        _ => None,
    }
}

/// Our verdicts for a flow whose protocol was not recognised.
const UNIDENTIFIED: &[&str] = &[
    "unknown-tcp",
    "unknown-udp",
    "insufficient-data",
    "incomplete",
];

/// A disagreement with nDPI where nDPI is wrong, checked by hand with tshark.
pub struct Mistake {
    /// Capture file name in tests/corpus/ndpi.
    pub file: &'static str,
    /// The flow in nDPI's notation (either orientation).
    pub flow: &'static str,
    /// What the flow really is, as the catalog names it (our answer must be exactly this).
    pub truth: &'static str,
    pub reason: &'static str,
}

/// nDPI's mistakes in this corpus, one by one. Each was verified with tshark (the command is
/// in the reason). Our answer must be the `truth`; an entry that no longer matches a flow, or
/// where we no longer give the truth, fails the test.
pub const NDPI_MISTAKES: &[Mistake] = &[
    Mistake {
        file: "sip.pcap",
        flow: "UDP 192.168.1.2:30001 -> 212.242.33.36:40393",
        truth: "rtcp",
        reason: "one 104-byte datagram: RTCP Sender Report (PT 200, v2) + SDES (CNAME \
                 11894297-4432a9f8@192.168.1.2, TOOL SIPPS) + BYE 'session shutdown', lengths \
                 check OK; tshark itself sets it up as RTCP from the SDP of frame 92 (RTP 40392, \
                 so RTCP 40393) and 192.168.1.2 offered RTP 30000 (RTCP 30001): \
                 tshark -r sip.pcap -Y 'udp.port==30001' -V. The nDPI that wrote the results \
                 leaves it Unknown; ndpiReader 4.2 (Debian) says RTCP, as does the corpus README.",
    },
    Mistake {
        file: "1kxun.pcap",
        flow: "TCP 119.235.235.84:443 <-> 192.168.5.16:53406",
        truth: "unknown-tcp",
        reason: "not TLS: the capture starts mid-connection (no SYN, no handshake) and no segment \
                 starts a TLS record (type 20-23, version 3.x); the payload starts 80 02 00 02 \
                 (a SPDY/2 control frame header, SYN_REPLY) and repeats that framing: \
                 tshark -r 1kxun.pcap -Y 'tcp.port==53406 && tcp.len>0' -T fields -e tcp.payload. \
                 nDPI's own line says 'Confidence: Match by port' (a guess from 443).",
    },
    Mistake {
        file: "1kxun.pcap",
        flow: "TCP 192.168.115.8:49596 <-> 203.66.182.87:443",
        truth: "insufficient-data",
        reason: "no application data: mid-connection TCP keep-alives (Len=1, byte 00, frames \
                 617/618 and 1027/1028) and bare ACKs: tshark -r 1kxun.pcap -Y 'tcp.port==49596'. \
                 nDPI says 'Confidence: Match by port'.",
    },
    Mistake {
        file: "1kxun.pcap",
        flow: "TCP 68.233.253.133:80 <-> 192.168.5.16:53613",
        truth: "incomplete",
        reason: "no payload at all: three FIN/ACK retransmissions with Len=0 (frames 624, 779, \
                 988): tshark -r 1kxun.pcap -Y 'tcp.port==53613'. nDPI says 'Confidence: Match \
                 by port'.",
    },
    Mistake {
        file: "1kxun.pcap",
        flow: "TCP 192.168.115.8:49581 <-> 64.233.189.128:80",
        truth: "insufficient-data",
        reason: "no application data: a TCP keep-alive pair (Len=1, byte 00, frames 637/638) and \
                 an ACK: tshark -r 1kxun.pcap -Y 'tcp.port==49581'. nDPI says 'Confidence: Match \
                 by port'.",
    },
    Mistake {
        file: "1kxun.pcap",
        flow: "TCP 192.168.5.16:53605 -> 68.233.253.133:80",
        truth: "incomplete",
        reason: "no payload at all: a FIN/ACK and an RST with Len=0 (frames 6 and 681): \
                 tshark -r 1kxun.pcap -Y 'tcp.port==53605'. nDPI says 'Confidence: Match by port'.",
    },
    Mistake {
        file: "1kxun.pcap",
        flow: "TCP 192.168.5.16:53622 <-> 192.168.115.75:443",
        truth: "incomplete",
        reason: "no payload at all: a FIN/ACK and its ACK with Len=0 (frames 37, 38): \
                 tshark -r 1kxun.pcap -Y 'tcp.port==53622'. nDPI says 'Confidence: Match by port'.",
    },
    Mistake {
        file: "jabber.pcap",
        flow: "TCP 192.168.2.100:58388 <-> 160.44.201.102:5223",
        truth: "unknown-tcp",
        reason: JABBER_5223,
    },
    Mistake {
        file: "jabber.pcap",
        flow: "TCP 192.168.2.100:34070 <-> 160.44.201.102:5223",
        truth: "unknown-tcp",
        reason: JABBER_5223,
    },
    Mistake {
        file: "jabber.pcap",
        flow: "TCP 192.168.2.100:41420 <-> 160.44.201.102:5223",
        truth: "unknown-tcp",
        reason: JABBER_5223,
    },
    Mistake {
        file: "jabber.pcap",
        flow: "TCP 192.168.2.100:34218 <-> 160.44.201.102:5223",
        truth: "unknown-tcp",
        reason: JABBER_5223,
    },
    Mistake {
        file: "jabber.pcap",
        flow: "TCP 192.168.2.100:37614 <-> 160.44.201.102:5223",
        truth: "unknown-tcp",
        reason: JABBER_5223,
    },
];

const JABBER_5223: &str = "neither XMPP nor TLS: every segment is binary [type][16-bit length = \
    segment length] (25 00 45 ..., 26 00 10 ..., 30 00 a7 ...), no XML stream and no TLS record \
    header: tshark -r jabber.pcap -Y 'tcp.port==5223 && tcp.len>0' -T fields -e tcp.payload. \
    nDPI (jabber.c at 3b1286ab, 'Old style Jabber/XMPP SSL') names any flow Jabber after 4 \
    packets whose bytes 1-2 are 00 and the segment length and byte 0 is 0x25, 0x26 or 0x30; \
    ndpiReader 4.2 (Debian) leaves these flows Unknown.";

/// How one nDPI flow compares with ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Agree,
    /// nDPI is wrong (see `NDPI_MISTAKES`) and we give the truth.
    Excused(&'static str),
    Disagree,
    /// We have no flow with this tuple.
    Missing,
    /// nDPI's label has no application in the catalog: not scored.
    Excluded,
}

#[derive(Clone, Debug)]
pub struct Verdict {
    pub file: String,
    pub ndpi: NdpiFlow,
    pub ours: Vec<OurFlow>,
    pub outcome: Outcome,
}

impl Verdict {
    /// Our answer(s) for the flow, e.g. `icloud [ssl>icloud]`, `sip+sip` when we split it.
    pub fn ours(&self) -> String {
        if self.ours.is_empty() {
            return "(no flow)".into();
        }
        let mut v: Vec<String> = self.ours.iter().map(OurFlow::describe).collect();
        v.dedup();
        v.join(" + ")
    }
}

/// Compares our flows of capture `file` with nDPI's. Our flows with the same tuple as an
/// nDPI flow (we may split what nDPI keeps as one, e.g. after an idle timeout) must all be
/// acceptable for the flow to agree.
pub fn score(file: &str, ndpi: &[NdpiFlow], ours: &[OurFlow]) -> Vec<Verdict> {
    let mut by_tuple: BTreeMap<&Tuple, Vec<&OurFlow>> = BTreeMap::new();
    for f in ours {
        by_tuple.entry(&f.tuple).or_default().push(f);
    }
    let mut out = Vec::new();
    for n in ndpi {
        let mine: Vec<OurFlow> = by_tuple
            .get(&n.tuple)
            .map(|v| v.iter().map(|f| (*f).clone()).collect())
            .unwrap_or_default();
        let outcome = match accepted(&n.label) {
            None => Outcome::Excluded,
            Some(_) if mine.is_empty() => Outcome::Missing,
            Some(ok) => {
                // The path must be one of the accepted ones and end in the flow's application.
                let good = |f: &OurFlow| {
                    ok.iter()
                        .any(|p| *p == f.path && p.last() == Some(&f.app.as_str()))
                };
                let mistake = NDPI_MISTAKES
                    .iter()
                    .find(|m| m.file == file && Tuple::parse(m.flow).as_ref() == Some(&n.tuple));
                if mine.iter().all(good) {
                    Outcome::Agree
                } else if let Some(m) = mistake.filter(|m| mine.iter().all(|f| f.app == m.truth)) {
                    Outcome::Excused(m.reason)
                } else if n.guessed && mine.iter().all(|f| UNIDENTIFIED.contains(&f.app.as_str())) {
                    Outcome::Excused(
                        "nDPI guessed from the port or the address alone (its line says \
                         'Confidence: Match by port' or 'Match by IP') and no payload of the \
                         flow has the protocol's structure",
                    )
                } else {
                    Outcome::Disagree
                }
            }
        };
        out.push(Verdict {
            file: file.to_string(),
            ndpi: n.clone(),
            ours: mine,
            outcome,
        });
    }
    out
}

/// Totals over a set of verdicts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub covered: usize,
    pub agree: usize,
    pub excused: usize,
    pub disagree: usize,
    pub missing: usize,
    pub excluded: usize,
}

impl Totals {
    pub fn of<'a>(v: impl IntoIterator<Item = &'a Verdict>) -> Totals {
        let mut t = Totals::default();
        for x in v {
            match x.outcome {
                Outcome::Agree => t.agree += 1,
                Outcome::Excused(_) => t.excused += 1,
                Outcome::Disagree => t.disagree += 1,
                Outcome::Missing => t.missing += 1,
                Outcome::Excluded => t.excluded += 1,
            }
        }
        t.covered = t.agree + t.excused + t.disagree + t.missing;
        t
    }

    /// Share of covered flows where we are right (nDPI agrees, or nDPI is the one mistaken).
    pub fn accuracy(&self) -> f64 {
        if self.covered == 0 {
            return 0.0;
        }
        (self.agree + self.excused) as f64 / self.covered as f64
    }
}

/// The per-file table, the confusion table (nDPI label -> our answer -> flows), every
/// excused, excluded and wrong flow, and the overall line, as text.
pub fn report(verdicts: &[Verdict]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut files: Vec<&str> = verdicts.iter().map(|v| v.file.as_str()).collect();
    files.dedup();
    let _ = writeln!(
        s,
        "{:<48} {:>7} {:>6} {:>7} {:>8} {:>7} {:>8} {:>8}",
        "capture", "covered", "agree", "excused", "disagree", "missing", "excluded", "score"
    );
    for file in &files {
        let t = Totals::of(verdicts.iter().filter(|v| v.file == *file));
        let _ = writeln!(
            s,
            "{:<48} {:>7} {:>6} {:>7} {:>8} {:>7} {:>8} {:>7.1}%",
            file,
            t.covered,
            t.agree,
            t.excused,
            t.disagree,
            t.missing,
            t.excluded,
            100.0 * t.accuracy()
        );
    }
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    for v in verdicts {
        *confusion
            .entry((v.ndpi.label.clone(), v.ours()))
            .or_default() += 1;
    }
    let _ = writeln!(s, "\nconfusion: nDPI label -> our application -> flows");
    for ((label, ours), n) in &confusion {
        let mark = match accepted(label) {
            None => " (not in catalog)",
            Some(_) => {
                let these = || {
                    verdicts
                        .iter()
                        .filter(|v| v.ndpi.label == *label && v.ours() == *ours)
                };
                if these().any(|v| matches!(v.outcome, Outcome::Disagree | Outcome::Missing)) {
                    "  <-- WRONG"
                } else if these().any(|v| matches!(v.outcome, Outcome::Excused(_))) {
                    "  (nDPI mistake)"
                } else {
                    ""
                }
            }
        };
        let _ = writeln!(s, "  {label:<26} -> {ours:<44} {n:>4}{mark}");
    }
    let listed = |s: &mut String, title: &str, pick: &dyn Fn(&Outcome) -> bool| {
        let hits: Vec<&Verdict> = verdicts.iter().filter(|v| pick(&v.outcome)).collect();
        if hits.is_empty() {
            return;
        }
        let _ = writeln!(s, "\n{title} ({}):", hits.len());
        for v in hits {
            let _ = writeln!(
                s,
                "  {} #{} {}  nDPI {} -> ours {}",
                v.file,
                v.ndpi.index,
                v.ndpi.tuple,
                v.ndpi.label,
                v.ours()
            );
            if let Outcome::Excused(r) = v.outcome {
                let _ = writeln!(s, "      nDPI mistake: {r}");
            }
        }
    };
    listed(&mut s, "excluded: nDPI label not in the catalog", &|o| {
        *o == Outcome::Excluded
    });
    listed(
        &mut s,
        "excused: nDPI is wrong, verified with tshark",
        &|o| matches!(o, Outcome::Excused(_)),
    );
    listed(&mut s, "DISAGREE", &|o| *o == Outcome::Disagree);
    listed(&mut s, "MISSING: no flow of ours with this tuple", &|o| {
        *o == Outcome::Missing
    });
    let t = Totals::of(verdicts);
    let _ = writeln!(
        s,
        "\noverall: {} covered flows, {} agree, {} nDPI mistakes, {} disagree, {} missing, \
         {} excluded: {:.2}% agreement",
        t.covered,
        t.agree,
        t.excused,
        t.disagree,
        t.missing,
        t.excluded,
        100.0 * t.accuracy()
    );
    s
}
