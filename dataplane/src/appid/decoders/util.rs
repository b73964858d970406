//! Small byte helpers shared by decoders. All bounds-checked; none allocates.

/// Big-endian u16 at `off`, if in bounds.
#[inline]
pub fn be16(b: &[u8], off: usize) -> Option<u16> {
    crate::packet::bytes::be16(b, off)
}

/// Big-endian u32 at `off`, if in bounds.
#[inline]
pub fn be32(b: &[u8], off: usize) -> Option<u32> {
    crate::packet::bytes::be32(b, off)
}

/// Whether `hay` starts with `prefix`, ASCII case-insensitively.
#[inline]
pub fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The lines of a text header block (up to the first empty line or the end of `data`), each
/// without its CR LF. Stops at `max` lines.
pub fn header_lines(data: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    data.split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
        .take(max)
}

/// The value of header `name` (case-insensitive, `Name: value`) in a header block, trimmed.
/// `compact` is the single-letter SIP form, if any.
pub fn header_value<'a>(data: &'a [u8], name: &[u8], compact: Option<u8>) -> Option<&'a [u8]> {
    for line in header_lines(data, 64).skip(1) {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let key = trim(&line[..colon]);
        let hit = key.eq_ignore_ascii_case(name)
            || compact.is_some_and(|c| key.len() == 1 && key[0].eq_ignore_ascii_case(&c));
        if hit {
            return Some(trim(&line[colon + 1..]));
        }
    }
    None
}

/// `b` without leading and trailing ASCII whitespace.
pub fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup() {
        let m = b"INVITE sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP x\r\nUser-Agent:  Viceroy 1.4 \r\n\r\nbody: no";
        assert_eq!(
            header_value(m, b"user-agent", None),
            Some(&b"Viceroy 1.4"[..])
        );
        assert_eq!(
            header_value(m, b"via", Some(b'v')),
            Some(&b"SIP/2.0/UDP x"[..])
        );
        assert_eq!(header_value(m, b"body", None), None);
        assert_eq!(trim(b"  "), b"");
        assert!(starts_with_ci(b"GET / HTTP/1.1", b"get "));
    }
}

/// Test support for decoders: the flows of an nDPI corpus capture replayed through one decoder
/// the way the engine feeds it (UDP: each datagram; TCP: the stream of that direction from its
/// first byte, capped like the classifier's buffer), and nDPI's verdict for each flow.
#[cfg(test)]
pub(crate) mod corpus {
    use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};
    use crate::flow::Dir;
    use crate::packet::{self, IpAddr16};
    use std::collections::HashMap;
    use std::path::PathBuf;

    /// The classifier's per-direction TCP buffer, as decoders may assume it.
    pub const TCP_BUFFER: usize = 2048;
    /// Payload packets per direction a decoder is asked about before the flow is given up.
    pub const BUDGET: u8 = 8;

    pub const HTTP_GET: &[u8] =
        b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.0\r\n\r\n";
    pub const SIP_INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: 1@10.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    /// The start of a TLS 1.2 ClientHello record.
    pub const TLS_HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x00, 0x31, 0x01, 0x00, 0x00, 0x2d, 0x03, 0x03, 0x5b, 0x1c, 0x2a, 0x00,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0x00, 0x00,
        0x02, 0xc0, 0x2f, 0x01, 0x00, 0x00, 0x00,
    ];

    /// Bytes from a hex string (as tshark prints payloads); whitespace is ignored.
    pub fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// A context for a flow between two IPv4 hosts, asked about the client's first packet.
    pub fn ctx(transport: Transport, client_port: u16, server_port: u16) -> FlowCtx {
        ctx_dir(transport, client_port, server_port, Dir::Orig)
    }

    pub fn ctx_dir(transport: Transport, client_port: u16, server_port: u16, dir: Dir) -> FlowCtx {
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

    /// ../shared/corpus beside the checkout.
    pub fn corpus_dir() -> PathBuf {
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        assert!(d.is_dir(), "the test corpus is expected at {}", d.display());
        d
    }

    pub fn ndpi_dir() -> PathBuf {
        corpus_dir().join("ndpi")
    }

    pub struct Flow {
        pub transport: Transport,
        pub client: (IpAddr16, u16),
        pub server: (IpAddr16, u16),
        /// Payload packets in capture order.
        pub packets: Vec<(Dir, Vec<u8>)>,
    }

    fn endpoint(a: (IpAddr16, u16)) -> String {
        std::net::SocketAddr::new(a.0.to_std(), a.1).to_string()
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

    /// Every UDP and TCP flow with payload in `capture` (a file name in the nDPI corpus).
    pub fn flows(capture: &str) -> Vec<Flow> {
        flows_in(&ndpi_dir().join(capture))
    }

    /// Every UDP and TCP flow with payload in the capture at `path`.
    pub fn flows_in(path: &std::path::Path) -> Vec<Flow> {
        let mut flows: Vec<Flow> = Vec::new();
        type Endpoint = (IpAddr16, u16);
        let mut index: HashMap<(u8, Endpoint, Endpoint), usize> = HashMap::new();
        // Next expected TCP sequence number per (flow, direction): retransmissions are skipped.
        let mut next_seq: HashMap<(usize, u8), u32> = HashMap::new();
        crate::replay::capture::for_each_frame(path, |f| {
            let Ok(h) = packet::parse(&f.data, f.orig_len as usize) else {
                return Ok(());
            };
            let transport = match h.proto {
                packet::proto::UDP => Transport::Udp,
                packet::proto::TCP => Transport::Tcp,
                _ => return Ok(()),
            };
            let start = h.payload_offset as usize;
            let end = (start + h.payload_len as usize).min(f.data.len());
            let payload = f.data.get(start..end).unwrap_or_default();
            let src = (h.src, h.src_port);
            let dst = (h.dst, h.dst_port);
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
            if transport == Transport::Tcp {
                let off = h.l4_offset as usize;
                let seq = crate::packet::bytes::be32(&f.data, off + 4).unwrap_or(0);
                let syn = h.tcp_flags & 0x02 != 0;
                let key = (i, dir as u8);
                if syn {
                    next_seq.insert(key, seq.wrapping_add(1));
                }
                if payload.is_empty() {
                    return Ok(());
                }
                if let Some(&n) = next_seq.get(&key) {
                    if (seq.wrapping_sub(n) as i32) < 0 {
                        return Ok(());
                    }
                }
                next_seq.insert(key, seq.wrapping_add(payload.len() as u32));
            }
            if !payload.is_empty() {
                flows[i].packets.push((dir, payload.to_vec()));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        flows.retain(|f| !f.packets.is_empty());
        flows
    }

    /// What a decoder concluded about a flow.
    #[derive(Debug)]
    pub struct Outcome {
        pub answer: Option<(Proto, Confidence)>,
        pub ev: Evidence,
        /// Payload packets (both directions) fed before the answer.
        pub packets: usize,
    }

    /// Replays `flow` through `d` until it matches, says `NotMe`, or the budget runs out.
    pub fn replay(d: &dyn Decoder, flow: &Flow) -> Outcome {
        let mut scratch: Scratch = [0; 16];
        let mut ev = Evidence::default();
        let mut counts = [0u8; 2];
        let mut streams: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut out = Outcome {
            answer: None,
            ev,
            packets: 0,
        };
        if !d.transports().contains(&flow.transport) {
            return out;
        }
        for (n, (dir, payload)) in flow.packets.iter().enumerate() {
            let k = *dir as usize;
            counts[k] = counts[k].saturating_add(1);
            if counts[k] > BUDGET {
                continue;
            }
            let data: &[u8] = match flow.transport {
                Transport::Udp => payload,
                Transport::Tcp => {
                    let s = &mut streams[k];
                    let room = TCP_BUFFER.saturating_sub(s.len());
                    s.extend_from_slice(&payload[..payload.len().min(room)]);
                    s
                }
            };
            let ctx = FlowCtx {
                transport: flow.transport,
                dir: *dir,
                client: flow.client,
                server: flow.server,
                packets: counts,
            };
            match d.probe(data, &ctx, &mut scratch, &mut ev) {
                Probe::Match(p, c) => {
                    out.answer = Some((p, c));
                    out.packets = n + 1;
                    break;
                }
                Probe::NotMe => break,
                Probe::NotYet => {}
            }
        }
        out.ev = ev;
        out
    }

    /// nDPI's label (`MASTER` or `MASTER.APP`) for each flow of `capture`, by endpoints.
    pub fn ndpi_labels(capture: &str) -> HashMap<(String, String), String> {
        let path = ndpi_dir().join(format!("{capture}.out"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut labels = HashMap::new();
        for line in text.lines() {
            let t: Vec<&str> = line.split_whitespace().collect();
            if t.len() < 6 || !matches!(t[1], "UDP" | "TCP") || !matches!(t[3], "<->" | "->") {
                continue;
            }
            let Some(p) = line.find("[proto: ") else {
                continue;
            };
            let rest = &line[p + 8..];
            let Some(label) = rest.split(']').next().and_then(|s| s.split('/').nth(1)) else {
                continue;
            };
            let (a, b) = (t[2].to_string(), t[4].to_string());
            let key = if a <= b { (a, b) } else { (b, a) };
            labels.insert(key, label.to_string());
        }
        labels
    }

    /// The protocol this project expects for a flow nDPI labelled `label`, for the protocols
    /// of the DNS-family, LAN-service and SMB decoders (None: some other protocol).
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
            _ => return None,
        })
    }

    /// The capture files of the nDPI corpus.
    pub fn captures() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(ndpi_dir())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
            .collect();
        v.sort();
        v
    }

    /// Replays every flow of the corpus through `d` and compares with nDPI, for the protocols
    /// in `mine` (a flow nDPI gives another protocol must not match). Returns the disagreements
    /// (one line each) and how many flows matched per protocol.
    pub fn compare_with_ndpi(
        d: &dyn Decoder,
        mine: &[Proto],
    ) -> (Vec<String>, HashMap<Proto, usize>) {
        let mut bad = Vec::new();
        let mut matched = HashMap::new();
        for cap in captures() {
            let labels = ndpi_labels(&cap);
            for f in flows(&cap) {
                let key = f.endpoints();
                let label = labels.get(&key).map_or("(not listed)", |s| s.as_str());
                let want = expected(label, &f).filter(|p| mine.contains(p));
                let got = replay(d, &f);
                let got_proto = got.answer.map(|a| a.0);
                if got_proto != want {
                    bad.push(format!(
                        "{cap} {:?} {} <-> {}: nDPI {label}, decoder {:?}",
                        f.transport, key.0, key.1, got.answer
                    ));
                }
                if let Some(p) = got_proto {
                    *matched.entry(p).or_insert(0) += 1;
                }
            }
        }
        (bad, matched)
    }

    /// The flows `d` matches in the captures outside the nDPI set (corpus/mix, its trex_sfr
    /// folder, corpus/sip-calls), as "capture client <-> server: protocol", sorted.
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
                for f in flows_in(&path) {
                    if let Some((p, _)) = replay(d, &f).answer {
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
}
