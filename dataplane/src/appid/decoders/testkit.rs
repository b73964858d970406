//! Test support shared by the decoder tests: hand-made contexts and payloads, the flows of the
//! corpus captures (tests/corpus in the checkout), their replay through one decoder the
//! way the engine feeds it (UDP: each datagram; TCP: the in-order stream of that direction from
//! its first byte, up to `STREAM_BYTES`; a per-direction packet budget), and nDPI's verdicts
//! (`<capture>.out`) to compare with.
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
use crate::flow::Dir;
use crate::packet::{self, proto, Fragment, Headers, IpAddr16};
use crate::replay::capture::for_each_frame;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

pub use crate::appid::engine::STREAM_BYTES;

pub const HTTP_GET: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.0\r\n\r\n";
pub const SIP_INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: 1@10.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
/// The start of a TLS 1.2 ClientHello record.
pub const TLS_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0x31, 0x01, 0x00, 0x00, 0x2d, 0x03, 0x03, 0x5b, 0x1c, 0x2a, 0x00, 0x11,
    0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11,
    0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0x00, 0x00, 0x02, 0xc0, 0x2f,
    0x01, 0x00, 0x00, 0x00,
];

/// Bytes from a hex string (as tshark prints payloads); whitespace is ignored.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).expect("hex"))
        .collect()
}

/// A context for hand-made tests: a flow between two IPv4 hosts, at its first packet.
pub fn ctx(transport: Transport, dir: Dir, client_port: u16, server_port: u16) -> FlowCtx {
    FlowCtx {
        transport,
        dir,
        client: (IpAddr16::from_v4([192, 168, 1, 10]), client_port),
        server: (IpAddr16::from_v4([192, 168, 1, 1]), server_port),
        packets: [1, 0],
    }
}

/// One decoder's answer for one packet, with fresh scratch and evidence.
pub fn probe_once(d: &dyn Decoder, data: &[u8], ctx: &FlowCtx) -> (Probe, Evidence) {
    let mut scratch: Scratch = [0; 16];
    let mut ev = Evidence::default();
    let p = d.probe(data, ctx, &mut scratch, &mut ev);
    (p, ev)
}

/// tests/corpus in the checkout (a copy of the upstream corpus, unchanged).
pub fn corpus_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    assert!(d.is_dir(), "the test corpus is expected at {}", d.display());
    d
}

/// A capture of the corpus, by its path relative to the corpus root (`ndpi/sip.pcap`).
pub fn path(file: &str) -> PathBuf {
    let p = corpus_dir().join(file);
    assert!(p.is_file(), "corpus file {} is missing", p.display());
    p
}

/// Every TCP/UDP frame of the capture at `path` that is not a later IP fragment, with its
/// payload (possibly empty).
fn for_each_payload(path: &Path, mut f: impl FnMut(&Headers, Transport, &[u8])) {
    for_each_frame(path, |fr| {
        let Ok(h) = packet::parse(&fr.data, fr.orig_len as usize) else {
            return Ok(());
        };
        let transport = match h.proto {
            proto::TCP => Transport::Tcp,
            proto::UDP => Transport::Udp,
            _ => return Ok(()),
        };
        if !h.is_ip() || h.fragment == Fragment::Later {
            return Ok(());
        }
        let start = h.payload_offset as usize;
        let end = (start + h.payload_len as usize).min(fr.data.len());
        f(&h, transport, fr.data.get(start..end).unwrap_or_default());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

pub struct Flow {
    pub transport: Transport,
    /// The sender of the flow's first packet.
    pub client: (IpAddr16, u16),
    pub server: (IpAddr16, u16),
    /// Payload packets in capture order: direction, TCP sequence number (0 for UDP), payload.
    pub packets: Vec<(Dir, u32, Vec<u8>)>,
}

fn endpoint(a: (IpAddr16, u16)) -> String {
    SocketAddr::new(a.0.to_std(), a.1).to_string()
}

impl Flow {
    /// The two endpoints as nDPI prints them, in sorted order.
    pub fn endpoints(&self) -> (String, String) {
        let (a, b) = (endpoint(self.client), endpoint(self.server));
        if a <= b {
            (a, b)
        } else {
            (b, a)
        }
    }

    pub fn has_port(&self, p: u16) -> bool {
        self.client.1 == p || self.server.1 == p
    }
}

/// Every TCP and UDP flow of `file` (relative to the corpus root), payload or not, in order of
/// first packet.
pub fn flows(file: &str) -> Vec<Flow> {
    flows_in(&path(file))
}

/// Every TCP and UDP flow of the capture at `path`, payload or not, in order of first packet.
pub fn flows_in(path: &Path) -> Vec<Flow> {
    type Endpoint = (IpAddr16, u16);
    let mut flows: Vec<Flow> = Vec::new();
    let mut index: HashMap<(u8, Endpoint, Endpoint), usize> = HashMap::new();
    for_each_payload(path, |h, transport, payload| {
        let (src, dst) = ((h.src, h.src_port), (h.dst, h.dst_port));
        let (i, dir) = if let Some(&i) = index.get(&(h.proto, dst, src)) {
            (i, Dir::Reply)
        } else {
            let i = *index.entry((h.proto, src, dst)).or_insert_with(|| {
                flows.push(Flow {
                    transport,
                    client: src,
                    server: dst,
                    packets: Vec::new(),
                });
                flows.len() - 1
            });
            (i, Dir::Orig)
        };
        if !payload.is_empty() {
            flows[i].packets.push((dir, h.tcp_seq, payload.to_vec()));
        }
    });
    flows
}

/// The flows of `file` (relative to the corpus root) that carry payload.
pub fn payload_flows(file: &str) -> Vec<Flow> {
    payload_flows_in(&path(file))
}

/// The flows of the capture at `path` that carry payload.
pub fn payload_flows_in(path: &Path) -> Vec<Flow> {
    let mut v = flows_in(path);
    v.retain(|f| !f.packets.is_empty());
    v
}

/// The first payload in `file` (relative to the corpus root) that starts with `prefix`,
/// straight from the capture (for tests that cut or mutate real messages).
pub fn first_payload(file: &str, prefix: &[u8]) -> Vec<u8> {
    let mut found = None;
    for_each_payload(&path(file), |_, _, p| {
        if found.is_none() && p.starts_with(prefix) {
            found = Some(p.to_vec());
        }
    });
    found.unwrap_or_else(|| panic!("{file}: no payload starts with {prefix:02x?}"))
}

/// First payloads of flows of other protocols (DNS, HTTP, TLS, XMPP), as the engine would
/// present them: UDP datagrams and the first TCP bytes of each direction.
pub fn foreign_payloads() -> Vec<(Vec<u8>, Transport)> {
    let mut out = Vec::new();
    for file in [
        "ndpi/dns.pcap",
        "ndpi/http_on_sip_port.pcap",
        "ndpi/google_ssl.pcap",
        "ndpi/tls_esni_sni_both.pcap",
        "ndpi/jabber.pcap",
        "ndpi/http_connect.pcap",
    ] {
        for f in flows(file) {
            for d in [Dir::Orig, Dir::Reply] {
                if let Some((_, _, p)) = f.packets.iter().find(|(pd, _, _)| *pd == d) {
                    out.push((p.clone(), f.transport));
                }
            }
        }
    }
    assert!(out.len() > 20);
    out
}

/// When a replay stops asking the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// As the engine: at `Match(_, Certain)` or `NotMe`; a `Likely` is kept meanwhile, and
    /// the flow is given up once a direction has had `budget` payload packets.
    Decided,
    /// At the decoder's first answer (any `Match`, or `NotMe`); a direction's packets past
    /// the budget are skipped, the other direction's still fed.
    FirstAnswer,
}

/// How a flow is fed to a decoder.
#[derive(Clone, Copy, Debug)]
pub struct Feed {
    /// Payload packets per direction, by transport.
    pub tcp_budget: u8,
    pub udp_budget: u8,
    pub until: Until,
}

impl Feed {
    /// The engine's defaults.
    pub const ENGINE: Feed = Feed {
        tcp_budget: 12,
        udp_budget: 8,
        until: Until::Decided,
    };
    /// The decoder's first answer within 8 packets per direction.
    pub const FIRST_ANSWER: Feed = Feed {
        tcp_budget: 8,
        udp_budget: 8,
        until: Until::FirstAnswer,
    };

    /// As the engine, with `budget` payload packets per direction whatever the transport.
    pub const fn budget(budget: u8) -> Feed {
        Feed {
            tcp_budget: budget,
            udp_budget: budget,
            until: Until::Decided,
        }
    }
}

/// One flow and what the decoder said about it.
#[derive(Debug)]
pub struct Run {
    pub transport: Transport,
    pub client: (IpAddr16, u16),
    pub server: (IpAddr16, u16),
    /// `Until::Decided`: the first `Match(_, Certain)` or `NotMe`, else the first `Likely`,
    /// else `NotYet`. `Until::FirstAnswer`: the first answer other than `NotYet`.
    /// `NotMe` if the decoder does not take the flow's transport.
    pub verdict: Probe,
    pub ev: Evidence,
    /// Payload packets per direction (`Dir` order), all of them, not only those probed.
    pub payloads: [u32; 2],
    /// Payload packets given to the decoder.
    pub probes: usize,
    /// Payload packets of the flow (both directions, probed or not) up to the one that
    /// decided the verdict; 0 if none did.
    pub packets: usize,
}

impl Run {
    pub fn proto(&self) -> Option<Proto> {
        self.answer().map(|a| a.0)
    }

    /// The match, if any.
    pub fn answer(&self) -> Option<(Proto, Confidence)> {
        match self.verdict {
            Probe::Match(p, c) => Some((p, c)),
            _ => None,
        }
    }
}

/// One direction's TCP stream as the engine keeps it.
#[derive(Default)]
struct Side {
    stream: Vec<u8>,
    next_seq: Option<u32>,
}

impl Side {
    /// The engine's `append`: in-order bytes only, up to `STREAM_BYTES`.
    fn append(&mut self, seq: u32, payload: &[u8]) -> bool {
        let next = *self.next_seq.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next);
        let skip = if ahead == 0 {
            0
        } else if ahead > u32::MAX / 2 {
            next.wrapping_sub(seq) as usize
        } else {
            return false;
        };
        let Some(new) = payload.get(skip..).filter(|n| !n.is_empty()) else {
            return false;
        };
        let room = STREAM_BYTES - self.stream.len();
        if room == 0 {
            return false;
        }
        self.stream.extend_from_slice(&new[..new.len().min(room)]);
        self.next_seq = Some(next.wrapping_add(new.len() as u32));
        true
    }
}

/// Replays `flow` through decoder `d` alone, as `feed` says.
pub fn replay(d: &dyn Decoder, flow: &Flow, feed: Feed) -> Run {
    let mut gather = Box::new([0u8; crate::appid::engine::STREAM_BYTES]);
    let gather = &mut *gather;
    let mut run = Run {
        transport: flow.transport,
        client: flow.client,
        server: flow.server,
        verdict: Probe::NotYet,
        ev: Evidence::default(),
        payloads: [0; 2],
        probes: 0,
        packets: 0,
    };
    for (dir, _, _) in &flow.packets {
        run.payloads[*dir as usize] += 1;
    }
    if !d.transports().contains(&flow.transport) {
        run.verdict = Probe::NotMe;
        return run;
    }
    let budget = match flow.transport {
        Transport::Tcp => feed.tcp_budget,
        Transport::Udp => feed.udp_budget,
    };
    let mut scratch: Scratch = [0; 16];
    let mut sides: [Side; 2] = Default::default();
    let mut counts = [0u8; 2];
    for (n, (dir, seq, payload)) in flow.packets.iter().enumerate() {
        let k = *dir as usize;
        counts[k] = counts[k].saturating_add(1);
        if feed.until == Until::FirstAnswer && counts[k] > budget {
            continue;
        }
        let data = match flow.transport {
            Transport::Udp => Some(&payload[..]),
            Transport::Tcp => sides[k]
                .append(*seq, payload)
                .then_some(&sides[k].stream[..]),
        };
        if let Some(data) = data {
            let ctx = FlowCtx {
                transport: flow.transport,
                dir: *dir,
                client: flow.client,
                server: flow.server,
                packets: counts,
            };
            run.probes += 1;
            // As the engine: UDP flows get the gathering buffer.
            let g = (flow.transport == Transport::Udp).then_some(&mut *gather);
            let p = d.probe_gathering(data, &ctx, &mut scratch, &mut run.ev, g);
            let decided = match (p, feed.until) {
                (Probe::NotYet, _) => false,
                (Probe::Match(_, Confidence::Likely), Until::Decided) => {
                    if run.verdict == Probe::NotYet {
                        run.verdict = p;
                    }
                    false
                }
                _ => true,
            };
            if decided {
                run.verdict = p;
                run.packets = n + 1;
                break;
            }
        }
        if feed.until == Until::Decided && counts.iter().any(|&c| c >= budget) {
            break;
        }
    }
    run
}

/// Every flow of `file` (relative to the corpus root) through `d`, as `feed` says.
pub fn replay_file(file: &str, d: &dyn Decoder, feed: Feed) -> Vec<Run> {
    flows(file).iter().map(|f| replay(d, f, feed)).collect()
}

/// One flow line of nDPI's expected output (`<capture>.out`).
#[derive(Debug)]
pub struct Truth {
    pub transport: Transport,
    pub client: (IpAddr, u16),
    pub server: (IpAddr, u16),
    /// `MASTER.APP` as nDPI names it, e.g. `TLS.AppleiCloud`.
    pub label: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// nDPI went by the port or address, not the payload (its label is a guess).
    pub guessed: bool,
}

/// `a.b.c.d:port` or `[v6]:port`; `None` for the odd malformed address nDPI prints.
fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.rsplit_once(':')?;
    let a = a.trim_start_matches('[').trim_end_matches(']');
    Some((a.parse().ok()?, p.parse().ok()?))
}

fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(name)? + name.len();
    let end = line[start..].find(']')? + start;
    Some(line[start..end].to_string())
}

/// The flow lines of `file.out` (`file` relative to the corpus root).
pub fn truth(file: &str) -> Vec<Truth> {
    let out = corpus_dir().join(format!("{file}.out"));
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let mut v = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 5 || w[0].parse::<u32>().is_err() || !matches!(w[1], "TCP" | "UDP") {
            continue;
        }
        let (Some(proto), Some(client), Some(server)) = (
            field(line, "[proto: "),
            parse_endpoint(w[2]),
            parse_endpoint(w[4]),
        ) else {
            continue;
        };
        v.push(Truth {
            transport: if w[1] == "TCP" {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            client,
            server,
            label: proto
                .split_once('/')
                .map_or(proto.clone(), |(_, l)| l.to_string()),
            host: field(line, "[Hostname/SNI: "),
            user_agent: field(line, "[User-Agent: "),
            guessed: line.contains("[Confidence: Match by port]")
                || line.contains("[Confidence: Match by IP]"),
        });
    }
    v
}

/// The run of the flow `t` describes.
pub fn find<'r>(runs: &'r [Run], t: &Truth) -> Option<&'r Run> {
    let std = |a: (IpAddr16, u16)| (a.0.to_std(), a.1);
    runs.iter().find(|r| {
        let (c, s) = (std(r.client), std(r.server));
        r.transport == t.transport
            && ((c == t.client && s == t.server) || (c == t.server && s == t.client))
    })
}

/// nDPI's label (`MASTER` or `MASTER.APP`) for each flow of `file`, by endpoints as
/// `Flow::endpoints` gives them.
/// Where nDPI lists one tuple twice (a flow and its SYN retries), the identified label wins.
pub fn ndpi_labels(file: &str) -> HashMap<(String, String), String> {
    let text = |a: (IpAddr, u16)| SocketAddr::new(a.0, a.1).to_string();
    let mut m: HashMap<(String, String), String> = HashMap::new();
    for t in truth(file) {
        let (a, b) = (text(t.client), text(t.server));
        let key = if a <= b { (a, b) } else { (b, a) };
        let e = m.entry(key).or_insert_with(|| t.label.clone());
        if e == "Unknown" {
            *e = t.label;
        }
    }
    m
}

/// The flows of `file` nDPI named by port or address alone (its line says `Confidence: Match
/// by port` or `Match by IP`),
/// by endpoints as `Flow::endpoints` gives them.
pub fn guessed_flows(file: &str) -> std::collections::HashSet<(String, String)> {
    let text = |a: (IpAddr, u16)| SocketAddr::new(a.0, a.1).to_string();
    truth(file)
        .into_iter()
        .filter(|t| t.guessed)
        .map(|t| {
            let (a, b) = (text(t.client), text(t.server));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        })
        .collect()
}

/// The protocol this project expects for a flow nDPI labelled `label`, for the protocols
/// nDPI names by protocol (None: some other protocol, or an application on top of one).
pub fn expected(label: &str, flow: &Flow) -> Option<Proto> {
    let master = label.split('.').next().unwrap_or("");
    Some(match master {
        "DNS" => Proto::Dns,
        "MDNS" => Proto::Mdns,
        "LLMNR" => Proto::Llmnr,
        "SSDP" => Proto::Ssdp,
        "DHCP" => Proto::Dhcp,
        "DHCPV6" => Proto::Dhcpv6,
        "NTP" => Proto::Ntp,
        "NetBIOS" if flow.has_port(137) => Proto::NetbiosNs,
        "NetBIOS" if flow.has_port(138) => Proto::NetbiosDgm,
        "SMBv1" | "SMBv23" => Proto::Smb,
        "NAT-PMP" => Proto::NatPmp,
        "Teredo" => Proto::Teredo,
        "WireGuard" => Proto::Wireguard,
        "OpenVPN" => Proto::Openvpn,
        "IPSec" => Proto::Ipsec,
        "RDP" => Proto::Rdp,
        "VNC" => Proto::Vnc,
        "Telnet" => Proto::Telnet,
        "FTP_CONTROL" => Proto::Ftp,
        "TFTP" => Proto::Tftp,
        "BitTorrent" => Proto::Bittorrent,
        "Kerberos" => Proto::Kerberos,
        "LDAP" => Proto::Ldap,
        "SNMP" => Proto::Snmp,
        "Syslog" => Proto::Syslog,
        "MySQL" => Proto::Mysql,
        "PostgreSQL" => Proto::Postgres,
        "MQTT" => Proto::Mqtt,
        "WhatsApp" => Proto::Whatsapp,
        "Zoom" => Proto::Zoom,
        "Discord" => Proto::Discord,
        "Telegram" => Proto::Telegram,
        _ => return None,
    })
}

/// The scored capture files of the nDPI corpus (tests/ndpi-scored.txt), relative to the
/// corpus root.
pub fn ndpi_captures() -> Vec<String> {
    let list = corpus_dir().join("../ndpi-scored.txt");
    let text = std::fs::read_to_string(&list)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", list.display()));
    let v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|n| format!("ndpi/{n}"))
        .collect();
    for c in &v {
        assert!(
            corpus_dir().join(c).is_file(),
            "{} lists {c}, which is missing",
            list.display()
        );
    }
    v
}

/// Replays every flow with payload of the nDPI corpus through `d` (`Feed::FIRST_ANSWER`)
/// and compares with nDPI, for the protocols in `mine` (a flow nDPI gives another protocol
/// must not match). Returns the disagreements (one line each) and how many flows matched
/// per protocol.
pub fn compare_with_ndpi(d: &dyn Decoder, mine: &[Proto]) -> (Vec<String>, HashMap<Proto, usize>) {
    let mut bad = Vec::new();
    let mut matched = HashMap::new();
    for cap in ndpi_captures() {
        let labels = ndpi_labels(&cap);
        let guessed = guessed_flows(&cap);
        for f in payload_flows(&cap) {
            let key = f.endpoints();
            let label = labels.get(&key).map_or("(not listed)", |s| s.as_str());
            let want = expected(label, &f).filter(|p| mine.contains(p));
            let got = replay(d, &f, Feed::FIRST_ANSWER);
            let got_proto = got.proto();
            // nDPI's guesses from the port or address alone are not ground truth: a decoder
            // that finds nothing in such a flow is not wrong.
            let excused = got_proto.is_none() && guessed.contains(&key);
            if got_proto != want && !excused {
                let cap = cap.trim_start_matches("ndpi/");
                bad.push(format!(
                    "{cap} {:?} {} <-> {}: nDPI {label}, decoder {:?}",
                    f.transport,
                    key.0,
                    key.1,
                    got.answer()
                ));
            }
            if let Some(p) = got_proto {
                *matched.entry(p).or_insert(0) += 1;
            }
        }
    }
    (bad, matched)
}

/// The flows `d` matches (`Feed::FIRST_ANSWER`) in the captures outside the nDPI set
/// (corpus/mix, its trex_sfr folder, corpus/sip-calls), as "capture client <-> server:
/// protocol", sorted.
pub fn matches_elsewhere(d: &dyn Decoder) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["mix", "mix/trex_sfr", "sip-calls"] {
        let dir = corpus_dir().join(sub);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .collect();
        files.sort();
        for path in files {
            for f in payload_flows_in(&path) {
                if let Some(p) = replay(d, &f, Feed::FIRST_ANSWER).proto() {
                    let name = path.file_name().unwrap().to_string_lossy();
                    let (a, b) = (endpoint(f.client), endpoint(f.server));
                    out.push(format!("{name} {a} <-> {b}: {p:?}"));
                }
            }
        }
    }
    out.sort();
    out
}

/// The checks every decoder of round two passes, for the protocols it names (`mine`): it
/// agrees with nDPI on every scored capture (each flow nDPI gives one of `mine` matches, no
/// other flow does), matches nothing in the other captures, and none of the foreign first
/// payloads (DNS, HTTP, TLS, XMPP) on its own first hint port, either way; in the other
/// captures it matches exactly `elsewhere` (as `matches_elsewhere` lists them). Returns how
/// many flows matched per protocol.
pub fn standard_checks(
    d: &dyn Decoder,
    mine: &[Proto],
    elsewhere: &[&str],
) -> HashMap<Proto, usize> {
    let (bad, matched) = compare_with_ndpi(d, mine);
    assert!(
        bad.is_empty(),
        "disagreements with nDPI:\n{}",
        bad.join("\n")
    );
    assert_eq!(matches_elsewhere(d), elsewhere);
    let port = d.hint_ports().first().copied().unwrap_or(40001);
    for (p, t) in foreign_payloads() {
        for dir in [Dir::Orig, Dir::Reply] {
            let got = probe_once(d, &p, &ctx(t, dir, 40000, port)).0;
            assert!(
                !matches!(got, Probe::Match(..)),
                "{}: a foreign payload {:02x?} matched: {got:?}",
                d.name(),
                &p[..p.len().min(24)]
            );
        }
    }
    matched
}
