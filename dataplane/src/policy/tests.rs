use super::*;
use crate::appid::catalog::Catalog;
use std::net::IpAddr;

fn catalog() -> Catalog {
    Catalog::embedded()
}

fn ports() -> Vec<String> {
    vec!["inside".into(), "outside".into()]
}

fn build(text: &str) -> Compiled {
    match compile(text, "policy.yaml", &catalog(), Some(&ports())) {
        Ok(c) => c,
        Err(e) => panic!(
            "policy does not compile:\n{}",
            e.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

fn errors(text: &str) -> Vec<String> {
    match compile(text, "policy.yaml", &catalog(), Some(&ports())) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.iter().map(|d| d.to_string()).collect(),
    }
}

fn addr(s: &str) -> u128 {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => addr_key(&crate::packet::IpAddr16::from_v4(a.octets())),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn subject(src: &str, dst: &str, proto: u8, dport: u16) -> Subject {
    Subject {
        from_zone: 0,
        to_zone: 1,
        src: addr(src),
        dst: addr(dst),
        proto,
        dst_port: dport,
        predicted: false,
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;

const FACETIME: &str = "
version: 1
zones:
  - { name: trust, ports: [inside] }
  - { name: untrust, ports: [outside] }
addresses:
  - { name: lan, prefixes: [192.168.0.0/16, \"10.0.0.1-10.0.0.50\", \"2001:db8::/32\"] }
rules:
  - name: facetime
    from: [trust]
    to: [untrust]
    source: [lan]
    application: [facetime, sip, stun, ssl, jabber, ichat-av]
    action: allow
  - name: no-dns
    application: [dns]
    action: drop
  - name: web
    application: [web-browsing]
    service: [tcp/80, tcp/8080]
    action: allow
default-action: deny
";

fn app(name: &str) -> AppId {
    catalog().by_name(name).unwrap()
}

#[test]
fn facetime_and_its_dependencies_are_allowed_the_rest_denied() {
    let c = build(FACETIME);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let p = &c.policy;
    let ssl = subject("192.168.1.5", "17.1.2.3", TCP, 443);
    let v = p.check(&ssl, None);
    assert_eq!((v.action, v.rule, v.settled), (Action::Allow, 0, false));
    assert_eq!(p.check(&ssl, Some(app("ssl"))).action, Action::Allow);
    assert_eq!(p.check(&ssl, Some(app("facetime"))).rule, 0);
    // Implicit uses come with facetime: RTP on any port (it has no default ports).
    let rtp = subject("192.168.1.5", "17.1.2.3", UDP, 16400);
    assert_eq!(p.check(&rtp, Some(app("rtp"))).action, Action::Allow);
    // ssl on a port that is not its default: no rule; the default denies.
    let odd = subject("192.168.1.5", "17.1.2.3", TCP, 4444);
    let v = p.check(&odd, Some(app("ssl")));
    assert_eq!((v.action, v.rule), (Action::Deny, RULE_DEFAULT));
    // From outside the lan: no rule could allow ssl on 443 ... but `web` could allow
    // port 80 only; so an undecided flow to 443 is settled denied.
    let outsider = subject("198.51.100.1", "17.1.2.3", TCP, 443);
    let v = p.check(&outsider, None);
    assert_eq!((v.action, v.settled), (Action::Deny, true));
    // DNS: dropped once decided, whatever the source.
    let dns = subject("192.168.1.5", "8.8.8.8", UDP, 53);
    assert_eq!(p.check(&dns, Some(app("dns"))).action, Action::Drop);
    // Undecided DNS from the lan: facetime's rule could still allow a UDP flow to 53?
    // No: none of its applications has udp/53 as a default port.
    let v = p.check(&dns, None);
    assert!(v.settled || v.action == Action::Allow);
    // web on 8080 allowed, on 81 denied.
    let web = subject("203.0.113.9", "198.51.100.7", TCP, 8080);
    assert_eq!(p.check(&web, Some(app("web-browsing"))).rule, 2);
    let web81 = subject("203.0.113.9", "198.51.100.7", TCP, 81);
    assert_eq!(
        p.check(&web81, Some(app("web-browsing"))).rule,
        RULE_DEFAULT
    );
    // IPv6 sources in the lan object.
    let v6 = subject("2001:db8::7", "2001:db8:1::1", TCP, 443);
    assert_eq!(p.check(&v6, Some(app("ssl"))).rule, 0);
    // Zones: the same flow arriving from the untrust side matches no facetime rule.
    let mut back = ssl;
    back.from_zone = 1;
    back.to_zone = 0;
    assert_eq!(p.check(&back, Some(app("ssl"))).rule, RULE_DEFAULT);
}

#[test]
fn an_app_specific_deny_keeps_an_undecided_flow_open_to_a_later_decision() {
    let c = build(
        "
version: 1
rules:
  - { name: no-ssh, application: [ssh], service: any, action: deny }
  - { name: rest, action: allow }
",
    );
    let p = &c.policy;
    let s = subject("192.0.2.1", "198.51.100.1", TCP, 6881);
    let v = p.check(&s, None);
    assert_eq!((v.action, v.settled), (Action::Allow, false));
    assert_eq!(p.check(&s, Some(app("ssh"))).action, Action::Deny);
    assert_eq!(p.check(&s, Some(app("ssl"))).action, Action::Allow);
}

#[test]
fn allowing_facetime_alone_warns_with_exactly_what_to_add() {
    let c = build(
        "
version: 1
rules:
  - { name: ft, application: [facetime], action: allow }
",
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = c.warnings[0].to_string();
    assert!(w.starts_with("policy.yaml:4:31: warning:"), "{w}");
    assert!(
        w.contains("no allow rule allows sip, stun, ssl, jabber, ichat-av;"),
        "{w}"
    );
    // With stun alone added elsewhere, it no longer lists stun.
    let c = build(
        "
version: 1
rules:
  - { name: ft, application: [facetime, sip, ssl], action: allow }
  - { name: nat, application: [stun], action: allow }
",
    );
    let w = c.warnings[0].to_string();
    assert!(w.contains("no allow rule allows jabber, ichat-av;"), "{w}");
}

#[test]
fn a_shadowed_rule_is_a_warning_naming_the_rule_that_shadows_it() {
    let c = build(
        "
version: 1
addresses:
  - { name: net, prefixes: [10.0.0.0/8] }
rules:
  - { name: wide, source: [net], action: allow }
  - { name: narrow, source: [10.1.0.0/16], application: [ssl], action: deny }
  - { name: other, source: [192.0.2.0/24], action: deny }
",
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = c.warnings[0].to_string();
    assert!(
        w.contains(
            "policy.yaml:7:13: warning: rule \"narrow\" is shadowed by rule \"wide\" (line 6)"
        ),
        "{w}"
    );
}

#[test]
fn the_index_looks_only_at_rules_that_can_match_the_application() {
    let mut text = String::from("version: 1\nrules:\n");
    let names: Vec<String> = catalog().apps.iter().map(|a| a.name.clone()).collect();
    let n_rules = names.len().min(40);
    for (i, n) in names.iter().enumerate().take(n_rules) {
        text.push_str(&format!(
            "  - {{ name: r{i}, application: [{n}], service: any, action: allow }}\n"
        ));
    }
    let p = build(&text).policy;
    let last = n_rules - 1;
    let a = app(&names[last]);
    let span = p.by_app[a.0 as usize];
    assert_eq!(span.len, 1);
    let s = subject("192.0.2.1", "198.51.100.1", TCP, 1);
    assert_eq!(p.check(&s, Some(a)).rule, last as u16);
    // The index agrees with a plain scan, for every application, on two policies.
    let facetime = build(FACETIME).policy;
    for pol in [&p, &facetime] {
        for i in 0..catalog().apps.len() {
            for s in [
                s,
                subject("192.168.1.5", "17.1.2.3", TCP, 443),
                subject("192.168.1.5", "8.8.8.8", UDP, 53),
            ] {
                let a = AppId(i as u16);
                assert_eq!(pol.check(&s, Some(a)), pol.check_decided_linear(&s, a));
                assert_eq!(pol.check(&s, None), pol.check_undecided_linear(&s));
            }
        }
    }
}

#[test]
fn addresses_parse_as_ranges() {
    use compile::parse_addr;
    assert_eq!(
        parse_addr("192.0.2.0/24").unwrap(),
        (addr("192.0.2.0"), addr("192.0.2.255"))
    );
    assert_eq!(
        parse_addr("192.0.2.7").unwrap(),
        (addr("192.0.2.7"), addr("192.0.2.7"))
    );
    assert_eq!(
        parse_addr("10.0.0.1-10.0.0.50").unwrap(),
        (addr("10.0.0.1"), addr("10.0.0.50"))
    );
    assert_eq!(parse_addr("::/0").unwrap(), (0, u128::MAX));
    assert!(parse_addr("192.0.2.1/24")
        .unwrap_err()
        .contains("host bits"));
    assert!(parse_addr("10.0.0.9-10.0.0.1")
        .unwrap_err()
        .contains("ends before"));
    assert!(parse_addr("10.0.0.1-::1").unwrap_err().contains("mixes"));
    assert!(parse_addr("10.0.0.0/33")
        .unwrap_err()
        .contains("prefix length"));
}

/// Every invalid policy gets a precise error with its line and column (or names the whole
/// file), and none panics.
#[test]
fn invalid_policies_are_rejected_precisely() {
    let deep = format!(
        "version: 1\nrules: {}{}",
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let huge = format!("version: 1\n#{}\n", "x".repeat(compile::MAX_FILE_BYTES));
    let cases: Vec<(&str, String, &str)> = vec![
        ("unknown top-level key", "version: 1\nrulez: []\n".into(), "policy.yaml:2:1: error: unknown field `rulez`"),
        ("version wrong type", "version: one\n".into(), "policy.yaml:1:10:"),
        ("unsupported version", "version: 2\n".into(), "policy.yaml:1:10: error: version: 2 is not supported"),
        ("missing version", "rules: []\n".into(), "missing field `version`"),
        ("rules not a list", "version: 1\nrules: 7\n".into(), "policy.yaml:2:8:"),
        ("rule without action", "version: 1\nrules:\n  - { name: a }\n".into(), "missing field `action`"),
        ("unknown action", "version: 1\nrules:\n  - { name: a, action: permit }\n".into(), "policy.yaml:3:24: error: unknown variant `permit`, expected one of allow, deny, drop, reset"),
        ("unknown rule key", "version: 1\nrules:\n  - { name: a, action: allow, apps: [ssl] }\n".into(), "unknown field `apps`"),
        ("unknown application", "version: 1\nrules:\n  - { name: a, application: [facetim], action: allow }\n".into(), "policy.yaml:3:30: error: rule \"a\": no application \"facetim\" in the catalog (did you mean facetime?)"),
        ("rule name too long", format!("version: 1\nrules:\n  - {{ name: {}, action: allow }}\n", "r".repeat(64)), "policy.yaml:3:13: error: rule name \"rrrr"),
        ("rule named default", "version: 1\nrules:\n  - { name: default, action: allow }\n".into(), "policy.yaml:3:13: error: rule name \"default\" is reserved"),
        ("duplicate rule", "version: 1\nrules:\n  - { name: a, action: allow }\n  - { name: a, action: deny }\n".into(), "policy.yaml:4:13: error: rule \"a\" is defined twice (first on line 3)"),
        ("duplicate zone", "version: 1\nzones:\n  - { name: z, ports: [inside] }\n  - { name: z, ports: [outside] }\n".into(), "policy.yaml:4:13: error: zone \"z\" is defined twice"),
        ("zone any", "version: 1\nzones:\n  - { name: any, ports: [inside] }\n".into(), "`any` is reserved"),
        ("zone with unknown port", "version: 1\nzones:\n  - { name: z, ports: [eth9] }\n".into(), "policy.yaml:3:24: error: zone \"z\": no port \"eth9\" in dataplane.yaml (its ports: inside, outside)"),
        ("port in two zones", "version: 1\nzones:\n  - { name: a, ports: [inside] }\n  - { name: b, ports: [inside] }\n".into(), "port \"inside\" is already in zone \"a\""),
        ("rule names unknown zone", "version: 1\nrules:\n  - { name: a, from: [dmz], action: allow }\n".into(), "policy.yaml:3:23: error: rule \"a\": `from` names zone \"dmz\", which is not defined (zones: none)"),
        ("bad prefix", "version: 1\naddresses:\n  - { name: n, prefixes: [10.0.0.0/40] }\n".into(), "policy.yaml:3:27: error: address \"n\": \"40\" is not a prefix length 0-32"),
        ("host bits", "version: 1\naddresses:\n  - { name: n, prefixes: [10.0.0.1/8] }\n".into(), "has host bits set (the prefix is 10.0.0.0/8)"),
        ("not an address", "version: 1\naddresses:\n  - { name: n, prefixes: [example.com] }\n".into(), "is not an address, prefix (a/len) or range (a-b)"),
        ("reversed range", "version: 1\naddresses:\n  - { name: n, prefixes: [\"10.0.0.9-10.0.0.1\"] }\n".into(), "ends before it starts"),
        ("duplicate address", "version: 1\naddresses:\n  - { name: n, prefixes: [10.0.0.0/8] }\n  - { name: n, prefixes: [10.0.0.0/8] }\n".into(), "policy.yaml:4:13: error: address \"n\" is defined twice"),
        ("group with unknown member", "version: 1\naddress-groups:\n  - { name: g, members: [nobody] }\n".into(), "policy.yaml:3:26: error: address group \"g\": no address or group \"nobody\""),
        ("group cycle", "version: 1\naddress-groups:\n  - { name: a, members: [b] }\n  - { name: b, members: [a] }\n".into(), "contains this one"),
        ("group named like an address", "version: 1\naddresses:\n  - { name: n, prefixes: [10.0.0.0/8] }\naddress-groups:\n  - { name: n, members: [n] }\n".into(), "the name is already an address or group"),
        ("unknown source object", "version: 1\nrules:\n  - { name: a, source: [lan], action: allow }\n".into(), "policy.yaml:3:25: error: rule \"a\": `source` \"lan\" is neither an address object or group nor an address"),
        ("bad service", "version: 1\nrules:\n  - { name: a, application: [ssl], service: [tcp/99999], action: allow }\n".into(), "\"99999\" is not a port number 0-65535"),
        ("bad service protocol", "version: 1\nrules:\n  - { name: a, application: [ssl], service: [icmp/1], action: allow }\n".into(), "\"icmp\" is not tcp, udp or sctp"),
        ("bad service keyword", "version: 1\nrules:\n  - { name: a, application: [ssl], service: default, action: allow }\n".into(), "or `any`, `application-default`"),
        ("service reversed range", "version: 1\nrules:\n  - { name: a, service: [udp/9-1], action: allow }\n".into(), "the range ends before it starts"),
        ("bad default action", "version: 1\ndefault-action: maybe\n".into(), "policy.yaml:2:17:"),
        ("log not a bool", "version: 1\nrules:\n  - { name: a, action: allow, log: sometimes }\n".into(), "policy.yaml:3:36: error: invalid boolean"),
        ("tab indentation", "version: 1\nrules:\n\t- { name: a, action: allow }\n".into(), "policy.yaml:3:"),
        ("duplicate key", "version: 1\nversion: 1\n".into(), "policy.yaml:2:"),
        ("binary file", "\u{7f}ELF\u{2}\u{1}\u{1}\0\0\0".into(), "policy.yaml: error: the file contains NUL bytes"),
        ("deep nesting", deep, "policy.yaml:"),
        ("huge file", huge, "a policy may have at most"),
        ("not a mapping", "- 1\n- 2\n".into(), "policy.yaml:1:1:"),
        ("empty file", "".into(), "policy.yaml"),
        ("zero timeout", "version: 1\ntimeouts: { udp: 0 }\n".into(), "policy.yaml:2:18: error: expected a timeout of 1 to 604800 seconds, found 0"),
        ("unknown timeout class", "version: 1\ntimeouts: { sctp: 30 }\n".into(), "policy.yaml:2:13: error: unknown field `sctp`"),
        ("custom app named like the catalog's", "version: 1\napplications:\n  - { name: ssl, signatures: [{ on: ssl, host: [a.example] }] }\n".into(), "policy.yaml:3:5: error: application \"ssl\" is already in the catalog"),
        ("custom app without signatures", "version: 1\napplications:\n  - { name: corp, parent: [ssl] }\n".into(), "policy.yaml:3:5: error: application \"corp\": a custom application needs at least one signature"),
        ("custom app on a non-protocol", "version: 1\napplications:\n  - { name: corp, signatures: [{ on: facetime, host: [a.example] }] }\n".into(), "policy.yaml:3:5: error: application \"corp\": a signature's `on` must be a protocol App-ID decodes"),
        ("custom app signature matching everything", "version: 1\napplications:\n  - { name: corp, signatures: [{ on: ssl }] }\n".into(), "needs at least one of host, user-agent, stun-software, dialect, server, port"),
        ("custom app with a decoder", "version: 1\napplications:\n  - { name: corp, decoder: ssl, signatures: [{ on: ssl, host: [x] }] }\n".into(), "`decoder` and `ip-protocol` are for the catalog's protocols"),
        ("custom app with an unknown dependency", "version: 1\napplications:\n  - name: corp\n    depends-on: [skype]\n    signatures: [{ on: ssl, host: [x] }]\n".into(), "policy.yaml:3:5: error: application \"corp\": depends-on names \"skype\", which is not in the catalog"),
        ("custom app defined twice", "version: 1\napplications:\n  - { name: corp, signatures: [{ on: ssl, host: [x] }] }\n  - { name: corp, signatures: [{ on: ssl, host: [y] }] }\n".into(), "policy.yaml:4:5: error: application \"corp\" is defined twice"),
        ("custom app with a bad server prefix", "version: 1\napplications:\n  - { name: corp, signatures: [{ on: ssl, server: [10.0.0.0/99] }] }\n".into(), "policy.yaml:3:5: error: application \"corp\": server:"),
        ("NAT rule translating nothing", "version: 1\nnat:\n  - { name: n }\n".into(), "policy.yaml:3:13: error: NAT rule \"n\" translates nothing"),
        ("NAT rule with two source translations", "version: 1\nnat:\n  - { name: n, source-translation: { interface: outside, pool: [198.51.100.1] } }\n".into(), "policy.yaml:3:36: error: NAT rule \"n\": source-translation needs exactly one of `interface`, `pool`, `static`"),
        ("NAT to an unknown port", "version: 1\nnat:\n  - { name: n, source-translation: { interface: wan } }\n".into(), "policy.yaml:3:49: error: NAT rule \"n\": no port \"wan\" in dataplane.yaml (its ports: inside, outside)"),
        ("NAT pool with IPv6", "version: 1\nnat:\n  - { name: n, source-translation: { pool: [\"2001:db8::1\"] } }\n".into(), "NAT44 translates IPv4 only"),
        ("NAT static without one source prefix", "version: 1\nnat:\n  - { name: n, source-translation: { static: 198.51.100.0/24 } }\n".into(), "static translation needs the rule's `source` to be one IPv4 prefix"),
        ("NAT static of another length", "version: 1\nnat:\n  - { name: n, source: [10.0.0.0/16], source-translation: { static: 198.51.100.0/24 } }\n".into(), "static /24 does not match the source prefix's length /16"),
        ("NAT destination to a range", "version: 1\nnat:\n  - { name: n, destination-translation: { address: 10.0.0.0/24 } }\n".into(), "destination-translation needs one address"),
        ("NAT rule defined twice", "version: 1\nnat:\n  - { name: n, destination-translation: { address: 10.0.0.1 } }\n  - { name: n, destination-translation: { address: 10.0.0.2 } }\n".into(), "policy.yaml:4:13: error: NAT rule \"n\" is defined twice (first on line 3)"),
        ("NAT unknown key", "version: 1\nnat:\n  - { name: n, translate: yes }\n".into(), "unknown field `translate`"),
        ("NAT bidirectional without static", "version: 1\nnat:\n  - { name: n, source-translation: { interface: outside, bidirectional: true } }\n".into(), "`bidirectional` applies to `static` translation only"),
        ("custom app unknown key", "version: 1\napplications:\n  - { name: corp, colour: red }\n".into(), "policy.yaml:3:19: error: unknown field `colour`"),
    ];
    assert!(cases.len() >= 30);
    let mut wrong = Vec::new();
    for (what, text, want) in &cases {
        let got = errors(text).join("\n");
        if !got.contains(want) {
            wrong.push(format!("{what}: expected {want:?} in:\n{got}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let e = errors(
        "
version: 1
rules:
  - { name: a, application: [nope1], action: allow }
  - { name: b, application: [nope2], action: allow }
",
    );
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn the_fixed_policy_gives_its_action_to_every_flow() {
    let p = Policy::fixed(Action::Deny);
    let s = subject("192.0.2.1", "198.51.100.1", TCP, 80);
    assert_eq!(p.check(&s, None).action, Action::Deny);
    assert!(p.check(&s, None).settled);
    assert_eq!(p.check(&s, Some(app("ssl"))).rule, RULE_DEFAULT);
}

#[test]
fn timeouts_override_only_the_classes_given() {
    let c = build("version: 1\ntimeouts: { udp: 300, tcp-established: 7200 }\n");
    let mut want = [None; 7];
    want[crate::flow::TimeoutClass::TcpEstablished as usize] = Some(7200);
    want[crate::flow::TimeoutClass::Udp as usize] = Some(300);
    assert_eq!(c.policy.timeouts, want);
    assert_eq!(build("version: 1\n").policy.timeouts, [None; 7]);
}

const CUSTOM: &str = "
version: 1
applications:
  - name: corp-portal
    description: the intranet portal
    parent: [ssl]
    default-ports: [tcp/8443]
    depends-on: [dns]
    signatures:
      - { on: ssl, host: ['*.portal.example'] }
  - name: corp-sip
    parent: [sip]
    signatures:
      - { on: sip, user-agent: ['CorpPhone*'] }
rules:
  - { name: portal, application: [corp-portal], service: application-default, action: allow }
  - { name: phones, application: [corp-sip, sip], action: deny }
";

fn subject_ev<'a>(ev: &'a crate::appid::Evidence, port: u16) -> crate::appid::catalog::Subject<'a> {
    crate::appid::catalog::Subject {
        ev,
        server: "192.0.2.7".parse().ok(),
        server_port: port,
        client_port: 50000,
    }
}

/// Custom applications join the catalog the policy carries: rules name them, their default
/// ports make `application-default`, their dependencies draw the warning, and their
/// signatures win over the catalog's (a custom application takes precedence).
#[test]
fn custom_applications_are_named_by_rules_and_identified_first() {
    let base = catalog();
    let c = build(CUSTOM);
    let cat = c
        .policy
        .catalog
        .clone()
        .expect("the policy carries its catalog");
    assert_eq!(cat.builtin, base.apps.len());
    let portal = cat.by_name("corp-portal").unwrap();
    let corp_sip = cat.by_name("corp-sip").unwrap();
    assert_eq!(portal.0 as usize, base.apps.len());
    assert_eq!(corp_sip.0 as usize, base.apps.len() + 1);
    assert!(cat.is_custom(portal) && !cat.is_custom(cat.by_name("ssl").unwrap()));
    // The dependency warning names what the custom application needs.
    let w: Vec<String> = c.warnings.iter().map(|d| d.to_string()).collect();
    assert!(
        w.iter()
            .any(|l| l.contains("corp-portal") && l.contains("dns")),
        "{w:?}"
    );
    // Enforcement: the portal on its default port is allowed, elsewhere not.
    let p = &c.policy;
    let s = |port| subject("10.0.0.1", "192.0.2.7", 6, port);
    assert_eq!(p.check(&s(8443), Some(portal)).action, Action::Allow);
    assert_eq!(p.check(&s(443), Some(portal)).action, Action::Deny);
    // Identification: the custom signature shifts ssl, and wins over the catalog's.
    let ssl = cat.by_name("ssl").unwrap();
    let mut ev = crate::appid::Evidence::default();
    ev.host.set(b"www.portal.example");
    assert_eq!(cat.shift(ssl, &subject_ev(&ev, 443)), Some(portal));
    assert_eq!(base.shift(ssl, &subject_ev(&ev, 443)), None);
    let sip = cat.by_name("sip").unwrap();
    let mut ev = crate::appid::Evidence::default();
    ev.user_agent.set(b"CorpPhone 2.1");
    assert_eq!(cat.shift(sip, &subject_ev(&ev, 5060)), Some(corp_sip));
    // The catalog's own signatures still apply.
    let mut ev = crate::appid::Evidence::default();
    ev.user_agent.set(b"Viceroy 1.4");
    assert_eq!(
        cat.shift(sip, &subject_ev(&ev, 16402)).map(|a| cat.name(a)),
        Some("facetime")
    );
}

/// Recompiled against the running catalog (as the dataplane does on a reload), a custom
/// application keeps its id; one the new policy drops stays as a name without signatures;
/// a new one is appended; past `MAX_CUSTOM_APPS` the reload is refused.
#[test]
fn custom_application_ids_are_stable_across_reloads() {
    let first = build(CUSTOM).policy.catalog.unwrap();
    let portal = first.by_name("corp-portal").unwrap();
    let corp_sip = first.by_name("corp-sip").unwrap();
    let next = "
version: 1
applications:
  - name: corp-video
    signatures: [{ on: rtp, server: [192.0.2.0/24] }]
  - name: corp-portal
    signatures: [{ on: ssl, host: ['portal2.example'] }]
rules:
  - { name: video, application: [corp-video], action: allow }
";
    let c = compile(next, "policy.yaml", &first, Some(&ports())).unwrap();
    let cat = c.policy.catalog.unwrap();
    assert_eq!(cat.by_name("corp-portal"), Some(portal), "kept its id");
    assert_eq!(cat.by_name("corp-sip"), Some(corp_sip), "kept as a name");
    assert_eq!(cat.by_name("corp-video").unwrap().0, corp_sip.0 + 1);
    assert_eq!(cat.builtin, first.builtin);
    // The retired one no longer matches; the redefined one matches its new signature only.
    let sip = cat.by_name("sip").unwrap();
    let mut ev = crate::appid::Evidence::default();
    ev.user_agent.set(b"CorpPhone 2.1");
    assert_eq!(cat.shift(sip, &subject_ev(&ev, 5060)), None);
    let ssl = cat.by_name("ssl").unwrap();
    let mut ev = crate::appid::Evidence::default();
    ev.host.set(b"www.portal.example");
    assert_eq!(cat.shift(ssl, &subject_ev(&ev, 443)), None);
    ev.host.set(b"portal2.example");
    assert_eq!(cat.shift(ssl, &subject_ev(&ev, 443)), Some(portal));
    // A policy without custom applications still carries the running ones, retired.
    let c = compile("version: 1\n", "policy.yaml", &cat, Some(&ports())).unwrap();
    let k = c.policy.catalog.unwrap();
    assert_eq!(k.apps.len(), cat.apps.len());
    assert_eq!(k.by_name("corp-video").map(|a| k.is_custom(a)), Some(true));
    // The total of custom ids is bounded.
    let many: String = (0..crate::appid::catalog::MAX_CUSTOM_APPS)
        .map(|i| format!("  - {{ name: app{i}, signatures: [{{ on: ssl, host: [h{i}] }}] }}\n"))
        .collect();
    let Err(e) = compile(
        &format!("version: 1\napplications:\n{many}"),
        "policy.yaml",
        &k,
        Some(&ports()),
    ) else {
        panic!("too many custom applications accepted");
    };
    assert!(
        e[0].to_string().contains("at most 64 custom applications"),
        "{}",
        e[0]
    );
}

#[test]
fn nat_rules_compile_to_what_the_workers_match() {
    use crate::nat::{NatSubject, SourceNat};
    let c = build(
        "
version: 1
zones:
  - { name: trust, ports: [inside] }
  - { name: untrust, ports: [outside] }
addresses:
  - { name: lan, prefixes: [10.0.0.0/8] }
nat:
  - name: web
    to: [untrust]
    destination: [198.51.100.1]
    service: [tcp/80]
    destination-translation: { address: 10.0.0.80, port: 8080 }
  - name: dmz
    source: [10.9.0.0/24]
    source-translation: { static: 198.51.100.0/24, bidirectional: true }
  - name: out
    from: [trust]
    to: [untrust]
    source: [lan]
    source-translation: { interface: outside }
  - name: pool
    source-translation: { pool: [203.0.113.8/30, 203.0.113.20] }
",
    );
    let n = &c.policy.nat;
    assert_eq!(n.len(), 4);
    let ip = |s: &str| u32::from(s.parse::<std::net::Ipv4Addr>().unwrap());
    assert_eq!(n[0].destination.unwrap().address, ip("10.0.0.80"));
    assert_eq!(n[0].destination.unwrap().port, Some(8080));
    assert_eq!(
        n[1].source,
        SourceNat::Static {
            original: ip("10.9.0.0"),
            translated: ip("198.51.100.0"),
            len: 24,
            bidirectional: true
        }
    );
    assert_eq!(n[2].source, SourceNat::Interface(1));
    assert_eq!(
        n[3].source,
        SourceNat::Pool(vec![
            ip("203.0.113.8"),
            ip("203.0.113.9"),
            ip("203.0.113.10"),
            ip("203.0.113.11"),
            ip("203.0.113.20")
        ])
    );
    let s = |from, to, src: &str, dst: &str, proto, port| NatSubject {
        from_zone: from,
        to_zone: to,
        src: ip(src),
        dst: ip(dst),
        proto,
        dst_port: port,
    };
    // First match wins, on zones, addresses and service.
    let first = |x: &NatSubject| n.iter().position(|r| r.matches(x));
    assert_eq!(
        first(&s(1, 1, "192.0.2.9", "198.51.100.1", TCP, 80)),
        Some(0)
    );
    assert_eq!(
        first(&s(1, 1, "192.0.2.9", "198.51.100.1", TCP, 443)),
        Some(3)
    );
    assert_eq!(first(&s(0, 1, "10.9.0.7", "192.0.2.1", UDP, 53)), Some(1));
    assert_eq!(first(&s(0, 1, "10.1.0.7", "192.0.2.1", UDP, 53)), Some(2));
    assert_eq!(first(&s(1, 0, "10.1.0.7", "192.0.2.1", UDP, 53)), Some(3));
}

#[test]
fn zones_carry_their_flow_limits_and_a_wrong_key_is_placed() {
    let c = build(
        "version: 1\nzones:\n  - { name: guests, ports: [inside], limits: { flows: 2000, new-per-second: 50 } }\n  - { name: outside, ports: [outside] }\n",
    );
    let l = &c.policy.zone_limits;
    assert_eq!(l.len(), 2);
    assert_eq!((l[0].flows, l[0].new_per_second), (2000, 50));
    assert_eq!(l[1], crate::config::FlowLimit::default());
    assert_eq!(c.policy.zone_of_port, [0, 1]);
    let e = errors(
        "version: 1\nzones:\n  - name: guests\n    ports: [inside]\n    limits: { flows: 2000, per-second: 50 }\n",
    );
    assert!(
        e.iter()
            .any(|m| m.contains("policy.yaml:5:") && m.contains("per-second")),
        "{e:?}"
    );
}
