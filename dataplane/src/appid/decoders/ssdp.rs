//! SSDP, UPnP's discovery protocol: HTTP-formatted messages over UDP (HTTPU). A datagram is
//! SSDP when it is a discovery request (`M-SEARCH * HTTP/1.1` with an ST or MAN header), an
//! announcement (`NOTIFY * HTTP/1.1` with an NT, NTS or USN header), or a search response
//! (`HTTP/1.1 200 OK` with an ST, USN or NT header: plain HTTP never travels over UDP with
//! those). Port 1900 is a hint: responses come from it to the searcher's own port. The
//! USER-AGENT (searches) or SERVER (announcements, responses) header goes into
//! `ev.user_agent`.
//!
//! UDP only. Never allocates, never panics: it reads lines of the datagram through the
//! bounds-checked header helpers.
use super::util::{header_lines, header_value};
use crate::appid::{Confidence, Decoder, Evidence, FlowCtx, Probe, Proto, Scratch, Transport};

pub struct Ssdp;

pub const SSDP_PORT: u16 = 1900;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Search,
    Notify,
    Response,
}

/// The message kind from the first line, exactly as UPnP writes it (HTTP/1.0 tolerated).
fn kind(line: &[u8]) -> Option<Kind> {
    match line {
        b"M-SEARCH * HTTP/1.1" | b"M-SEARCH * HTTP/1.0" => Some(Kind::Search),
        b"NOTIFY * HTTP/1.1" | b"NOTIFY * HTTP/1.0" => Some(Kind::Notify),
        _ if line.starts_with(b"HTTP/1.1 200") || line.starts_with(b"HTTP/1.0 200") => {
            // "HTTP/1.1 200" then the end, or a space and a reason phrase.
            matches!(line.get(12), None | Some(b' ')).then_some(Kind::Response)
        }
        _ => None,
    }
}

impl Decoder for Ssdp {
    fn name(&self) -> &'static str {
        "ssdp"
    }
    fn transports(&self) -> &'static [Transport] {
        &[Transport::Udp]
    }
    fn hint_ports(&self) -> &'static [u16] {
        &[SSDP_PORT]
    }
    fn probe(
        &self,
        data: &[u8],
        ctx: &FlowCtx,
        _scratch: &mut Scratch,
        ev: &mut Evidence,
    ) -> Probe {
        if ctx.transport != Transport::Udp {
            return Probe::NotMe;
        }
        // The request or status line must end with a line break inside the datagram.
        if !data.iter().take(64).any(|&c| c == b'\n') {
            return Probe::NotMe;
        }
        let Some(k) = header_lines(data, 1).next().and_then(kind) else {
            return Probe::NotMe;
        };
        let has = |name: &[u8]| header_value(data, name, None).is_some();
        let ok = match k {
            Kind::Search => has(b"ST") || has(b"MAN"),
            Kind::Notify => has(b"NT") || has(b"NTS") || has(b"USN"),
            Kind::Response => has(b"ST") || has(b"USN") || has(b"NT"),
        };
        if !ok {
            return Probe::NotMe;
        }
        let agent = match k {
            Kind::Search => header_value(data, b"USER-AGENT", None),
            Kind::Notify | Kind::Response => header_value(data, b"SERVER", None),
        };
        if let Some(a) = agent.filter(|a| !a.is_empty()) {
            ev.user_agent.set(a);
        }
        Probe::Match(Proto::Ssdp, Confidence::Certain)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, ctx, probe_once};
    use super::*;
    use crate::flow::Dir;
    use proptest::prelude::*;

    /// iphone.pcap, 192.168.2.1:51411 -> 239.255.255.250:1900.
    const SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: urn:dial-multiscreen-org:service:dial:1\r\n\r\n";
    /// 1kxun.pcap, 192.168.5.49:1900 -> 239.255.255.250:1900.
    const NOTIFY: &[u8] = b"NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\nLocation: http://192.168.5.49:2869/upnphost/udhisapi.dll?content=uuid:9319395a-4d03-4750-bb1b-4663933ab812\r\nUSN: uuid:9319395a-4d03-4750-bb1b-4663933ab812::upnp:rootdevice\r\nCache-Control: max-age=900\r\nServer: Microsoft-Windows/10.0 UPnP/1.0 UPnP-Device-Host/1.0\r\nOPT:\"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: d07b435d299b41784ca3d2ae2b959948\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\nLOCATION: http://192.168.1.1:49152/rootDesc.xml\r\nSERVER: Linux/3.4 UPnP/1.1 MiniUPnPd/2.0\r\nST: upnp:rootdevice\r\nUSN: uuid:3b1e5c1a-0000-0000-0000-000000000001::upnp:rootdevice\r\n\r\n";

    #[test]
    fn search_notify_and_response_are_ssdp() {
        let c = ctx(Transport::Udp, Dir::Orig, 51411, 1900);
        assert_eq!(
            probe_once(&Ssdp, SEARCH, &c).0,
            Probe::Match(Proto::Ssdp, Confidence::Certain)
        );
        let (p, ev) = probe_once(&Ssdp, NOTIFY, &ctx(Transport::Udp, Dir::Orig, 1900, 1900));
        assert_eq!(p, Probe::Match(Proto::Ssdp, Confidence::Certain));
        assert_eq!(
            ev.user_agent.as_str(),
            // Evidence keeps the first 48 bytes.
            "Microsoft-Windows/10.0 UPnP/1.0 UPnP-Device-Host"
        );
        // The response comes from 1900 to the searcher's port.
        let (p, ev) = probe_once(
            &Ssdp,
            RESPONSE,
            &ctx(Transport::Udp, Dir::Reply, 51411, 1900),
        );
        assert_eq!(p, Probe::Match(Proto::Ssdp, Confidence::Certain));
        assert_eq!(ev.user_agent.as_str(), "Linux/3.4 UPnP/1.1 MiniUPnPd/2.0");
    }

    #[test]
    fn the_port_is_only_a_hint() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 41000);
        assert_eq!(
            probe_once(&Ssdp, SEARCH, &c).0,
            Probe::Match(Proto::Ssdp, Confidence::Certain)
        );
    }

    #[test]
    fn http_lookalikes_are_not_ssdp() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 1900);
        // A 200 OK without any SSDP header is plain HTTP.
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(probe_once(&Ssdp, plain, &c).0, Probe::NotMe);
        // An M-SEARCH without ST or MAN; a NOTIFY without NT, NTS or USN.
        let bare = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
        assert_eq!(probe_once(&Ssdp, bare, &c).0, Probe::NotMe);
        let bare = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
        assert_eq!(probe_once(&Ssdp, bare, &c).0, Probe::NotMe);
        // GENA's NOTIFY to a path (HTTP over TCP eventing) is not discovery.
        let gena = b"NOTIFY /evt HTTP/1.1\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\n\r\n";
        assert_eq!(probe_once(&Ssdp, gena, &c).0, Probe::NotMe);
        // Not 200, or a status code that only starts with 200.
        let e = b"HTTP/1.1 404 Not Found\r\nST: upnp:rootdevice\r\n\r\n";
        assert_eq!(probe_once(&Ssdp, e, &c).0, Probe::NotMe);
        let e = b"HTTP/1.1 2001 OK\r\nST: upnp:rootdevice\r\n\r\n";
        assert_eq!(probe_once(&Ssdp, e, &c).0, Probe::NotMe);
        // Over TCP it is not SSDP.
        let t = ctx(Transport::Tcp, Dir::Orig, 40000, 1900);
        assert_eq!(probe_once(&Ssdp, SEARCH, &t).0, Probe::NotMe);
    }

    #[test]
    fn other_protocols_are_not_ssdp() {
        let c = ctx(Transport::Udp, Dir::Orig, 40000, 1900);
        for m in [
            testkit::HTTP_GET,
            testkit::SIP_INVITE,
            testkit::TLS_HELLO,
            &[][..],
        ] {
            assert_eq!(probe_once(&Ssdp, m, &c).0, Probe::NotMe);
        }
    }

    #[test]
    fn agrees_with_ndpi_on_the_corpus() {
        let (bad, matched) = testkit::compare_with_ndpi(&Ssdp, &[Proto::Ssdp]);
        assert!(bad.is_empty(), "disagreements:\n{}", bad.join("\n"));
        // iphone.pcap 2, 1kxun.pcap 13.
        assert_eq!(matched.get(&Proto::Ssdp), Some(&24));
    }

    #[test]
    fn nothing_in_the_other_captures_matches() {
        // SIP calls with RTP, SNMP, MGCP, H.225; FaceTime media; TRex's DNS, HTTP, mail,
        // Exchange (DCE-RPC), Oracle, Citrix and video-call mixes.
        assert_eq!(testkit::matches_elsewhere(&Ssdp), Vec::<String>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]
        #[test]
        fn never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            scratch in any::<[u8; 16]>(),
            ports in (any::<u16>(), any::<u16>()),
            tcp in any::<bool>(),
        ) {
            let t = if tcp { Transport::Tcp } else { Transport::Udp };
            let mut s = scratch;
            let mut ev = Evidence::default();
            let _ = Ssdp.probe(&data, &ctx(t, Dir::Orig, ports.0, ports.1), &mut s, &mut ev);
        }

        #[test]
        fn mutated_messages_never_panic(
            flips in proptest::collection::vec((0usize..200, any::<u8>()), 0..6),
            cut in 0usize..200,
        ) {
            let mut m = NOTIFY.to_vec();
            for (i, b) in flips {
                if let Some(x) = m.get_mut(i) { *x = b; }
            }
            m.truncate(cut);
            let _ = probe_once(&Ssdp, &m, &ctx(Transport::Udp, Dir::Orig, 1900, 1900));
        }
    }
}
