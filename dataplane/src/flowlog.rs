//! Flow records: what a worker reports when a flow ends, and the JSON Lines writer that runs
//! on the service thread. Workers push fixed-size records into a bounded lock-free queue;
//! formatting and I/O happen off the packet path.
use crate::appid::catalog::{AppId, Catalog};
use crate::appid::engine::{AppInfo, MAX_PATH};
use crate::flow::{EndReason, Flow};
use crate::packet::{proto, IpAddr16};
use crate::policy::{Action, PolicyStore, RULE_DEFAULT};
use crossbeam_queue::ArrayQueue;
use std::io::Write;

/// An IP protocol's name as the flow log writes it (its number when it has none).
pub fn proto_name(p: u8) -> String {
    match p {
        proto::TCP => "tcp".to_string(),
        proto::UDP => "udp".to_string(),
        proto::ICMP => "icmp".to_string(),
        proto::ICMPV6 => "ipv6-icmp".to_string(),
        p => p.to_string(),
    }
}

/// One ended flow, as first seen (before any NAT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub worker: u16,
    pub vlan: u16,
    pub proto: u8,
    pub src: IpAddr16,
    pub src_port: u16,
    pub dst: IpAddr16,
    pub dst_port: u16,
    /// [client-to-server, server-to-client].
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub start_ns: u64,
    pub end_ns: u64,
    pub end_reason: EndReason,
    pub app: AppId,
    pub app_path: [AppId; MAX_PATH],
    pub app_path_len: u8,
    pub app_decided_after: u32,
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

impl FlowRecord {
    pub fn new(
        worker: u16,
        slot: crate::flow::Slot,
        f: &Flow,
        reason: EndReason,
        app: &AppInfo,
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
            packets: f.packets,
            bytes: f.bytes,
            start_ns: f.start_ns,
            end_ns: f.last_ns,
            end_reason: reason,
            app: app.app,
            app_path: app.path,
            app_path_len: app.path_len,
            app_decided_after: app.decided_after,
            action: f.policy.verdict.action,
            rule: f.policy.verdict.rule,
            policy_generation: f.policy.generation,
            nat: None,
            flow_id: flow_id(worker, slot, f.start_ns),
            predicted_by: None,
        }
    }

    /// The application path (protocol first).
    pub fn path(&self) -> &[AppId] {
        &self.app_path[..(self.app_path_len as usize).min(MAX_PATH)]
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

    /// Writes the record as one JSON object and a newline; application names from `catalog`;
    /// `rule` is what `rule_of` found (None: no policy enforced).
    pub fn write_json(
        &self,
        out: &mut impl Write,
        catalog: &Catalog,
        rule: Option<&(String, u32)>,
    ) -> std::io::Result<()> {
        let proto_name = proto_name(self.proto);
        let ts = |ns: u64| format!("{}.{:06}", ns / 1_000_000_000, (ns % 1_000_000_000) / 1000);
        let policy = match rule {
            None => String::new(),
            Some((rule, generation)) => format!(
                ",\"action\":\"{}\",\"rule\":{},\"policy_generation\":{}",
                self.action.name(),
                serde_json::Value::String(rule.clone()),
                generation
            ),
        };
        write!(
            out,
            "{{\"proto\":\"{}\",\"src_ip\":\"{}\",\"src_port\":{},\"dst_ip\":\"{}\",\"dst_port\":{},\
             \"packets\":{},\"bytes\":{},\"c2s_packets\":{},\"s2c_packets\":{},\"c2s_bytes\":{},\"s2c_bytes\":{},\
             \"start_ts\":{},\"end_ts\":{},\"end_reason\":\"{}\",\"app\":\"{}\",\"app_path\":[{}],\
             \"app_decided_after\":{},\"vlan\":{},\"worker\":{},\"flow_id\":{}",
            proto_name,
            self.src.to_std(),
            self.src_port,
            self.dst.to_std(),
            self.dst_port,
            self.packets[0] + self.packets[1],
            self.bytes[0] + self.bytes[1],
            self.packets[0],
            self.packets[1],
            self.bytes[0],
            self.bytes[1],
            ts(self.start_ns),
            ts(self.end_ns),
            self.end_reason.name(),
            catalog.name(self.app),
            self.path()
                .iter()
                .map(|a| format!("\"{}\"", catalog.name(*a)))
                .collect::<Vec<_>>()
                .join(","),
            self.app_decided_after,
            self.vlan,
            self.worker,
            self.flow_id,
        )?;
        if let Some(p) = self.predicted_by {
            write!(out, ",\"predicted_by\":{p}")?;
        }
        if let Some(n) = &self.nat {
            write!(
                out,
                ",\"nat_src_ip\":\"{}\",\"nat_src_port\":{},\"nat_dst_ip\":\"{}\",\"nat_dst_port\":{}",
                std::net::Ipv4Addr::from(n.src),
                n.sport,
                std::net::Ipv4Addr::from(n.dst),
                n.dport
            )?;
        }
        writeln!(out, "{policy}}}")
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

    #[test]
    fn json_fields() {
        let r = FlowRecord {
            worker: 0,
            vlan: 0,
            proto: 17,
            src: IpAddr16::from_v4([192, 0, 2, 1]),
            src_port: 5060,
            dst: IpAddr16::from_v4([198, 51, 100, 2]),
            dst_port: 5060,
            packets: [3, 2],
            bytes: [300, 200],
            start_ns: 1_105_725_482_965_944_000,
            end_ns: 1_105_725_483_000_001_000,
            end_reason: EndReason::AgedOut,
            app: AppId(1),
            app_path: [AppId(0), AppId(1), AppId::NONE],
            app_path_len: 2,
            app_decided_after: 1,
            action: Action::Allow,
            rule: RULE_DEFAULT,
            policy_generation: 0,
            nat: None,
            flow_id: 1,
            predicted_by: None,
        };
        let c = Catalog::embedded();
        let (sip, facetime) = (c.by_name("sip").unwrap(), c.by_name("facetime").unwrap());
        let r = FlowRecord {
            app: facetime,
            app_path: [sip, facetime, AppId::NONE],
            ..r
        };
        let mut out = Vec::new();
        r.write_json(&mut out, &c, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["proto"], "udp");
        assert_eq!(v["src_ip"], "192.0.2.1");
        assert_eq!(v["dst_port"], 5060);
        assert_eq!(v["packets"], 5);
        assert_eq!(v["bytes"], 500);
        assert_eq!(v["end_reason"], "aged-out");
        assert_eq!(v["app"], "facetime");
        assert_eq!(v["app_path"], serde_json::json!(["sip", "facetime"]));
        assert_eq!(v["app_decided_after"], 1);
        assert_eq!(v["start_ts"].as_f64().unwrap(), 1105725482.965944);
        assert!(out.ends_with(b"}\n"));
        assert!(v.get("action").is_none());
        assert!(v.get("nat_src_ip").is_none());
        // Under a policy: the action, the rule by name, the generation.
        let text = "version: 1\nrules:\n  - { name: \"say \\\"hi\\\"\", action: drop }\n";
        let p = crate::policy::compile(text, "p.yaml", &c, None)
            .unwrap()
            .policy;
        let store = PolicyStore::new(p);
        let r = FlowRecord {
            action: Action::Drop,
            rule: 0,
            policy_generation: 1,
            ..r
        };
        let mut out = Vec::new();
        r.write_json(&mut out, &c, r.rule_of(Some(&store)).as_ref())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["action"], "drop");
        assert_eq!(v["rule"], "say \"hi\"");
        assert_eq!(v["policy_generation"], 1);
        // Translated: what the originator's packets became.
        let r = FlowRecord {
            flow_id: 2,
            predicted_by: Some(1),
            nat: Some(crate::nat::Tuple {
                src: [203, 0, 113, 1],
                sport: 61000,
                dst: [198, 51, 100, 2],
                dport: 5060,
            }),
            ..r
        };
        let mut out = Vec::new();
        r.write_json(&mut out, &c, None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["nat_src_ip"], "203.0.113.1");
        assert_eq!(v["nat_src_port"], 61000);
        assert_eq!(v["nat_dst_ip"], "198.51.100.2");
        assert_eq!(v["nat_dst_port"], 5060);
    }
}
