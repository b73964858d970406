//! `policy.yaml` as written: the serde model. Names that refer to other objects keep their
//! location (`Spanned`), so the compiler's errors name the line and column of the reference.
//!
//! ```yaml
//! version: 1
//! zones:
//!   - { name: inside, ports: [capture-in] }
//! addresses:
//!   - { name: lan, prefixes: [192.168.0.0/16, "10.0.0.1-10.0.0.50", "2001:db8::/32"] }
//! address-groups:
//!   - { name: clients, members: [lan] }
//! applications:
//!   - name: corp-portal
//!     parent: [ssl]
//!     signatures: [{ on: ssl, host: ["portal.example.com"] }]
//!     default-ports: [tcp/443]
//! rules:
//!   - name: facetime
//!     from: [inside]
//!     source: [clients]
//!     application: [facetime, sip, stun, ssl, jabber, ichat-av]
//!     service: application-default
//!     action: allow
//! default-action: deny
//! ```
use crate::appid::catalog::AppSpec;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A name (or literal) referring to something else, with where it was written.
pub type Ref = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyFile {
    /// Schema version; must be 1.
    pub version: Spanned<u32>,
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub addresses: Vec<Address>,
    #[serde(default)]
    pub address_groups: Vec<AddressGroup>,
    /// Custom applications, in `conf/apps.yaml`'s schema (signatures on a decoded protocol;
    /// tried before the catalog's).
    #[serde(default)]
    pub applications: Vec<Spanned<AppSpec>>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// NAT rules (NAT44), first match wins, matched on the original packet.
    #[serde(default)]
    pub nat: Vec<NatRule>,
    /// What happens to a flow no rule matches (default `deny`).
    #[serde(default)]
    pub default_action: Option<Spanned<Action>>,
    /// Whether flows that match no rule are logged (default true).
    #[serde(default)]
    pub default_log: Option<bool>,
    /// Idle timeouts (seconds) while this policy runs; a class left out keeps dataplane.yaml's
    /// `flow-table.timeouts`.
    #[serde(default)]
    pub timeouts: Option<PolicyTimeouts>,
}

/// Idle timeouts, the classes of dataplane.yaml's `flow-table.timeouts`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyTimeouts {
    pub tcp_embryonic: Option<Spanned<u32>>,
    pub tcp_established: Option<Spanned<u32>>,
    pub tcp_closing: Option<Spanned<u32>>,
    pub tcp_closed: Option<Spanned<u32>>,
    pub udp: Option<Spanned<u32>>,
    pub icmp: Option<Spanned<u32>>,
    pub other: Option<Spanned<u32>>,
}

impl PolicyTimeouts {
    /// The classes in `flow::TimeoutClass` order.
    pub fn classes(&self) -> [&Option<Spanned<u32>>; 7] {
        [
            &self.tcp_embryonic,
            &self.tcp_established,
            &self.tcp_closing,
            &self.tcp_closed,
            &self.udp,
            &self.icmp,
            &self.other,
        ]
    }
}

/// A zone: the ports (names from dataplane.yaml) whose traffic belongs to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Zone {
    pub name: Ref,
    pub ports: Vec<Ref>,
    /// Limits on the flows that come in from the zone (held, and new per second), over all
    /// workers: e.g. `limits: { flows: 20000, new-per-second: 2000 }` on a guest network.
    #[serde(default)]
    pub limits: crate::config::FlowLimit,
}

/// An address object: IPv4/IPv6 addresses, prefixes (`a/len`) and ranges (`a-b`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Address {
    pub name: Ref,
    #[serde(default)]
    pub description: String,
    pub prefixes: Vec<Ref>,
}

/// A group of address objects and other groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AddressGroup {
    pub name: Ref,
    pub members: Vec<Ref>,
}

/// A security rule. Lists left out mean `any`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rule {
    pub name: Ref,
    #[serde(default)]
    pub description: String,
    /// Zones the flow's first packet arrives from.
    #[serde(default)]
    pub from: Vec<Ref>,
    /// Zones it leaves to.
    #[serde(default)]
    pub to: Vec<Ref>,
    /// The originator's address: address objects, groups, or literals.
    #[serde(default)]
    pub source: Vec<Ref>,
    /// The responder's address.
    #[serde(default)]
    pub destination: Vec<Ref>,
    /// Catalog application names, or `any`.
    #[serde(default)]
    pub application: Vec<Ref>,
    /// `application-default` (the applications' default ports from the catalog), `any`, or a
    /// list of `tcp/N`, `udp/N-M`. Default: `application-default` when the rule names
    /// applications, else `any`.
    #[serde(default)]
    pub service: Option<Spanned<Service>>,
    pub action: Spanned<Action>,
    /// Log the rule's flows (default true).
    #[serde(default)]
    pub log: Option<bool>,
    /// Run the application's ALG (the SIP ALG) on the rule's flows (default true): false is
    /// the application override for a peer that handles NAT itself (an SBC, a phone with
    /// STUN/ICE), whose messages then pass untouched and open no pinholes.
    #[serde(default)]
    pub alg: Option<bool>,
}

/// A NAT rule: the original packet it matches (lists left out mean any) and how it is
/// translated.
///
/// ```yaml
/// nat:
///   - name: outbound
///     from: [inside]
///     to: [outside]
///     source: [lan]
///     source-translation: { interface: wan }      # or { pool: [198.51.100.10-198.51.100.12] }
///   - name: web-server
///     to: [outside]
///     destination: [198.51.100.1]
///     service: [tcp/80]
///     destination-translation: { address: 192.168.1.10, port: 8080 }
///   - name: dmz-host
///     source: [192.168.2.0/24]
///     source-translation: { static: 198.51.100.64/24, bidirectional: true }
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NatRule {
    pub name: Ref,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub from: Vec<Ref>,
    /// The zone the original destination routes to.
    #[serde(default)]
    pub to: Vec<Ref>,
    #[serde(default)]
    pub source: Vec<Ref>,
    #[serde(default)]
    pub destination: Vec<Ref>,
    /// `any` or a list of `tcp/N`, `udp/N-M` (the original destination port).
    #[serde(default)]
    pub service: Option<Spanned<Service>>,
    #[serde(default)]
    pub source_translation: Option<Spanned<SourceTranslation>>,
    #[serde(default)]
    pub destination_translation: Option<Spanned<DestinationTranslation>>,
}

/// Source translation: exactly one of `interface`, `pool`, `static`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceTranslation {
    /// Dynamic IP and port to the address of this dataplane port.
    #[serde(default)]
    pub interface: Option<Ref>,
    /// Dynamic IP and port to these IPv4 addresses (addresses, prefixes, ranges).
    #[serde(default)]
    pub pool: Vec<Ref>,
    /// One-to-one onto this prefix, the length of the rule's source prefix.
    #[serde(default, rename = "static")]
    pub static_: Option<Ref>,
    /// With `static`: flows from outside to the translated addresses reach the originals.
    #[serde(default)]
    pub bidirectional: bool,
}

/// Destination translation (port forwarding).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DestinationTranslation {
    pub address: Ref,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Service {
    /// `any` or `application-default`.
    Keyword(String),
    Ports(Vec<String>),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum Action {
    /// Forward the flow.
    Allow,
    /// Stop the flow silently (logged as denied).
    Deny,
    /// Stop the flow silently.
    Drop,
    /// Stop the flow: a TCP RST to both ends, ICMP port unreachable for other protocols.
    Reset,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Drop => "drop",
            Action::Reset => "reset",
        }
    }
}
