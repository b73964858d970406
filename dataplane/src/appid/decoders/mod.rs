//! The decoders, one file each, and the registry the engine walks. Adding a protocol touches
//! its file and one line here. Order matters only for ties: structured protocols first, the
//! heuristic ones (RTCP, RTP) last.
use super::Decoder;

pub mod dhcp;
pub mod dns;
pub mod dtls;
pub mod http;
pub mod natpmp;
pub mod netbios;
pub mod ntp;
pub mod rtcp;
pub mod rtp;
pub mod sip;
pub mod smb;
pub mod ssdp;
pub mod stun;
pub mod tls;
pub mod util;
pub mod xmpp;

/// Every decoder, in the order the engine asks them (after the port-hinted ones).
pub static DECODERS: &[&dyn Decoder] = &[
    &sip::Sip,
    &stun::Stun,
    &tls::Tls,
    &dtls::Dtls,
    &xmpp::Xmpp,
    &http::Http,
    &dns::Dns,
    &ssdp::Ssdp,
    &dhcp::Dhcp,
    &ntp::Ntp,
    &netbios::Netbios,
    &smb::Smb,
    &natpmp::NatPmp,
    &rtcp::Rtcp,
    &rtp::Rtp,
];

/// A decoder by its `name()` (tests and fuzz targets).
pub fn by_name(name: &str) -> Option<&'static dyn Decoder> {
    DECODERS.iter().copied().find(|d| d.name() == name)
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
        assert!(DECODERS.len() <= 32, "the engine keeps candidates in a u32");
    }
}
