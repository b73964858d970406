//! Flow records: what a worker reports when a flow ends (and, for long flows, while it lasts),
//! and the JSON Lines writer that runs on the service thread. Workers push fixed-size records
//! into a bounded lock-free queue; formatting and I/O happen off the packet path.
//!
//! Records are Suricata eve-style `flow` events (`timestamp`, `flow_id`, `event_type`,
//! `src_ip`/`dest_ip`, a `flow` object with `pkts_toserver`... `start`, `end`, `age`,
//! `reason`) with the Community ID and Aperture's own fields (application path, evidence,
//! policy, NAT, the ALG's prediction). README's "Flow log" section documents every field.
pub mod community_id;

use crate::appid::catalog::{AppId, Catalog};
use crate::appid::engine::{AppInfo, MAX_PATH};
use crate::appid::Evidence;
use crate::flow::{EndReason, Flow};
use crate::packet::tunnel::{Kind, Tunnel};
use crate::packet::{proto, IpAddr16};
use crate::policy::{Action, PolicyStore, RULE_DEFAULT};
use crossbeam_queue::ArrayQueue;
use serde::Serialize;
use std::io::Write;

/// An IP protocol's name as the flow log writes it (eve's names; the number otherwise).
pub fn proto_name(p: u8) -> String {
    match p {
        proto::TCP => "TCP".to_string(),
        proto::UDP => "UDP".to_string(),
        proto::ICMP => "ICMP".to_string(),
        proto::ICMPV6 => "IPv6-ICMP".to_string(),
        proto::SCTP => "SCTP".to_string(),
        47 => "GRE".to_string(),
        50 => "ESP".to_string(),
        51 => "AH".to_string(),
        p => p.to_string(),
    }
}

/// A time in nanoseconds since the epoch as eve writes it: `2005-01-14T17:58:02.965944+0000`.
pub fn iso_time(ns: u64) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let nanos = (ns % 1_000_000_000) as u32 / 1000 * 1000;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6f%z").to_string(),
        None => "1970-01-01T00:00:00.000000+0000".to_string(),
    }
}

/// One flow, as first seen (before any NAT): ended, or still live for an interim record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub worker: u16,
    pub vlan: u16,
    pub proto: u8,
    pub src: IpAddr16,
    pub src_port: u16,
    pub dst: IpAddr16,
    pub dst_port: u16,
    /// The port the originator's first packet came in on.
    pub in_port: u8,
    /// ICMP/ICMPv6: the originator's first message's type and code.
    pub icmp: [u8; 2],
    /// [client-to-server, server-to-client].
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub start_ns: u64,
    pub end_ns: u64,
    /// Why the flow ended; None for an interim record (the flow goes on).
    pub end_reason: Option<EndReason>,
    pub app: AppId,
    pub app_path: [AppId; MAX_PATH],
    pub app_path_len: u8,
    pub app_decided_after: u32,
    /// What App-ID's decoders read from the flow (host names, user agent, ALPN, STUN
    /// software).
    pub evidence: Evidence,
    /// The policy's last verdict on the flow and the generation it was checked under (its
    /// low 16 bits; 0: no policy enforced, and no `action` is logged).
    pub action: Action,
    pub rule: u16,
    pub policy_generation: u16,
    /// What the originator's packets became under NAT (None: not translated).
    pub nat: Option<crate::nat::Tuple>,
    /// This flow's id (`flow_id`), and the signalling flow whose ALG pinhole let it in.
    pub flow_id: u64,
    pub predicted_by: Option<u64>,
    /// An inner flow: the kind of tunnel it came out of (`packet::tunnel::Kind`; 0: none),
    /// and that tunnel's endpoints when known.
    pub tunnel_kind: u8,
    pub tunnel: Option<Tunnel>,
}

/// A flow's id in the flow log: a mix of the worker, its slot and its start time, positive
/// as an i64 (as eve-style consumers expect) and never 0. The same inputs give the same id,
/// so an ALG can name the signalling flow before that flow's record is written.
pub fn flow_id(worker: u16, slot: crate::flow::Slot, start_ns: u64) -> u64 {
    let mut z = start_ns ^ ((worker as u64) << 48 | slot as u64).rotate_left(17);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z & (i64::MAX as u64)).max(1)
}

/// Eve's `flow` object, with Aperture's finer end reason.
#[derive(Serialize)]
struct FlowPart {
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    start: String,
    end: String,
    /// Seconds from the first packet to the last.
    age: u64,
    /// Eve's vocabulary: `timeout` (idle, or closed and timed out), `forced` (evicted),
    /// `shutdown` (live at exit).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_reason: Option<&'static str>,
    /// An interim record: the flow is still live, its counters are totals so far.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interim: bool,
}

/// One line of the flow log.
#[derive(Serialize)]
struct FlowEvent<'a> {
    timestamp: String,
    flow_id: u64,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<[u16; 1]>,
    in_port: u8,
    src_ip: std::net::IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    dest_ip: std::net::IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    proto: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_id: Option<u16>,
    community_id: String,
    /// Absent while App-ID has not decided (interim records and live listings only).
    #[serde(skip_serializing_if = "Option::is_none")]
    app_proto: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    app_path: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_decided_after: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alpn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stun_software: Option<&'a str>,
    flow: FlowPart,
    worker: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_generation: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nat_src_ip: Option<std::net::Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nat_src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nat_dst_ip: Option<std::net::Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nat_dst_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    predicted_by: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<TunnelPart>,
}

/// The tunnel an inner flow came out of: its kind, and (when known) the endpoints of the
/// packets that carried it, how deep the flow was nested, and the VXLAN VNI, GRE key or
/// GTP-U TEID.
#[derive(Serialize)]
struct TunnelPart {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<u32>,
}

/// A text of the evidence, if any.
fn text(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl FlowRecord {
    /// The record of flow `f` in `slot` of `worker`: ended for `reason`, or None for an
    /// interim record of a live flow.
    pub fn new(
        worker: u16,
        slot: crate::flow::Slot,
        f: &Flow,
        reason: Option<EndReason>,
        app: &AppInfo,
        evidence: Evidence,
    ) -> FlowRecord {
        let (src, src_port, dst, dst_port) = f.key.oriented(f.orig_is_lo);
        FlowRecord {
            worker,
            vlan: f.key.vlan(),
            proto: f.key.proto(),
            src,
            src_port,
            dst,
            dst_port,
            in_port: f.policy.ports[0],
            icmp: app.icmp,
            packets: f.packets,
            bytes: f.bytes,
            start_ns: f.start_ns,
            end_ns: f.last_ns,
            end_reason: reason,
            app: app.app,
            app_path: app.path,
            app_path_len: app.path_len,
            app_decided_after: app.decided_after,
            evidence,
            action: f.policy.verdict.action,
            rule: f.policy.verdict.rule,
            policy_generation: f.policy.generation,
            nat: None,
            flow_id: flow_id(worker, slot, f.start_ns),
            predicted_by: None,
            tunnel_kind: f.key.tunnel(),
            tunnel: None,
        }
    }

    /// The application path (protocol first).
    pub fn path(&self) -> &[AppId] {
        &self.app_path[..(self.app_path_len as usize).min(MAX_PATH)]
    }

    /// Whether this is an interim record (the flow is still live).
    pub fn interim(&self) -> bool {
        self.end_reason.is_none()
    }

    /// The name of the rule that gave the flow its action and the policy generation, if a
    /// policy was enforced (`#N` when that generation is no longer kept).
    pub fn rule_of(&self, policies: Option<&PolicyStore>) -> Option<(String, u32)> {
        if self.policy_generation == 0 {
            return None;
        }
        let p = policies.and_then(|s| s.by_short_generation(self.policy_generation));
        let rule = match &p {
            _ if self.rule == RULE_DEFAULT => "default".to_string(),
            Some(p) => p.rule_name(self.rule).to_string(),
            None => format!("#{}", self.rule),
        };
        Some((
            rule,
            p.map_or(self.policy_generation as u32, |p| p.generation),
        ))
    }

    /// The flow's Community ID (seed 0).
    pub fn community_id(&self) -> String {
        let icmp = matches!(self.proto, proto::ICMP | proto::ICMPV6)
            .then_some((self.icmp[0], self.icmp[1]));
        community_id::community_id(
            &community_id::Endpoints {
                proto: self.proto,
                src: self.src,
                src_port: self.src_port,
                dst: self.dst,
                dst_port: self.dst_port,
                icmp,
            },
            0,
        )
    }

    /// Writes the record as one JSON object and a newline; application names from `catalog`;
    /// `rule` is what `rule_of` found (None: no policy enforced).
    pub fn write_json(
        &self,
        out: &mut impl Write,
        catalog: &Catalog,
        rule: Option<&(String, u32)>,
    ) -> std::io::Result<()> {
        serde_json::to_writer(&mut *out, &self.event(catalog, rule))?;
        out.write_all(b"\n")
    }

    fn event<'a>(&'a self, catalog: &'a Catalog, rule: Option<&'a (String, u32)>) -> FlowEvent<'a> {
        let icmp = matches!(self.proto, proto::ICMP | proto::ICMPV6);
        let echo = icmp && crate::packet::icmp::is_echo(self.proto == proto::ICMPV6, self.icmp[0]);
        let ported = matches!(self.proto, proto::TCP | proto::UDP | proto::SCTP);
        let decided = self.app != AppId::NONE;
        let path: Vec<&str> = if decided {
            self.path().iter().map(|a| catalog.name(*a)).collect()
        } else {
            Vec::new()
        };
        let app_proto = path.first().copied();
        let ev = &self.evidence;
        let host = text(ev.host.as_str());
        // The host is the TLS/DTLS server name, an HTTP Host (or CONNECT target), or another
        // protocol's (XMPP `to`, the DNS query name).
        use crate::appid::Proto;
        let first = self.path().first().copied();
        let is = |p: Proto| first == Some(catalog.of_proto(p));
        let (sni, http_host, host) = if is(Proto::Ssl) || is(Proto::Dtls) {
            (host, None, None)
        } else if is(Proto::Http) || is(Proto::HttpProxy) {
            (None, host, None)
        } else {
            (None, None, host)
        };
        let (reason, end_reason) = match self.end_reason {
            None => (None, None),
            Some(r) => (
                Some(match r {
                    EndReason::Evicted => "forced",
                    EndReason::Exit => "shutdown",
                    _ => "timeout",
                }),
                Some(r.name()),
            ),
        };
        FlowEvent {
            timestamp: iso_time(self.start_ns),
            flow_id: self.flow_id,
            event_type: "flow",
            vlan: (self.vlan != 0).then_some([self.vlan]),
            in_port: self.in_port,
            src_ip: self.src.to_std(),
            src_port: ported.then_some(self.src_port),
            dest_ip: self.dst.to_std(),
            dest_port: ported.then_some(self.dst_port),
            proto: proto_name(self.proto),
            icmp_type: icmp.then_some(self.icmp[0]),
            icmp_code: icmp.then_some(self.icmp[1]),
            icmp_id: echo.then_some(self.src_port),
            community_id: self.community_id(),
            app_proto,
            app: decided.then(|| catalog.name(self.app)),
            app_path: path,
            app_decided_after: decided.then_some(self.app_decided_after),
            sni,
            http_host,
            host,
            user_agent: text(ev.user_agent.as_str()),
            alpn: text(ev.alpn.as_str()),
            stun_software: text(ev.stun_software.as_str()),
            flow: FlowPart {
                pkts_toserver: self.packets[0],
                pkts_toclient: self.packets[1],
                bytes_toserver: self.bytes[0],
                bytes_toclient: self.bytes[1],
                start: iso_time(self.start_ns),
                end: iso_time(self.end_ns),
                age: self.end_ns.saturating_sub(self.start_ns) / 1_000_000_000,
                reason,
                end_reason,
                interim: self.interim(),
            },
            worker: self.worker,
            action: rule.map(|_| self.action.name()),
            rule: rule.map(|(r, _)| r.as_str()),
            policy_generation: rule.map(|(_, g)| *g),
            nat_src_ip: self.nat.map(|n| n.src.into()),
            nat_src_port: self.nat.map(|n| n.sport),
            nat_dst_ip: self.nat.map(|n| n.dst.into()),
            nat_dst_port: self.nat.map(|n| n.dport),
            predicted_by: self.predicted_by,
            tunnel: Kind::from_u8(self.tunnel_kind).map(|k| TunnelPart {
                kind: k.name(),
                src_ip: self.tunnel.map(|t| t.outer_src.to_std()),
                dest_ip: self.tunnel.map(|t| t.outer_dst.to_std()),
                depth: self.tunnel.map(|t| t.depth),
                id: self.tunnel.and_then(|t| t.id),
            }),
        }
    }
}

/// The worker side: a bounded queue of records. In lossless mode (capture replay) a full queue
/// makes the worker wait for the writer; live, a full queue loses the record and counts it.
pub struct FlowLogSink {
    pub queue: std::sync::Arc<ArrayQueue<FlowRecord>>,
    pub lossless: bool,
}

impl FlowLogSink {
    /// Pushes `r`; returns false if it was lost.
    #[inline]
    pub fn push(&self, r: FlowRecord) -> bool {
        let mut r = r;
        loop {
            match self.queue.push(r) {
                Ok(()) => return true,
                Err(back) if self.lossless => {
                    r = back;
                    std::thread::yield_now();
                }
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> FlowRecord {
        FlowRecord {
            worker: 0,
            vlan: 0,
            proto: 17,
            src: IpAddr16::from_v4([192, 0, 2, 1]),
            src_port: 5060,
            dst: IpAddr16::from_v4([198, 51, 100, 2]),
            dst_port: 5060,
            in_port: 1,
            icmp: [0; 2],
            packets: [3, 2],
            bytes: [300, 200],
            start_ns: 1_105_725_482_965_944_000,
            end_ns: 1_105_725_543_000_001_000,
            end_reason: Some(EndReason::AgedOut),
            app: AppId(1),
            app_path: [AppId(0), AppId(1), AppId::NONE, AppId::NONE],
            app_path_len: 2,
            app_decided_after: 1,
            evidence: Evidence::default(),
            action: Action::Allow,
            rule: RULE_DEFAULT,
            policy_generation: 0,
            nat: None,
            flow_id: 1,
            predicted_by: None,
            tunnel_kind: 0,
            tunnel: None,
        }
    }

    fn json(r: &FlowRecord, c: &Catalog, rule: Option<&(String, u32)>) -> serde_json::Value {
        let mut out = Vec::new();
        r.write_json(&mut out, c, rule).unwrap();
        assert!(out.ends_with(b"}\n"));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn eve_fields() {
        let c = Catalog::embedded();
        let (sip, facetime) = (c.by_name("sip").unwrap(), c.by_name("facetime").unwrap());
        let mut r = FlowRecord {
            app: facetime,
            app_path: [sip, facetime, AppId::NONE, AppId::NONE],
            ..record()
        };
        r.evidence.user_agent.set(b"Viceroy 1.4");
        let v = json(&r, &c, None);
        assert_eq!(v["timestamp"], "2005-01-14T17:58:02.965944+0000");
        assert_eq!(v["event_type"], "flow");
        assert_eq!(v["flow_id"], 1);
        assert_eq!(v["proto"], "UDP");
        assert_eq!(v["src_ip"], "192.0.2.1");
        assert_eq!(v["dest_ip"], "198.51.100.2");
        assert_eq!(v["dest_port"], 5060);
        assert_eq!(v["in_port"], 1);
        assert_eq!(v["flow"]["pkts_toserver"], 3);
        assert_eq!(v["flow"]["pkts_toclient"], 2);
        assert_eq!(v["flow"]["bytes_toserver"], 300);
        assert_eq!(v["flow"]["bytes_toclient"], 200);
        assert_eq!(v["flow"]["start"], "2005-01-14T17:58:02.965944+0000");
        assert_eq!(v["flow"]["end"], "2005-01-14T17:59:03.000001+0000");
        assert_eq!(v["flow"]["age"], 60);
        assert_eq!(v["flow"]["reason"], "timeout");
        assert_eq!(v["flow"]["end_reason"], "aged-out");
        assert!(v["flow"].get("interim").is_none());
        assert_eq!(v["app_proto"], "sip");
        assert_eq!(v["app"], "facetime");
        assert_eq!(v["app_path"], serde_json::json!(["sip", "facetime"]));
        assert_eq!(v["user_agent"], "Viceroy 1.4");
        assert!(v.get("sni").is_none() && v.get("icmp_type").is_none());
        assert_eq!(v["community_id"], r.community_id());
        assert!(v.get("vlan").is_none());
        assert!(v.get("action").is_none());
        assert!(v.get("nat_src_ip").is_none());
    }

    #[test]
    fn names_are_escaped_and_policy_is_named() {
        let c = Catalog::embedded();
        let text = "version: 1\nrules:\n  - { name: \"say \\\"hi\\\"\\n\", action: drop }\n";
        let p = crate::policy::compile(text, "p.yaml", &c, None)
            .unwrap()
            .policy;
        let store = PolicyStore::new(p);
        let mut r = FlowRecord {
            action: Action::Drop,
            rule: 0,
            policy_generation: 1,
            ..record()
        };
        r.evidence.host.set(b"evil\"\n.example");
        let v = json(&r, &c, r.rule_of(Some(&store)).as_ref());
        assert_eq!(v["action"], "drop");
        assert_eq!(v["rule"], "say \"hi\"\n");
        assert_eq!(v["policy_generation"], 1);
        assert_eq!(v["host"], "evil\"\n.example");
    }

    #[test]
    fn tls_host_is_sni_http_host_is_http_host() {
        let c = Catalog::embedded();
        let (ssl, http) = (
            c.by_name("ssl").unwrap(),
            c.by_name("web-browsing").unwrap(),
        );
        let mut r = FlowRecord {
            proto: 6,
            app: ssl,
            app_path: [ssl, AppId::NONE, AppId::NONE, AppId::NONE],
            app_path_len: 1,
            ..record()
        };
        r.evidence.host.set(b"www.example.com");
        r.evidence.alpn.set(b"h2");
        let v = json(&r, &c, None);
        assert_eq!(
            (v["sni"].as_str(), v["alpn"].as_str()),
            (Some("www.example.com"), Some("h2"))
        );
        assert_eq!(v["proto"], "TCP");
        let r = FlowRecord {
            app: http,
            app_path: [http, AppId::NONE, AppId::NONE, AppId::NONE],
            ..r
        };
        let v = json(&r, &c, None);
        assert_eq!(v["http_host"], "www.example.com");
        assert!(v.get("sni").is_none());
    }

    #[test]
    fn icmp_has_type_code_and_echo_id_not_ports() {
        let c = Catalog::embedded();
        let r = FlowRecord {
            proto: 1,
            src_port: 0x1234,
            dst_port: 0x1234,
            icmp: [8, 0],
            vlan: 10,
            ..record()
        };
        let v = json(&r, &c, None);
        assert_eq!(v["proto"], "ICMP");
        assert_eq!(
            (v["icmp_type"].as_u64(), v["icmp_code"].as_u64()),
            (Some(8), Some(0))
        );
        assert_eq!(v["icmp_id"], 0x1234);
        assert!(v.get("src_port").is_none() && v.get("dest_port").is_none());
        assert_eq!(v["vlan"], serde_json::json!([10]));
        // Not an echo: no identifier.
        let r = FlowRecord {
            src_port: 0,
            dst_port: 0,
            icmp: [13, 0],
            ..r
        };
        assert!(json(&r, &c, None).get("icmp_id").is_none());
    }

    #[test]
    fn interim_and_translated_records() {
        let c = Catalog::embedded();
        let r = FlowRecord {
            end_reason: None,
            flow_id: 2,
            predicted_by: Some(1),
            nat: Some(crate::nat::Tuple {
                src: [203, 0, 113, 1],
                sport: 61000,
                dst: [198, 51, 100, 2],
                dport: 5060,
            }),
            ..record()
        };
        let v = json(&r, &c, None);
        assert_eq!(v["flow"]["interim"], true);
        // Still undecided: no application fields at all.
        let u = FlowRecord {
            app: AppId::NONE,
            app_path_len: 0,
            ..r
        };
        let w = json(&u, &c, None);
        for k in ["app", "app_proto", "app_path", "app_decided_after"] {
            assert!(w.get(k).is_none(), "{k}: {w}");
        }
        assert!(v["flow"].get("reason").is_none() && v["flow"].get("end_reason").is_none());
        assert_eq!(v["predicted_by"], 1);
        assert_eq!(v["nat_src_ip"], "203.0.113.1");
        assert_eq!(v["nat_src_port"], 61000);
        assert_eq!(v["nat_dst_ip"], "198.51.100.2");
        assert_eq!(v["nat_dst_port"], 5060);
    }
}
