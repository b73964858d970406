//! From `policy.yaml` to the flat `Policy`: every reference resolved, every literal parsed,
//! and the checks an operator expects (unknown names, duplicates, shadowed rules, missing
//! application dependencies), each with file, line and column.
use super::model::{self, Action, PolicyFile, Ref};
use super::{Policy, PortRange, Rule, Service, Span, MAX_RULES, MAX_ZONES, NO_ZONE};
#[path = "compile_nat.rs"]
mod nat;

use crate::appid::catalog::{AppId, AppSpec, Catalog, MAX_CUSTOM_APPS};
use crate::config::ConfigError;
use serde_saphyr::Spanned;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Largest policy file accepted (bytes).
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// Longest idle timeout a policy may set: a week.
pub const MAX_TIMEOUT_S: u32 = 7 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// An error or warning about the policy, at a place in the file (line 0: the whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {sev}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {sev}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// A compiled policy and what the compiler warned about.
#[derive(Debug)]
pub struct Compiled {
    pub policy: Policy,
    pub warnings: Vec<Diagnostic>,
}

/// Compiles policy text. `file` names it in diagnostics; `ports` are the dataplane's port
/// names (index order) that zones may name, or None to accept any name (an offline check
/// without dataplane.yaml: zones then map no port). Returns every error found, not just the
/// first.
pub fn compile(
    text: &str,
    file: &str,
    catalog: &Catalog,
    ports: Option<&[String]>,
) -> Result<Compiled, Vec<Diagnostic>> {
    if text.len() > MAX_FILE_BYTES {
        return Err(vec![whole(
            file,
            format!(
                "the file is {} bytes; a policy may have at most {MAX_FILE_BYTES}",
                text.len()
            ),
        )]);
    }
    if text.contains('\0') {
        return Err(vec![whole(
            file,
            "the file contains NUL bytes: not a YAML text file".into(),
        )]);
    }
    let model: PolicyFile = crate::config::from_yaml(text, file).map_err(|e| match e {
        ConfigError::Syntax {
            line,
            column,
            message,
            ..
        } => vec![Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            line,
            column,
            message,
        }],
        other => vec![whole(file, other.to_string())],
    })?;
    let extended = custom_catalog(&model, catalog, file)?;
    let mut c = Compiler {
        file,
        catalog: extended.as_deref().unwrap_or(catalog),
        errors: Vec::new(),
        warnings: Vec::new(),
        ranges: Vec::new(),
        ports: Vec::new(),
        apps: Vec::new(),
    };
    let mut policy = c.policy(&model, ports);
    let errors = std::mem::take(&mut c.errors);
    let warnings = std::mem::take(&mut c.warnings);
    drop(c);
    policy.catalog = extended;
    if errors.is_empty() {
        Ok(Compiled { policy, warnings })
    } else {
        Err(errors)
    }
}

/// The catalog extended with the policy's custom applications, when it has any or `catalog`
/// already carries some (which then stay, retired, so their ids keep their names).
fn custom_catalog(
    m: &PolicyFile,
    catalog: &Catalog,
    file: &str,
) -> Result<Option<Arc<Catalog>>, Vec<Diagnostic>> {
    if m.applications.is_empty() && catalog.apps.len() == catalog.builtin {
        return Ok(None);
    }
    let specs: Vec<&AppSpec> = m.applications.iter().map(|a| &a.value).collect();
    catalog
        .with_custom(&specs, MAX_CUSTOM_APPS)
        .map(|c| Some(Arc::new(c)))
        .map_err(|(k, message)| {
            let (line, column) = m
                .applications
                .get(k)
                .map_or((0, 0), |a| (a.referenced.line(), a.referenced.column()));
            vec![Diagnostic {
                severity: Severity::Error,
                file: file.to_string(),
                line,
                column,
                message,
            }]
        })
}

fn whole(file: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: file.to_string(),
        line: 0,
        column: 0,
        message,
    }
}

/// Reads a policy file as text; what goes wrong is a diagnostic naming the file.
pub fn read_file(path: &std::path::Path) -> Result<String, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| vec![whole(&name, format!("cannot read: {e}"))])?;
    String::from_utf8(bytes).map_err(|_| vec![whole(&name, "not UTF-8 text".into())])
}

/// A set of addresses as inclusive ranges over `u128` (IPv4 mapped into IPv6).
type Ranges = Vec<(u128, u128)>;

struct Compiler<'a> {
    file: &'a str,
    catalog: &'a Catalog,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    ranges: Vec<(u128, u128)>,
    ports: Vec<PortRange>,
    apps: Vec<AppId>,
}

/// What a rule matches, kept uncompiled-but-resolved for the shadowing check.
struct Resolved {
    from: u64,
    to: u64,
    src: Option<Ranges>,
    dst: Option<Ranges>,
    service: ResolvedService,
    apps: Option<Vec<AppId>>,
}

#[derive(PartialEq)]
enum ResolvedService {
    Any,
    AppDefault,
    Ports(Vec<PortRange>),
}

impl<'a> Compiler<'a> {
    fn error_at<T>(&mut self, at: &Spanned<T>, message: String) {
        self.errors.push(Diagnostic {
            severity: Severity::Error,
            file: self.file.to_string(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message,
        });
    }

    fn warn_at<T>(&mut self, at: &Spanned<T>, message: String) {
        self.warnings.push(Diagnostic {
            severity: Severity::Warning,
            file: self.file.to_string(),
            line: at.referenced.line(),
            column: at.referenced.column(),
            message,
        });
    }

    fn policy(&mut self, m: &PolicyFile, port_names: Option<&[String]>) -> Policy {
        if m.version.value != 1 {
            let v = m.version.value;
            self.error_at(
                &m.version,
                format!("version: {v} is not supported (expected 1)"),
            );
        }
        let (zones, zone_of_port) = self.zones(m, port_names);
        let objects = self.addresses(m);
        if m.rules.len() > MAX_RULES {
            self.errors.push(whole(
                self.file,
                format!(
                    "{} rules; a policy may have at most {MAX_RULES}",
                    m.rules.len()
                ),
            ));
            return Policy::fixed(Action::Deny);
        }
        let app_ports = self.app_default_ports();
        let mut rules = Vec::new();
        let mut resolved: Vec<Resolved> = Vec::new();
        let mut names: HashMap<&str, &Ref> = HashMap::new();
        for r in &m.rules {
            if let Some(first) = names.get(r.name.value.as_str()) {
                let line = first.referenced.line();
                self.error_at(
                    &r.name,
                    format!(
                        "rule {:?} is defined twice (first on line {line})",
                        r.name.value
                    ),
                );
            }
            names.entry(&r.name.value).or_insert(&r.name);
            let name = &r.name.value;
            if name.is_empty() || name.len() > crate::stats::NAME_BYTES {
                self.error_at(
                    &r.name,
                    format!(
                        "rule name {name:?} must be 1 to {} bytes long",
                        crate::stats::NAME_BYTES
                    ),
                );
            } else if name == super::store::DEFAULT_SLOT_NAME
                || name == super::store::OVERFLOW_SLOT_NAME
            {
                self.error_at(
                    &r.name,
                    format!("rule name {name:?} is reserved (the default action's counters)"),
                );
            }
            let res = self.rule(r, &zones, &objects);
            rules.push(self.emit_rule(r, &res, &app_ports));
            resolved.push(res);
        }
        self.shadowing(m, &resolved);
        self.dependencies(m, &resolved);
        let default_action = m.default_action.as_ref().map_or(Action::Deny, |a| a.value);
        let timeouts = self.timeouts(m);
        let nat = self.nat_rules(m, &zones, &objects, port_names);
        let (by_app, candidates, any_app_rules) = self.index(&resolved);
        let (src_bounds, by_src, src_candidates) = source_index(&resolved);
        Policy {
            generation: 0,
            rules,
            rule_names: m.rules.iter().map(|r| r.name.value.clone()).collect(),
            zone_names: zones.iter().map(|(n, _)| n.clone()).collect(),
            zone_of_port,
            zone_limits: zones
                .iter()
                .map(|(n, _)| {
                    m.zones
                        .iter()
                        .find(|z| z.name.value == *n)
                        .map_or_else(Default::default, |z| z.limits)
                })
                .collect(),
            ranges: std::mem::take(&mut self.ranges),
            ports: std::mem::take(&mut self.ports),
            apps: std::mem::take(&mut self.apps),
            app_ports,
            by_app,
            candidates,
            any_app_rules,
            src_bounds,
            by_src,
            src_candidates,
            default_action,
            default_log: m.default_log.unwrap_or(true),
            rule_slots: Vec::new(),
            timeouts,
            catalog: None,
            nat,
        }
    }

    /// The idle timeouts the policy sets, per `flow::TimeoutClass` (None: dataplane.yaml's).
    fn timeouts(&mut self, m: &PolicyFile) -> [Option<u32>; 7] {
        let mut out = [None; 7];
        let Some(t) = &m.timeouts else {
            return out;
        };
        for (o, v) in out.iter_mut().zip(t.classes()) {
            if let Some(v) = v {
                if v.value == 0 || v.value > MAX_TIMEOUT_S {
                    self.error_at(
                        v,
                        format!(
                            "expected a timeout of 1 to {MAX_TIMEOUT_S} seconds, found {}",
                            v.value
                        ),
                    );
                }
                *o = Some(v.value.clamp(1, MAX_TIMEOUT_S));
            }
        }
        out
    }

    /// Zones by name (index = zone id) and the zone of each dataplane port.
    fn zones(
        &mut self,
        m: &PolicyFile,
        port_names: Option<&[String]>,
    ) -> (Vec<(String, u8)>, Vec<u8>) {
        let mut zones: Vec<(String, u8)> = Vec::new();
        let mut zone_of_port = vec![NO_ZONE; port_names.map_or(0, |p| p.len())];
        let mut port_zone: HashMap<String, String> = HashMap::new();
        for z in &m.zones {
            if zones.iter().any(|(n, _)| *n == z.name.value) {
                self.error_at(&z.name, format!("zone {:?} is defined twice", z.name.value));
                continue;
            }
            if z.name.value == "any" {
                self.error_at(&z.name, "`any` is reserved: it means every zone".into());
                continue;
            }
            if zones.len() == MAX_ZONES {
                self.error_at(&z.name, format!("too many zones: at most {MAX_ZONES}"));
                break;
            }
            let id = zones.len() as u8;
            zones.push((z.name.value.clone(), id));
            for p in &z.ports {
                if let Some(other) = port_zone.get(&p.value) {
                    let msg = format!(
                        "port {:?} is already in zone {other:?}: a port belongs to one zone",
                        p.value
                    );
                    self.error_at(p, msg);
                    continue;
                }
                port_zone.insert(p.value.clone(), z.name.value.clone());
                if let Some(names) = port_names {
                    match names.iter().position(|n| *n == p.value) {
                        Some(i) => zone_of_port[i] = id,
                        None => {
                            let msg = format!(
                                "zone {:?}: no port {:?} in dataplane.yaml (its ports: {})",
                                z.name.value,
                                p.value,
                                names.join(", ")
                            );
                            self.error_at(p, msg);
                        }
                    }
                }
            }
        }
        (zones, zone_of_port)
    }

    /// Address objects and groups, resolved to merged ranges.
    fn addresses(&mut self, m: &PolicyFile) -> HashMap<String, Ranges> {
        let mut objects: HashMap<String, Ranges> = HashMap::new();
        for a in &m.addresses {
            if objects.contains_key(&a.name.value) {
                self.error_at(
                    &a.name,
                    format!("address {:?} is defined twice", a.name.value),
                );
                continue;
            }
            let mut set = Vec::new();
            for p in &a.prefixes {
                match parse_addr(&p.value) {
                    Ok(r) => set.push(r),
                    Err(e) => self.error_at(p, format!("address {:?}: {e}", a.name.value)),
                }
            }
            objects.insert(a.name.value.clone(), merge(set));
        }
        // Groups may name groups defined later: resolve in passes, then report what is
        // left (unknown members or a cycle).
        let mut pending: Vec<&model::AddressGroup> = Vec::new();
        for g in &m.address_groups {
            if objects.contains_key(&g.name.value)
                || pending.iter().any(|p| p.name.value == g.name.value)
            {
                self.error_at(
                    &g.name,
                    format!(
                        "address group {:?}: the name is already an address or group",
                        g.name.value
                    ),
                );
                continue;
            }
            pending.push(g);
        }
        loop {
            let before = pending.len();
            pending.retain(|g| {
                if g.members.iter().all(|n| objects.contains_key(&n.value)) {
                    let set = g
                        .members
                        .iter()
                        .flat_map(|n| objects[&n.value].iter().copied())
                        .collect();
                    objects.insert(g.name.value.clone(), merge(set));
                    false
                } else {
                    true
                }
            });
            if pending.len() == before {
                break;
            }
        }
        let names: HashSet<&str> = pending.iter().map(|g| g.name.value.as_str()).collect();
        for g in pending {
            for n in &g.members {
                if objects.contains_key(&n.value) {
                    continue;
                }
                let msg = if names.contains(n.value.as_str()) {
                    format!(
                        "address group {:?}: member {:?} is a group that (through its members) contains this one",
                        g.name.value, n.value
                    )
                } else {
                    format!(
                        "address group {:?}: no address or group {:?}",
                        g.name.value, n.value
                    )
                };
                self.error_at(n, msg);
            }
            objects.insert(g.name.value.clone(), Vec::new());
        }
        objects
    }

    fn zone_mask(&mut self, refs: &[Ref], zones: &[(String, u8)], what: &str, rule: &str) -> u64 {
        if refs.is_empty() || refs.iter().any(|r| r.value == "any") {
            if refs.len() > 1 {
                self.warn_at(
                    &refs[0],
                    format!("rule {rule:?}: `{what}` lists `any` with other zones: it means any"),
                );
            }
            return u64::MAX;
        }
        let mut mask = 0u64;
        for r in refs {
            match zones.iter().find(|(n, _)| *n == r.value) {
                Some((_, id)) => mask |= 1 << id,
                None => {
                    let known: Vec<&str> = zones.iter().map(|(n, _)| n.as_str()).collect();
                    self.error_at(
                        r,
                        format!(
                            "rule {rule:?}: `{what}` names zone {:?}, which is not defined (zones: {})",
                            r.value,
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    );
                }
            }
        }
        mask
    }

    fn addr_set(
        &mut self,
        refs: &[Ref],
        objects: &HashMap<String, Ranges>,
        what: &str,
        rule: &str,
    ) -> Option<Ranges> {
        if refs.is_empty() || refs.iter().any(|r| r.value == "any") {
            return None;
        }
        let mut set = Vec::new();
        for r in refs {
            if let Some(o) = objects.get(&r.value) {
                set.extend_from_slice(o);
                continue;
            }
            match parse_addr(&r.value) {
                Ok(x) => set.push(x),
                Err(e) => self.error_at(
                    r,
                    format!(
                        "rule {rule:?}: `{what}` {:?} is neither an address object or group nor an address ({e})",
                        r.value
                    ),
                ),
            }
        }
        Some(merge(set))
    }

    fn rule(
        &mut self,
        r: &model::Rule,
        zones: &[(String, u8)],
        objects: &HashMap<String, Ranges>,
    ) -> Resolved {
        let name = r.name.value.as_str();
        let from = self.zone_mask(&r.from, zones, "from", name);
        let to = self.zone_mask(&r.to, zones, "to", name);
        let src = self.addr_set(&r.source, objects, "source", name);
        let dst = self.addr_set(&r.destination, objects, "destination", name);
        let apps = if r.application.is_empty() || r.application.iter().any(|a| a.value == "any") {
            None
        } else {
            let mut set = Vec::new();
            for a in &r.application {
                match self.catalog.by_name(&a.value) {
                    Some(id) => {
                        set.push(id);
                        self.implicit_uses(id, &mut set);
                    }
                    None => {
                        let hint = close_names(self.catalog, &a.value);
                        self.error_at(
                            a,
                            format!(
                                "rule {name:?}: no application {:?} in the catalog{hint}",
                                a.value
                            ),
                        );
                    }
                }
            }
            set.sort();
            set.dedup();
            Some(set)
        };
        let service = match &r.service {
            None if apps.is_none() => ResolvedService::Any,
            None => ResolvedService::AppDefault,
            Some(s) => match &s.value {
                model::Service::Keyword(k) if k == "any" => ResolvedService::Any,
                model::Service::Keyword(k) if k == "application-default" && apps.is_none() => {
                    self.warn_at(s, format!("rule {name:?}: `application-default` without applications means any port"));
                    ResolvedService::Any
                }
                model::Service::Keyword(k) if k == "application-default" => {
                    ResolvedService::AppDefault
                }
                model::Service::Keyword(k) => match parse_port(k) {
                    Ok(p) => ResolvedService::Ports(vec![p]),
                    Err(e) => {
                        self.error_at(s, format!("rule {name:?}: service {k:?}: {e} (or `any`, `application-default`)"));
                        ResolvedService::Any
                    }
                },
                model::Service::Ports(list) => {
                    let mut ports = Vec::new();
                    for k in list {
                        match parse_port(k) {
                            Ok(p) => ports.push(p),
                            Err(e) => {
                                self.error_at(s, format!("rule {name:?}: service {k:?}: {e}"))
                            }
                        }
                    }
                    ports.sort();
                    ResolvedService::Ports(ports)
                }
            },
        };
        Resolved {
            from,
            to,
            src,
            dst,
            service,
            apps,
        }
    }

    /// Adds what `app` implicitly uses (recursively): allowed with it without being named.
    fn implicit_uses(&self, app: AppId, set: &mut Vec<AppId>) {
        let Some(a) = self.catalog.app(app) else {
            return;
        };
        for &u in &a.implicit_uses {
            if !set.contains(&u) {
                set.push(u);
                self.implicit_uses(u, set);
            }
        }
    }

    fn push_ranges(&mut self, r: &Option<Ranges>) -> Option<Span> {
        r.as_ref().map(|set| {
            let start = self.ranges.len() as u32;
            self.ranges.extend_from_slice(set);
            Span {
                start,
                len: set.len() as u32,
            }
        })
    }

    fn push_ports(&mut self, p: &[PortRange]) -> Span {
        let start = self.ports.len() as u32;
        self.ports.extend_from_slice(p);
        Span {
            start,
            len: p.len() as u32,
        }
    }

    fn emit_rule(&mut self, r: &model::Rule, res: &Resolved, app_ports: &[Span]) -> Rule {
        let src = self.push_ranges(&res.src);
        let dst = self.push_ranges(&res.dst);
        let service = match &res.service {
            ResolvedService::Any => Service::Any,
            ResolvedService::AppDefault => Service::AppDefault,
            ResolvedService::Ports(p) => Service::Ports(self.push_ports(p)),
        };
        let mut union = Vec::new();
        let mut app_default_any = false;
        let apps = res.apps.as_ref().map(|set| {
            for a in set {
                match app_ports.get(a.0 as usize) {
                    Some(sp) if sp.len > 0 => union.extend_from_slice(
                        &self.ports[sp.start as usize..(sp.start + sp.len) as usize],
                    ),
                    _ => app_default_any = true,
                }
            }
            let start = self.apps.len() as u32;
            self.apps.extend_from_slice(set);
            Span {
                start,
                len: set.len() as u32,
            }
        });
        union.sort();
        union.dedup();
        let app_default = self.push_ports(&union);
        Rule {
            from: res.from,
            to: res.to,
            src,
            dst,
            service,
            apps,
            app_default,
            app_default_any,
            action: r.action.value,
            log: r.log.unwrap_or(true),
            alg: r.alg.unwrap_or(true),
        }
    }

    /// Each catalog application's default ports, parsed (the catalog keeps them as text).
    fn app_default_ports(&mut self) -> Vec<Span> {
        let apps = &self.catalog.apps;
        let mut spans = Vec::with_capacity(apps.len());
        for a in apps {
            let ports: Vec<PortRange> = a
                .default_ports
                .iter()
                .filter_map(|p| parse_port(p).ok())
                .collect();
            let start = self.ports.len() as u32;
            self.ports.extend_from_slice(&ports);
            spans.push(Span {
                start,
                len: ports.len() as u32,
            });
        }
        spans
    }

    /// Per application the rules that can match it once decided; rules naming no
    /// application are in every list.
    fn index(&self, rules: &[Resolved]) -> (Vec<Span>, Vec<u16>, Vec<u16>) {
        let n = self.catalog.apps.len();
        let mut by_app = Vec::with_capacity(n);
        let mut candidates = Vec::new();
        for a in 0..n {
            let start = candidates.len() as u32;
            for (i, r) in rules.iter().enumerate() {
                if r.apps
                    .as_ref()
                    .is_none_or(|s| s.binary_search(&AppId(a as u16)).is_ok())
                {
                    candidates.push(i as u16);
                }
            }
            by_app.push(Span {
                start,
                len: candidates.len() as u32 - start,
            });
        }
        let any_app = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.apps.is_none())
            .map(|(i, _)| i as u16)
            .collect();
        (by_app, candidates, any_app)
    }

    /// A rule every flow of which an earlier rule already matches can never match.
    fn shadowing(&mut self, m: &PolicyFile, rules: &[Resolved]) {
        for j in 0..rules.len() {
            if let Some(i) = (0..j).find(|&i| covers(&rules[i], &rules[j])) {
                let (a, b) = (&m.rules[i], &m.rules[j]);
                let line = a.name.referenced.line();
                let msg = format!(
                    "rule {:?} is shadowed by rule {:?} (line {line}): every flow it matches, that rule matches first, so it never applies",
                    b.name.value, a.name.value
                );
                self.warn_at(&b.name, msg);
            }
        }
    }

    /// An allowed application whose dependencies no allow rule allows: the warning lists
    /// exactly what to add.
    fn dependencies(&mut self, m: &PolicyFile, rules: &[Resolved]) {
        let allowed = |d: AppId| {
            rules.iter().zip(&m.rules).any(|(r, mr)| {
                mr.action.value == Action::Allow
                    && r.apps.as_ref().is_none_or(|s| s.binary_search(&d).is_ok())
            })
        };
        for (r, mr) in rules.iter().zip(&m.rules) {
            if mr.action.value != Action::Allow {
                continue;
            }
            for a in &mr.application {
                let Some(id) = self.catalog.by_name(&a.value) else {
                    continue;
                };
                let Some(app) = self.catalog.app(id) else {
                    continue;
                };
                let missing: Vec<&str> = app
                    .depends_on
                    .iter()
                    .filter(|d| !allowed(**d))
                    .map(|d| self.catalog.name(*d))
                    .collect();
                if !missing.is_empty() && r.apps.is_some() {
                    let msg = format!(
                        "rule {:?} allows {}, which depends on {}: no allow rule allows {}; add {} to this rule (or another allow rule) or {} will not work",
                        mr.name.value,
                        a.value,
                        app.depends_on.iter().map(|d| self.catalog.name(*d)).collect::<Vec<_>>().join(", "),
                        missing.join(", "),
                        missing.join(", "),
                        a.value
                    );
                    self.warn_at(a, msg);
                }
            }
        }
    }
}

/// Entries the source-address index may hold; beyond, lookups scan every rule.
const MAX_SRC_INDEX: usize = 4 << 20;

/// The source-address index (see `Policy::src_bounds`): pieces of the address space cut at
/// every edge of every rule's source ranges, each with the rules covering it, in order.
fn source_index(rules: &[Resolved]) -> (Vec<u128>, Vec<Span>, Vec<u16>) {
    let mut bounds: Vec<u128> = vec![0];
    for r in rules {
        for &(lo, hi) in r.src.iter().flatten() {
            bounds.push(lo);
            if hi < u128::MAX {
                bounds.push(hi + 1);
            }
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    if bounds.len() == 1 {
        // No rule names a source: the index would list every rule.
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let mut lists: Vec<Vec<u16>> = vec![Vec::new(); bounds.len()];
    let mut total = 0usize;
    for (i, r) in rules.iter().enumerate() {
        match &r.src {
            None => {
                total += lists.len();
                lists.iter_mut().for_each(|l| l.push(i as u16));
            }
            Some(ranges) => {
                for &(lo, hi) in ranges {
                    let a = bounds.partition_point(|&b| b < lo);
                    let z = bounds.partition_point(|&b| b <= hi);
                    total += z - a;
                    lists[a..z].iter_mut().for_each(|l| l.push(i as u16));
                }
            }
        }
        if total > MAX_SRC_INDEX {
            return (Vec::new(), Vec::new(), Vec::new());
        }
    }
    let mut spans = Vec::with_capacity(lists.len());
    let mut flat = Vec::with_capacity(total);
    for l in lists {
        spans.push(Span {
            start: flat.len() as u32,
            len: l.len() as u32,
        });
        flat.extend_from_slice(&l);
    }
    (bounds, spans, flat)
}

/// Whether rule `a` matches every flow rule `b` matches.
fn covers(a: &Resolved, b: &Resolved) -> bool {
    let zones = |x: u64, y: u64| x == u64::MAX || (y != u64::MAX && y & !x == 0);
    let addrs = |x: &Option<Ranges>, y: &Option<Ranges>| match (x, y) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => y
            .iter()
            .all(|&(lo, hi)| x.iter().any(|&(xl, xh)| xl <= lo && hi <= xh)),
    };
    let apps = match (&a.apps, &b.apps) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => y.iter().all(|v| x.binary_search(v).is_ok()),
    };
    let service = match (&a.service, &b.service) {
        (ResolvedService::Any, _) => true,
        // The same default ports when the applications are the same or a superset: only
        // claim it when b names exactly a's applications or a subset with a same-kind
        // service (the default ports then go with each application).
        (ResolvedService::AppDefault, ResolvedService::AppDefault) => true,
        (ResolvedService::Ports(x), ResolvedService::Ports(y)) => y.iter().all(|p| {
            x.iter()
                .any(|q| q.proto == p.proto && q.lo <= p.lo && p.hi <= q.hi)
        }),
        _ => false,
    };
    zones(a.from, b.from)
        && zones(a.to, b.to)
        && addrs(&a.src, &b.src)
        && addrs(&a.dst, &b.dst)
        && apps
        && service
}

/// Sorts and merges overlapping or adjacent ranges.
fn merge(mut set: Ranges) -> Ranges {
    set.sort();
    let mut out: Ranges = Vec::with_capacity(set.len());
    for (lo, hi) in set {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn addr_u128(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), true),
        IpAddr::V6(v6) => (u128::from(v6), false),
    }
}

/// `a`, `a/len` or `a-b` (IPv4 or IPv6) as an inclusive range.
pub fn parse_addr(s: &str) -> Result<(u128, u128), String> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not an IP address"))?;
        let b: IpAddr = b
            .trim()
            .parse()
            .map_err(|_| format!("{b:?} is not an IP address"))?;
        let ((lo, v4a), (hi, v4b)) = (addr_u128(a), addr_u128(b));
        if v4a != v4b {
            return Err(format!("range {s:?} mixes IPv4 and IPv6"));
        }
        if lo > hi {
            return Err(format!("range {s:?} ends before it starts"));
        }
        return Ok((lo, hi));
    }
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an address, prefix (a/len) or range (a-b)"))?;
    let (base, v4) = addr_u128(addr);
    let max = if v4 { 32 } else { 128 };
    let len: u32 = match len {
        None => max,
        Some(l) => l
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{l:?} is not a prefix length 0-{max}"))?,
    };
    let host_bits = max - len;
    let mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    if base & mask != 0 {
        return Err(format!(
            "{s:?} has host bits set (the prefix is {}/{len})",
            display_addr(base & !mask, v4)
        ));
    }
    Ok((base, base | mask))
}

fn display_addr(a: u128, v4: bool) -> String {
    let v6 = std::net::Ipv6Addr::from(a);
    if v4 {
        v6.to_ipv4_mapped()
            .map_or(v6.to_string(), |x| x.to_string())
    } else {
        v6.to_string()
    }
}

/// `tcp/N`, `udp/N-M` (also `sctp/`).
pub fn parse_port(s: &str) -> Result<PortRange, String> {
    let (proto, ports) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a port like tcp/443 or udp/16384-16403"))?;
    let proto = match proto {
        "tcp" => crate::packet::proto::TCP,
        "udp" => crate::packet::proto::UDP,
        "sctp" => 132,
        p => return Err(format!("{p:?} is not tcp, udp or sctp")),
    };
    let num = |x: &str| {
        x.trim()
            .parse::<u16>()
            .map_err(|_| format!("{x:?} is not a port number 0-65535"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if lo > hi {
        return Err(format!("{s:?}: the range ends before it starts"));
    }
    Ok(PortRange { proto, lo, hi })
}

/// ", did you mean ..." for a misspelt application name.
fn close_names(catalog: &Catalog, name: &str) -> String {
    let close: Vec<&str> = catalog
        .apps
        .iter()
        .map(|a| a.name.as_str())
        .filter(|n| edit_distance(n, name) <= 2 || n.starts_with(name))
        .take(3)
        .collect();
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
