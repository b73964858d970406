//! The security policy: `policy.yaml` (`model`), its compiler (`compile`), and the flat,
//! read-only form the workers evaluate (`Policy`), shared by the dataplane and the control
//! plane.
//!
//! A flow is checked when it starts and again whenever App-ID decides or shifts its
//! application. First match wins. While the application is undecided a flow passes only if
//! some rule could still allow it; once decided, the first rule naming its application (or
//! `any`) that matches zones, addresses and service gives the action.
//!
//! Evaluation allocates nothing: rules are spans into flat arrays, addresses are sorted
//! ranges (binary search), and a per-application index lists only the rules that can match a
//! decided application, so the cost does not grow with rules about other applications.
pub mod compile;
pub mod model;
pub mod store;

pub use compile::{compile, Compiled, Diagnostic, Severity};
pub use model::Action;
pub use store::{PolicyReader, PolicyStore};

use crate::appid::catalog::{AppId, Catalog};
use crate::packet::IpAddr16;
use std::sync::Arc;

/// `Verdict::rule` when no rule matched (the default action).
pub const RULE_DEFAULT: u16 = u16::MAX;
/// A port in no zone.
pub const NO_ZONE: u8 = u8::MAX;
/// Zones a policy may define (a rule's zone sets are 64-bit masks).
pub const MAX_ZONES: usize = 64;
/// Rules a policy may define (rule ids are `u16`, `RULE_DEFAULT` reserved).
pub const MAX_RULES: usize = 16384;

/// A run of entries in one of the policy's flat arrays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// A port range of one IP protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    pub proto: u8,
    pub lo: u16,
    pub hi: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Any,
    /// The default ports of the flow's application (any port for an application that has
    /// none, like RTP); while undecided, the default ports of any application the rule names.
    AppDefault,
    Ports(Span),
}

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Zone masks (`u64::MAX`: any, including ports in no zone).
    pub from: u64,
    pub to: u64,
    /// Address ranges (None: any).
    pub src: Option<Span>,
    pub dst: Option<Span>,
    pub service: Service,
    /// Applications, sorted, implicit uses included (None: any).
    pub apps: Option<Span>,
    /// Union of the default ports of the rule's applications (for `AppDefault` while the
    /// application is undecided); `any_port` when one of them has none.
    pub app_default: Span,
    pub app_default_any: bool,
    pub action: Action,
    pub log: bool,
    /// The application's ALG runs on the rule's flows (`alg: false` switches it off).
    pub alg: bool,
}

/// What a flow's check found. Four bytes: it lives in every flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Verdict {
    pub action: Action,
    /// False while the application is undecided and a later decision may change it (the
    /// flow passes meanwhile: some rule could still allow it).
    pub settled: bool,
    /// The rule that gave it, or `RULE_DEFAULT`.
    pub rule: u16,
}

/// A flow's policy state: its verdict, the generation it was checked under (its low 16
/// bits: 0 = never checked; a flow is checked again on its next packet after any change),
/// and the ports its first packet came in on and left by, which give its zones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FlowPolicy {
    pub verdict: Verdict,
    pub generation: u16,
    pub ports: [u8; 2],
}

impl FlowPolicy {
    pub const NEW: FlowPolicy = FlowPolicy {
        verdict: Verdict::UNCHECKED,
        generation: 0,
        ports: [0; 2],
    };
}

/// The low 16 bits a flow keeps of a generation, never 0.
#[inline]
pub fn short_generation(g: u32) -> u16 {
    (g as u16).max(1)
}

impl Verdict {
    /// A flow no policy has checked (it passes: no policy enforced).
    pub const UNCHECKED: Verdict = Verdict {
        action: Action::Allow,
        rule: RULE_DEFAULT,
        settled: false,
    };

    /// Whether the flow's packets are forwarded.
    #[inline]
    pub fn passes(&self) -> bool {
        self.action == Action::Allow
    }
}

/// What a flow is checked against: its originator's view (the first packet's direction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub from_zone: u8,
    pub to_zone: u8,
    pub src: u128,
    pub dst: u128,
    pub proto: u8,
    pub dst_port: u16,
    /// A flow an ALG predicted (a call's media): `application-default` holds on any port,
    /// since the signalling negotiated it.
    pub predicted: bool,
}

/// An address as the policy compares it: IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), the
/// same form the packet parser stores.
pub fn addr_key(a: &IpAddr16) -> u128 {
    u128::from_be_bytes(a.0)
}

/// The compiled policy: flat and read-only. Workers hold it through an `Arc` swapped once
/// per burst.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Set when the dataplane installs it; flows remember the generation they were checked
    /// under and are checked again when it changes.
    pub generation: u32,
    pub rules: Vec<Rule>,
    pub rule_names: Vec<String>,
    pub zone_names: Vec<String>,
    /// Zone of each dataplane port, by port index (`NO_ZONE` for none).
    pub zone_of_port: Vec<u8>,
    /// Each zone's limits on its new flows (by zone id), over all workers.
    pub zone_limits: Vec<crate::config::FlowLimit>,
    /// Sorted, merged address ranges (inclusive), per rule side.
    pub ranges: Vec<(u128, u128)>,
    pub ports: Vec<PortRange>,
    pub apps: Vec<AppId>,
    /// Per application (by `AppId`): its default ports (a span into `ports`; empty: any).
    pub app_ports: Vec<Span>,
    /// Per application: the rules that can match it once decided, in order (a span into
    /// `candidates`).
    pub by_app: Vec<Span>,
    pub candidates: Vec<u16>,
    /// Rules naming no application, in order (for applications outside the index).
    pub any_app_rules: Vec<u16>,
    /// The source-address index: the address space cut at every edge of a rule's source
    /// ranges (`src_bounds[k]` starts piece k); per piece the rules whose source covers it,
    /// in order (a span into `src_candidates`). Empty when it would be too large: then every
    /// rule is scanned.
    pub src_bounds: Vec<u128>,
    pub by_src: Vec<Span>,
    pub src_candidates: Vec<u16>,
    pub default_action: Action,
    pub default_log: bool,
    /// The stats slot of each rule, then of the default action (index `rules.len()`): given
    /// by the store at install (see `stats::Tables`); empty before, when all count as slot 0.
    pub rule_slots: Vec<u16>,
    /// Idle timeouts (seconds) per `flow::TimeoutClass` the policy sets (None: dataplane.yaml's).
    pub timeouts: [Option<u32>; 7],
    /// The catalog with the policy's custom applications (`Catalog::with_custom`), which the
    /// workers' App-ID takes on when they pick the policy up; None: the catalog the policy
    /// was compiled against, unchanged.
    pub catalog: Option<Arc<Catalog>>,
    /// NAT rules, first match wins (matched when a flow starts, on its original packet).
    pub nat: Vec<crate::nat::NatRule>,
}

impl Policy {
    /// The policy the dataplane runs with when it has none: every flow gets `action`
    /// (`deny` for `run`; a replay without `--policy` enforces nothing at all).
    pub fn fixed(action: Action) -> Policy {
        Policy {
            generation: 0,
            rules: Vec::new(),
            rule_names: Vec::new(),
            zone_names: Vec::new(),
            zone_of_port: Vec::new(),
            zone_limits: Vec::new(),
            ranges: Vec::new(),
            ports: Vec::new(),
            apps: Vec::new(),
            app_ports: Vec::new(),
            by_app: Vec::new(),
            candidates: Vec::new(),
            any_app_rules: Vec::new(),
            src_bounds: Vec::new(),
            by_src: Vec::new(),
            src_candidates: Vec::new(),
            default_action: action,
            default_log: true,
            rule_slots: Vec::new(),
            timeouts: [None; 7],
            catalog: None,
            nat: Vec::new(),
        }
    }

    /// The stats slot a verdict's rule counts under.
    #[inline(always)]
    pub fn slot_of(&self, rule: u16) -> u16 {
        // The default action is always slot 0; a rule the store has not given a slot
        // (a policy never installed) counts there too.
        self.rule_slots.get(rule as usize).copied().unwrap_or(0)
    }

    /// Zone of a dataplane port.
    #[inline]
    pub fn zone_of(&self, port: usize) -> u8 {
        self.zone_of_port.get(port).copied().unwrap_or(NO_ZONE)
    }

    /// The name of a rule, `default` for `RULE_DEFAULT`.
    /// Whether the ALG runs on flows rule `rule` allowed (the default action's too).
    #[inline]
    pub fn alg_allowed(&self, rule: u16) -> bool {
        self.rules.get(rule as usize).is_none_or(|r| r.alg)
    }

    pub fn rule_name(&self, rule: u16) -> &str {
        self.rule_names
            .get(rule as usize)
            .map_or("default", |s| s.as_str())
    }

    /// Checks a flow: `app` is None while App-ID has not decided.
    #[inline]
    pub fn check(&self, s: &Subject, app: Option<AppId>) -> Verdict {
        match app {
            Some(a) => self.check_decided(s, a),
            None => self.check_undecided(s),
        }
    }

    /// The rules whose source can contain `src`, in order (None: no index, every rule).
    #[inline]
    fn src_rules(&self, src: u128) -> Option<&[u16]> {
        if self.src_bounds.is_empty() {
            return None;
        }
        let k = self
            .src_bounds
            .partition_point(|&b| b <= src)
            .saturating_sub(1);
        self.by_src
            .get(k)
            .map(|sp| &self.src_candidates[sp.range()])
    }

    fn check_decided(&self, s: &Subject, app: AppId) -> Verdict {
        let mut list: &[u16] = match self.by_app.get(app.0 as usize) {
            Some(span) => &self.candidates[span.range()],
            None => &self.any_app_rules,
        };
        // Both lists are in rule order and each holds every rule that can match: scan the
        // shorter.
        if let Some(by_src) = self.src_rules(s.src) {
            if by_src.len() < list.len() {
                list = by_src;
            }
        }
        for &i in list {
            let r = &self.rules[i as usize];
            if self.net_matches(r, s) && self.service_matches_app(r, s, app) {
                return Verdict {
                    action: r.action,
                    rule: i,
                    settled: true,
                };
            }
        }
        self.default_verdict(true)
    }

    /// `check` for a decided application by a plain scan over every rule, without the
    /// per-application index: what the index must agree with (tests and the fuzz target).
    pub fn check_decided_linear(&self, s: &Subject, app: AppId) -> Verdict {
        for (i, r) in self.rules.iter().enumerate() {
            let names_app = match r.apps {
                None => true,
                Some(sp) => self.apps[sp.range()].contains(&app),
            };
            if names_app && self.net_matches(r, s) && self.service_matches_app(r, s, app) {
                return Verdict {
                    action: r.action,
                    rule: i as u16,
                    settled: true,
                };
            }
        }
        self.default_verdict(true)
    }

    fn check_undecided(&self, s: &Subject) -> Verdict {
        // A rule about specific applications that denies does not settle anything (the
        // flow may turn out to be another application); one that allows lets it pass for
        // now. The first rule about any application settles the flow, unless an earlier
        // application rule matched.
        match self.src_rules(s.src) {
            Some(l) => self.undecided_over(s, l.iter().copied()),
            None => self.undecided_over(s, 0..self.rules.len() as u16),
        }
    }

    /// The undecided check by a plain scan of every rule (what the source index must agree
    /// with).
    pub fn check_undecided_linear(&self, s: &Subject) -> Verdict {
        self.undecided_over(s, 0..self.rules.len() as u16)
    }

    fn undecided_over(&self, s: &Subject, rules: impl Iterator<Item = u16>) -> Verdict {
        let mut app_rule_matched = false;
        for i in rules {
            let r = &self.rules[i as usize];
            if !self.net_matches(r, s) {
                continue;
            }
            match r.apps {
                Some(_) => {
                    if !self.service_matches_undecided(r, s) {
                        continue;
                    }
                    if r.action == Action::Allow {
                        return Verdict {
                            action: Action::Allow,
                            rule: i,
                            settled: false,
                        };
                    }
                    app_rule_matched = true;
                }
                None => {
                    if !self.service_matches_undecided(r, s) {
                        continue;
                    }
                    return Verdict {
                        action: r.action,
                        rule: i,
                        settled: !app_rule_matched || r.action != Action::Allow,
                    };
                }
            }
        }
        self.default_verdict(!app_rule_matched || self.default_action != Action::Allow)
    }

    fn default_verdict(&self, settled: bool) -> Verdict {
        Verdict {
            action: self.default_action,
            rule: RULE_DEFAULT,
            settled,
        }
    }

    #[inline]
    fn net_matches(&self, r: &Rule, s: &Subject) -> bool {
        zone_in(r.from, s.from_zone)
            && zone_in(r.to, s.to_zone)
            && r.src.is_none_or(|sp| self.addr_in(sp, s.src))
            && r.dst.is_none_or(|sp| self.addr_in(sp, s.dst))
    }

    fn addr_in(&self, sp: Span, a: u128) -> bool {
        let ranges = &self.ranges[sp.range()];
        // The last range starting at or below `a`.
        let i = ranges.partition_point(|&(lo, _)| lo <= a);
        i > 0 && a <= ranges[i - 1].1
    }

    fn port_in(&self, sp: Span, proto: u8, port: u16) -> bool {
        self.ports[sp.range()]
            .iter()
            .any(|p| p.proto == proto && p.lo <= port && port <= p.hi)
    }

    fn service_matches_app(&self, r: &Rule, s: &Subject, app: AppId) -> bool {
        match r.service {
            Service::Any => true,
            Service::Ports(sp) => self.port_in(sp, s.proto, s.dst_port),
            Service::AppDefault if s.predicted => true,
            Service::AppDefault => match self.app_ports.get(app.0 as usize) {
                Some(sp) if sp.len > 0 => self.port_in(*sp, s.proto, s.dst_port),
                _ => true,
            },
        }
    }

    fn service_matches_undecided(&self, r: &Rule, s: &Subject) -> bool {
        match r.service {
            Service::Any => true,
            Service::Ports(sp) => self.port_in(sp, s.proto, s.dst_port),
            Service::AppDefault => {
                r.apps.is_none()
                    || r.app_default_any
                    || self.port_in(r.app_default, s.proto, s.dst_port)
            }
        }
    }
}

#[inline]
fn zone_in(mask: u64, zone: u8) -> bool {
    mask == u64::MAX || (zone != NO_ZONE && mask & (1u64 << zone) != 0)
}

#[cfg(test)]
mod tests;
