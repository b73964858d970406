//! The bundled demo capture: two FaceTime calls (one relayed through TURN) among ordinary
//! traffic (DNS over IPv4 and IPv6, two HTTP/1.1 downloads, a TCP session ended by a reset,
//! ping, ARP, ICMPv6 echo, a VLAN-tagged DNS flow, NTP) and two frames that are malformed on
//! purpose and must be counted as drops.
//!
//! Addresses: the LAN is 10.0.0.0/24 (gateway 10.0.0.1), the VLAN 100 segment 10.100.0.0/24,
//! the resolver 192.0.2.53, web/NTP/SMTP servers in 203.0.113.0/24, ping targets and FaceTime
//! peers in 198.51.100.0/24, IPv6 in 2001:db8::/32, and Apple's servers in 17.0.0.0/8.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::path::Path;

use crate::build::{self, ArpOp, Echo, Ipv4Header, Mac, TcpFlags, TcpHeader};
use crate::facetime::{facetime_session, FacetimeParams, FacetimeSession};
use crate::pcap::{write_pcap_file, TimedFrame, WriteError};
use crate::rng::{Ipv4Prefix, Ipv6Prefix, Rng};
use crate::tcp::{Direction, TcpSession};
use crate::{dns, ntp};

/// Unix time (seconds) at which every sample capture starts: 2023-11-14 22:13:20 UTC.
pub const SAMPLE_EPOCH_S: u64 = 1_700_000_000;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

pub const LAN: Ipv4Prefix = Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 0), 24);
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
pub const VLAN_ID: u16 = 100;
pub const WEB: Ipv4Prefix = Ipv4Prefix::new(Ipv4Addr::new(203, 0, 113, 0), 24);
pub const PING_TARGETS: Ipv4Prefix = Ipv4Prefix::new(Ipv4Addr::new(198, 51, 100, 0), 24);
pub const LAN6: Ipv6Prefix = Ipv6Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0), 64);
pub const RESOLVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);

/// Why a frame of the sample is malformed on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// IPv4 header length field of 3 (12 bytes, below the 20-byte minimum).
    Ipv4HeaderLength3,
    /// IPv4 datagram whose TCP header is cut after 12 of its 20 bytes.
    TruncatedTcpHeader,
}

/// A frame of the sample that a firewall must drop, and the flow it claims to belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Index into [`Sample::frames`] (frame number minus one).
    pub index: usize,
    pub defect: Defect,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub protocol: u8,
}

/// The demo capture and what it contains.
#[derive(Debug, Clone)]
pub struct Sample {
    pub frames: Vec<TimedFrame>,
    pub facetime: Vec<FacetimeSession>,
    pub malformed: Vec<Malformed>,
}

/// Frames being collected, each flagged with the defect it carries on purpose.
struct Capture {
    gateway_mac: Mac,
    frames: Vec<(TimedFrame, Option<Malformed>)>,
}

impl Capture {
    fn add(&mut self, t: u64, frame: Vec<u8>) {
        self.frames.push(((t, frame), None));
    }

    fn extend(&mut self, frames: Vec<TimedFrame>) {
        self.frames.extend(frames.into_iter().map(|f| (f, None)));
    }

    /// A DNS exchange over IPv4 between `host` and the resolver through the gateway; returns
    /// the answer's time.
    fn dns4(
        &mut self,
        rng: &mut Rng,
        t: u64,
        host: &Host,
        name: &str,
        qtype: u16,
        answers: &[IpAddr],
    ) -> u64 {
        let c = SocketAddrV4::new(host.ip, rng.range_u16(49152, 65535));
        let s = SocketAddrV4::new(RESOLVER_IP, 53);
        let id = rng.next_u16();
        self.add(
            t,
            build::udp4(
                host.mac,
                self.gateway_mac,
                c,
                s,
                &dns::query(id, name, qtype),
            ),
        );
        let t2 = t + rng.range(4 * MS, 60 * MS);
        self.add(
            t2,
            build::udp4(
                self.gateway_mac,
                host.mac,
                s,
                c,
                &dns::response(id, name, qtype, answers, 300),
            ),
        );
        t2
    }
}

#[derive(Debug, Clone, Copy)]
struct Host {
    ip: Ipv4Addr,
    mac: Mac,
}

/// Distinct LAN hosts, never the gateway.
fn lan_hosts(rng: &mut Rng, n: usize) -> Vec<Host> {
    let mut hosts: Vec<Host> = Vec::with_capacity(n);
    while hosts.len() < n {
        let ip = rng.ipv4_in(LAN);
        if ip != GATEWAY_IP && hosts.iter().all(|h| h.ip != ip) {
            hosts.push(Host { ip, mac: rng.mac() });
        }
    }
    hosts
}

fn html_page(rng: &mut Rng, title: &str, paragraphs: usize) -> String {
    const WORDS: &[&str] = &[
        "packet", "flow", "policy", "zone", "gateway", "latency", "route", "session", "tunnel",
        "frame", "queue", "window",
    ];
    let mut body = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n"
    );
    for _ in 0..paragraphs {
        body.push_str("<p>");
        for i in 0..rng.range(30, 80) {
            if i > 0 {
                body.push(' ');
            }
            let word: &&str = rng.pick(WORDS);
            body.push_str(word);
        }
        body.push_str(".</p>\n");
    }
    body.push_str("</body>\n</html>\n");
    body
}

/// An HTTP/1.1 GET over a fresh TCP connection with FIN close; returns the end time.
#[allow(clippy::too_many_arguments)]
fn http_get(
    cap: &mut Capture,
    rng: &mut Rng,
    t: u64,
    host: &Host,
    server: Ipv4Addr,
    name: &str,
    path: &str,
    body: &str,
    content_type: &str,
) -> u64 {
    let client = SocketAddrV4::new(host.ip, rng.range_u16(49152, 65535));
    let mut s = TcpSession::v4(
        rng,
        t,
        host.mac,
        cap.gateway_mac,
        client,
        SocketAddrV4::new(server, 80),
    );
    s.handshake();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
    );
    s.send(Direction::ToServer, req.as_bytes());
    let resp = format!(
        "HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nServer: nginx/1.22.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.send(Direction::ToClient, resp.as_bytes());
    s.idle(rng.range(MS, 10 * MS));
    s.close(Direction::ToClient);
    let end = s.now();
    cap.extend(s.into_frames());
    end
}

/// The demo capture for `seed`, with what it contains.
pub fn sample(seed: u64) -> Sample {
    let mut root = Rng::new(seed);
    let gateway_mac = root.mac();
    let mut cap = Capture {
        gateway_mac,
        frames: Vec::new(),
    };
    let hosts = lan_hosts(&mut root, 4);
    let (alice, bob, carol, dave) = (hosts[0], hosts[1], hosts[2], hosts[3]);
    let t0 = SAMPLE_EPOCH_S * S;
    let mut facetime = Vec::new();

    // ARP: every LAN host resolves the gateway first.
    {
        let mut rng = root.fork();
        for (i, h) in hosts.iter().enumerate() {
            let t = t0 + i as u64 * 150 * MS + rng.range(0, 50 * MS);
            cap.add(
                t,
                build::arp(ArpOp::Request, h.mac, h.ip, [0; 6], GATEWAY_IP),
            );
            cap.add(
                t + rng.range(100_000, 900_000),
                build::arp(ArpOp::Reply, gateway_mac, GATEWAY_IP, h.mac, h.ip),
            );
        }
    }

    // NTP: one client/server exchange at the start and one near the end, port 123 both sides.
    {
        let mut rng = root.fork();
        let server = SocketAddrV4::new(rng.ipv4_in(WEB), 123);
        let client = SocketAddrV4::new(carol.ip, 123);
        for at in [t0 + 700 * MS, t0 + 52 * S] {
            let t = at + rng.range(0, 200 * MS);
            let q = ntp::client_request(t);
            cap.add(t, build::udp4(carol.mac, gateway_mac, client, server, &q));
            let rx = t + rng.range(8 * MS, 30 * MS);
            let r = ntp::server_reply(&q, rx - 4 * MS, rx - 4 * MS + 40_000, [192, 0, 2, 123]);
            cap.add(rx, build::udp4(gateway_mac, carol.mac, server, client, &r));
        }
    }

    // HTTP: two downloads, each after its DNS lookup (A, and AAAA answered from 2001:db8::/32).
    {
        let mut rng = root.fork();
        let www = rng.ipv4_in(WEB);
        let www6 = rng.ipv6_in(Ipv6Prefix::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 0),
            64,
        ));
        let t = t0 + S + rng.range(0, 300 * MS);
        let t = cap.dns4(
            &mut rng,
            t,
            &alice,
            "www.example.com",
            dns::TYPE_A,
            &[IpAddr::V4(www)],
        );
        cap.dns4(
            &mut rng,
            t + MS,
            &alice,
            "www.example.com",
            dns::TYPE_AAAA,
            &[IpAddr::V6(www6)],
        );
        let page = html_page(&mut rng, "Aperture demo", 12);
        http_get(
            &mut cap,
            &mut rng,
            t + 3 * MS,
            &alice,
            www,
            "www.example.com",
            "/index.html",
            &page,
            "text/html",
        );

        let api = rng.ipv4_in(WEB);
        let t = t0 + 20 * S + rng.range(0, 2 * S);
        let t = cap.dns4(
            &mut rng,
            t,
            &dave,
            "api.example.org",
            dns::TYPE_A,
            &[IpAddr::V4(api)],
        );
        let mut json = String::from("{\"items\":[");
        for i in 0..rng.range(20, 60) {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("{{\"id\":{i},\"token\":\"{}\"}}", rng.hex(24)));
        }
        json.push_str("]}");
        http_get(
            &mut cap,
            &mut rng,
            t + 2 * MS,
            &dave,
            api,
            "api.example.org",
            "/v1/items",
            &json,
            "application/json",
        );
    }

    // Ping: four echo requests a second apart, each answered.
    {
        let mut rng = root.fork();
        let target = rng.ipv4_in(PING_TARGETS);
        let id = rng.next_u16();
        let start = t0 + 3 * S + rng.range(0, 500 * MS);
        for seq in 1..=4u16 {
            let t = start + u64::from(seq - 1) * S + rng.range(0, MS);
            // Linux ping: 8-byte timestamp then the bytes 0x10.. 0x37.
            let mut payload = (t / S).to_le_bytes().to_vec();
            payload.extend(0x10u8..0x38);
            let e = Echo {
                id,
                seq,
                reply: false,
            };
            cap.add(
                t,
                build::icmp4_echo(bob.mac, gateway_mac, bob.ip, target, e, &payload),
            );
            let e = Echo { reply: true, ..e };
            cap.add(
                t + rng.range(8 * MS, 40 * MS),
                build::icmp4_echo(gateway_mac, bob.mac, target, bob.ip, e, &payload),
            );
        }
    }

    // FaceTime: a direct call with audio and video from alice, then a TURN-relayed audio call
    // from bob. Both look their servers up first.
    {
        let mut rng = root.fork();
        let mut p = FacetimeParams::new(alice.ip, alice.mac, gateway_mac);
        p.resolver = Some(RESOLVER_IP);
        p.video = true;
        p.media_ms = rng.range(5_000, 8_000);
        let start = t0 + 5 * S + rng.range(0, S);
        let (s, f) = facetime_session(&mut rng, start, &p);
        facetime.push(s);
        cap.extend(f);

        let mut p = FacetimeParams::new(bob.ip, bob.mac, gateway_mac);
        p.resolver = Some(RESOLVER_IP);
        p.turn = true;
        p.media_ms = rng.range(5_000, 8_000);
        let start = t0 + 30 * S + rng.range(0, S);
        let (s, f) = facetime_session(&mut rng, start, &p);
        facetime.push(s);
        cap.extend(f);
    }

    // IPv6: AAAA lookups over IPv6 from one source port (one flow), and an ICMPv6 echo pair.
    {
        let mut rng = root.fork();
        let host6 = rng.ipv6_in(LAN6);
        let client = SocketAddrV6::new(host6, rng.range_u16(49152, 65535), 0, 0);
        let server = SocketAddrV6::new(RESOLVER6, 53, 0, 0);
        let mut t = t0 + 12 * S + rng.range(0, S);
        for name in ["www.example.com", "mirror.example.net", "ntp.example.org"] {
            let addr = rng.ipv6_in(Ipv6Prefix::new(
                Ipv6Addr::new(0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 0),
                64,
            ));
            let id = rng.next_u16();
            cap.add(
                t,
                build::udp6(
                    carol.mac,
                    gateway_mac,
                    client,
                    server,
                    &dns::query(id, name, dns::TYPE_AAAA),
                ),
            );
            let t2 = t + rng.range(5 * MS, 50 * MS);
            let answer = dns::response(id, name, dns::TYPE_AAAA, &[IpAddr::V6(addr)], 3600);
            cap.add(
                t2,
                build::udp6(gateway_mac, carol.mac, server, client, &answer),
            );
            t = t2 + rng.range(100 * MS, 700 * MS);
        }
        let e = Echo {
            id: rng.next_u16(),
            seq: 1,
            reply: false,
        };
        let payload = rng.bytes(56);
        cap.add(
            t,
            build::icmp6_echo(carol.mac, gateway_mac, host6, RESOLVER6, e, &payload),
        );
        let e = Echo { reply: true, ..e };
        cap.add(
            t + rng.range(5 * MS, 30 * MS),
            build::icmp6_echo(gateway_mac, carol.mac, RESOLVER6, host6, e, &payload),
        );
    }

    // VLAN 100: a host on the tagged segment asks the segment's resolver three names from one
    // source port.
    {
        let mut rng = root.fork();
        let segment = Ipv4Prefix::new(Ipv4Addr::new(10, 100, 0, 0), 24);
        let (host_ip, host_mac) = (rng.ipv4_in(segment), rng.mac());
        let (dns_ip, dns_mac) = (Ipv4Addr::new(10, 100, 0, 53), rng.mac());
        let client = SocketAddrV4::new(host_ip, rng.range_u16(49152, 65535));
        let server = SocketAddrV4::new(dns_ip, 53);
        let mut t = t0 + 15 * S + rng.range(0, S);
        for name in [
            "printer.corp.example",
            "wiki.corp.example",
            "git.corp.example",
        ] {
            let addr = rng.ipv4_in(segment);
            let id = rng.next_u16();
            let q = build::udp4(
                host_mac,
                dns_mac,
                client,
                server,
                &dns::query(id, name, dns::TYPE_A),
            );
            cap.add(t, build::with_vlan(&q, VLAN_ID));
            let t2 = t + rng.range(300_000, 2 * MS);
            let answer = dns::response(id, name, dns::TYPE_A, &[IpAddr::V4(addr)], 600);
            let r = build::udp4(dns_mac, host_mac, server, client, &answer);
            cap.add(t2, build::with_vlan(&r, VLAN_ID));
            t = t2 + rng.range(200 * MS, 1500 * MS);
        }
    }

    // A TCP session ended by a reset: SMTP greeting and EHLO, then the server resets.
    {
        let mut rng = root.fork();
        let server = SocketAddrV4::new(rng.ipv4_in(WEB), 25);
        let client = SocketAddrV4::new(dave.ip, rng.range_u16(49152, 65535));
        let start = t0 + 28 * S + rng.range(0, S);
        let mut s = TcpSession::v4(&mut rng, start, dave.mac, gateway_mac, client, server);
        s.handshake();
        s.send(
            Direction::ToClient,
            b"220 mail.example.net ESMTP Postfix\r\n",
        );
        s.send(Direction::ToServer, b"EHLO client.example.com\r\n");
        s.idle(rng.range(100 * MS, 400 * MS));
        s.reset(Direction::ToClient);
        cap.extend(s.into_frames());
    }

    // The deliberate defects.
    {
        let mut rng = root.fork();
        let src = SocketAddrV4::new(carol.ip, rng.range_u16(49152, 65535));
        let dst = SocketAddrV4::new(rng.ipv4_in(WEB), 9);
        let mut f = build::udp4(carol.mac, gateway_mac, src, dst, b"discard me");
        f[14] = 0x43; // IHL 3: a 12-byte IPv4 header, below the minimum
        let t = t0 + 25 * S + rng.range(0, S);
        let m = Malformed {
            index: 0,
            defect: Defect::Ipv4HeaderLength3,
            src,
            dst,
            protocol: build::IPPROTO_UDP,
        };
        cap.frames.push(((t, f), Some(m)));

        let src = SocketAddrV4::new(dave.ip, rng.range_u16(49152, 65535));
        let dst = SocketAddrV4::new(rng.ipv4_in(WEB), 80);
        let h = TcpHeader {
            seq: rng.next_u32(),
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64_240,
        };
        let seg = build::tcp4_segment(src, dst, &h, &[]);
        let cut = &seg[..12]; // ports, sequence and acknowledgement numbers only
        let ip = Ipv4Header::new(*src.ip(), *dst.ip(), build::IPPROTO_TCP, cut);
        let f = build::ip4(dave.mac, gateway_mac, &ip, cut);
        let t = t0 + 40 * S + rng.range(0, S);
        let m = Malformed {
            index: 0,
            defect: Defect::TruncatedTcpHeader,
            src,
            dst,
            protocol: build::IPPROTO_TCP,
        };
        cap.frames.push(((t, f), Some(m)));
    }
    cap.frames.sort_by_key(|((t, _), _)| *t);
    let mut frames = Vec::with_capacity(cap.frames.len());
    let mut malformed = Vec::new();
    for (index, (frame, flag)) in cap.frames.into_iter().enumerate() {
        if let Some(mut m) = flag {
            m.index = index;
            malformed.push(m);
        }
        frames.push(frame);
    }
    Sample {
        frames,
        facetime,
        malformed,
    }
}

/// The frames of the demo capture for `seed`, sorted by time.
pub fn sample_capture(seed: u64) -> Vec<TimedFrame> {
    sample(seed).frames
}

/// Writes the demo capture for `seed` to a pcap file at `path`.
pub fn write_sample(path: &Path, seed: u64) -> Result<(), WriteError> {
    write_pcap_file(path, &sample(seed).frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::write_pcap;
    use crate::wire::parse;
    use std::collections::{BTreeMap, BTreeSet};

    fn allowed_v4(ip: Ipv4Addr) -> bool {
        let o = ip.octets();
        o[0] == 10
            || o[0] == 17
            || o[..3] == [192, 0, 2]
            || o[..3] == [198, 51, 100]
            || o[..3] == [203, 0, 113]
    }

    #[test]
    fn same_seed_gives_identical_bytes_and_another_seed_differs() {
        let a = write_pcap(Vec::new(), &sample_capture(7)).unwrap();
        let b = write_pcap(Vec::new(), &sample_capture(7)).unwrap();
        let c = write_pcap(Vec::new(), &sample_capture(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn write_sample_writes_the_same_bytes() {
        let path =
            std::env::temp_dir().join(format!("aperture-sample-{}.pcap", std::process::id()));
        write_sample(&path, 3).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(on_disk, write_pcap(Vec::new(), &sample_capture(3)).unwrap());
        let err = write_sample(Path::new("/nonexistent-dir/x.pcap"), 3).unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x.pcap"), "{err}");
    }

    #[test]
    fn sample_has_every_kind_of_traffic_within_documentation_ranges() {
        for seed in [1, 2, 3] {
            let s = sample(seed);
            let n = s.frames.len();
            assert!((300..=2500).contains(&n), "{n} frames");
            let span = s.frames[n - 1].0 - s.frames[0].0;
            assert!((30 * S..=120 * S).contains(&span), "span {span}");
            assert!(s.frames.windows(2).all(|w| w[0].0 <= w[1].0));

            let mut arp = 0;
            let mut vlan = 0;
            let mut v6 = 0;
            let mut icmp = 0;
            let mut ntp = 0;
            let mut dns_names = BTreeSet::new();
            let mut tcp_flows: BTreeMap<(u16, u16), Vec<u8>> = BTreeMap::new();
            for (i, (_, f)) in s.frames.iter().enumerate() {
                if u16::from_be_bytes([f[12], f[13]]) == build::ETHERTYPE_ARP {
                    arp += 1;
                    continue;
                }
                let deliberate = s.malformed.iter().any(|m| m.index == i);
                let Some(p) = parse(f) else {
                    assert!(deliberate, "frame {i} does not parse");
                    continue;
                };
                assert!(!deliberate, "frame {i} should be malformed");
                match (p.src, p.dst) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => {
                        assert!(allowed_v4(a) && allowed_v4(b), "{a} {b}")
                    }
                    (IpAddr::V6(a), IpAddr::V6(b)) => {
                        v6 += 1;
                        assert!(
                            a.segments()[..2] == [0x2001, 0xdb8]
                                && b.segments()[..2] == [0x2001, 0xdb8]
                        );
                    }
                    _ => panic!("mixed families"),
                }
                vlan += usize::from(p.vlan == Some(VLAN_ID));
                icmp += usize::from(p.proto == build::IPPROTO_ICMP);
                ntp += usize::from(p.proto == 17 && p.sport == 123 && p.dport == 123);
                if p.proto == 17 && p.dport == 53 {
                    // Question name: labels from offset 12.
                    let q = p.payload;
                    let mut at = 12;
                    let mut name = Vec::new();
                    while q[at] != 0 {
                        let l = usize::from(q[at]);
                        name.push(String::from_utf8(q[at + 1..at + 1 + l].to_vec()).unwrap());
                        at += 1 + l;
                    }
                    dns_names.insert(name.join("."));
                }
                if p.proto == 6 {
                    let key = if p.sport < p.dport {
                        (p.sport, p.dport)
                    } else {
                        (p.dport, p.sport)
                    };
                    tcp_flows.entry(key).or_default().push(p.tcp_flags);
                }
            }
            assert_eq!(arp, 8);
            assert_eq!(vlan, 6);
            assert_eq!(v6, 8);
            assert_eq!(icmp, 8);
            assert_eq!(ntp, 4);
            for name in [
                "www.example.com",
                "courier.push.apple.com",
                "printer.corp.example",
            ] {
                assert!(dns_names.contains(name), "{name} in {dns_names:?}");
            }
            // TCP: 2 HTTP + 1 SMTP + 2 push + 2 identity-service connections, each opened by
            // a SYN; the HTTP and identity ones closed by two FINs, SMTP by a reset.
            assert_eq!(tcp_flows.len(), 7);
            let by_port = |port: u16| -> Vec<&Vec<u8>> {
                tcp_flows
                    .iter()
                    .filter(|(k, _)| k.0 == port)
                    .map(|(_, v)| v)
                    .collect()
            };
            for flags in by_port(80).into_iter().chain(by_port(443)) {
                assert_eq!(flags[0], 0x02);
                assert_eq!(flags.iter().filter(|f| *f & 0x01 != 0).count(), 2);
            }
            assert_eq!(by_port(80).len(), 2);
            let smtp = by_port(25);
            assert_eq!(smtp.len(), 1);
            assert_eq!(*smtp[0].last().unwrap(), 0x14);
            assert_eq!(by_port(5223).len(), 2);

            assert_eq!(s.facetime.len(), 2);
            assert_eq!(s.facetime.iter().filter(|f| f.turn).count(), 1);
            assert_eq!(s.malformed.len(), 2);
            let defects: Vec<Defect> = s.malformed.iter().map(|m| m.defect).collect();
            assert_eq!(
                defects,
                vec![Defect::Ipv4HeaderLength3, Defect::TruncatedTcpHeader]
            );
            let m = &s.frames[s.malformed[0].index].1;
            assert_eq!(m[14], 0x43);
            let m = &s.frames[s.malformed[1].index].1;
            assert_eq!(u16::from_be_bytes([m[16], m[17]]), 32);
            assert_eq!(m[23], build::IPPROTO_TCP);
        }
    }
}
