//! App-ID: which application every flow carries, decided from what the flow contains.
//!
//! Decoders (one file each under `decoders/`) recognise protocols: each implements `Decoder`,
//! whose `probe` answers `Match`, `NotYet` or `NotMe` for the data seen so far. The engine
//! (`engine.rs`) keeps, per undecided flow, a classifier context from a bounded per-worker pool:
//! the set of decoders still in the running, a few bytes of state per decoder, the first bytes
//! of each TCP direction (so records split across segments and several messages per segment
//! look the same to a decoder), and the evidence decoders extracted (SNI, Host, User-Agent...).
//! The port-hinted decoders are asked first; a decoder that says `NotMe` is never asked again
//! for that flow; after a budget of payload packets per direction the flow is `unknown-tcp`/
//! `unknown-udp` (or `incomplete`/`insufficient-data`). The catalog (`catalog.rs`, data from
//! `conf/apps.yaml`) then maps the protocol to an application and applies signatures to shift
//! it to a more specific one (ssl -> facetime by SNI, sip -> facetime by User-Agent).
//!
//! Decided flows never reach App-ID again. Nothing here allocates per packet.

pub mod catalog;
pub mod decoders;
pub mod engine;
pub mod evidence;

pub use evidence::{Evidence, Text};

use crate::flow::Dir;
use crate::packet::IpAddr16;

/// A protocol a decoder recognises. The catalog maps each to an application by its `name`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Proto {
    Sip,
    Stun,
    Rtp,
    Rtcp,
    Ssl,
    Dtls,
    Jabber,
    Http,
    HttpProxy,
    Dns,
    Mdns,
    Llmnr,
    Ssdp,
    Dhcp,
    Dhcpv6,
    Ntp,
    NetbiosNs,
    NetbiosDgm,
    Smb,
    NatPmp,
    Smtp,
    Pop3,
    Imap,
    Rtsp,
    Ssh,
    Quic,
    Vxlan,
    GtpU,
    Teredo,
    Capwap,
    Wireguard,
    Openvpn,
    Ipsec,
    Rdp,
    Vnc,
    Telnet,
    Ftp,
    Tftp,
    Kerberos,
    Ldap,
    Snmp,
    Syslog,
    Mysql,
    Postgres,
    Mqtt,
    Bittorrent,
    Whatsapp,
    Zoom,
    Discord,
    Telegram,
}

impl Proto {
    pub const ALL: [Proto; 50] = [
        Proto::Sip,
        Proto::Stun,
        Proto::Rtp,
        Proto::Rtcp,
        Proto::Ssl,
        Proto::Dtls,
        Proto::Jabber,
        Proto::Http,
        Proto::HttpProxy,
        Proto::Dns,
        Proto::Mdns,
        Proto::Llmnr,
        Proto::Ssdp,
        Proto::Dhcp,
        Proto::Dhcpv6,
        Proto::Ntp,
        Proto::NetbiosNs,
        Proto::NetbiosDgm,
        Proto::Smb,
        Proto::NatPmp,
        Proto::Smtp,
        Proto::Pop3,
        Proto::Imap,
        Proto::Rtsp,
        Proto::Ssh,
        Proto::Quic,
        Proto::Vxlan,
        Proto::GtpU,
        Proto::Teredo,
        Proto::Capwap,
        Proto::Wireguard,
        Proto::Openvpn,
        Proto::Ipsec,
        Proto::Rdp,
        Proto::Vnc,
        Proto::Telnet,
        Proto::Ftp,
        Proto::Tftp,
        Proto::Kerberos,
        Proto::Ldap,
        Proto::Snmp,
        Proto::Syslog,
        Proto::Mysql,
        Proto::Postgres,
        Proto::Mqtt,
        Proto::Bittorrent,
        Proto::Whatsapp,
        Proto::Zoom,
        Proto::Discord,
        Proto::Telegram,
    ];

    /// The application name this protocol has in the catalog.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Sip => "sip",
            Proto::Stun => "stun",
            Proto::Rtp => "rtp",
            Proto::Rtcp => "rtcp",
            Proto::Ssl => "ssl",
            Proto::Dtls => "dtls",
            Proto::Jabber => "jabber",
            Proto::Http => "web-browsing",
            Proto::HttpProxy => "http-proxy",
            Proto::Dns => "dns",
            Proto::Mdns => "mdns",
            Proto::Llmnr => "llmnr",
            Proto::Ssdp => "ssdp",
            Proto::Dhcp => "dhcp",
            Proto::Dhcpv6 => "dhcpv6",
            Proto::Ntp => "ntp",
            Proto::NetbiosNs => "netbios-ns",
            Proto::NetbiosDgm => "netbios-dg",
            Proto::Smb => "ms-ds-smb",
            Proto::NatPmp => "nat-pmp",
            Proto::Smtp => "smtp",
            Proto::Pop3 => "pop3",
            Proto::Imap => "imap",
            Proto::Rtsp => "rtsp",
            Proto::Ssh => "ssh",
            Proto::Quic => "quic",
            Proto::Vxlan => "vxlan",
            Proto::GtpU => "gtp-u",
            Proto::Teredo => "teredo",
            Proto::Capwap => "capwap",
            Proto::Wireguard => "wireguard",
            Proto::Openvpn => "openvpn",
            Proto::Ipsec => "ipsec",
            Proto::Rdp => "ms-rdp",
            Proto::Vnc => "vnc",
            Proto::Telnet => "telnet",
            Proto::Ftp => "ftp",
            Proto::Tftp => "tftp",
            Proto::Kerberos => "kerberos",
            Proto::Ldap => "ldap",
            Proto::Snmp => "snmp",
            Proto::Syslog => "syslog",
            Proto::Mysql => "mysql",
            Proto::Postgres => "postgres",
            Proto::Mqtt => "mqtt",
            Proto::Bittorrent => "bittorrent",
            Proto::Whatsapp => "whatsapp",
            Proto::Zoom => "zoom",
            Proto::Discord => "discord",
            Proto::Telegram => "telegram",
        }
    }
}

/// How sure a decoder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confidence {
    /// The structure leaves no doubt (a SIP request line with its mandatory headers, a TLS
    /// ClientHello that parses to the end).
    Certain,
    /// Consistent with the protocol but weak on its own (e.g. RTP seen in one packet only).
    Likely,
}

/// A decoder's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    Match(Proto, Confidence),
    /// Could still be this protocol: ask again with more data.
    NotYet,
    /// Not this protocol: never ask again for this flow.
    NotMe,
}

/// Transport of a flow, as decoders see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// What a decoder knows about the flow besides the data.
#[derive(Clone, Copy, Debug)]
pub struct FlowCtx {
    pub transport: Transport,
    /// Direction of this data relative to the flow's originator (the client).
    pub dir: Dir,
    /// Client (originator) and server address and port.
    pub client: (IpAddr16, u16),
    pub server: (IpAddr16, u16),
    /// Payload packets seen so far in each direction, this one included (indexed by `Dir`).
    pub packets: [u8; 2],
}

impl FlowCtx {
    /// The source and destination port of this packet.
    pub fn ports(&self) -> (u16, u16) {
        match self.dir {
            Dir::Orig => (self.client.1, self.server.1),
            Dir::Reply => (self.server.1, self.client.1),
        }
    }
    /// Whether either end uses `port`.
    pub fn has_port(&self, port: u16) -> bool {
        self.client.1 == port || self.server.1 == port
    }
}

/// Per-flow, per-decoder scratch state: zeroed when the flow's classification starts.
pub type Scratch = [u8; 16];

/// One protocol recogniser. Implementations are stateless: per-flow state lives in `scratch`.
pub trait Decoder: Sync {
    /// Short name, for tests and counters.
    fn name(&self) -> &'static str;
    /// Whether it applies to this transport at all.
    fn transports(&self) -> &'static [Transport];
    /// Ports that hint at this protocol (tried first; never proof).
    fn hint_ports(&self) -> &'static [u16];
    /// Looks at the data seen so far in direction `ctx.dir`. For UDP `data` is this datagram;
    /// for TCP it is the stream of this direction from its first byte (up to the context's
    /// buffer size), so a record split across segments arrives whole once all parts are in.
    /// It must not panic on any input, must not allocate, and fills `ev` with what it finds.
    fn probe(&self, data: &[u8], ctx: &FlowCtx, scratch: &mut Scratch, ev: &mut Evidence) -> Probe;
    /// `probe`, given on UDP flows the flow's gathering buffer (`engine::STREAM_BYTES`, the
    /// buffer a TCP flow's stream would use; zeroed bytes are not promised): for the one
    /// decoder that must assemble a message from several datagrams, QUIC, whose ClientHello
    /// may span Initials. What the decoder keeps there is its own to track (in `scratch`).
    fn probe_gathering(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        scratch: &mut Scratch,
        ev: &mut Evidence,
        _gather: Option<&mut [u8; engine::STREAM_BYTES]>,
    ) -> Probe {
        self.probe(data, ctx, scratch, ev)
    }
}
