//! The decoders, one file each, and the registry the engine walks. Adding a protocol touches
//! its file and one line here. Order matters only for ties: structured protocols first, the
//! heuristic ones (RTCP, RTP) last.
use super::Decoder;

pub mod bittorrent;
pub mod dhcp;
pub mod discord;
pub mod dns;
pub mod dtls;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod ipsec;
pub mod kerberos;
pub mod ldap;
pub mod mqtt;
pub mod mysql;
pub mod natpmp;
pub mod netbios;
pub mod ntp;
pub mod openvpn;
pub mod pop3;
pub mod postgres;
pub mod quic;
pub mod rdp;
pub mod rtcp;
pub mod rtp;
pub mod rtsp;
pub mod sip;
pub mod smb;
pub mod smtp;
pub mod snmp;
pub mod ssdp;
pub mod ssh;
pub mod stun;
pub mod syslog;
pub mod telegram;
pub mod telnet;
#[cfg(test)]
pub(crate) mod testkit;
pub mod tftp;
pub mod tls;
pub mod tunnel;
pub mod util;
pub mod vnc;
pub mod whatsapp;
pub mod wireguard;
pub mod x509;
pub mod xmpp;
pub mod zoom;

/// Every decoder, in the order the engine asks them (after the port-hinted ones).
pub static DECODERS: &[&dyn Decoder] = &[
    &sip::Sip,
    &stun::Stun,
    &tls::Tls,
    &dtls::Dtls,
    &quic::Quic,
    &xmpp::Xmpp,
    &http::Http,
    &dns::Dns,
    &ssdp::Ssdp,
    &dhcp::Dhcp,
    &ntp::Ntp,
    &netbios::Netbios,
    &smb::Smb,
    &natpmp::NatPmp,
    &smtp::Smtp,
    &pop3::Pop3,
    &imap::Imap,
    &rtsp::Rtsp,
    &ssh::Ssh,
    &tunnel::UdpTunnel,
    &ipsec::Ipsec,
    &openvpn::Openvpn,
    &wireguard::Wireguard,
    &kerberos::Kerberos,
    &ldap::Ldap,
    &snmp::Snmp,
    &tftp::Tftp,
    &syslog::Syslog,
    &rdp::Rdp,
    &vnc::Vnc,
    &telnet::Telnet,
    &ftp::Ftp,
    &mysql::Mysql,
    &postgres::Postgres,
    &mqtt::Mqtt,
    &bittorrent::Bittorrent,
    &whatsapp::Whatsapp,
    &zoom::Zoom,
    &discord::Discord,
    &telegram::Telegram,
    &rtcp::Rtcp,
    &rtp::Rtp,
];

/// A decoder by its `name()` (tests and fuzz targets).
pub fn by_name(name: &str) -> Option<&'static dyn Decoder> {
    DECODERS.iter().copied().find(|d| d.name() == name)
}

/// Drives decoder `name` with arbitrary bytes the way the engine would: the first bytes choose
/// the transport, direction and ports; the rest is cut into successive datagrams (UDP) or a
/// growing stream prefix (TCP) fed with one scratch state. For fuzz targets and property tests:
/// it panics only if the decoder does (or the name is unknown).
pub fn exercise(name: &str, data: &[u8]) {
    use super::{FlowCtx, Transport};
    use crate::flow::Dir;
    use crate::packet::IpAddr16;
    let d = by_name(name).unwrap_or_else(|| panic!("no decoder {name:?}"));
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let transport = if sel & 1 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let port = |i: usize| rest.get(i).map_or(0, |b| *b as u16) * 64 + (sel >> 2) as u16;
    let (client_port, server_port) = (port(0), port(1));
    let mut scratch = [0u8; 16];
    let mut gather = Box::new([0u8; super::engine::STREAM_BYTES]);
    let mut ev = super::Evidence::default();
    let mut packets = [0u8; 2];
    let chunk = 1 + (sel >> 4) as usize * 16;
    let mut end = 0;
    let mut i = 0;
    while end < rest.len() && i < 64 {
        let start = if transport == Transport::Tcp { 0 } else { end };
        end = (end + chunk).min(rest.len());
        let dir = if i % 3 == 2 { Dir::Reply } else { Dir::Orig };
        packets[dir as usize] = packets[dir as usize].saturating_add(1);
        let ctx = FlowCtx {
            transport,
            dir,
            client: (IpAddr16::from_v4([10, 0, 0, 1]), client_port),
            server: (IpAddr16::from_v4([17, 0, 0, 1]), server_port),
            packets,
        };
        let g = (transport == Transport::Udp).then_some(&mut *gather);
        let _ = d.probe_gathering(&rest[start..end], &ctx, &mut scratch, &mut ev, g);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_registry_fits_the_candidate_mask() {
        let mut names: Vec<&str> = DECODERS.iter().map(|d| d.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DECODERS.len());
        assert!(DECODERS.len() <= 64, "the engine keeps candidates in a u64");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// Every registered decoder, driven like the engine drives it, never panics.
        #[test]
        fn no_decoder_panics_on_arbitrary_flows(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            for d in DECODERS {
                exercise(d.name(), &data);
            }
        }
    }
}
