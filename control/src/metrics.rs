//! `/metrics`: the dataplane's counters (from the stats segment) and the control plane's own
//! state, in the OpenMetrics text format through prometheus-client. Names start with
//! `aperture_`, are in base units, counters end in `_total`; labels come only from bounded
//! sets (worker, reason, result, port, the catalog's applications, the policy's rule names),
//! never from flows.
use crate::Snapshot;
use aperture_dataplane::stats::Tables;
use aperture_dataplane::stats::{
    drop_reason_name, AppCounter, RuleCounter, C, GENERAL, PORT_COUNTERS,
};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// What the control plane knows about itself and the dataplane's policy.
#[derive(Clone, Debug, Default)]
pub struct ControlState {
    /// The dataplane's policy generation (None: the dataplane is not reachable).
    pub generation: Option<u64>,
    pub last_reload_successful: bool,
    pub last_reload_success_unix: f64,
    pub reloads_success: u64,
    pub reloads_failure: u64,
}

/// Help text of each general counter; the name is `aperture_<counter>`.
fn help(name: &str) -> &'static str {
    match name {
        "rx_packets" => "Packets received by the workers",
        "rx_bytes" => "Bytes received by the workers",
        "tx_packets" => "Packets transmitted by the workers",
        "tx_bytes" => "Bytes transmitted by the workers",
        "drop_packets" => "Packets dropped by the workers, any reason",
        "drop_bytes" => "Bytes dropped by the workers, any reason",
        "flows_created" => "Flows created",
        "flows_expired" => "Flows ended by timeout or close",
        "flows_evicted" => "Unanswered flows evicted to make room for new ones",
        "flow_log_lost" => "Flow records lost because the flow log queue was full",
        "arp_replies_sent" => "ARP replies sent for the appliance's addresses",
        "arp_requests_sent" => "ARP requests sent to resolve next hops",
        "non_ip_packets" => "Non-IP frames passed",
        "fragments" => "IP fragments seen",
        "bursts" => "Receive bursts that returned packets",
        "local_packets" => "Packets for the appliance itself",
        "flows_denied" => "Flows the policy stopped (deny, drop or reset)",
        "resets_sent" => "TCP resets and ICMP unreachables sent for reset rules",
        "nat_mappings_created" => {
            "Source-NAT mappings made (inside endpoint to external address and port)"
        }
        "nat_bindings_created" => "Flows translated by NAT",
        "nat_port_exhausted" => "NAT translations refused for want of a free external port",
        "nat_inbound_filtered" => {
            "New flows from outside to a NAT mapping refused by address-dependent filtering"
        }
        "sip_messages" => "SIP messages the SIP ALG read",
        "sip_rewritten" => "SIP messages the SIP ALG rewrote because NAT changed an address",
        "sip_malformed" => "Messages on SIP flows that were not parseable SIP",
        "sip_unrewritable" => "SIP messages the ALG could not rewrite (too many edits, too large)",
        "sip_media_unmapped" => "SDP media lines NAT could not map a port for",
        "pinholes_opened" => "Pinholes the SIP ALG opened for negotiated media or registrations",
        "pinholes_used" => "New flows a pinhole let in",
        "pinholes_expired" => "Pinholes closed by their timeout",
        "pinholes_closed" => {
            "Pinholes closed by their call (BYE, CANCEL, failure, re-INVITE, hold)"
        }
        "pinholes_refused" => "Pinholes not opened because of a limit",
        "icmp_errors_related" => {
            "ICMP errors passed as part of the flow they quote (translated back under NAT)"
        }
        "handoff_sent" => "Packets handed to the worker that owns their flow",
        "handoff_received" => "Packets received from another worker that owns their flow",
        "fragments_held" => "IPv4 fragments kept for reassembly",
        "fragments_reassembled" => "IPv4 datagrams reassembled from their fragments",
        "fragments_sent" => "Fragments sent for reassembled datagrams cut again on the way out",
        "fragments_timed_out" => "Datagrams whose fragments did not all come in time",
        "fragments_evicted" => "Datagrams given up for a new one when every slot was busy",
        "pinhole_claims_refused" => {
            "Pinhole endpoints the workers' shared claims table had no room for"
        }
        "appid_contexts_reclaimed" => {
            "App-ID contexts taken from the least recently active undecided flow for a new one"
        }
        "flow_log_interim" => "Interim flow records written for long flows (active timeout)",
        "tunnel_packets" => "Tunnel packets whose inner packet was tracked as its own flow",
        "tunnel_inner_malformed" => {
            "Well-formed tunnel packets whose inner IP packet was malformed (the outer passed)"
        }
        "tunnel_inner_untracked" => "Inner packets of tunnels left without a flow (table full)",
        "appid_no_context" => "Flows left unclassified because no App-ID context was free",
        "appid_evidence_lost" => {
            "Flow records written without their App-ID evidence (its kept entry was reused)"
        }
        "clock_outliers" => {
            "Replay: packets whose capture time was far from the packets around them (ignored)"
        }
        _ => "Aperture counter",
    }
}

/// Renders the metrics. `snapshot` is None when the stats segment cannot be read (the
/// dataplane never started): then only the control plane's own metrics are there.
pub fn render(snapshot: Option<&Snapshot>, state: &ControlState) -> String {
    let mut reg = Registry::default();
    if let Some(s) = snapshot {
        worker_metrics(&mut reg, s);
    }
    let up = Gauge::<i64>::default();
    up.set(i64::from(state.generation.is_some()));
    reg.register(
        "aperture_dataplane_up",
        "Whether the dataplane answers on its control socket",
        up,
    );
    let generation = Gauge::<i64>::default();
    generation.set(state.generation.map_or(-1, |g| g as i64));
    reg.register(
        "aperture_policy_generation",
        "The dataplane's policy generation (-1: not reachable)",
        generation,
    );
    let ok = Gauge::<i64>::default();
    ok.set(i64::from(state.last_reload_successful));
    reg.register(
        "aperture_config_last_reload_successful",
        "Whether the last policy reload was compiled and installed",
        ok,
    );
    let ts = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    ts.set(state.last_reload_success_unix);
    reg.register(
        "aperture_config_last_reload_success_timestamp_seconds",
        "When the policy was last installed, Unix time",
        ts,
    );
    let reloads = Family::<Labels, Counter>::default();
    reloads
        .get_or_create(&vec![("result".into(), "success".into())])
        .inc_by(state.reloads_success);
    reloads
        .get_or_create(&vec![("result".into(), "failure".into())])
        .inc_by(state.reloads_failure);
    reg.register(
        "aperture_config_reloads",
        "Policy reloads by result",
        reloads,
    );
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&vec![(
        "version".into(),
        env!("CARGO_PKG_VERSION").to_string(),
    )])
    .set(1);
    reg.register("aperture_build_info", "Aperture's version", info);
    let mut out = String::new();
    let _ = encode(&mut out, &reg);
    out
}

fn worker_metrics(reg: &mut Registry, s: &Snapshot) {
    let worker = |w: usize| vec![("worker".to_string(), w.to_string())];
    for (i, name) in GENERAL.iter().enumerate() {
        if i == C::FlowsActive as usize {
            let g = Family::<Labels, Gauge>::default();
            for (w, c) in s.workers.iter().enumerate() {
                g.get_or_create(&worker(w)).set(c.0[i] as i64);
            }
            reg.register("aperture_flows_active", "Flows in the flow tables", g);
            continue;
        }
        let gauge = if i == C::NatMappingsActive as usize {
            Some((
                "aperture_nat_mappings_active",
                "Source-NAT mappings live now",
            ))
        } else if i == C::PinholesActive as usize {
            Some(("aperture_pinholes_active", "SIP ALG pinholes open now"))
        } else if i == C::SipDialogsActive as usize {
            Some((
                "aperture_sip_dialogs_active",
                "Calls and registrations the SIP ALG tracks now",
            ))
        } else if i == C::SipTcpStreamsActive as usize {
            Some((
                "aperture_sip_tcp_streams_active",
                "SIP TCP connections with held bytes or shifted sequence numbers now",
            ))
        } else {
            None
        };
        if let Some((metric, help)) = gauge {
            let g = Family::<Labels, Gauge>::default();
            for (w, c) in s.workers.iter().enumerate() {
                g.get_or_create(&worker(w)).set(c.0[i] as i64);
            }
            reg.register(metric, help, g);
            continue;
        }
        if *name == "drop_packets" || *name == "drop_bytes" {
            continue; // by reason below; the sum is theirs
        }
        if i == C::LoopCycles as usize || i == C::BusyCycles as usize {
            continue; // in seconds below
        }
        let f = Family::<Labels, Counter>::default();
        for (w, c) in s.workers.iter().enumerate() {
            f.get_or_create(&worker(w)).inc_by(c.0[i]);
        }
        reg.register(format!("aperture_{name}"), help(name), f);
    }
    let drops = Family::<Labels, Counter>::default();
    for (w, c) in s.workers.iter().enumerate() {
        for (i, v) in c.0.iter().enumerate() {
            if let Some(reason) = drop_reason_name(i) {
                drops
                    .get_or_create(&vec![
                        ("worker".to_string(), w.to_string()),
                        ("reason".to_string(), reason.to_string()),
                    ])
                    .inc_by(*v);
            }
        }
    }
    reg.register(
        "aperture_dropped_packets",
        "Packets dropped by the workers, by reason",
        drops,
    );
    let bytes = Family::<Labels, Counter>::default();
    for (w, c) in s.workers.iter().enumerate() {
        bytes.get_or_create(&worker(w)).inc_by(c.get(C::DropBytes));
    }
    reg.register(
        "aperture_dropped_bytes",
        "Bytes dropped by the workers, any reason",
        bytes,
    );
    loop_metrics(reg, s);
    let totals = s.tables_total();
    app_metrics(reg, s, &totals);
    rule_metrics(reg, s, &totals);
    port_metrics(reg, s);
}

type FloatCounter = Counter<f64, std::sync::atomic::AtomicU64>;

/// The workers' poll-loop time and the part of it that had packets: the rate of the busy
/// counter over the loop counter is a worker's utilisation (a poll-mode core is always at
/// 100% CPU to the OS).
fn loop_metrics(reg: &mut Registry, s: &Snapshot) {
    if s.tsc_hz == 0 {
        return;
    }
    let hz = s.tsc_hz as f64;
    for (c, name, what) in [
        (
            C::LoopCycles,
            "aperture_worker_loop_seconds",
            "Time the worker spent in its poll loop",
        ),
        (
            C::BusyCycles,
            "aperture_worker_busy_seconds",
            "Time the worker spent on poll passes that received packets",
        ),
    ] {
        let f = Family::<Labels, FloatCounter>::default();
        for (w, k) in s.workers.iter().enumerate() {
            f.get_or_create(&vec![("worker".to_string(), w.to_string())])
                .inc_by(k.get(c) as f64 / hz);
        }
        reg.register(name, what, f);
    }
}

/// Name of the tables' extra application entry.
pub const UNDECIDED: &str = "(undecided)";

/// Per application, summed over the workers; applications never seen are left out (a
/// counter, once there, never goes away: its series stays).
fn app_metrics(reg: &mut Registry, s: &Snapshot, t: &Tables) {
    let families = [
        (
            AppCounter::Flows,
            "aperture_app_flows",
            "Flows ended, by application",
        ),
        (
            AppCounter::Packets,
            "aperture_app_packets",
            "Packets of flows while they had the application",
        ),
        (
            AppCounter::Bytes,
            "aperture_app_bytes",
            "Bytes of flows while they had the application",
        ),
        (
            AppCounter::Denied,
            "aperture_app_flows_denied",
            "Flows the policy stopped, by their application then",
        ),
    ];
    let fams: Vec<Family<Labels, Counter>> = families.iter().map(|_| Family::default()).collect();
    let undecided = t.apps() - 1;
    for i in 0..t.apps() {
        let v = t.app(i);
        if v.iter().all(|&x| x == 0) {
            continue;
        }
        // A row reserved for a custom application counts only once it has a name.
        let name = match s.apps.get(i) {
            _ if i == undecided => UNDECIDED,
            Some(n) => n.as_str(),
            None => continue,
        };
        let l = vec![("app".to_string(), name.to_string())];
        for ((c, _, _), f) in families.iter().zip(&fams) {
            f.get_or_create(&l).inc_by(v[*c as usize]);
        }
    }
    for ((_, name, what), f) in families.iter().zip(fams) {
        reg.register(*name, *what, f);
    }
}

/// Per rule, summed over the workers: the named slots only (the policy's rules by name, the
/// default action as `default`).
fn rule_metrics(reg: &mut Registry, s: &Snapshot, t: &Tables) {
    let families = [
        (
            RuleCounter::Hits,
            "aperture_rule_hits",
            "Flows whose verdict settled under the rule",
        ),
        (
            RuleCounter::Packets,
            "aperture_rule_packets",
            "Packets the rule decided",
        ),
        (
            RuleCounter::Bytes,
            "aperture_rule_bytes",
            "Bytes the rule decided",
        ),
    ];
    let fams: Vec<Family<Labels, Counter>> = families.iter().map(|_| Family::default()).collect();
    for (slot, name) in s.rules.iter().enumerate() {
        let v = t.rule(slot);
        let l = vec![("rule".to_string(), name.clone())];
        for ((c, _, _), f) in families.iter().zip(&fams) {
            f.get_or_create(&l).inc_by(v[*c as usize]);
        }
    }
    for ((_, name, what), f) in families.iter().zip(fams) {
        reg.register(*name, *what, f);
    }
}

/// The ports' driver counters (`rte_eth_stats`), by port name.
fn port_metrics(reg: &mut Registry, s: &Snapshot) {
    for (i, counter) in PORT_COUNTERS.iter().enumerate() {
        let f = Family::<Labels, Counter>::default();
        for (port, v) in &s.ports {
            f.get_or_create(&vec![("port".to_string(), port.clone())])
                .inc_by(v[i]);
        }
        let what = match *counter {
            "rx_packets" => "Packets the port's driver received",
            "tx_packets" => "Packets the port's driver transmitted",
            "rx_bytes" => "Bytes the port's driver received",
            "tx_bytes" => "Bytes the port's driver transmitted",
            "rx_missed" => "Packets the port dropped because its receive queues were full",
            "rx_errors" => "Erroneous packets the port received",
            "tx_errors" => "Packets the port failed to transmit",
            _ => "Receives that failed because the mbuf pool was empty",
        };
        reg.register(format!("aperture_port_{counter}"), what, f);
    }
}

/// The Prometheus text format (0.0.4) of OpenMetrics text, for scrapers and tools that do
/// not ask for OpenMetrics (promtool among them): counter families are named with their
/// `_total` suffix, and `# EOF` / `# UNIT` lines go.
pub fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{p}{name}_total {tail}\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_metrics_render_in_both_formats() {
        let s = ControlState {
            generation: Some(3),
            last_reload_successful: true,
            last_reload_success_unix: 1.5e9,
            reloads_success: 2,
            reloads_failure: 1,
        };
        let om = render(None, &s);
        assert!(
            om.contains("# TYPE aperture_config_reloads counter"),
            "{om}"
        );
        assert!(
            om.contains("aperture_config_reloads_total{result=\"failure\"} 1"),
            "{om}"
        );
        assert!(om.contains("aperture_policy_generation 3"), "{om}");
        assert!(om.ends_with("# EOF\n"));
        let text = to_prometheus_text(&om);
        assert!(
            text.contains("# TYPE aperture_config_reloads_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# HELP aperture_config_reloads_total Policy reloads by result"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }
}
