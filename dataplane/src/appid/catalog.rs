//! The application catalog: `conf/apps.yaml` loaded through the same YAML stack as the rest of
//! the configuration, validated, and compiled to a flat table the workers read.
use super::{Evidence, Proto};
use crate::config::{ConfigError, Prefix};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::Path;

/// The catalog the binary uses without `app-id.catalog` in dataplane.yaml.
pub const EMBEDDED: &str = include_str!("../../../conf/apps.yaml");

/// Custom applications (a policy's `applications:`) that can exist while a dataplane runs:
/// the stats segment reserves this many application rows for them.
pub const MAX_CUSTOM_APPS: usize = 64;

/// Index of an application in the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct AppId(pub u16);

impl AppId {
    /// Not decided yet.
    pub const NONE: AppId = AppId(u16::MAX);
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    version: u32,
    applications: Vec<AppSpec>,
}

/// One application as `apps.yaml` (and a policy's `applications:`) writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppSpec {
    pub name: String,
    #[serde(default)]
    description: String,
    /// The decoder protocol this application is (base protocols only).
    #[serde(default)]
    decoder: Option<String>,
    /// The IP protocol number this application is (non-TCP/UDP protocols only).
    #[serde(default)]
    ip_protocol: Option<u8>,
    #[serde(default)]
    parent: Vec<String>,
    #[serde(default)]
    default_ports: Vec<String>,
    #[serde(default)]
    signatures: Vec<SigSpec>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    implicit_uses: Vec<String>,
    #[serde(default)]
    timeouts: Option<TimeoutSpec>,
    #[serde(default)]
    alg: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SigSpec {
    on: String,
    #[serde(default)]
    host: Vec<String>,
    #[serde(default)]
    user_agent: Vec<String>,
    #[serde(default)]
    stun_software: Vec<String>,
    #[serde(default)]
    dialect: Vec<String>,
    #[serde(default)]
    server: Vec<String>,
    #[serde(default)]
    port: Vec<PortSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortSpec {
    One(u16),
    Range(String),
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimeoutSpec {
    /// Idle timeouts in seconds for this application's flows (unset: the flow table's).
    #[serde(default)]
    pub tcp: Option<u32>,
    #[serde(default)]
    pub udp: Option<u32>,
}

/// A compiled signature.
#[derive(Debug, Clone)]
pub struct Signature {
    pub on: AppId,
    pub host: Vec<String>,
    pub user_agent: Vec<String>,
    pub stun_software: Vec<String>,
    /// The decoder's name for a vendor's dialect (`Evidence::dialect`).
    pub dialect: Vec<String>,
    pub server: Vec<Prefix>,
    pub ports: Vec<(u16, u16)>,
    /// `ports` may match the client's port too (signatures on rtp and rtcp).
    pub either_end: bool,
    pub app: AppId,
}

/// One application.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub description: String,
    pub parent: Vec<AppId>,
    pub default_ports: Vec<String>,
    pub depends_on: Vec<AppId>,
    pub implicit_uses: Vec<AppId>,
    pub timeouts: TimeoutSpec,
    pub alg: Option<String>,
}

/// The compiled catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub apps: Vec<App>,
    /// How many of `apps` come from the catalog file; the rest are a policy's custom
    /// applications (see `with_custom`).
    pub builtin: usize,
    /// App of each decoder protocol, indexed by `Proto as usize`.
    by_proto: Vec<AppId>,
    signatures: Vec<Signature>,
    by_ip_proto: Vec<AppId>,
    pub unknown_tcp: AppId,
    pub unknown_udp: AppId,
    pub incomplete: AppId,
    pub insufficient_data: AppId,
    pub unknown_ip: AppId,
}

/// What a signature is matched against.
pub struct Subject<'a> {
    pub ev: &'a Evidence,
    pub server: Option<Ipv4Addr>,
    pub server_port: u16,
    /// The client's port: media signatures (on rtp, rtcp) match a port at either end, since
    /// a call's media has no client and server (a relayed stream's far end is the relay's).
    pub client_port: u16,
}

/// Case-insensitive glob with `*` (any run of characters, including none).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn not_in_catalog(app: &str, what: &str, n: &str) -> String {
    format!("application {app:?}: {what} names {n:?}, which is not in the catalog")
}

/// Compiles one application spec as application `me`; names resolve through `resolve`.
fn build_app(
    a: &AppSpec,
    me: AppId,
    resolve: &dyn Fn(&str) -> Option<AppId>,
) -> Result<(App, Vec<Signature>), String> {
    let id = |n: &str, what: &str| resolve(n).ok_or_else(|| not_in_catalog(&a.name, what, n));
    let list = |v: &[String], what: &str| -> Result<Vec<AppId>, String> {
        v.iter().map(|n| id(n, what)).collect()
    };
    let mut signatures = Vec::new();
    for s in &a.signatures {
        let server = s
            .server
            .iter()
            .map(|p| {
                p.parse::<Prefix>()
                    .map_err(|e| format!("application {:?}: server: {e}", a.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ports = s
            .port
            .iter()
            .map(|p| match p {
                PortSpec::One(n) => Ok((*n, *n)),
                PortSpec::Range(r) => r
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                    .filter(|(a, b): &(u16, u16)| a <= b)
                    .ok_or_else(|| format!("application {:?}: port {r:?} is not N or N-M", a.name)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        signatures.push(Signature {
            either_end: matches!(s.on.as_str(), "rtp" | "rtcp"),
            on: id(&s.on, "a signature's `on`")?,
            host: s.host.clone(),
            user_agent: s.user_agent.clone(),
            stun_software: s.stun_software.clone(),
            dialect: s.dialect.clone(),
            server,
            ports,
            app: me,
        });
    }
    let app = App {
        name: a.name.clone(),
        description: a.description.clone(),
        parent: list(&a.parent, "parent")?,
        default_ports: a.default_ports.clone(),
        depends_on: list(&a.depends_on, "depends-on")?,
        implicit_uses: list(&a.implicit_uses, "implicit-uses")?,
        timeouts: a.timeouts.unwrap_or_default(),
        alg: a.alg.clone(),
    };
    Ok((app, signatures))
}

/// Per-application timeouts are positive, and at most `APP_CLASSES` distinct values in all
/// (each takes a list of its own in every flow table).
fn check_timeouts(apps: &[App]) -> Result<(), String> {
    let max = crate::flow::APP_CLASSES;
    let mut values: Vec<u32> = Vec::new();
    for a in apps {
        for t in [a.timeouts.tcp, a.timeouts.udp].into_iter().flatten() {
            if t == 0 {
                return Err(format!(
                    "application {:?}: timeouts: 0 is not a timeout (leave it out for the flow table's)",
                    a.name
                ));
            }
            if !values.contains(&t) {
                values.push(t);
            }
            if values.len() > max {
                return Err(format!(
                    "application {:?}: timeouts: at most {max} different per-application timeouts in all (the catalog and the policy's applications have {})",
                    a.name,
                    values.len()
                ));
            }
        }
    }
    Ok(())
}

fn err(file: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        file: file.to_string(),
        message,
    }
}

impl Catalog {
    /// The catalog `dataplane.yaml` names (`app-id.catalog`), or the embedded one.
    pub fn of_config(cfg: &crate::config::AppIdConfig) -> Result<Catalog, ConfigError> {
        match &cfg.catalog {
            Some(p) => Catalog::load(p),
            None => Ok(Catalog::embedded()),
        }
    }

    pub fn embedded() -> Catalog {
        Catalog::parse(EMBEDDED, "conf/apps.yaml (embedded)")
            .expect("the embedded catalog is checked by a unit test")
    }

    pub fn load(path: &Path) -> Result<Catalog, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Catalog::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Catalog, ConfigError> {
        let f: File = crate::config::from_yaml(text, file)?;
        if f.version != 1 {
            return Err(err(
                file,
                format!("version: {} is not supported (expected 1)", f.version),
            ));
        }
        let names: Vec<&str> = f.applications.iter().map(|a| a.name.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(err(file, format!("applications: {n:?} is defined twice")));
            }
        }
        if names.len() >= u16::MAX as usize {
            return Err(err(file, "applications: too many".into()));
        }
        let id = |n: &str, what: &str, app: &str| -> Result<AppId, ConfigError> {
            names
                .iter()
                .position(|x| *x == n)
                .map(|i| AppId(i as u16))
                .ok_or_else(|| err(file, not_in_catalog(app, what, n)))
        };
        let mut by_proto = vec![AppId::NONE; Proto::ALL.len()];
        let mut by_ip_proto = vec![AppId::NONE; 256];
        let mut apps = Vec::new();
        let mut signatures = Vec::new();
        let resolve = |n: &str| names.iter().position(|x| *x == n).map(|i| AppId(i as u16));
        for (i, a) in f.applications.iter().enumerate() {
            if let Some(d) = &a.decoder {
                let p = Proto::ALL.iter().find(|p| p.name() == d).ok_or_else(|| {
                    err(file, format!("application {:?}: no decoder {d:?}", a.name))
                })?;
                by_proto[*p as usize] = AppId(i as u16);
            }
            if let Some(n) = a.ip_protocol {
                by_ip_proto[n as usize] = AppId(i as u16);
            }
            let (app, sigs) = build_app(a, AppId(i as u16), &resolve).map_err(|m| err(file, m))?;
            apps.push(app);
            signatures.extend(sigs);
        }
        if let Some(p) = Proto::ALL
            .iter()
            .find(|p| by_proto[**p as usize] == AppId::NONE)
        {
            return Err(err(
                file,
                format!("applications: no application has `decoder: {}`", p.name()),
            ));
        }
        check_timeouts(&apps).map_err(|m| err(file, m))?;
        let need = |n: &str| id(n, "App-ID's verdicts", "(catalog)");
        Ok(Catalog {
            unknown_tcp: need("unknown-tcp")?,
            unknown_udp: need("unknown-udp")?,
            incomplete: need("incomplete")?,
            insufficient_data: need("insufficient-data")?,
            unknown_ip: need("unknown-ip")?,
            by_ip_proto,
            builtin: apps.len(),
            apps,
            by_proto,
            signatures,
        })
    }

    /// This catalog with a policy's custom applications: `custom` in order, each either
    /// replacing the custom application of that name this catalog already has (it keeps its
    /// id) or appended. Custom applications this catalog has that `custom` no longer defines
    /// stay, without signatures, so that ids given out before keep their names. Custom
    /// applications are identified only by signatures on a protocol App-ID decodes; their
    /// signatures are tried before the catalog's, so a custom application takes precedence.
    /// At most `max_custom` custom ids exist. On an error returns the index into `custom` of
    /// the application at fault (or `custom.len()` when the total is) and the message.
    pub fn with_custom(
        &self,
        custom: &[&AppSpec],
        max_custom: usize,
    ) -> Result<Catalog, (usize, String)> {
        let mut names: Vec<&str> = self.apps.iter().map(|a| a.name.as_str()).collect();
        let mut ids = Vec::with_capacity(custom.len());
        for (k, a) in custom.iter().enumerate() {
            let n = a.name.as_str();
            if custom[..k].iter().any(|b| b.name == n) {
                return Err((k, format!("application {n:?} is defined twice")));
            }
            match names.iter().position(|x| *x == n) {
                Some(i) if i < self.builtin => {
                    return Err((
                        k,
                        format!(
                            "application {n:?} is already in the catalog (a custom application needs a name of its own)"
                        ),
                    ))
                }
                Some(i) => ids.push(AppId(i as u16)),
                None => {
                    ids.push(AppId(names.len() as u16));
                    names.push(n);
                }
            }
        }
        if names.len() - self.builtin > max_custom {
            return Err((
                custom.len(),
                format!(
                    "applications: at most {max_custom} custom applications can be defined while the dataplane runs (removed ones keep their ids until a restart)"
                ),
            ));
        }
        let resolve = |n: &str| names.iter().position(|x| *x == n).map(|i| AppId(i as u16));
        let mut c = self.clone();
        let mut first = Vec::new();
        for (k, (a, id)) in custom.iter().zip(&ids).enumerate() {
            if a.decoder.is_some() || a.ip_protocol.is_some() {
                return Err((
                    k,
                    format!(
                        "application {:?}: `decoder` and `ip-protocol` are for the catalog's protocols; a custom application is identified by its signatures",
                        a.name
                    ),
                ));
            }
            if a.signatures.is_empty() {
                return Err((
                    k,
                    format!(
                        "application {:?}: a custom application needs at least one signature (App-ID could never name it)",
                        a.name
                    ),
                ));
            }
            let (app, sigs) = build_app(a, *id, &resolve).map_err(|m| (k, m))?;
            for sig in &sigs {
                if !self.by_proto.contains(&sig.on) {
                    let decoded: Vec<&str> = Proto::ALL.iter().map(|p| p.name()).collect();
                    return Err((
                        k,
                        format!(
                            "application {:?}: a signature's `on` must be a protocol App-ID decodes ({}), not {:?}",
                            a.name,
                            decoded.join(", "),
                            names[sig.on.0 as usize]
                        ),
                    ));
                }
                if sig.host.is_empty()
                    && sig.user_agent.is_empty()
                    && sig.stun_software.is_empty()
                    && sig.dialect.is_empty()
                    && sig.server.is_empty()
                    && sig.ports.is_empty()
                {
                    return Err((
                        k,
                        format!(
                            "application {:?}: a signature needs at least one of host, user-agent, stun-software, dialect, server, port",
                            a.name
                        ),
                    ));
                }
            }
            first.extend(sigs);
            let at = id.0 as usize;
            if at < c.apps.len() {
                c.apps[at] = app;
            } else {
                c.apps.push(app);
            }
        }
        // Custom applications no longer defined: names only.
        for (i, app) in c.apps.iter_mut().enumerate().skip(self.builtin) {
            if !ids.contains(&AppId(i as u16)) {
                app.description = "(custom application no longer in the policy)".into();
                app.depends_on.clear();
                app.implicit_uses.clear();
                app.default_ports.clear();
            }
        }
        first.extend(
            self.signatures
                .iter()
                .filter(|s| (s.app.0 as usize) < self.builtin)
                .cloned(),
        );
        c.signatures = first;
        check_timeouts(&c.apps).map_err(|m| (custom.len(), m))?;
        Ok(c)
    }

    /// Whether `a` is a policy's custom application.
    pub fn is_custom(&self, a: AppId) -> bool {
        (a.0 as usize) >= self.builtin && (a.0 as usize) < self.apps.len()
    }

    /// Each application's own idle timeouts (TCP, UDP), by id.
    pub fn app_timeouts(&self) -> impl Iterator<Item = (Option<u32>, Option<u32>)> + '_ {
        self.apps.iter().map(|a| (a.timeouts.tcp, a.timeouts.udp))
    }

    /// Whether application `a` has the SIP ALG (`alg: sip`).
    pub fn has_sip_alg(&self, a: AppId) -> bool {
        self.apps
            .get(a.0 as usize)
            .is_some_and(|x| x.alg.as_deref() == Some("sip"))
    }

    pub fn name(&self, a: AppId) -> &str {
        self.apps
            .get(a.0 as usize)
            .map_or("none", |x| x.name.as_str())
    }

    pub fn by_name(&self, n: &str) -> Option<AppId> {
        self.apps
            .iter()
            .position(|a| a.name == n)
            .map(|i| AppId(i as u16))
    }

    pub fn app(&self, a: AppId) -> Option<&App> {
        self.apps.get(a.0 as usize)
    }

    /// The application a decoder protocol is.
    pub fn of_proto(&self, p: Proto) -> AppId {
        self.by_proto[p as usize]
    }

    /// The application of a flow of IP protocol `p` (other than TCP and UDP).
    pub fn of_ip_proto(&self, p: u8) -> AppId {
        match self.by_ip_proto[p as usize] {
            AppId::NONE => self.unknown_ip,
            a => a,
        }
    }

    /// The first signature on `base` that matches, i.e. the application the flow shifts to.
    pub fn shift(&self, base: AppId, s: &Subject<'_>) -> Option<AppId> {
        // QUIC carries TLS: the SNI signatures written for ssl apply to it too.
        let quic = base == self.of_proto(Proto::Quic);
        let ssl = self.of_proto(Proto::Ssl);
        self.signatures
            .iter()
            .find(|sig| {
                (sig.on == base || (quic && sig.on == ssl && !sig.host.is_empty()))
                    && sig.matches(s)
            })
            .map(|sig| sig.app)
    }
}

impl Signature {
    fn matches(&self, s: &Subject<'_>) -> bool {
        let any = |pats: &[String], text: &str| {
            pats.is_empty() || (!text.is_empty() && pats.iter().any(|p| glob(p, text)))
        };
        any(&self.host, s.ev.host.as_str())
            && any(&self.user_agent, s.ev.user_agent.as_str())
            && any(&self.stun_software, s.ev.stun_software.as_str())
            && any(&self.dialect, s.ev.dialect.as_str())
            && (self.server.is_empty()
                || s.server
                    .is_some_and(|ip| self.server.iter().any(|p| p.contains(ip))))
            && (self.ports.is_empty()
                || self.ports.iter().any(|(a, b)| {
                    (*a..=*b).contains(&s.server_port)
                        || (self.either_end && (*a..=*b).contains(&s.client_port))
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_has_what_the_product_needs() {
        let c = Catalog::embedded();
        for n in [
            "sip",
            "stun",
            "rtp",
            "rtcp",
            "ssl",
            "dtls",
            "jabber",
            "web-browsing",
            "http-proxy",
            "dns",
            "apple-push-notifications",
            "icloud",
            "ichat-av",
            "facetime",
            "unknown-tcp",
            "unknown-udp",
            "incomplete",
            "insufficient-data",
        ] {
            assert!(c.by_name(n).is_some(), "{n} missing");
        }
        let ft = c.app(c.by_name("facetime").unwrap()).unwrap();
        let deps: Vec<&str> = ft.depends_on.iter().map(|a| c.name(*a)).collect();
        assert_eq!(deps, ["sip", "stun", "ssl", "jabber", "ichat-av"]);
    }

    #[test]
    fn shifts() {
        let c = Catalog::embedded();
        let mut ev = Evidence::default();
        let sip = c.of_proto(Proto::Sip);
        let ssl = c.of_proto(Proto::Ssl);
        ev.user_agent.set(b"Viceroy 1.4");
        fn s<'a>(ev: &'a Evidence, ip: &str, port: u16) -> Subject<'a> {
            Subject {
                ev,
                server: ip.parse().ok(),
                server_port: port,
                client_port: 50000,
            }
        }
        assert_eq!(
            c.shift(sip, &s(&ev, "198.51.100.1", 16402))
                .map(|a| c.name(a)),
            Some("facetime")
        );
        ev.user_agent.set(b"Linphone/3.6");
        assert_eq!(c.shift(sip, &s(&ev, "198.51.100.1", 5060)), None);
        let mut ev = Evidence::default();
        ev.host.set(b"courier.push.apple.com");
        assert_eq!(
            c.shift(ssl, &s(&ev, "17.1.2.3", 5223)).map(|a| c.name(a)),
            Some("apple-push-notifications")
        );
        let ev = Evidence::default();
        assert_eq!(
            c.shift(ssl, &s(&ev, "17.1.2.3", 5223)).map(|a| c.name(a)),
            Some("apple-push-notifications")
        );
        assert_eq!(c.shift(ssl, &s(&ev, "8.8.8.8", 5223)), None);
        let mut ev = Evidence::default();
        ev.host.set(b"p26-keyvalueservice.icloud.com");
        assert_eq!(
            c.shift(ssl, &s(&ev, "17.248.185.87", 443))
                .map(|a| c.name(a)),
            Some("icloud")
        );
    }

    /// The messengers and conferencing services: each by its servers' names on ssl and quic,
    /// by its STUN dialect where it has one, and never from a look-alike name.
    #[test]
    fn messenger_shifts() {
        let c = Catalog::embedded();
        let (ssl, quic, stun) = (
            c.of_proto(Proto::Ssl),
            c.of_proto(Proto::Quic),
            c.of_proto(Proto::Stun),
        );
        let name = |base: AppId, host: &str, dialect: &str| {
            let mut ev = Evidence::default();
            ev.host.set(host.as_bytes());
            ev.dialect.set(dialect.as_bytes());
            let s = Subject {
                ev: &ev,
                server: None,
                server_port: 443,
                client_port: 50000,
            };
            c.shift(base, &s).map(|a| c.name(a).to_string())
        };
        for (host, app) in [
            ("g.whatsapp.net", "whatsapp"),
            ("web.telegram.org", "telegram"),
            ("us04web.zoom.us", "zoom"),
            ("akamaicdn.webex.com", "webex"),
            ("teams.microsoft.com", "ms-teams"),
            ("chat.signal.org", "signal"),
            ("gateway.discord.gg", "discord"),
        ] {
            assert_eq!(name(ssl, host, "").as_deref(), Some(app), "{host}");
            assert_eq!(
                name(quic, host, "").as_deref(),
                Some(app),
                "{host} over quic"
            );
        }
        assert_eq!(name(stun, "", "whatsapp").as_deref(), Some("whatsapp"));
        assert_eq!(name(stun, "", "ms-teams").as_deref(), Some("ms-teams"));
        assert_eq!(name(stun, "", ""), None);
        for host in [
            "whatsapp.net.example",
            "notzoom.us",
            "discord.com.evil.example",
        ] {
            assert_eq!(name(ssl, host, ""), None, "{host}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*.apple.com", "init.ess.APPLE.com"));
        assert!(!glob("*.apple.com", "apple.com"));
        assert!(!glob("*.apple.com", "evilapple.com"));
        assert!(glob("Viceroy*", "Viceroy 1.4"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXbYY"));
    }

    #[test]
    fn errors_name_the_problem() {
        let bad = EMBEDDED.replace(
            "depends-on: [sip, stun, ssl, jabber, ichat-av]",
            "depends-on: [sip, skype]",
        );
        let e = Catalog::parse(&bad, "apps.yaml").unwrap_err().to_string();
        assert!(e.contains("\"facetime\"") && e.contains("\"skype\""), "{e}");
        let bad = EMBEDDED.replace("  - name: ntp\n", "  - name: ntp\n    colour: red\n");
        let e = Catalog::parse(&bad, "apps.yaml").unwrap_err().to_string();
        let line = bad.lines().position(|l| l.contains("colour")).unwrap() + 1;
        assert!(e.starts_with(&format!("apps.yaml:{line}:")), "{e}");
    }
}
